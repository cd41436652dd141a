"""Replication streams and the change log they copy from.

Invariants:
- A stream is one (workload, source center, target center) pair with the tier's
  mode (sync, async, backup); its id is ``<workload>:<source>><target>``.
- ``changes`` is the change tracking of each workload: every acknowledged write
  gets the next ``seq``; a stream's ``last_seq`` is the newest change known to be
  at its target, verified by checksum, so a pass copies only ``seq > last_seq``
  (unchanged data costs nothing).
- ``last_consistent_at`` is the write time of the newest change covered by
  ``last_seq``; the current RPO of a stream is the age of its oldest change not
  yet at the target (zero when none is pending).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import states
from cloudctl.store import db, schema


@dataclasses.dataclass(frozen=True)
class Stream:
    id: str
    workload_id: str
    department: str
    tier: str
    source: str
    target: str
    mode: str
    interval_s: float | None
    state: str
    last_seq: int
    last_consistent_at: float | None
    bytes_copied: int
    objects_copied: int
    objects_resent: int
    last_pass_at: float | None
    last_error: str
    created_at: float
    updated_at: float


@dataclasses.dataclass(frozen=True)
class Change:
    workload_id: str
    seq: int
    key: str
    sha256: str
    size_bytes: int
    at: float
    center: str


def stream_id(workload_id: str, source: str, target: str) -> str:
    return f"{workload_id}:{source}>{target}"


def new_stream(
    *,
    workload_id: str,
    department: str,
    tier: str,
    source: str,
    target: str,
    mode: str,
    interval_s: float | None,
    state: str,
    last_seq: int,
    last_consistent_at: float | None,
    last_pass_at: float | None,
    now: float,
) -> Stream:
    """A stream that has copied nothing yet, from ``last_seq`` on."""
    return Stream(
        id=stream_id(workload_id, source, target),
        workload_id=workload_id,
        department=department,
        tier=tier,
        source=source,
        target=target,
        mode=mode,
        interval_s=interval_s,
        state=state,
        last_seq=last_seq,
        last_consistent_at=last_consistent_at,
        bytes_copied=0,
        objects_copied=0,
        objects_resent=0,
        last_pass_at=last_pass_at,
        last_error="",
        created_at=now,
        updated_at=now,
    )


def _stream(row: Any) -> Stream:
    return Stream(
        id=row.id,
        workload_id=row.workload_id,
        department=row.department,
        tier=row.tier,
        source=row.source,
        target=row.target,
        mode=row.mode,
        interval_s=None if row.interval_s is None else float(row.interval_s),
        state=row.state,
        last_seq=int(row.last_seq),
        last_consistent_at=None if row.last_consistent_at is None else float(row.last_consistent_at),
        bytes_copied=int(row.bytes_copied),
        objects_copied=int(row.objects_copied),
        objects_resent=int(row.objects_resent),
        last_pass_at=None if row.last_pass_at is None else float(row.last_pass_at),
        last_error=row.last_error,
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
    )


def upsert_stream(tx: sa.Connection, stream: Stream) -> Stream:
    """Create the stream, or leave an existing one (and its progress) as it is."""
    existing = find_stream(tx, stream.id)
    if existing is not None:
        return existing
    tx.execute(schema.replication_streams.insert().values(**dataclasses.asdict(stream)))
    return stream


_FIND_STREAM = sa.select(schema.replication_streams).where(
    schema.replication_streams.c.id == sa.bindparam("id")
)
_FIND_STREAM_LOCKED = _FIND_STREAM.with_for_update()
_LAST_SEQ = sa.select(sa.func.coalesce(sa.func.max(schema.changes.c.seq), 0)).where(
    schema.changes.c.workload_id == sa.bindparam("workload_id")
)
_CHANGES_AFTER = (
    sa.select(schema.changes)
    .where(schema.changes.c.workload_id == sa.bindparam("workload_id"))
    .where(schema.changes.c.seq > sa.bindparam("seq"))
    .order_by(schema.changes.c.seq)
)
_CHANGES_AFTER_LIMITED = _CHANGES_AFTER.limit(sa.bindparam("limit"))


def find_stream(tx: sa.Connection, stream_id_: str, *, for_update: bool = False) -> Stream | None:
    query = _FIND_STREAM_LOCKED if for_update else _FIND_STREAM
    row = tx.execute(query, {"id": stream_id_}).first()
    return None if row is None else _stream(row)


def get_stream(tx: sa.Connection, stream_id_: str, *, for_update: bool = False) -> Stream:
    stream = find_stream(tx, stream_id_, for_update=for_update)
    if stream is None:
        raise errors.NotFound(f"no replication stream {stream_id_!r}", field="stream")
    return stream


def list_streams(
    tx: sa.Connection,
    *,
    workload_ids: Iterable[str] | None = None,
    departments: Iterable[str] | None = None,
    tiers: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    ids: Iterable[str] | None = None,
    for_update: bool = False,
) -> list[Stream]:
    table = schema.replication_streams
    query = sa.select(table).order_by(table.c.department, table.c.workload_id, table.c.target)
    if ids is not None:
        query = query.where(table.c.id.in_(list(ids)))
    if for_update:
        query = query.with_for_update()
    if workload_ids is not None:
        query = query.where(table.c.workload_id.in_(list(workload_ids)))
    if departments is not None:
        query = query.where(table.c.department.in_(list(departments)))
    if tiers is not None:
        query = query.where(table.c.tier.in_(list(tiers)))
    if states is not None:
        query = query.where(table.c.state.in_(list(states)))
    return [_stream(row) for row in tx.execute(query)]


def update_stream(tx: sa.Connection, stream_id_: str, *, now: float, **values: Any) -> Stream:
    db.update_values(
        tx, schema.replication_streams, where={"id": stream_id_}, values={**values, "updated_at": now}
    )
    return get_stream(tx, stream_id_)


def delete_streams(tx: sa.Connection, *, workload_id: str) -> None:
    tx.execute(
        schema.replication_streams.delete().where(schema.replication_streams.c.workload_id == workload_id)
    )


# --- change log --------------------------------------------------------------------------------------


def _change(row: Any) -> Change:
    return Change(
        workload_id=row.workload_id,
        seq=int(row.seq),
        key=row.key,
        sha256=row.sha256,
        size_bytes=int(row.size_bytes),
        at=float(row.at),
        center=row.center,
    )


def last_seq(tx: sa.Connection, *, workload_id: str) -> int:
    return int(tx.execute(_LAST_SEQ, {"workload_id": workload_id}).scalar_one())


def last_seqs(tx: sa.Connection, *, workload_ids: Iterable[str]) -> dict[str, int]:
    """``last_seq`` of each workload in one query (0 for a workload with no change yet)."""
    wanted = list(workload_ids)
    found = {
        str(workload_id): int(seq)
        for workload_id, seq in tx.execute(
            sa.select(schema.changes.c.workload_id, sa.func.max(schema.changes.c.seq))
            .where(schema.changes.c.workload_id.in_(wanted))
            .group_by(schema.changes.c.workload_id)
        )
    }
    return {workload_id: found.get(workload_id, 0) for workload_id in wanted}


@dataclasses.dataclass(frozen=True)
class NewChange:
    """An acknowledged write, before it has its place (``seq``) in the workload's change log."""

    workload_id: str
    key: str
    sha256: str
    size_bytes: int
    at: float
    center: str


