"""Replication points: a snapshot of each protected volume's replica, in the center that holds
the copy, whenever the workload's DR copy reaches a new consistent point; for a workload with
no volume, a record of its data bucket there at that point.

What is protected: each ``volume`` resource of the workload's serving placement, and each
server's disk (its size is the offering's ``volume_gb``), each known by its *logical name*
(the volume's or server's name; a volume recovered by a failover keeps the name of what it
recovers, under ``of``). Each copy center of the workload (the target of each of its streams:
the standby of a sync stream, the DR center of an async or backup one) holds a **replica** of
each protected volume: a volume named ``replica-<logical name>`` of the same size, in the
department's project, made by the first pass that finds it missing and recorded among the copy
placement's resources (``replica_of``). On a real backend the storage keeps the replica's
blocks in step (Cinder replication, a backup service); on the simulator and the loopback
OpenStack (whose Cinder fake driver stores no bytes) it is a volume made there from the
protected volume's metadata, and the workload's data itself follows by its replication streams.

An ``async`` or ``backup`` stream's ``last_seq`` is the newest change of the workload known to
be at its target (``recovery.replication``). When a pass leaves a stream at a ``last_seq``
that has no replication point yet, each replica in the stream's *target* gets a snapshot named
``rp-<logical name>-<seq>``: the points live where the copy lives, so they survive the loss of
the source center. Sync streams take no points (their consistent point moves with every
write); a failover takes one of the replica when it recovers from it (``recovery.materialise``).

A workload with no protected volume (an object-storage offering, a namespace) keeps its data
in its versioned data bucket (``data-<workload>``), which the DR pass copies to the stream's
target, where overwritten and deleted versions are kept. Such a workload gets one **objects
point** per new consistent ``seq`` in the stream's target instead (``PointKind.OBJECTS``,
id ``<center>/data-<workload>@<seq>``): the data at the point is the versions that bucket
keeps, which ``recovery.restore`` rewinds to. Taking it costs one read of the bucket there,
which must answer and keep versions; nothing is made.

Invariants:
- A point's ``consistent_at`` is when its ``seq`` change was written (``consistent_at``, from
  the change log), whichever pass, failover or failback takes it.
- Idempotent: a replica and a point's snapshot are looked up by name before one is made, so
  results handed in twice, or a process killed between a create and its record, never give
  one volume two replicas nor one point two snapshots; a point already ``ready`` (of either
  kind) costs no backend call and records nothing.
- A backend that refuses or does not answer fails neither the pass nor the other volumes:
  the point is recorded ``failed`` with the error, and the next call takes it again at the
  stream's consistent point then (a newer point supersedes an older failed one).
- Retention: where the workload's tier declares ``point_retention`` windows, a replica (or,
  for an objects point, the workload's bucket in that center) keeps,
  of its ready points by age (now minus ``consistent_at``), every one or the newest of each
  ``every_s`` slice within each window, and none older than the last window (``kept_by_windows``);
  elsewhere it keeps its newest ``keep`` ready points (``keep`` >= 1). Either way the newest is
  never deleted, but in a center no point-taking stream feeds now (the home center's point a
  failback took, the DR center's while the workload serves there), whose points only age out
  by the windows; points are counted after the new one is made; an older one loses its
  snapshot first, then its record (an objects point, only its record: the bucket's versions
  follow the tier's ``deleted_retention_days``). A snapshot that cannot be deleted now keeps
  its record and is deleted by a later call.
- Only ready workloads take points; deleting a workload deletes its volumes (replicas
  included: they are ``volume`` resources of their placement) with their snapshots, then its
  points (``reconcile.provisioning``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.model.names import replica_name, snapshot_name
from cloudctl.recovery import replication as repl
from cloudctl.store import db, replication, requests
from cloudctl.store import replication_points as points_store

POINT_MODES = (repl.ASYNC, repl.BACKUP)
"""The stream modes whose consistent points get replication points."""


@dataclasses.dataclass(frozen=True)
class Protected:
    """One protected volume of a workload: its logical name and size."""

    name: str
    size_gb: int


def protected_volumes(
    topology: topo.Topology, workload: requests.WorkloadRecord, center: str
) -> list[Protected]:
    """The volumes (and server disks) of the workload's placement in ``center``, by logical name."""
    placement = next((p for p in workload.placements if p.center == center), None)
    if placement is None:
        return []
    size_gb = topology.offering(workload.offering).volume_gb
    names: list[str] = []
    for item in placement.resources:
        if item["kind"] == "server" or (item["kind"] == "volume" and "replica_of" not in item):
            name = str(item.get("of") or item["name"])
            if name not in names:
                names.append(name)
    return [Protected(name=name, size_gb=size_gb) for name in names] if size_gb > 0 else []


