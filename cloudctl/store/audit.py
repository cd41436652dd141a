"""The append-only audit log, chained under a key that lives outside the database.

API:
- ``append(tx, entry, key=...)`` appends one ``Entry``; ``append_many(tx, entries, key=...)``
  appends several in order with one lock of the head row, one multi-row insert and one
  head update, so a caller that commits many changes at once (group commit) pays for the
  chain once per batch. Both return the records as written.
- ``verify(tx, keys=...)`` recomputes the chain; ``verify_from(tx, seq=, hash_=, keys=)``
  does the same from a trusted point (a checkpoint) onwards.
- ``head``, ``record_at``, ``list_records``, ``iterate_all``, ``anchor``, ``prune`` and
  ``last_seq_before`` read and keep the log; ``bump_counter``/``counter`` keep counts that
  outlive retention (break-glass uses).

Invariants:
- Records are only ever inserted, with ``seq`` one above the head's; the head row
  (locked for update) serialises appenders, so the chain has no gaps or forks.
- A record's ``hash`` is ``HMAC-SHA256(key, prev_hash + canonical JSON of its fields)``
  under the key named by its ``key_id``; the first record's ``prev_hash`` is 64 zeros.
  Changing, removing or reordering a record breaks every hash after it, and without the
  key nobody can compute hashes that verify: re-hashing the chain is detected too.
- Records written before the chain was keyed (``key_id`` empty, ``seq`` at most the
  ``audit_legacy_through`` marker of migration 0006) keep their plain
  ``sha256(prev_hash + JSON)``; the first keyed record covers the last of them in its
  ``prev_hash``, so they cannot be re-hashed either without the key. Every later record
  must be keyed.
- Nothing in cloudctl updates an audit row. Retention removes the oldest records only
  after they were exported, and keeps an anchor (the seq and hash of the last removed
  record) so the remaining chain still verifies from its first record.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl.store import bulk, db, schema

GENESIS = "0" * 64
LEGACY_THROUGH_KEY = "audit_legacy_through"
_HEAD_ID = 1
_HEAD_LOCKED = sa.select(schema.audit_head).where(schema.audit_head.c.id == _HEAD_ID).with_for_update()
_HEAD = sa.select(schema.audit_head).where(schema.audit_head.c.id == _HEAD_ID)


@dataclasses.dataclass(frozen=True)
class SigningKey:
    id: str
    secret: bytes


@dataclasses.dataclass(frozen=True)
class Entry:
    """What a caller appends; the store adds ``seq``, ``key_id`` and the hashes."""

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
    source: str


@dataclasses.dataclass(frozen=True)
class AuditRecord(Entry):
    """An entry as stored: with its place in the chain and the key its hash was made with."""

    seq: int
    key_id: str
    prev_hash: str
    hash: str


def _canonical(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def record_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    """The unkeyed hash of records written before the chain was keyed."""
    return hashlib.sha256((prev_hash + _canonical(fields)).encode()).hexdigest()


def record_mac(secret: bytes, prev_hash: str, fields: dict[str, Any]) -> str:
    return hmac.new(secret, (prev_hash + _canonical(fields)).encode(), hashlib.sha256).hexdigest()


_ENTRY_FIELDS = tuple(field.name for field in dataclasses.fields(Entry))
_RECORD_FIELDS = tuple(field.name for field in dataclasses.fields(AuditRecord))


def _plain(value: Any) -> Any:
    """``value`` as ``dataclasses.asdict`` leaves a field's value (containers copied, a
    dataclass as a dict), without its deep copy of every scalar."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_plain(item) for item in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _as_dict(item: Entry, names: tuple[str, ...]) -> dict[str, Any]:
    """The fields ``names`` of an entry or record: what ``dataclasses.asdict`` gives, cheaper."""
    fields = {name: getattr(item, name) for name in names}
    fields["detail"] = _plain(fields["detail"])
    return fields


def _fields(record: AuditRecord) -> dict[str, Any]:
    fields = _as_dict(record, _RECORD_FIELDS)
    fields.pop("hash")
    fields.pop("prev_hash")
    if not record.key_id:  # written before the chain was keyed: hashed without these two
        fields.pop("source")
        fields.pop("key_id")
    return fields


def head(tx: sa.Connection) -> tuple[int, str]:
    """``(seq, hash)`` of the newest record; ``(0, GENESIS)`` on an empty log."""
    row = tx.execute(_HEAD).first()
    return (0, GENESIS) if row is None else (int(row.seq), str(row.hash))


def append(tx: sa.Connection, entry: Entry, *, key: SigningKey) -> AuditRecord:
    return append_many(tx, [entry], key=key)[0]


