"""Bearer tokens: only a salted hash of each secret is stored.

Invariants: a token's secret is shown once, at creation, and never stored; a
revoked or expired token never authenticates again; revocation keeps the row
(the audit trail refers to it), and no row is ever deleted, so an id is never
issued twice (the primary key refuses a repeat).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.store import schema


@dataclasses.dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    role: str
    department: str
    salt: str
    secret_hash: str
    created_by: str
    created_at: float
    expires_at: float | None
    revoked_at: float | None


def _token(row: Any) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        role=row.role,
        department=row.department,
        salt=row.salt,
        secret_hash=row.secret_hash,
        created_by=row.created_by,
        created_at=float(row.created_at),
        expires_at=None if row.expires_at is None else float(row.expires_at),
        revoked_at=None if row.revoked_at is None else float(row.revoked_at),
    )


def insert_token(tx: sa.Connection, record: TokenRecord) -> TokenRecord:
    tx.execute(schema.tokens.insert().values(**dataclasses.asdict(record)))
    return record


def find_token(tx: sa.Connection, token_id: str) -> TokenRecord | None:
    row = tx.execute(sa.select(schema.tokens).where(schema.tokens.c.id == token_id)).first()
    return None if row is None else _token(row)


def get_token(tx: sa.Connection, token_id: str) -> TokenRecord:
    record = find_token(tx, token_id)
    if record is None:
        raise errors.NotFound(f"no token {token_id!r}", field="token")
    return record


def list_tokens(
    tx: sa.Connection, *, department: str | None = None, include_revoked: bool = False
) -> list[TokenRecord]:
    query = sa.select(schema.tokens).order_by(schema.tokens.c.created_at, schema.tokens.c.id)
    if department is not None:
        query = query.where(schema.tokens.c.department == department)
    if not include_revoked:
        query = query.where(schema.tokens.c.revoked_at.is_(None))
    return [_token(row) for row in tx.execute(query)]


def revoke_token(tx: sa.Connection, token_id: str, *, now: float) -> TokenRecord:
    current = get_token(tx, token_id)
    if current.revoked_at is None:
        tx.execute(schema.tokens.update().where(schema.tokens.c.id == token_id).values(revoked_at=now))
    return get_token(tx, token_id)


def revoke_department_tokens(tx: sa.Connection, department: str, *, now: float) -> list[str]:
    """Revoke every live token of ``department``; the ids revoked."""
    live = sa.and_(schema.tokens.c.department == department, schema.tokens.c.revoked_at.is_(None))
    ids = [
        str(row.id)
        for row in tx.execute(sa.select(schema.tokens.c.id).where(live).order_by(schema.tokens.c.id))
    ]
    if ids:
        tx.execute(schema.tokens.update().where(live).values(revoked_at=now))
    return ids