def ensure_replica(
    env: repl.Environment,
    *,
    workload: requests.WorkloadRecord,
    center: str,
    protected: Protected,
) -> dict[str, Any]:
    """The replica of ``protected`` in ``center`` (its placement's resource item), made and
    recorded when missing; idempotent (found by name before one is made)."""
    with env.store.read() as tx:
        placement = next(p for p in requests.get_workload(tx, workload.id).placements if p.center == center)
    known = next((i for i in placement.resources if i.get("replica_of") == protected.name), None)
    if known is not None:
        return known
    storage = env.drivers_for(center).block_storage
    name = replica_name(protected.name)
    volume = storage.find_volume(name) or storage.create_volume(
        name=name, project=workload.department, size_gb=protected.size_gb
    )
    item = {"kind": "volume", "name": name, "id": volume.id, "replica_of": protected.name}
    with env.store.transaction() as tx:
        current = next(p for p in requests.get_workload(tx, workload.id).placements if p.center == center)
        kept = [i for i in current.resources if i.get("replica_of") != protected.name]
        requests.update_placement(
            tx, workload_id=workload.id, center=center, values={"resources": [*kept, item]}
        )
    return item


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
        failed = points_store.list_points(tx, states=[states.PointState.FAILED])
        passed = [result.stream_id for result in results]
        streams = replication.list_streams(tx, ids=passed) if passed else []
        retried = sorted({point.workload_id for point in failed})
        if retried:
            streams += replication.list_streams(tx, workload_ids=retried)
        candidates = {
            s.id: dataclasses.replace(
                s,
                last_consistent_at=consistent_at(
                    tx, workload_id=s.workload_id, seq=s.last_seq, otherwise=s.last_consistent_at
                ),
            )
            for s in streams
            if s.mode in POINT_MODES and s.last_seq > 0
        }
        workload_ids = sorted({s.workload_id for s in candidates.values()} | set(retried))
        workloads = {w.id: w for w in requests.list_workloads(tx, ids=workload_ids)} if workload_ids else {}
        known = points_store.list_points(tx, workload_ids=workload_ids) if workload_ids else []
        theirs = replication.list_streams(tx, workload_ids=workload_ids) if workload_ids else []
        synced = [s for s in theirs if s.mode == repl.SYNC]
        fed: dict[str, set[str]] = {}
        for s in theirs:
            if s.mode in POINT_MODES:
                fed.setdefault(s.workload_id, set()).add(s.target)
    report = Report(taken=[], failed=[], pruned=[])
    # A point's series: its workload's in one center, of one protected volume or of the bucket.
    series: dict[tuple[str, str, str, str], list[points_store.ReplicationPoint]] = {}
    for point in known:
        key = (point.workload_id, point.center, point.kind, point.volume_name)
        series.setdefault(key, []).append(point)
    copies: set[tuple[str, str]] = set()
    for stream in sorted(candidates.values(), key=lambda s: s.id):
        workload = workloads.get(stream.workload_id)
        if workload is None or workload.state != states.WorkloadState.READY:
            continue
        copies.add((workload.id, stream.target))
        storage = env.drivers_for(stream.target).block_storage
        windows = env.topology.tier(workload.tier).point_retention
        volumes = protected_volumes(env.topology, workload, stream.source)
        if not volumes:
            existing = series.get((workload.id, stream.target, points_store.PointKind.OBJECTS, ""), [])
            taken = _take_objects(env, workload=workload, stream=stream, existing=existing, report=report)
            now_known = [point for point in existing if point.id != taken.id] + [taken]
            _prune(env, storage, now_known, seq=stream.last_seq, keep=keep, windows=windows, report=report)
        for protected in volumes:
            try:
                replica = ensure_replica(env, workload=workload, center=stream.target, protected=protected)
            except errors.CloudctlError as error:
                _record_failure(
                    env, workload=workload, stream=stream, protected=protected, error=error, report=report
                )
                continue
            existing = series.get(
                (workload.id, stream.target, points_store.PointKind.VOLUME, protected.name), []
            )
            taken = _take_one(
                env,
                storage=storage,
                workload=workload,
                stream=stream,
                volume=replica,
                logical_name=protected.name,
                existing=existing,
                report=report,
            )
            now_known = [point for point in existing if point.id != taken.id] + [taken]
            _prune(env, storage, now_known, seq=stream.last_seq, keep=keep, windows=windows, report=report)
    for stream in synced:
        # A sync standby holds replicas too (no points: its copy is consistent with every write).
        workload = workloads.get(stream.workload_id)
        if workload is None or workload.state != states.WorkloadState.READY:
            continue
        for protected in protected_volumes(env.topology, workload, stream.source):
            try:
                ensure_replica(env, workload=workload, center=stream.target, protected=protected)
            except errors.CloudctlError:
                continue  # made by a later pass, or by the failover that needs it
    for (workload_id, center, _kind, _name), points in series.items():
        # A center no point-taking stream feeds now (where the workload serves, or the home center
        # a failback took a point in) takes no new point: its points only age out.
        workload = workloads.get(workload_id)
        copies_now = fed.get(workload_id, set())
        if workload is None or workload.state != states.WorkloadState.READY:
            continue
        if not copies_now or center in copies_now:
            continue
        _prune(
            env,
            env.drivers_for(center).block_storage,
            points,
            seq=0,
            keep=keep,
            windows=env.topology.tier(workload.tier).point_retention,
            keep_newest=False,
            report=report,
        )
    for point in failed:
        workload = workloads.get(point.workload_id)
        if (
            workload is not None
            and workload.state == states.WorkloadState.READY
            and (point.workload_id, point.center) not in copies
        ):
            # Its center no longer holds a copy the workload's DR stream feeds (after a failover).
            _discard(env, env.drivers_for(point.center).block_storage, point, report)
    return report