def append_many(tx: sa.Connection, entries: Sequence[Entry], *, key: SigningKey) -> list[AuditRecord]:
    """Append ``entries`` in order: one head lock, one insert, one head update for the batch."""
    if not entries:
        return []
    row = tx.execute(_HEAD_LOCKED).first()
    if row is None:
        tx.execute(schema.audit_head.insert().values(id=_HEAD_ID, seq=0, hash=GENESIS))
        seq, prev_hash = 0, GENESIS
    else:
        seq, prev_hash = int(row.seq), str(row.hash)
    records = []
    for entry in entries:
        seq += 1
        draft = AuditRecord(
            seq=seq,
            prev_hash=prev_hash,
            key_id=key.id,
            hash="",
            **{**_as_dict(entry, _ENTRY_FIELDS), "at": round(entry.at, 6)},
        )
        record = dataclasses.replace(draft, hash=record_mac(key.secret, prev_hash, _fields(draft)))
        records.append(record)
        prev_hash = record.hash
    bulk.insert_rows(tx, schema.audit_records, [_as_dict(record, _RECORD_FIELDS) for record in records])
    db.update_values(tx, schema.audit_head, where={"id": _HEAD_ID}, values={"seq": seq, "hash": prev_hash})
    return records


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
        source=row.source,
        key_id=row.key_id,
        prev_hash=row.prev_hash,
        hash=row.hash,
    )


def record_at(tx: sa.Connection, seq: int) -> AuditRecord | None:
    row = tx.execute(sa.select(schema.audit_records).where(schema.audit_records.c.seq == seq)).first()
    return None if row is None else _record(row)


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
    key_ids: tuple[str, ...] = ()
    """The keys the verified records were signed with, oldest first."""


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


def bump_counter(tx: sa.Connection, name: str) -> int:
    """Add one to a counter kept beside the log (it survives retention); the new value."""
    key = f"audit_counter.{name}"
    value = counter(tx, name) + 1
    tx.execute(schema.settings.delete().where(schema.settings.c.key == key))
    tx.execute(schema.settings.insert().values(key=key, value=str(value)))
    return value


def counter(tx: sa.Connection, name: str) -> int:
    value = tx.execute(
        sa.select(schema.settings.c.value).where(schema.settings.c.key == f"audit_counter.{name}")
    ).scalar()
    return int(value) if value is not None and str(value).isdigit() else 0


def legacy_through(tx: sa.Connection) -> int:
    """The last seq that may carry an unkeyed hash (0: every record must be keyed)."""
    value = tx.execute(
        sa.select(schema.settings.c.value).where(schema.settings.c.key == LEGACY_THROUGH_KEY)
    ).scalar()
    return int(value) if value is not None and str(value).isdigit() else 0


def prune(tx: sa.Connection, *, through_seq: int) -> int:
    """Remove records up to ``through_seq`` (already exported); how many were removed."""
    last = record_at(tx, through_seq)
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


def verify(tx: sa.Connection, *, keys: Mapping[str, bytes]) -> Verification:
    """Recompute the chain from its first record; report the first record that does not fit."""
    anchor_seq, anchor_hash = anchor(tx)
    return verify_from(tx, seq=anchor_seq, hash_=anchor_hash, keys=keys)


def verify_from(tx: sa.Connection, *, seq: int, hash_: str, keys: Mapping[str, bytes]) -> Verification:
    """Recompute the chain after a trusted point (``seq``, ``hash_``) up to the head."""
    head_seq, head_hash = head(tx)
    legacy_limit = legacy_through(tx)
    prev_hash, expected_seq, count = hash_, seq + 1, 0
    used: list[str] = []
    for record in iterate_all(tx, after_seq=seq):
        if record.seq > head_seq:
            break  # appended after the head was read (another transaction committed meanwhile)
        count += 1
        problem = _problem(record, expected_seq, prev_hash, keys, legacy_limit)
        if problem is not None:
            bad = expected_seq if record.seq != expected_seq else record.seq
            return Verification(False, count, head_seq, bad, problem, tuple(used))
        if record.key_id and record.key_id not in used:
            used.append(record.key_id)
        prev_hash, expected_seq = record.hash, expected_seq + 1
    if expected_seq - 1 != head_seq or prev_hash != head_hash:
        return Verification(
            False, count, head_seq, expected_seq, "records after this point were removed", tuple(used)
        )
    return Verification(True, count, head_seq, None, None, tuple(used))


def _problem(
    record: AuditRecord, expected_seq: int, prev_hash: str, keys: Mapping[str, bytes], legacy_limit: int
) -> str | None:
    if record.seq != expected_seq:
        return f"record {expected_seq} is missing"
    if record.prev_hash != prev_hash:
        return "does not follow the record before it"
    if not record.key_id:
        if record.seq > legacy_limit:
            return "carries no key id: written or re-hashed without the audit key"
        if record_hash(prev_hash, _fields(record)) != record.hash:
            return "its content does not match its hash"
        return None
    secret = keys.get(record.key_id)
    if secret is None:
        return f"signed with key {record.key_id!r}, which the audit key ring does not hold"
    if not hmac.compare_digest(record_mac(secret, prev_hash, _fields(record)), record.hash):
        return "its content does not match its keyed hash (changed, or re-hashed without the key)"
    return None
