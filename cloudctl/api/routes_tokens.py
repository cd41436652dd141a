"""``/v1/whoami`` and ``/v1/tokens``: who a token is, and the secadmin's tokens.

Through ``services.identity``, which authorises (``token.*``: the secadmin's power) and audits
each write, refused or not. A secret is in the answer that creates its token, and nowhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cloudctl.api import app as app_module
from cloudctl.services import identity


class WhoAmI(BaseModel):
    id: str
    role: str
    department: str


class TokenCreate(BaseModel):
    model_config = app_module.STRICT

    role: str = Field(max_length=20, description="dept-admin, dept-user, sysadmin, secadmin or auditor")
    department: str | None = Field(default=None, max_length=40, description="For dept-admin and dept-user")
    name: str = Field(default="", max_length=100, description="A name to recognise the token by")
    expires_in_s: float | None = Field(default=None, gt=0, description="Expire after this many seconds")


class TokensPage(BaseModel):
    data: list[identity.TokenPublic]
    count: int
    next_cursor: str | None = None


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/whoami", tags=["session"])
    def whoami(principal: app_module.PrincipalDep) -> WhoAmI:
        """The identity the bearer token stands for (what `cloudctl login` checks)."""
        return WhoAmI(id=principal.id, role=principal.role, department=principal.department)

    @routes.post("/tokens", status_code=201, tags=["operators"])
    def create_token(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, body: TokenCreate
    ) -> identity.IssuedToken:
        """Issue a token; its secret is in this answer only (a salted hash is kept)."""
        return identity.create_token(
            ctx,
            principal=principal,
            role=body.role,
            department=body.department,
            name=body.name,
            expires_in_s=body.expires_in_s,
        )

    @routes.get("/tokens", tags=["operators"])
    def list_tokens(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        include_revoked: Annotated[bool, Query(description="Include revoked tokens")] = False,
    ) -> TokensPage:
        """Tokens, never their secrets."""
        items = identity.list_tokens(ctx, principal=principal, include_revoked=include_revoked)
        return TokensPage(data=items, count=len(items))

    @routes.post("/tokens/{token_id}/revoke", tags=["operators"])
    def revoke_token(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, token_id: str
    ) -> identity.TokenPublic:
        """Revoke a token at once; requests carrying it are refused from now on."""
        return identity.revoke_token(ctx, principal=principal, token_id=token_id)

    return routes