def consistent_at(tx: db.Transaction, *, workload_id: str, seq: int, otherwise: float | None) -> float | None:
    """The ``consistent_at`` of a point of the workload at ``seq``: when its change ``seq`` was
    written (the change log); ``otherwise`` when the log has no such change (``seq`` 0).

    Not a stream's ``last_consistent_at``: a stream rebuilt by a failover or failback starts at
    the time it was rebuilt, later than the write it holds, and a point at that time would not
    be chosen for an ``at`` between the two."""
    found = replication.changes_after(tx, workload_id=workload_id, seq=seq - 1, limit=1)
    return found[0].at if found and found[0].seq == seq else otherwise


def _take_one(
    env: repl.Environment,
    *,
    storage: base.BlockStorage,
    workload: requests.WorkloadRecord,
    stream: replication.Stream,
    volume: dict[str, Any],
    logical_name: str,
    existing: list[points_store.ReplicationPoint],
    report: Report,
) -> points_store.ReplicationPoint:
    """The point of the replica ``volume`` (in the stream's target) at the stream's consistent
    point, taken now unless it is ready."""
    name = snapshot_name(logical_name, stream.last_seq)
    point = _unready(
        env,
        point_id=points_store.point_id(stream.target, name),
        workload=workload,
        stream=stream,
        volume_id=volume["id"],
        volume_name=logical_name,
        snapshot_name=name,
    )
    current = next((known for known in existing if known.id == point.id), None)
    if current is not None and current.state == states.PointState.READY:
        return current
    try:
        snapshot = find_snapshot(storage, volume_id=volume["id"], name=name) or storage.create_snapshot(
            volume["id"], name=name
        )
    except errors.CloudctlError as error:
        point = dataclasses.replace(point, last_error=error.one_line())
    else:
        point = dataclasses.replace(
            point, snapshot_id=snapshot.id, state=states.PointState.READY, taken_at=env.clock.now()
        )
    return _record(env, point, report)


def _take_objects(
    env: repl.Environment,
    *,
    workload: requests.WorkloadRecord,
    stream: replication.Stream,
    existing: list[points_store.ReplicationPoint],
    report: Report,
) -> points_store.ReplicationPoint:
    """The objects point of the workload's data bucket in the stream's target at the stream's
    consistent point, recorded now unless it is ready: ready once the bucket there answers and
    keeps versions (what a restore rewinds with)."""
    bucket = repl.data_bucket(workload.id)
    point = _unready(
        env,
        point_id=points_store.objects_point_id(stream.target, bucket, stream.last_seq),
        workload=workload,
        stream=stream,
        kind=points_store.PointKind.OBJECTS,
    )
    current = next((known for known in existing if known.id == point.id), None)
    if current is not None and current.state == states.PointState.READY:
        return current
    try:
        held = env.drivers_for(stream.target).object_storage.get_bucket(bucket)
    except errors.CloudctlError as error:
        point = dataclasses.replace(point, last_error=error.one_line())
    else:
        if held.versioning:
            point = dataclasses.replace(point, state=states.PointState.READY, taken_at=env.clock.now())
        else:
            point = dataclasses.replace(
                point, last_error=f"bucket {bucket} in {stream.target} keeps no object versions"
            )
    return _record(env, point, report)


