"""Replication points: the volume snapshots taken when a workload's DR copy reached a consistent point.

Invariants:
- A point is one snapshot of one volume in one center at one ``seq`` of the workload's
  change log; its id is ``<center>/<snapshot name>`` and the snapshot name is derived
  from the volume's name and the ``seq`` (see ``recovery.snapshots``), so recording the
  same point twice updates one row instead of adding a second.
- ``state`` is ``ready`` (the snapshot exists, ``snapshot_id`` names it) or ``failed``
  (the backend refused or did not answer; ``snapshot_id`` may be unknown and
  ``last_error`` says why); a failed point is tried again by the next pass.
- Rows go when their snapshot goes: retention deletes the snapshot first, then the row;
  deleting a workload deletes its rows once its volumes (and their snapshots) are gone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.store import schema

READY, FAILED = "ready", "failed"


@dataclasses.dataclass(frozen=True)
class ReplicationPoint:
    id: str
    workload_id: str
    department: str
    center: str
    volume_id: str
    volume_name: str
    snapshot_name: str
    snapshot_id: str | None
    seq: int
    consistent_at: float | None
    state: str
    last_error: str
    taken_at: float | None
    """When cloudctl found the snapshot made (``None`` while the point is failed)."""
    created_at: float
    updated_at: float


def point_id(center: str, snapshot_name: str) -> str:
    return f"{center}/{snapshot_name}"


def _point(row: Any) -> ReplicationPoint:
    return ReplicationPoint(
        id=row.id,
        workload_id=row.workload_id,
        department=row.department,
        center=row.center,
        volume_id=row.volume_id,
        volume_name=row.volume_name,
        snapshot_name=row.snapshot_name,
        snapshot_id=row.snapshot_id,
        seq=int(row.seq),
        consistent_at=None if row.consistent_at is None else float(row.consistent_at),
        state=row.state,
        last_error=row.last_error,
        taken_at=None if row.taken_at is None else float(row.taken_at),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
    )


def upsert_point(tx: sa.Connection, point: ReplicationPoint) -> ReplicationPoint:
    """Record the point, or bring its stored row to ``point`` (keeping the row's ``created_at``)."""
    table = schema.replication_points
    existing = find_point(tx, point.id, for_update=True)
    if existing is None:
        tx.execute(table.insert().values(**dataclasses.asdict(point)))
        return point
    values = dataclasses.asdict(point)
    values.pop("id")
    values["created_at"] = existing.created_at
    tx.execute(table.update().where(table.c.id == point.id).values(**values))
    return dataclasses.replace(point, created_at=existing.created_at)


def find_point(tx: sa.Connection, point_id_: str, *, for_update: bool = False) -> ReplicationPoint | None:
    query = sa.select(schema.replication_points).where(schema.replication_points.c.id == point_id_)
    if for_update:
        query = query.with_for_update()
    row = tx.execute(query).first()
    return None if row is None else _point(row)


def get_point(tx: sa.Connection, point_id_: str) -> ReplicationPoint:
    point = find_point(tx, point_id_)
    if point is None:
        raise errors.NotFound(f"no replication point {point_id_!r}", field="point")
    return point


def list_points(
    tx: sa.Connection,
    *,
    workload_ids: Iterable[str] | None = None,
    departments: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
) -> list[ReplicationPoint]:
    """Points by department, workload, center and volume, oldest ``seq`` first."""
    table = schema.replication_points
    query = sa.select(table).order_by(
        table.c.department, table.c.workload_id, table.c.center, table.c.volume_name, table.c.seq
    )
    if workload_ids is not None:
        query = query.where(table.c.workload_id.in_(list(workload_ids)))
    if departments is not None:
        query = query.where(table.c.department.in_(list(departments)))
    if states is not None:
        query = query.where(table.c.state.in_(list(states)))
    return [_point(row) for row in tx.execute(query)]


def delete_point(tx: sa.Connection, point_id_: str, *, ignore_missing: bool = True) -> None:
    deleted = tx.execute(
        schema.replication_points.delete().where(schema.replication_points.c.id == point_id_)
    )
    if deleted.rowcount == 0 and not ignore_missing:
        raise errors.NotFound(f"no replication point {point_id_!r}", field="point")


def delete_points(tx: sa.Connection, *, workload_id: str) -> None:
    tx.execute(
        schema.replication_points.delete().where(schema.replication_points.c.workload_id == workload_id)
    )
