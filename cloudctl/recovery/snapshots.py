"""Replication points: a snapshot of each protected volume whenever its workload's DR copy
reaches a new consistent point.

An ``async`` or ``backup`` stream's ``last_seq`` is the newest change of the workload known
to be at the DR target (``recovery.replication``). When a pass leaves a stream at a
``last_seq`` that has no replication point yet, every volume of the workload in the stream's
*source* center gets a snapshot named ``rp-<volume name>-<seq>``, taken right after the pass
that made the DR copy consistent up to ``seq`` (a point in time to restore the volume to in
place; it stays in the source center and does not protect against losing that center).

What is snapshotted is what exists as a volume: the ``volume`` resources provisioning
recorded in the placement of the source center. Servers are not: neither backend gives a
server a volume of its own (the simulator only charges a server's disk as ``volume_gb``;
Nova boots it from an image onto its flavor's disk), so there is nothing to snapshot.
Sync streams take no points (their consistent point moves with every write).

Invariants:
- Idempotent: a point's snapshot is looked up by name on its volume before one is made, so
  results handed in twice, or a process killed between a snapshot and its record, never
  give one point two snapshots; a point already ``ready`` costs no backend call.
- A backend that refuses or does not answer fails neither the pass nor the other volumes:
  the point is recorded ``failed`` with the error, and the next call takes it again at the
  stream's consistent point then (a newer point supersedes an older failed one).
- Retention: each volume keeps its newest ``keep`` ready points (``keep`` >= 1, so the newest
  is never deleted), counted after the new point is made; an older one loses its snapshot
  first, then its record. A snapshot that cannot be deleted now keeps its record and is
  deleted by a later call.
- Only ready workloads take points; deleting a workload deletes its volumes' snapshots and
  then its points (``reconcile.provisioning``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.recovery import replication as repl
from cloudctl.store import replication, requests
from cloudctl.store import replication_points as points_store

POINT_MODES = (repl.ASYNC, repl.BACKUP)
"""The stream modes whose consistent points get replication points."""


def snapshot_name(volume_name: str, seq: int) -> str:
    """The name of a volume's replication point at ``seq`` (the same on every retry)."""
    return f"rp-{volume_name}-{seq}"


@dataclasses.dataclass(frozen=True)
class Report:
    """What one call did: points made ready, points that failed, points retention removed."""

    taken: list[points_store.ReplicationPoint]
    failed: list[points_store.ReplicationPoint]
    pruned: list[points_store.ReplicationPoint]


def take_points(env: repl.Environment, results: Sequence[repl.PassResult], *, keep: int) -> Report:
    """Take the replication points the passes of ``results`` call for, retry failed ones, and
    apply retention to the volumes looked at."""
    if keep < 1:
        raise errors.InvalidInput(
            f"must be at least 1 (the newest point is always kept), not {keep}",
            field="replication_points_kept",
        )
    with env.store.read() as tx:
        failed = points_store.list_points(tx, states=[points_store.FAILED])
        passed = [result.stream_id for result in results]
        streams = replication.list_streams(tx, ids=passed) if passed else []
        retried = sorted({point.workload_id for point in failed})
        if retried:
            streams += replication.list_streams(tx, workload_ids=retried)
        candidates = {s.id: s for s in streams if s.mode in POINT_MODES and s.last_seq > 0}
        workload_ids = sorted({s.workload_id for s in candidates.values()} | set(retried))
        workloads = {w.id: w for w in requests.list_workloads(tx, ids=workload_ids)} if workload_ids else {}
        known = points_store.list_points(tx, workload_ids=workload_ids) if workload_ids else []
    report = Report(taken=[], failed=[], pruned=[])
    by_volume: dict[tuple[str, str], list[points_store.ReplicationPoint]] = {}
    for point in known:
        by_volume.setdefault((point.center, point.volume_id), []).append(point)
    sources: set[tuple[str, str]] = set()
    for stream in sorted(candidates.values(), key=lambda s: s.id):
        workload = workloads.get(stream.workload_id)
        if workload is None or workload.state != "ready":
            continue
        sources.add((workload.id, stream.source))
        storage = env.drivers_for(stream.source).block_storage
        for volume in _volumes(workload, stream.source):
            existing = by_volume.get((stream.source, volume["id"]), [])
            taken = _take_one(
                env,
                storage=storage,
                workload=workload,
                stream=stream,
                volume=volume,
                existing=existing,
                report=report,
            )
            now_known = [point for point in existing if point.id != taken.id] + [taken]
            _prune(env, storage, now_known, seq=stream.last_seq, keep=keep, report=report)
    for point in failed:
        workload = workloads.get(point.workload_id)
        if (
            workload is not None
            and workload.state == "ready"
            and (point.workload_id, point.center) not in sources
        ):
            # Its center is no longer where the DR copy is taken from (after a failover).
            _discard(env, env.drivers_for(point.center).block_storage, point, report)
    return report