def _record_failure(
    env: repl.Environment,
    *,
    workload: requests.WorkloadRecord,
    stream: replication.Stream,
    protected: Protected,
    error: errors.CloudctlError,
    report: Report,
) -> points_store.ReplicationPoint:
    """A point that could not be taken because its replica could not be made (taken again next pass)."""
    name = snapshot_name(protected.name, stream.last_seq)
    point = _unready(
        env,
        point_id=points_store.point_id(stream.target, name),
        workload=workload,
        stream=stream,
        volume_name=protected.name,
        snapshot_name=name,
    )
    return _record(env, dataclasses.replace(point, last_error=f"replica: {error.one_line()}"), report)


def _unready(
    env: repl.Environment,
    *,
    point_id: str,
    workload: requests.WorkloadRecord,
    stream: replication.Stream,
    kind: points_store.PointKind = points_store.PointKind.VOLUME,
    volume_id: str = "",
    volume_name: str = "",
    snapshot_name: str = "",
) -> points_store.ReplicationPoint:
    """The record of the workload's point at the stream's consistent point in its target, before
    it is taken (``failed``, no error yet)."""
    now = env.clock.now()
    return points_store.ReplicationPoint(
        id=point_id,
        workload_id=workload.id,
        department=workload.department,
        center=stream.target,
        volume_id=volume_id,
        volume_name=volume_name,
        snapshot_name=snapshot_name,
        snapshot_id=None,
        seq=stream.last_seq,
        consistent_at=stream.last_consistent_at,
        state=states.PointState.FAILED,
        last_error="",
        taken_at=None,
        created_at=now,
        updated_at=now,
        kind=kind,
    )


def _record(
    env: repl.Environment, point: points_store.ReplicationPoint, report: Report
) -> points_store.ReplicationPoint:
    """Record the point as it now stands, and count it in the report as taken or failed."""
    with env.store.transaction() as tx:
        recorded = points_store.upsert_point(tx, dataclasses.replace(point, updated_at=env.clock.now()))
    (report.taken if recorded.state == states.PointState.READY else report.failed).append(recorded)
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
    windows: Sequence[topo.RetentionWindow] = (),
    keep_newest: bool = True,
    report: Report,
) -> None:
    """Drop the failed points ``seq`` supersedes and the ready ones retention lets go: those the
    tier's ``windows`` keep not (the newest too, unless ``keep_newest``), or (without windows)
    those beyond the newest ``keep``."""
    ready = sorted(
        (p for p in points if p.state == states.PointState.READY), key=lambda p: p.seq, reverse=True
    )
    if windows:
        kept = kept_by_windows(
            [(p.seq, p.consistent_at) for p in ready],
            windows=windows,
            now=env.clock.now(),
            keep_newest=keep_newest,
        )
        dropped = [p for p in ready if p.seq not in kept]
    else:
        dropped = ready[keep:]
    superseded = [p for p in points if p.state == states.PointState.FAILED and p.seq < seq]
    for point in [*dropped, *superseded]:
        _discard(env, storage, point, report)


def kept_by_windows(
    points: Sequence[tuple[int, float | None]],
    *,
    windows: Sequence[topo.RetentionWindow],
    now: float,
    keep_newest: bool = True,
) -> set[int]:
    """The ``seq`` of the points (``(seq, consistent_at)``) the retention ``windows`` keep at ``now``.

    A point of age ``now - consistent_at`` falls in the first window whose ``until_s`` it does not
    exceed; that window keeps it if its ``every_s`` is 0, else only if it is the newest point of
    its ``every_s`` slice (slices aligned on the epoch, so they do not move as time passes). A point
    older than every window is not kept; the newest point (highest ``seq``) always is, and a point
    whose consistency time is unknown is kept while it is the newest only (with ``keep_newest``
    false, for a center that takes no new point, the newest is kept only as the others are).
    """
    if not points:
        return set()
    kept = {max(seq for seq, _at in points)} if keep_newest else set()
    newest_in_slice: dict[tuple[int, int], int] = {}
    for seq, at in points:
        if at is None:
            continue
        age = max(now - at, 0.0)
        index = next((i for i, window in enumerate(windows) if age <= window.until_s), None)
        if index is None:
            continue
        every = windows[index].every_s
        if every == 0:
            kept.add(seq)
            continue
        slot = (index, int(at // every))
        if seq > newest_in_slice.get(slot, -1):
            newest_in_slice[slot] = seq
    return kept | set(newest_in_slice.values())


def _discard(
    env: repl.Environment, storage: base.BlockStorage, point: points_store.ReplicationPoint, report: Report
) -> None:
    """Delete the point's snapshot (if it was made), then its record; leave both for later on an error.
    An objects point has no snapshot: the versions it stands for are the bucket's to expire."""
    try:
        snapshot_id = point.snapshot_id
        if snapshot_id is None and point.kind is points_store.PointKind.VOLUME and point.volume_id:
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