def append_change(
    tx: sa.Connection, *, workload_id: str, key: str, sha256: str, size_bytes: int, at: float, center: str
) -> Change:
    """Record an acknowledged write as the workload's next change."""
    new = NewChange(workload_id, key, sha256, size_bytes, at, center)
    return append_changes(tx, [new])[0]


def append_changes(tx: sa.Connection, writes: Sequence[NewChange]) -> list[Change]:
    """Record acknowledged writes, in order, each as its workload's next change (one insert)."""
    if not writes:
        return []
    seqs = last_seqs(tx, workload_ids={write.workload_id for write in writes})
    changes = []
    for write in writes:
        seqs[write.workload_id] += 1
        changes.append(Change(seq=seqs[write.workload_id], **dataclasses.asdict(write)))
    tx.execute(schema.changes.insert(), [dataclasses.asdict(change) for change in changes])
    return changes


def changes_after(tx: sa.Connection, *, workload_id: str, seq: int, limit: int | None = None) -> list[Change]:
    params: dict[str, Any] = {"workload_id": workload_id, "seq": seq}
    if limit is None:
        return [_change(row) for row in tx.execute(_CHANGES_AFTER, params)]
    return [_change(row) for row in tx.execute(_CHANGES_AFTER_LIMITED, {**params, "limit": limit})]


