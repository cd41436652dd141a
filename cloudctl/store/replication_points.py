"""Replication points: what a workload's DR copy holds of it at a consistent point, per center.

A point is of one of two kinds (``PointKind``):

- ``volume``: one snapshot of one protected volume's replica in one center at one ``seq`` of
  the workload's change log; its id is ``<center>/<snapshot name>`` and the snapshot name is
  derived from the volume's name and the ``seq`` (see ``recovery.snapshots``);
- ``objects``: for a workload with no volume, its data bucket in one center at one ``seq``:
  the object versions that bucket keeps are the data. It has no volume and no snapshot
  (``volume_id``, ``volume_name`` and ``snapshot_name`` empty, ``snapshot_id`` null); its id
  is ``<center>/<bucket>@<seq>``.

Invariants:
- A point's id is derived from what it is of and its ``seq``, so recording the same point
  twice updates one row instead of adding a second.
- ``state`` is ``ready`` (a volume point's snapshot exists and ``snapshot_id`` names it; an
  objects point's bucket answered, versioned, in its center) or ``failed`` (the backend
  refused or did not answer; ``last_error`` says why); a failed point is tried again by the
  next pass.
- Rows go when their snapshot goes: retention deletes the snapshot first, then the row (an
  objects point has only its row); deleting a workload deletes its rows once its volumes
  (and their snapshots) are gone.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import states
from cloudctl.store import schema


class PointKind(enum.StrEnum):
    """What a replication point holds of its workload."""

    VOLUME = "volume"
    """A snapshot of one protected volume's replica."""
    OBJECTS = "objects"
    """The versions the workload's data bucket keeps (a workload with no volume)."""


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
    state: states.PointState
    last_error: str
    taken_at: float | None
    """When cloudctl found the snapshot made (``None`` while the point is failed)."""
    created_at: float
    updated_at: float
    kind: PointKind = PointKind.VOLUME


def point_id(center: str, snapshot_name: str) -> str:
    """The id of a volume point: ``<center>/<snapshot name>``."""
    return f"{center}/{snapshot_name}"


def objects_point_id(center: str, bucket: str, seq: int) -> str:
    """The id of an objects point: ``<center>/<bucket>@<seq>``."""
    return f"{center}/{bucket}@{seq}"


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
        state=states.PointState(row.state),
        last_error=row.last_error,
        taken_at=None if row.taken_at is None else float(row.taken_at),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        kind=PointKind(row.kind),
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
