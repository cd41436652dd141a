"""The append-only, hash-chained audit log.

Invariants:
- Records are only ever inserted, with ``seq`` one above the head's; the head
  row (locked for update) serialises appenders, so the chain has no gaps or forks.
- ``hash = sha256(prev_hash + canonical JSON of the record's fields)``; the first
  record's ``prev_hash`` is 64 zeros. Changing, removing or reordering any record
  breaks every hash after it, which ``verify`` reports with the first bad ``seq``.
- Nothing in cloudctl updates an audit row. Retention removes the oldest records
  only after they were exported, and keeps an anchor (the seq and hash of the last
  removed record) so the remaining chain still verifies from its first record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl.store import db, schema

GENESIS = "0" * 64
_HEAD_ID = 1
_HEAD_LOCKED = sa.select(schema.audit_head).where(schema.audit_head.c.id == _HEAD_ID).with_for_update()


@dataclasses.dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: float
    actor: str
    role: str
    department: str
    action: str
    target_type: str
    target_id: str
    outcome: str
    detail: dict[str, Any]
    request_id: str
    prev_hash: str
    hash: str


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    canonical = json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


def _fields(record: AuditRecord) -> dict[str, Any]:
    fields = dataclasses.asdict(record)
    fields.pop("hash")
    fields.pop("prev_hash")
    return fields


def append(
    tx: sa.Connection,
    *,
    at: float,
    actor: str,
    role: str,
    department: str,
    action: str,
    target_type: str,
    target_id: str,
    outcome: str,
    detail: dict[str, Any],
    request_id: str,
) -> AuditRecord:
    head = tx.execute(_HEAD_LOCKED).first()
    if head is None:
        tx.execute(schema.audit_head.insert().values(id=_HEAD_ID, seq=0, hash=GENESIS))
        seq, prev_hash = 1, GENESIS
    else:
        seq, prev_hash = int(head.seq) + 1, str(head.hash)
    draft = AuditRecord(
        seq=seq,
        at=round(at, 6),
        actor=actor,
        role=role,
        department=department,
        action=action,
        target_type=target_type,
        target_id=target_id,
        outcome=outcome,
        detail=detail,
        request_id=request_id,
        prev_hash=prev_hash,
        hash="",
    )
    record = dataclasses.replace(draft, hash=record_hash(prev_hash, _fields(draft)))
    tx.execute(schema.audit_records.insert(), dataclasses.asdict(record))
    db.update_values(tx, schema.audit_head, where={"id": _HEAD_ID}, values={"seq": seq, "hash": record.hash})
    return record


def _record(row: Any) -> AuditRecord:
    return AuditRecord(
        seq=int(row.seq),
        at=float(row.at),
        actor=row.actor,
        role=row.role,
        department=row.department,
        action=row.action,
        target_type=row.target_type,
        target_id=row.target_id,
        outcome=row.outcome,
        detail=dict(row.detail),
        request_id=row.request_id,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def list_records(
    tx: sa.Connection,
    *,
    after_seq: int = 0,
    limit: int | None = None,
    action: str | None = None,
    actor: str | None = None,
    outcome: str | None = None,
) -> list[AuditRecord]:
    query = (
        sa.select(schema.audit_records)
        .where(schema.audit_records.c.seq > after_seq)
        .order_by(schema.audit_records.c.seq)
    )
    if action is not None:
        query = query.where(schema.audit_records.c.action == action)
    if actor is not None:
        query = query.where(schema.audit_records.c.actor == actor)
    if outcome is not None:
        query = query.where(schema.audit_records.c.outcome == outcome)
    if limit is not None:
        query = query.limit(limit)
    return [_record(row) for row in tx.execute(query)]


def iterate_all(tx: sa.Connection, *, batch: int = 1000, after_seq: int = 0) -> Iterator[AuditRecord]:
    after = after_seq
    while True:
        records = list_records(tx, after_seq=after, limit=batch)
        if not records:
            return
        yield from records
        after = records[-1].seq


@dataclasses.dataclass(frozen=True)
class Verification:
    ok: bool
    records: int
    head_seq: int
    first_bad_seq: int | None
    problem: str | None


_ANCHOR_KEY = "audit_anchor"


def anchor(tx: sa.Connection) -> tuple[int, str]:
    """``(seq, hash)`` of the last record removed by retention; ``(0, GENESIS)`` when none was."""
    value = tx.execute(
        sa.select(schema.settings.c.value).where(schema.settings.c.key == _ANCHOR_KEY)
    ).scalar()
    if value is None:
        return 0, GENESIS
    seq, _, hashed = str(value).partition(":")
    return int(seq), hashed


def prune(tx: sa.Connection, *, through_seq: int) -> int:
    """Remove records up to ``through_seq`` (already exported); how many were removed."""
    last = tx.execute(
        sa.select(schema.audit_records).where(schema.audit_records.c.seq == through_seq)
    ).first()
    if last is None:
        return 0
    removed = tx.execute(
        schema.audit_records.delete().where(schema.audit_records.c.seq <= through_seq)
    ).rowcount
    tx.execute(schema.settings.delete().where(schema.settings.c.key == _ANCHOR_KEY))
    tx.execute(schema.settings.insert().values(key=_ANCHOR_KEY, value=f"{through_seq}:{last.hash}"))
    return int(removed)


def last_seq_before(tx: sa.Connection, *, at: float) -> int:
    value = tx.execute(
        sa.select(sa.func.max(schema.audit_records.c.seq)).where(schema.audit_records.c.at < at)
    ).scalar()
    return 0 if value is None else int(value)


def verify(tx: sa.Connection) -> Verification:
    """Recompute the chain from the first record; report the first record that does not fit."""
    head = tx.execute(sa.select(schema.audit_head).where(schema.audit_head.c.id == _HEAD_ID)).first()
    head_seq, head_hash = (0, GENESIS) if head is None else (int(head.seq), str(head.hash))
    anchor_seq, prev_hash = anchor(tx)
    expected_seq, count = anchor_seq + 1, 0
    for record in iterate_all(tx, after_seq=anchor_seq):
        count += 1
        if record.seq != expected_seq:
            return Verification(False, count, head_seq, expected_seq, f"record {expected_seq} is missing")
        if record.prev_hash != prev_hash:
            return Verification(False, count, head_seq, record.seq, "does not follow the record before it")
        if record_hash(prev_hash, _fields(record)) != record.hash:
            return Verification(False, count, head_seq, record.seq, "its content does not match its hash")
        prev_hash, expected_seq = record.hash, expected_seq + 1
    if expected_seq - 1 != head_seq or prev_hash != head_hash:
        return Verification(False, count, head_seq, expected_seq, "records after this point were removed")
    return Verification(True, count, head_seq, None, None)


def append_many(tx: sa.Connection, entries: Sequence[dict[str, Any]]) -> list[AuditRecord]:
    """Append several records (each with ``append``'s keyword fields) as one step of the chain.

    The head is locked and moved once; the records are chained in the order given and
    inserted in one statement, so a batch of decisions costs three statements, not three each.
    """
    if not entries:
        return []
    head = tx.execute(_HEAD_LOCKED).first()
    if head is None:
        tx.execute(schema.audit_head.insert().values(id=_HEAD_ID, seq=0, hash=GENESIS))
        seq, prev_hash = 0, GENESIS
    else:
        seq, prev_hash = int(head.seq), str(head.hash)
    records = []
    for entry in entries:
        seq += 1
        draft = AuditRecord(**{**entry, "at": round(entry["at"], 6)}, seq=seq, prev_hash=prev_hash, hash="")
        record = dataclasses.replace(draft, hash=record_hash(prev_hash, _fields(draft)))
        records.append(record)
        prev_hash = record.hash
    tx.execute(schema.audit_records.insert(), [dataclasses.asdict(record) for record in records])
    db.update_values(tx, schema.audit_head, where={"id": _HEAD_ID}, values={"seq": seq, "hash": prev_hash})
    return records
