"""Audit: every mutating call and every denied or failed authentication leaves a record.

Invariants: ``record`` appends in the caller's transaction when one is given (so
the record commits or rolls back with the change it describes) or in its own;
records are hash-chained (``store.audit``); nothing here changes or deletes one.
Reading the log is the auditor's power alone (policy ``audit.read``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
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


class ExportPublic(BaseModel):
    path: str
    records: int
    first_seq: int | None
    last_seq: int | None


def export(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    path: Path,
    after_seq: int = 0,
    through_seq: int | None = None,
) -> ExportPublic:
    """Write records as JSON lines (the auditor's copy, or the archive before retention)."""
    identity.authorize(
        ctx, principal=principal, action="audit.read", resource_type="AuditLog", resource_id="audit"
    )
    return _export(ctx, path=path, after_seq=after_seq, through_seq=through_seq)


def _export(ctx: ctx_module.Context, *, path: Path, after_seq: int, through_seq: int | None) -> ExportPublic:
    path.parent.mkdir(parents=True, exist_ok=True)
    first = last = None
    count = 0
    partial = path.with_name(path.name + ".partial")
    with ctx.read() as tx, partial.open("w", encoding="utf-8") as out:
        for item in audit.iterate_all(tx, after_seq=after_seq):
            if through_seq is not None and item.seq > through_seq:
                break
            out.write(json.dumps(dataclasses.asdict(item), ensure_ascii=False, sort_keys=True) + "\n")
            first = item.seq if first is None else first
            last, count = item.seq, count + 1
        out.flush()
        os.fsync(out.fileno())
    partial.replace(path)
    return ExportPublic(path=str(path), records=count, first_seq=first, last_seq=last)


def apply_retention(ctx: ctx_module.Context, *, archive_dir: Path | None = None) -> ExportPublic:
    """Export the records older than the retention period, then remove them from the store.

    A system function of the management center (the log's own housekeeping), not a
    principal's action: it is itself audited, and it never removes a record that was not
    written to the archive first.
    """
    cutoff = ctx.clock.now() - ctx.settings.audit_retention_days * 86400
    with ctx.read() as tx:
        through = audit.last_seq_before(tx, at=cutoff)
        after, _hash = audit.anchor(tx)
    directory = archive_dir or ctx.settings.home / "audit-archive"
    if through <= after:
        return ExportPublic(path=str(directory), records=0, first_seq=None, last_seq=None)
    archived = _export(
        ctx,
        path=directory / f"audit-{after + 1:012d}-{through:012d}.jsonl",
        after_seq=after,
        through_seq=through,
    )
    with ctx.transaction() as tx:
        audit.prune(tx, through_seq=through)
        audit.append(
            tx,
            at=ctx.clock.now(),
            actor="system:retention",
            role="system",
            department="",
            action="audit.retention",
            target_type="AuditLog",
            target_id="audit",
            outcome="success",
            detail={"archived": archived.path, "records": archived.records, "through_seq": through},
            request_id=identity.current_request_id(),
        )
    return archived
