"""A token of a role, as the ``Authorization`` header a test's request carries."""

from __future__ import annotations

from cloudctl.services import context as ctx_module
from cloudctl.services import identity

ISSUER = identity.local_operator("secadmin")


def token(ctx: ctx_module.Context, role: str, department: str | None = None) -> dict[str, str]:
    issued = identity.create_token(ctx, principal=ISSUER, role=role, department=department)
    return {"Authorization": f"Bearer {issued.secret}"}
