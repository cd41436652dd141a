"""The replication engine: every protected workload's data copied as its tier demands.

Streams follow the tier (``streams_for``):

- ``active-active`` and ``sync-standby``: a **sync** stream between the two local
  centers — a write is acknowledged only when both hold it; when the partner is
  unreachable the write is acknowledged on the serving center alone and the
  stream is marked ``degraded`` (availability first; the gap is shipped again
  by the next pass once the partner answers).
- A DR copy ``async``: an **async** stream to the DR center, shipped every
  ``dr_interval_s``; ``backup``: a **backup** stream, a point-in-time copy every
  ``dr_interval_s``.

Invariants:
- Change tracking: each acknowledged write appends to the workload's change log;
  a pass copies only changes after the stream's ``last_seq`` (the newest copy of
  each key), so unchanged data costs nothing.
- Every copy is verified by checksum on arrival (the target's sha256 against the
  change log's); a mismatch is re-sent, never accepted. ``scrub`` re-reads the
  target and re-sends what is corrupt or missing.
- ``last_seq`` advances only over changes verified at the target; a failed pass
  leaves it where it was (nothing is skipped).
- Whoever writes the source bucket, a pass replicates it: after the change log, a pass
  sweeps the bucket with ``object_sync`` (new and changed objects, and for a DR copy the
  source's deletes). A DR copy's bucket keeps overwritten and deleted versions for the
  tier's ``deleted_retention_days``, so a mass delete at the source is recoverable there.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

from cloudctl import engines, errors
from cloudctl.drivers import base
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.recovery import object_sync
from cloudctl.store import db, replication, requests

SERVING_ROLES = (states.PlacementRole.PRIMARY, states.PlacementRole.ACTIVE)
SYNC, ASYNC, BACKUP = states.StreamMode.SYNC, states.StreamMode.ASYNC, states.StreamMode.BACKUP

Transport = engines.Transport
Environment = engines.Environment[object_sync.Manifest]
"""The engines' one environment, with the object sync's manifests (see ``engines``)."""


@dataclasses.dataclass(frozen=True)
class Ack:
    """An acknowledged write: where it is held, and which sync partners missed it."""

    seq: int
    at: float
    center: str
    copies: tuple[str, ...]
    degraded: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class PassResult:
    stream_id: str
    copied: int
    resent: int
    bytes_copied: int
    last_seq: int
    error: str = ""
    deleted: int = 0
    mismatches: tuple[str, ...] = ()
    """Keys whose copy at the target was damaged, missing or other bytes (a scrub's findings)."""


def data_bucket(workload_id: str) -> str:
    return f"data-{workload_id}"


def serving_centers(workload: requests.WorkloadRecord) -> list[str]:
    return [
        p.center
        for p in workload.placements
        if p.role in SERVING_ROLES and p.state == states.PlacementState.READY
    ]


def streams_for(
    topology: topo.Topology, workload: requests.WorkloadRecord
) -> list[tuple[str, str, str, float | None]]:
    """``(source, target, mode, interval_s)`` of every stream the workload's tier needs."""
    tier = topology.tier(workload.tier)
    roles = {p.role: p.center for p in workload.placements}
    serving = [p.center for p in workload.placements if p.role in SERVING_ROLES]
    if not serving:
        return []
    source = serving[0]
    planned: list[tuple[str, str, str, float | None]] = []
    if tier.local is topo.LocalPlacement.ACTIVE_ACTIVE and len(serving) > 1:
        planned.append((serving[0], serving[1], SYNC, None))
    elif tier.local is topo.LocalPlacement.SYNC_STANDBY and states.PlacementRole.STANDBY in roles:
        planned.append((source, roles[states.PlacementRole.STANDBY], SYNC, None))
    if tier.dr_copy is not topo.DrCopy.NONE and states.PlacementRole.DR in roles:
        mode = ASYNC if tier.dr_copy is topo.DrCopy.ASYNC else BACKUP
        planned.append((source, roles[states.PlacementRole.DR], mode, float(tier.dr_interval_s or 0)))
    return planned


def ensure_streams(env: Environment, workload_id: str) -> list[replication.Stream]:
    """Create the streams (and the data buckets they copy between) of a ready workload; idempotent."""
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
    planned = streams_for(env.topology, workload)
    centers = sorted({center for source, target, _m, _i in planned for center in (source, target)})
    for center in centers:
        storage = env.drivers_for(center).object_storage
        try:
            storage.get_bucket(data_bucket(workload_id))
        except errors.NotFound:
            storage.create_bucket(data_bucket(workload_id), versioning=True)
    retention_days = env.topology.tier(workload.tier).deleted_retention_days
    for _source, target, mode, _interval_s in planned:
        if mode != SYNC:  # the DR copy keeps what the source deletes or overwrites
            env.drivers_for(target).object_storage.set_retention(
                data_bucket(workload_id), days=retention_days
            )
    now = env.clock.now()
    made = []
    with env.store.transaction() as tx:
        for source, target, mode, interval_s in planned:
            made.append(
                replication.upsert_stream(
                    tx,
                    replication.new_stream(
                        workload_id=workload_id,
                        department=workload.department,
                        tier=workload.tier,
                        source=source,
                        target=target,
                        mode=mode,
                        interval_s=interval_s,
                        state=states.StreamState.HEALTHY,
                        last_seq=replication.last_seq(tx, workload_id=workload_id),
                        last_consistent_at=now,
                        last_pass_at=now,
                        now=now,
                    ),
                )
            )
    return made


@dataclasses.dataclass(frozen=True)
class Write:
    """One write of ``data`` under ``key`` to a workload (to ``center``, else where it serves)."""

    workload_id: str
    key: str
    data: bytes
    center: str | None = None


def write(env: Environment, workload_id: str, *, key: str, data: bytes, center: str | None = None) -> Ack:
    """Write ``data`` to the workload's serving center, synchronously to its sync partners.

    Raises ``BackendUnavailable`` when the serving center itself cannot take the write
    (nothing is acknowledged then).
    """
    outcome = write_many(env, [Write(workload_id, key, data, center)])[0]
    if isinstance(outcome, errors.BackendUnavailable):
        raise outcome
    return outcome


def write_many(env: Environment, writes: Sequence[Write]) -> list[Ack | errors.BackendUnavailable]:
    """Many writes of one instant, each as ``write`` would do it, in order.

    The workloads and their streams are read once and every acknowledged write is
    recorded in one store transaction. Each outcome is the write's ``Ack``, or the
    ``BackendUnavailable`` its serving center answered (that write is not acknowledged).
    """
    ids = sorted({item.workload_id for item in writes})
    with env.store.read() as tx:
        workloads = {record.id: record for record in requests.list_workloads(tx, ids=ids)}
        streams: dict[str, list[replication.Stream]] = {workload_id: [] for workload_id in ids}
        for stream in replication.list_streams(tx, workload_ids=ids):
            streams[stream.workload_id].append(stream)
    sources: list[str] = []
    for item in writes:
        workload = workloads.get(item.workload_id)
        if workload is None:
            raise errors.NotFound(f"no workload {item.workload_id!r}", field="workload")
        serving = serving_centers(workload)
        if not serving:
            raise errors.Conflict(f"workload {item.workload_id} is not served anywhere", field="workload")
        sources.append(item.center or serving[0])
    outcomes: list[tuple[str, list[str], list[str]] | errors.BackendUnavailable] = []
    for item, source in zip(writes, sources, strict=True):
        bucket = data_bucket(item.workload_id)
        try:
            env.drivers_for(source).object_storage.put_object(bucket, key=item.key, data=item.data)
        except errors.BackendUnavailable as refused:
            outcomes.append(refused)
            continue
        copies, degraded = [source], []
        for stream in _sync_streams(streams[item.workload_id], source):
            partner = stream.target if stream.source == source else stream.source
            try:
                env.copy_object(source, partner, bucket, item.key)
                copies.append(partner)
            except errors.BackendUnavailable as error:
                degraded.append(partner)
                _mark(env, stream.id, state=states.StreamState.DEGRADED, error=error.one_line())
        outcomes.append((source, copies, degraded))
    now = env.clock.now()
    acknowledged = [
        (item, outcome) for item, outcome in zip(writes, outcomes, strict=True) if isinstance(outcome, tuple)
    ]
    with env.store.transaction() as tx:
        changes = replication.append_changes(
            tx,
            [
                replication.NewChange(
                    workload_id=item.workload_id,
                    key=item.key,
                    sha256=hashlib.sha256(item.data).hexdigest(),
                    size_bytes=len(item.data),
                    at=now,
                    center=source,
                )
                for item, (source, _copies, _degraded) in acknowledged
            ],
        )
        _advance_sync_streams(tx, streams, acknowledged, changes, now=now)
    acks = iter(
        Ack(seq=change.seq, at=now, center=source, copies=tuple(copies), degraded=tuple(degraded))
        for change, (_item, (source, copies, degraded)) in zip(changes, acknowledged, strict=True)
    )
    return [next(acks) if isinstance(outcome, tuple) else outcome for outcome in outcomes]


def _sync_streams(streams: list[replication.Stream], source: str) -> list[replication.Stream]:
    return [s for s in streams if s.mode == SYNC and source in (s.source, s.target)]


def _advance_sync_streams(
    tx: db.Transaction,
    streams: dict[str, list[replication.Stream]],
    acknowledged: list[tuple[Write, tuple[str, list[str], list[str]]]],
    changes: list[replication.Change],
    *,
    now: float,
) -> None:
    """Move each healthy sync stream past the changes its partner took, while it has no gap."""
    touched = {item.workload_id for item, _outcome in acknowledged}
    sync_ids = [s.id for workload_id in touched for s in streams[workload_id] if s.mode == SYNC]
    if not sync_ids:
        return
    current = {s.id: s for s in replication.list_streams(tx, ids=sync_ids, for_update=True)}
    advanced: dict[str, replication.Stream] = {}
    for (item, (source, copies, _degraded)), change in zip(acknowledged, changes, strict=True):
        for stream in _sync_streams(streams[item.workload_id], source):
            partner = stream.target if stream.source == source else stream.source
            state = advanced.get(stream.id, current[stream.id])
            if (
                partner in copies
                and state.state == states.StreamState.HEALTHY
                and state.last_seq == change.seq - 1
            ):
                advanced[stream.id] = dataclasses.replace(
                    state,
                    last_seq=change.seq,
                    last_consistent_at=now,
                    bytes_copied=state.bytes_copied + change.size_bytes,
                    objects_copied=state.objects_copied + 1,
                )
    for stream in advanced.values():
        replication.update_stream(
            tx,
            stream.id,
            now=now,
            last_seq=stream.last_seq,
            last_consistent_at=stream.last_consistent_at,
            bytes_copied=stream.bytes_copied,
            objects_copied=stream.objects_copied,
        )


def _mark(env: Environment, stream_id: str, *, state: str, error: str = "") -> None:
    with env.store.transaction() as tx:
        replication.update_stream(tx, stream_id, now=env.clock.now(), state=state, last_error=error)


def replicate(env: Environment, stream_id: str, *, batch: int = 10_000) -> PassResult:
    """Ship what the target lacks (changes after ``last_seq``), verified on arrival."""
    with env.store.read() as tx:
        stream = replication.get_stream(tx, stream_id)
        pending = replication.changes_after(
            tx, workload_id=stream.workload_id, seq=stream.last_seq, limit=batch
        )
    newest: dict[str, replication.Change] = {}
    for change in pending:
        newest[change.key] = change
    copied = resent = moved = 0
    last_seq, consistent_at = stream.last_seq, stream.last_consistent_at
    bucket = data_bucket(stream.workload_id)
    error = ""
    shipped: list[object_sync.Synced] = []
    try:
        for change in pending:
            if newest[change.key] is change:
                moved_now, was_resent, held = _copy_verified(env, stream, bucket, change)
                moved += moved_now
                copied += 1
                resent += int(was_resent)
                shipped.append(
                    object_sync.Synced(
                        key=held.key, etag=held.etag, size_bytes=held.size_bytes, sha256=held.sha256
                    )
                )
            last_seq, consistent_at = change.seq, change.at
    except errors.BackendUnavailable as failure:
        error = failure.one_line()
    deleted = 0
    if not error:
        try:
            swept = _sweep(env, stream, shipped=shipped)
        except errors.BackendUnavailable as failure:
            error = failure.one_line()
        else:
            copied += swept.objects_copied
            moved += swept.bytes_copied
            deleted = swept.objects_deleted
            if swept.errors:
                error = "; ".join(f"{item.key}: {item.reason}" for item in swept.errors[:3])
    now = env.clock.now()
    caught_up = not error and len(pending) < batch
    with env.store.transaction() as tx:
        current = replication.get_stream(tx, stream_id, for_update=True)
        state = (
            states.StreamState.HEALTHY
            if caught_up
            else (states.StreamState.BROKEN if error else states.StreamState.LAGGING)
        )
        if current.mode == SYNC and error:
            state = states.StreamState.DEGRADED
        replication.update_stream(
            tx,
            stream_id,
            now=now,
            state=state,
            last_seq=max(last_seq, current.last_seq),
            last_consistent_at=consistent_at if last_seq >= current.last_seq else current.last_consistent_at,
            bytes_copied=current.bytes_copied + moved,
            objects_copied=current.objects_copied + copied,
            objects_resent=current.objects_resent + resent,
            last_pass_at=now,
            last_error=error,
        )
    return PassResult(
        stream_id, copied, resent, moved, max(last_seq, stream.last_seq), error, deleted=deleted
    )


def _sweep(
    env: Environment,
    stream: replication.Stream,
    *,
    verify: bool = False,
    shipped: Sequence[object_sync.Synced] = (),
) -> object_sync.SyncReport:
    """One pass of ``object_sync`` over the stream's bucket: what any client wrote or deleted
    at the source since the last pass (the change log knows only cloudctl's own writes).

    A sync partner serves too, so objects only it holds are not deleted; a DR copy
    follows the source's deletes (its retention keeps what they removed).
    """
    bucket = data_bucket(stream.workload_id)
    return object_sync.sync_bucket(
        source=env.drivers_for(stream.source).object_storage,
        target=env.drivers_for(stream.target).object_storage,
        bucket=bucket,
        parallelism=1,
        manifest=env.manifests(stream.id) if env.manifests is not None else None,
        delete_extraneous=stream.mode != SYNC,
        verify_target_bytes=verify,
        copy=lambda key: env.copy_object(stream.source, stream.target, bucket, key),
        synced_since=shipped,
        clock=env.clock,
    )


def _copy_verified(
    env: Environment, stream: replication.Stream, bucket: str, change: replication.Change
) -> tuple[int, bool, base.ObjectInfo]:
    """Copy one object and check the target holds the change's bytes; re-send once on a mismatch.

    The bytes moved, whether a re-send was needed, and what the target holds now."""
    moved = env.copy_object(stream.source, stream.target, bucket, change.key)
    held = _holds(env, stream.target, bucket, change)
    if held is not None:
        return moved, False, held
    moved += env.copy_object(stream.source, stream.target, bucket, change.key)
    held = _holds(env, stream.target, bucket, change)
    if held is not None:
        return moved, True, held
    raise errors.OperationFailed(
        f"{stream.target} still does not hold {bucket}/{change.key} as written after a re-send",
        field="stream",
    )


def _holds(env: Environment, center: str, bucket: str, change: replication.Change) -> base.ObjectInfo | None:
    """What ``center`` holds under the change's key if it is the change's bytes (read, verified)."""
    try:
        _data, info = env.drivers_for(center).object_storage.get_object(bucket, key=change.key)
    except (errors.NotFound, base.ChecksumMismatchError):
        return None
    return info if info.sha256 == change.sha256 else None


def scrub(env: Environment, stream_id: str) -> PassResult:
    """Re-read every object the target holds for the stream; re-send what is damaged, missing
    or other bytes than the source's, and name each such key in ``mismatches``.

    With a manifest, a copy that differs from what the last pass left is a mismatch; a
    source changed since then is an ordinary copy. Without one, every difference counts
    but cloudctl's own writes the stream has not shipped yet.
    """
    with env.store.read() as tx:
        stream = replication.get_stream(tx, stream_id)
        pending = {
            c.key for c in replication.changes_after(tx, workload_id=stream.workload_id, seq=stream.last_seq)
        }
    report = _sweep(env, stream, verify=True)
    mismatches = report.resent_keys
    if env.manifests is None:  # cloudctl's own writes not shipped yet are lag, not damage
        mismatches = tuple(sorted({*report.resent_keys, *(set(report.copied_keys) - pending)}))
    with env.store.transaction() as tx:
        current = replication.get_stream(tx, stream_id, for_update=True)
        replication.update_stream(
            tx,
            stream_id,
            now=env.clock.now(),
            objects_resent=current.objects_resent + len(mismatches),
            bytes_copied=current.bytes_copied + report.bytes_copied,
            last_error="; ".join(f"{item.key}: {item.reason}" for item in report.errors[:3]),
        )
    error = "; ".join(f"{item.key}: {item.reason}" for item in report.errors[:3])
    return PassResult(
        stream_id,
        report.objects_copied,
        len(mismatches),
        report.bytes_copied,
        stream.last_seq,
        error,
        deleted=report.objects_deleted,
        mismatches=mismatches,
    )


def run_due(
    env: Environment, *, workload_ids: list[str] | None = None, per_unit: int | None = None
) -> list[PassResult]:
    """One pass over every stream that is due (sync streams that fell behind, others whose
    interval passed), or only over those of ``workload_ids``.

    ``per_unit``: the passes go that many to a store unit of work (one transaction), for a
    caller whose waits take no time; what a unit holds is searched by every listing in it, so
    the units are kept small rather than one for all.
    """
    with env.store.read() as tx:
        due = replication.due_streams(tx, now=env.clock.now(), workload_ids=workload_ids)
    if per_unit is None:
        return [replicate(env, stream.id) for stream in due]
    results: list[PassResult] = []
    for start in range(0, len(due), per_unit):
        with env.store.unit_of_work():
            results += [replicate(env, stream.id) for stream in due[start : start + per_unit]]
    return results


def lag_target_s(stream: replication.Stream, *, rpo_target_s: float) -> float:
    """How far behind a stream may be and still be on time.

    A sync stream must keep the tier's RPO; an async or backup copy ships every
    ``interval_s``, so it is on time while its lag stays within that interval.
    """
    if stream.mode == SYNC:
        return rpo_target_s
    return max(rpo_target_s, stream.interval_s or 0.0)


def current_rpo_s(env: Environment, stream: replication.Stream) -> float:
    """Age of the oldest change the target lacks (what losing the source now would lose)."""
    with env.store.read() as tx:
        oldest = replication.first_pending_at(tx, workload_id=stream.workload_id, seq=stream.last_seq)
    return 0.0 if oldest is None else max(env.clock.now() - oldest, 0.0)


def file_manifests(directory: Path) -> Callable[[str], object_sync.Manifest]:
    """Each stream's manifest as a file ``<directory>/<stream id>.jsonl``."""

    def manifest(stream_id: str) -> object_sync.Manifest:
        return object_sync.JsonFileManifest(directory / f"{stream_id.replace('/', '_')}.jsonl")

    return manifest


def simulator_transport(copy_object: Callable[..., object]) -> Transport:
    """A transport over the simulator's link-aware ``copy_object`` (latency, bandwidth, faults)."""

    def transport(source: str, target: str, bucket: str, key: str) -> int:
        moved = copy_object(source_center=source, target_center=target, bucket=bucket, key=key)
        return int(getattr(moved, "size_bytes", 0))

    return transport
