"""``/v1/whoami`` and ``/v1/tokens``: who a token is, and the secadmin's tokens.

Through ``services.identity``, which authorises (``token.*``: the secadmin's power) and audits
each write, refused or not. A secret is in the answer that creates its token, and nowhere else.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cloudctl.api import app as app_module
from cloudctl.services import identity


class WhoAmI(BaseModel):
    """Who the bearer token stands for."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {"id": "token:3f9c2a7d5e41b086", "role": "dept-admin", "department": "hrss-insurance"}
            ]
        },
    )

    id: str
    """``token:<token id>``: the principal named in the audit log."""
    role: str
    """``dept-admin``, ``dept-user``, ``sysadmin``, ``secadmin`` or ``auditor``."""
    department: str
    """The org node a department role acts for; empty for the operator roles."""


class TokenCreate(BaseModel):
    """A token to issue (the secadmin's ``token.create``)."""

    model_config = ConfigDict(
        **app_module.STRICT,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "role": "dept-admin",
                    "department": "hrss-insurance",
                    "name": "社保中心运维",
                    "expires_in_s": 7776000,
                }
            ]
        },
    )

    role: str = Field(max_length=20, description="dept-admin, dept-user, sysadmin, secadmin or auditor")
    department: str | None = Field(default=None, max_length=40, description="For dept-admin and dept-user")
    name: str = Field(default="", max_length=100, description="A name to recognise the token by")
    expires_in_s: float | None = Field(
        default=None,
        gt=0,
        le=identity.MAX_TOKEN_LIFETIME_S,
        description="Expire after this many seconds, at most ten years; leave out for no expiry",
    )


class TokensPage(BaseModel):
    """Tokens, oldest first, all on one page."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={"examples": [{"data": [identity.TOKEN_EXAMPLE], "count": 1, "next_cursor": None}]},
    )

    data: list[identity.TokenPublic]
    """The tokens, oldest first."""
    count: int
    """How many tokens ``data`` holds."""
    next_cursor: str | None = None
    """Always null: every token is on this page."""


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
        """Issue a token; its secret is in this answer only (a salted hash is kept).

        A department role needs ``department`` (an existing org node), an operator role must have
        none; both refusals are 422. Audited, refusals too.
        """
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
        include_revoked: Annotated[
            bool, Query(description="Include revoked tokens", examples=[True])
        ] = False,
    ) -> TokensPage:
        """Tokens, never their secrets, oldest first (the secadmin's ``token.list``)."""
        items = identity.list_tokens(ctx, principal=principal, include_revoked=include_revoked)
        return TokensPage(data=items, count=len(items))

    @routes.post("/tokens/{token_id}/revoke", tags=["operators"])
    def revoke_token(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        token_id: Annotated[
            str,
            Path(
                max_length=64,
                description="The token's id (16 hex digits, as listed)",
                examples=["3f9c2a7d5e41b086"],
            ),
        ],
    ) -> identity.TokenPublic:
        """Revoke a token at once; requests carrying it are refused from now on.

        The secadmin's ``token.revoke``; an unknown id is 404; revoking a revoked token keeps its first
        ``revoked_at``. Audited, refusals too.
        """
        return identity.revoke_token(ctx, principal=principal, token_id=token_id)

    return routes
