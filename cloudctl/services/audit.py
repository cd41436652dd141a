"""Audit: every mutating call and every denied or failed authentication leaves a record.

Invariants: ``record`` appends in the caller's transaction when one is given (so
the record commits or rolls back with the change it describes) or in its own;
records are hash-chained (``store.audit``); nothing here changes or deletes one.
Reading the log is the auditor's power alone (policy ``audit.read``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import identity
from cloudctl.store import audit


class AuditRecordPublic(BaseModel):
    seq: int
    at: str
    actor: str
    role: str
    department: str
    action: str
    target_type: str
    target_id: str
    outcome: str
    """``success``, ``denied``, ``failed`` or ``refused``."""
    detail: dict[str, Any]
    request_id: str
    hash: str


class VerificationPublic(BaseModel):
    ok: bool
    records: int
    head_seq: int
    first_bad_seq: int | None
    problem: str | None


def record(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    action: str,
    target_type: str,
    target_id: str,
    outcome: str,
    detail: dict[str, Any] | None = None,
    tx: Any = None,
) -> None:
    values: dict[str, Any] = {
        "at": ctx.clock.now(),
        "actor": principal.id,
        "role": principal.role,
        "department": principal.department,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "outcome": outcome,
        "detail": detail or {},
        "request_id": identity.current_request_id(),
    }
    if tx is not None:
        audit.append(tx, **values)
        return
    with ctx.transaction() as own:
        audit.append(own, **values)


def _public(item: audit.AuditRecord) -> AuditRecordPublic:
    return AuditRecordPublic(
        seq=item.seq,
        at=clocks.isoformat(item.at),
        actor=item.actor,
        role=item.role,
        department=item.department,
        action=item.action,
        target_type=item.target_type,
        target_id=item.target_id,
        outcome=item.outcome,
        detail=item.detail,
        request_id=item.request_id,
        hash=item.hash,
    )


def list_records(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    after_seq: int = 0,
    limit: int = 100,
    action: str | None = None,
    outcome: str | None = None,
) -> list[AuditRecordPublic]:
    identity.authorize(
        ctx, principal=principal, action="audit.read", resource_type="AuditLog", resource_id="audit"
    )
    with ctx.read() as tx:
        items = audit.list_records(tx, after_seq=after_seq, limit=limit, action=action, outcome=outcome)
    return [_public(item) for item in items]


def verify(ctx: ctx_module.Context, *, principal: identity.Principal) -> VerificationPublic:
    identity.authorize(
        ctx, principal=principal, action="audit.verify", resource_type="AuditLog", resource_id="audit"
    )
    with ctx.read() as tx:
        result = audit.verify(tx)
    return VerificationPublic(
        ok=result.ok,
        records=result.records,
        head_seq=result.head_seq,
        first_bad_seq=result.first_bad_seq,
        problem=result.problem,
    )
