"""Replication points (volume snapshots at DR consistent points, and for a workload with no
volume its data bucket's kept versions there) as operators drive and see them.

Invariants: points are taken right after the replication passes that call for them
(``take_points``, called by the serve loop and ``cloudctl replication run`` with the passes'
results), on the same recovery environment as the passes; which each volume keeps is its
tier's ``point_retention`` windows (each workload's bucket likewise), or, for a tier without, the newest
``replication_points_kept``. A point that could not be taken never fails the
caller: it is logged, recorded ``failed`` and taken by a later call.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl.model import states
from cloudctl.recovery import replication as repl
from cloudctl.recovery import snapshots
from cloudctl.services import context as ctx_module
from cloudctl.services import recovery
from cloudctl.store import orgs, requests
from cloudctl.store import replication_points as points_store

log = logging.getLogger("cloudctl.replication")


POINT_EXAMPLE: dict[str, Any] = {
    "id": f"dz-dr/rp-{recovery.WORKLOAD_EXAMPLE_ID}-0-48213",
    "workload_id": recovery.WORKLOAD_EXAMPLE_ID,
    "department": "hrss-insurance",
    "center": "dz-dr",
    "kind": "volume",
    "volume_id": "9f1ad043-0f89-4405-82cf-36b9bf9fdf51",
    "volume_name": f"{recovery.WORKLOAD_EXAMPLE_ID}-0",
    "snapshot_id": "a6b0dd50-a681-4437-a1c0-3d5fe156896c",
    "snapshot_name": f"rp-{recovery.WORKLOAD_EXAMPLE_ID}-0-48213",
    "bucket": None,
    "seq": 48213,
    "consistent_at": "2026-11-18T02:14:31Z",
    "state": states.PointState.READY,
    "last_error": "",
    "taken_at": "2026-11-18T02:14:33Z",
}


class PointPublic(BaseModel):
    """A replication point: a snapshot of a replica volume, or (a workload with no volume) its data
    bucket's kept versions, recorded when its copy was consistent."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [POINT_EXAMPLE]})

    id: str
    """``<center>/<snapshot name>``; an ``objects`` point: ``<center>/<bucket>@<seq>``."""
    workload_id: str
    """The workload whose data the point holds."""
    department: str
    """The org node (department) that owns the workload."""
    center: str
    """Where the snapshot is: the center that holds the copy (the DR center; a failover's own point
    is in the center it recovered into)."""
    kind: points_store.PointKind
    """``volume``: a snapshot of one protected volume's replica; ``objects``: the versions the
    workload's data bucket keeps in ``center`` (a workload with no volume)."""
    volume_id: str
    """The replica the snapshot is of, in ``center``; empty for an ``objects`` point."""
    volume_name: str
    """The protected volume (or server disk) the replica copies; empty for an ``objects`` point."""
    snapshot_id: str | None
    """``None`` while the point is ``failed`` and its snapshot is not known to exist, and for an
    ``objects`` point."""
    snapshot_name: str
    """``rp-<volume name>-<seq>``: the same on every retry of the same point; empty for an
    ``objects`` point."""
    bucket: str | None
    """An ``objects`` point's bucket in ``center`` (``data-<workload>``); null for a volume point."""
    seq: int
    """The workload's change-log position the DR copy was consistent up to."""
    consistent_at: str | None
    """When the DR copy was consistent up to ``seq`` (ISO 8601 UTC); null if not known."""
    state: str
    """``ready`` or ``failed`` (taken again by the next replication pass)."""
    last_error: str
    """Why the point could not be taken; empty when ``ready``."""
    taken_at: str | None
    """When cloudctl found the snapshot made (an ``objects`` point: the bucket there answered,
    versioned; ISO 8601 UTC); null while the point is ``failed``."""


def _public(point: points_store.ReplicationPoint) -> PointPublic:
    return PointPublic(
        id=point.id,
        workload_id=point.workload_id,
        department=point.department,
        center=point.center,
        kind=point.kind,
        volume_id=point.volume_id,
        volume_name=point.volume_name,
        snapshot_id=point.snapshot_id,
        snapshot_name=point.snapshot_name,
        bucket=repl.data_bucket(point.workload_id) if point.kind is points_store.PointKind.OBJECTS else None,
        seq=point.seq,
        consistent_at=None if point.consistent_at is None else clocks.isoformat(point.consistent_at),
        state=point.state,
        last_error=point.last_error,
        taken_at=None if point.taken_at is None else clocks.isoformat(point.taken_at),
    )


def take_points(ctx: ctx_module.Context, results: Sequence[repl.PassResult]) -> snapshots.Report:
    """Take the points the passes of ``results`` call for, retry failed ones, apply retention."""
    report = snapshots.take_points(
        recovery.environment(ctx), results, keep=ctx.settings.replication_points_kept
    )
    for point in report.failed:
        log.warning("replication point %s not taken (retrying next pass): %s", point.id, point.last_error)
    return report


def list_points(
    ctx: ctx_module.Context, *, workload_id: str | None = None, department: str | None = None
) -> list[PointPublic]:
    """Points of one workload, or one department's, or all; unknown names are refused."""
    with ctx.read() as tx:
        if workload_id is not None:
            requests.get_workload(tx, workload_id)
        if department is not None:
            orgs.get_node(tx, department, field="department")
        found = points_store.list_points(
            tx,
            workload_ids=[workload_id] if workload_id is not None else None,
            departments=[department] if department is not None else None,
        )
    return [_public(point) for point in found]