def first_pending_at(tx: sa.Connection, *, workload_id: str, seq: int) -> float | None:
    """Write time of the oldest change after ``seq`` (what a stream at ``seq`` still lacks)."""
    value = tx.execute(
        sa.select(sa.func.min(schema.changes.c.at))
        .where(schema.changes.c.workload_id == workload_id)
        .where(schema.changes.c.seq > seq)
    ).scalar()
    return None if value is None else float(value)


def count_changes(tx: sa.Connection, *, workload_id: str) -> int:
    return int(
        tx.execute(
            sa.select(sa.func.count())
            .select_from(schema.changes)
            .where(schema.changes.c.workload_id == workload_id)
        ).scalar_one()
    )


def unprotected_ready_workloads(tx: sa.Connection) -> list[str]:
    """Ready workloads that have no replication stream yet (one query, however many are protected)."""
    streams = schema.replication_streams
    workloads = schema.workloads
    query = (
        sa.select(workloads.c.id)
        .where(workloads.c.state == states.WorkloadState.READY)
        .where(~sa.exists().where(streams.c.workload_id == workloads.c.id))
        .order_by(workloads.c.id)
    )
    return [str(row[0]) for row in tx.execute(query)]


def next_pass_at(tx: sa.Connection, *, after: float, workload_ids: Iterable[str]) -> float | None:
    """When the next interval-driven pass of these workloads' streams falls due after ``after``
    (``last_pass_at + interval_s``), or ``None`` when none will by its interval alone."""
    table = schema.replication_streams
    due = table.c.last_pass_at + table.c.interval_s
    query = (
        sa.select(sa.func.min(due))
        .where(table.c.workload_id.in_(list(workload_ids)))
        .where(table.c.mode != states.StreamMode.SYNC)
        .where(table.c.state.in_(list(states.StreamState)))
        .where(table.c.last_pass_at.is_not(None), table.c.interval_s.is_not(None), due > after)
    )
    found = tx.execute(query).scalar()
    return None if found is None else float(found)


def due_streams(tx: sa.Connection, *, now: float, workload_ids: Iterable[str] | None = None) -> list[Stream]:
    """Streams a pass should look at now: sync streams that fell behind, others whose interval passed."""
    table = schema.replication_streams
    query = (
        sa.select(table)
        .where(
            table.c.state.in_(
                [
                    states.StreamState.HEALTHY,
                    states.StreamState.DEGRADED,
                    states.StreamState.LAGGING,
                    states.StreamState.BROKEN,
                ]
            )
        )
        .where(
            sa.or_(
                sa.and_(table.c.mode == states.StreamMode.SYNC, table.c.state != states.StreamState.HEALTHY),
                sa.and_(
                    table.c.mode != states.StreamMode.SYNC,
                    sa.or_(
                        table.c.last_pass_at.is_(None),
                        table.c.interval_s.is_(None),
                        table.c.last_pass_at + table.c.interval_s <= now,
                    ),
                ),
            )
        )
        .order_by(table.c.id)
    )
    if workload_ids is not None:
        query = query.where(table.c.workload_id.in_(list(workload_ids)))
    return [_stream(row) for row in tx.execute(query)]