def _volumes(workload: requests.WorkloadRecord, center: str) -> list[dict[str, Any]]:
    placement = next((p for p in workload.placements if p.center == center), None)
    if placement is None:
        return []
    return [item for item in placement.resources if item["kind"] == "volume"]


def _take_one(
    env: repl.Environment,
    *,
    storage: base.BlockStorage,
    workload: requests.WorkloadRecord,
    stream: replication.Stream,
    volume: dict[str, Any],
    existing: list[points_store.ReplicationPoint],
    report: Report,
) -> points_store.ReplicationPoint:
    """The point of ``volume`` at the stream's consistent point, taken now unless it is ready."""
    name = snapshot_name(volume["name"], stream.last_seq)
    point_id = points_store.point_id(stream.source, name)
    current = next((point for point in existing if point.id == point_id), None)
    if current is not None and current.state == points_store.READY:
        return current
    now = env.clock.now()
    point = points_store.ReplicationPoint(
        id=point_id,
        workload_id=workload.id,
        department=workload.department,
        center=stream.source,
        volume_id=volume["id"],
        volume_name=volume["name"],
        snapshot_name=name,
        snapshot_id=None,
        seq=stream.last_seq,
        consistent_at=stream.last_consistent_at,
        state=points_store.FAILED,
        last_error="",
        taken_at=None,
        created_at=now,
        updated_at=now,
    )
    try:
        snapshot = find_snapshot(storage, volume_id=volume["id"], name=name) or storage.create_snapshot(
            volume["id"], name=name
        )
    except errors.CloudctlError as error:
        point = dataclasses.replace(point, last_error=error.one_line())
    else:
        point = dataclasses.replace(
            point, snapshot_id=snapshot.id, state=points_store.READY, taken_at=env.clock.now()
        )
    with env.store.transaction() as tx:
        recorded = points_store.upsert_point(tx, dataclasses.replace(point, updated_at=env.clock.now()))
    (report.taken if recorded.state == points_store.READY else report.failed).append(recorded)
    return recorded


def find_snapshot(storage: base.BlockStorage, *, volume_id: str, name: str) -> base.Snapshot | None:
    """The snapshot of ``volume_id`` named ``name``, if the backend has one."""
    return next((s for s in storage.list_snapshots(volume_id=volume_id) if s.name == name), None)


def _prune(
    env: repl.Environment,
    storage: base.BlockStorage,
    points: list[points_store.ReplicationPoint],
    *,
    seq: int,
    keep: int,
    report: Report,
) -> None:
    """Drop the failed points ``seq`` supersedes and the ready ones beyond the newest ``keep``."""
    ready = sorted((p for p in points if p.state == points_store.READY), key=lambda p: p.seq, reverse=True)
    superseded = [p for p in points if p.state == points_store.FAILED and p.seq < seq]
    for point in [*ready[keep:], *superseded]:
        _discard(env, storage, point, report)


def _discard(
    env: repl.Environment, storage: base.BlockStorage, point: points_store.ReplicationPoint, report: Report
) -> None:
    """Delete the point's snapshot (if it was made), then its record; leave both for later on an error."""
    try:
        snapshot_id = point.snapshot_id
        if snapshot_id is None:
            found = find_snapshot(storage, volume_id=point.volume_id, name=point.snapshot_name)
            snapshot_id = None if found is None else found.id
        if snapshot_id is not None:
            storage.delete_snapshot(snapshot_id, ignore_missing=True)
    except errors.CloudctlError as error:
        with env.store.transaction() as tx:
            points_store.upsert_point(
                tx,
                dataclasses.replace(
                    point, last_error=f"deleting: {error.one_line()}", updated_at=env.clock.now()
                ),
            )
        return
    with env.store.transaction() as tx:
        points_store.delete_point(tx, point.id)
    report.pruned.append(point)
