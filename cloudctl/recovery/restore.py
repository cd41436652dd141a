"""Point-in-time restore: a workload's volumes and object data as they were at a recovery point.

A **recovery point** of a workload is one ``seq`` of its change log at which every protected
volume has a ``ready`` replication point (``recovery.snapshots``) in one center, the center
that holds its DR copy; a workload with no protected volume (an object-storage offering) has
one where its data bucket there has a ``ready`` objects point. Its ``consistent_at`` is the
write time of the newest change the copy held then. ``choose_point`` picks, for a time ``at``,
the newest recovery point with ``consistent_at <= at``, in the center asked for or else in a
center that holds a copy of the workload: never, unless named, in a center it serves in (a
failover or failback takes a point there of the disks it recovers, and restoring there would
rewind the data served); ``restore`` then, in that center:

1. makes a volume from each volume's snapshot at the point, named ``rs-<logical name>-<seq>``
   (``model.names.restored_name``), and records it among the placement's resources there
   (``restored_from``: the replication point's id), so deleting the workload deletes it; the
   replicas and their points are left as they are (a workload with no volume: nothing);
2. rewinds the workload's data bucket there (``data-<workload>``, versioned, kept for the
   tier's ``deleted_retention_days``) to the point: for each key of the change log, the
   newest change with ``seq <= point`` names the bytes it held (their sha256); the kept
   version with those bytes is made current again (``restore_object_version``, a new
   version: the history stays). A key first written after the point is deleted (a delete
   marker, the versions kept). Keys the change log never saw are left as they are.
3. says what is lost: the changes written after the point and up to ``at`` (count, and the
   seconds between the point's ``consistent_at`` and ``at``), and each key whose bytes at the
   point are no longer kept there (``missing``).

Invariants:
- Nothing changes before the point is chosen and every input checked; ``plan`` (the dry
  run) makes no backend write.
- Idempotent: a volume is looked up by name before one is made and recorded once; a key
  already holding the point's bytes costs no write. A restore repeated gives the same result.
- A restore into the center that holds the copy rewinds that copy: while the workload serves
  elsewhere, the next replication pass ships the serving center's data again (a failover to
  the point, or a restore after the serving data was repaired, keeps it).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from typing import Any

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import states
from cloudctl.model.names import restored_name
from cloudctl.recovery import replication as repl
from cloudctl.recovery import snapshots
from cloudctl.store import replication, requests
from cloudctl.store import replication_points as points_store


@dataclasses.dataclass(frozen=True)
class RecoveryPoint:
    """One ``seq`` of a workload at which every protected volume has a ready point in ``center``
    (``volumes``), or, for a workload with none, its data bucket there has one (``volumes`` empty)."""

    workload_id: str
    department: str
    center: str
    seq: int
    consistent_at: float
    volumes: tuple[points_store.ReplicationPoint, ...]

    @property
    def id(self) -> str:
        """``<center>/<workload>@<seq>``."""
        return point_id(self.center, self.workload_id, self.seq)


def point_id(center: str, workload_id: str, seq: int) -> str:
    return f"{center}/{workload_id}@{seq}"


@dataclasses.dataclass(frozen=True)
class Loss:
    """What a recovery to a point loses, measured up to ``at``."""

    changes: int
    """Writes acknowledged after the point and at or before ``at``."""
    seconds: float
    """Seconds between the point's ``consistent_at`` and ``at``."""
    keys: tuple[str, ...]
    """The keys those writes changed."""


@dataclasses.dataclass(frozen=True)
class Result:
    """What a restore did (or, for a plan, would do)."""

    point: RecoveryPoint
    to_center: str
    volumes: tuple[dict[str, Any], ...]
    """The placement items of the volumes made (planned: their names, no ``id``)."""
    rewound: tuple[str, ...]
    """Keys whose bytes at the point were made current again."""
    removed: tuple[str, ...]
    """Keys first written after the point, deleted (their versions kept)."""
    missing: tuple[str, ...]
    """Keys whose bytes at the point are no longer kept in the center."""
    loss: Loss


def parse_time(text: str, *, field: str = "at") -> float:
    """An ISO 8601 time (``Z`` or an offset; none is UTC) as epoch seconds; ``InvalidInput`` if not
    one, or if it lies outside the years 1 to 9999 in UTC (no answer could name it)."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise errors.InvalidInput(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-18T02:20:00Z)", field=field
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    try:
        clocks.isoformat(moment.timestamp())
    except (ValueError, OverflowError, OSError):
        raise errors.InvalidInput(f"{text!r} lies outside the years 1 to 9999 (UTC)", field=field) from None
    return moment.timestamp()


def parse_point_id(text: str) -> tuple[str, str, int]:
    """``(center, workload, seq)`` of a recovery point id ``<center>/<workload>@<seq>``."""
    center, _slash, rest = text.partition("/")
    workload_id, _at, seq = rest.rpartition("@")
    if not (center and workload_id and seq.isascii() and seq.isdigit()):  # not "²": int() refuses it
        raise errors.InvalidInput(
            f"{text!r} is not a recovery point id (<center>/<workload>@<seq>, e.g. dz-dr/wl-7f3a@48213)",
            field="point",
        )
    return center, workload_id, int(seq)


def recovery_points(
    env: repl.Environment, workload: requests.WorkloadRecord, *, center: str | None = None
) -> list[RecoveryPoint]:
    """The workload's recovery points (in ``center``, if given), oldest first."""
    with env.store.read() as tx:
        known = points_store.list_points(tx, workload_ids=[workload.id], states=[states.PointState.READY])
    protected = {
        item.name
        for serving in repl.serving_centers(workload) or [p.center for p in workload.placements]
        for item in snapshots.protected_volumes(env.topology, workload, serving)
    }
    # A workload with volumes recovers from their snapshots; one without, from its bucket's versions.
    wanted = points_store.PointKind.VOLUME if protected else points_store.PointKind.OBJECTS
    grouped: dict[tuple[str, int], list[points_store.ReplicationPoint]] = {}
    for point in known:
        if point.kind is not wanted or (center is not None and point.center != center):
            continue
        if wanted is points_store.PointKind.VOLUME and point.snapshot_id is None:
            continue
        grouped.setdefault((point.center, point.seq), []).append(point)
    found = []
    for (where, seq), members in grouped.items():
        times = [p.consistent_at for p in members if p.consistent_at is not None]
        if not times or not protected <= {p.volume_name for p in members}:
            continue  # a volume missed this point: it cannot restore the workload whole
        volumes = [p for p in members if p.kind is points_store.PointKind.VOLUME]
        found.append(
            RecoveryPoint(
                workload_id=workload.id,
                department=workload.department,
                center=where,
                seq=seq,
                consistent_at=max(times),
                volumes=tuple(sorted(volumes, key=lambda p: p.volume_name)),
            )
        )
    return sorted(found, key=lambda p: (p.consistent_at, p.seq, p.center))


def choose_point(
    env: repl.Environment, workload: requests.WorkloadRecord, *, at: float, center: str | None = None
) -> RecoveryPoint:
    """The newest recovery point consistent at or before ``at``, in ``center``, or without one in a
    center that holds a copy (not one the workload serves in); ``InvalidInput`` (``at``) if none."""
    if at > env.clock.now():
        raise errors.InvalidInput(
            f"{clocks.isoformat(at)} is in the future (now {clocks.isoformat(env.clock.now())})", field="at"
        )
    points = recovery_points(env, workload, center=center)
    where = f" in {center}"
    if center is None:
        serving = repl.serving_centers(workload)
        where = " in a center that holds a copy of it"
        if any(p.center in serving and p.consistent_at <= at for p in points):
            where += f" ({', '.join(serving)}, where it serves, is restored only when named)"
        points = [p for p in points if p.center not in serving]
    before = [p for p in points if p.consistent_at <= at]
    if not before:
        oldest = f" (the first time that reaches one is {first_time_reaching(points[0])})" if points else ""
        asked = clocks.isoformat(at)
        raise errors.InvalidInput(
            f"workload {workload.id} has no recovery point{where} at or before {asked}{oldest}", field="at"
        )
    return before[-1]


def first_time_reaching(point: RecoveryPoint) -> str:
    """The first whole second (ISO 8601 UTC) at or after the point's ``consistent_at``: the earliest
    ``at`` that ``choose_point`` answers with it (or a newer point).

    Times are shown to the second, cut (``clock.isoformat``): a point consistent a fraction of a
    second after a second shows that second, which lies before the point."""
    return clocks.isoformat(math.ceil(point.consistent_at))


def find_point(env: repl.Environment, workload: requests.WorkloadRecord, point: str) -> RecoveryPoint:
    """The recovery point ``point`` (its id) of this workload; ``NotFound`` (``point``) if it has none."""
    found = next((p for p in recovery_points(env, workload) if p.id == point), None)
    if found is None:
        raise errors.NotFound(f"workload {workload.id} has no recovery point {point!r}", field="point")
    return found


def loss(env: repl.Environment, point: RecoveryPoint, *, at: float) -> Loss:
    """The writes a recovery to ``point`` loses, counted up to ``at``."""
    with env.store.read() as tx:
        after = replication.changes_after(tx, workload_id=point.workload_id, seq=point.seq)
    lost = [change for change in after if change.at <= at]
    return Loss(
        changes=len(lost),
        seconds=round(max(at - point.consistent_at, 0.0), 3),
        keys=tuple(sorted({change.key for change in lost})),
    )


def plan(
    env: repl.Environment, workload: requests.WorkloadRecord, point: RecoveryPoint, *, at: float
) -> Result:
    """What ``restore`` would do: the volumes it would make and what the point loses; no write."""
    volumes = tuple(_volume_item(p, volume_id=None) for p in point.volumes)
    return Result(
        point=point,
        to_center=point.center,
        volumes=volumes,
        rewound=(),
        removed=(),
        missing=(),
        loss=loss(env, point, at=at),
    )


def restore(
    env: repl.Environment, workload: requests.WorkloadRecord, point: RecoveryPoint, *, at: float
) -> Result:
    """Make the point's volumes and rewind the data bucket in the point's center (see the module)."""
    volumes = _make_volumes(env, workload, point)
    rewound, removed, missing = rewind_objects(env, workload.id, center=point.center, seq=point.seq)
    return Result(
        point=point,
        to_center=point.center,
        volumes=tuple(volumes),
        rewound=rewound,
        removed=removed,
        missing=missing,
        loss=loss(env, point, at=at),
    )


def _volume_item(point: points_store.ReplicationPoint, *, volume_id: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {
        "kind": "volume",
        "name": restored_name(point.volume_name, point.seq),
        "of": point.volume_name,
        "restored_from": point.id,
    }
    if volume_id is not None:
        item["id"] = volume_id
    return item


def _make_volumes(
    env: repl.Environment, workload: requests.WorkloadRecord, point: RecoveryPoint
) -> list[dict[str, Any]]:
    if not point.volumes:
        return []
    storage = env.drivers_for(point.center).block_storage
    size_gb = env.topology.offering(workload.offering).volume_gb
    made = []
    for volume in point.volumes:
        name = restored_name(volume.volume_name, volume.seq)
        found = storage.find_volume(name) or storage.create_volume(
            name=name, project=workload.department, size_gb=size_gb, snapshot_id=volume.snapshot_id
        )
        made.append(_volume_item(volume, volume_id=found.id))
    with env.store.transaction() as tx:
        current = requests.get_workload(tx, workload.id)
        placement = next((p for p in current.placements if p.center == point.center), None)
        if placement is not None:
            names = {item["name"] for item in made}
            kept = [item for item in placement.resources if item.get("name") not in names]
            requests.update_placement(
                tx, workload_id=workload.id, center=point.center, values={"resources": [*kept, *made]}
            )
    return made


def rewind_objects(
    env: repl.Environment, workload_id: str, *, center: str, seq: int
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Bring the workload's data bucket in ``center`` to its change log at ``seq``:
    ``(rewound, removed, missing)`` keys."""
    storage = env.drivers_for(center).object_storage
    bucket = repl.data_bucket(workload_id)
    with env.store.read() as tx:
        changes = replication.changes_after(tx, workload_id=workload_id, seq=0)
    wanted: dict[str, replication.Change] = {}
    later: set[str] = set()
    for change in changes:
        if change.seq <= seq:
            wanted[change.key] = change
        else:
            later.add(change.key)
    try:
        versions = storage.list_object_versions(bucket)
    except errors.NotFound:
        versions = []
    by_key: dict[str, list[base.ObjectVersion]] = {}
    for version in versions:
        by_key.setdefault(version.key, []).append(version)
    rewound: list[str] = []
    removed: list[str] = []
    missing: list[str] = []
    for key in sorted(set(wanted) | later):
        kept = by_key.get(key, [])
        latest = next((v for v in kept if v.is_latest), None)
        live = latest is not None and not latest.deleted
        held = wanted.get(key)
        if held is None:
            if live:
                storage.delete_object(bucket, key=key, ignore_missing=True)
                removed.append(key)
            continue
        if live and storage.head_object(bucket, key=key).sha256 == held.sha256:
            continue
        if _make_current(storage, bucket, key, held, kept):
            rewound.append(key)
        else:
            missing.append(key)
    return tuple(rewound), tuple(removed), tuple(missing)


def _make_current(
    storage: base.ObjectStorage,
    bucket: str,
    key: str,
    change: replication.Change,
    kept: list[base.ObjectVersion],
) -> bool:
    """Make the kept version holding ``change``'s bytes current; whether one did (newest tried first).

    A version's listing carries no sha256: each candidate of the right size is made current and
    its digest read back. When none holds the bytes, what was current before is made current
    again (or deleted again), so the key ends as it was.
    """
    candidates = [v for v in kept if not v.deleted and not v.is_latest and v.size_bytes == change.size_bytes]
    tried = False
    for version in sorted(candidates, key=lambda v: v.modified_at, reverse=True):
        tried = True
        if (
            storage.restore_object_version(bucket, key=key, version_id=version.version_id).sha256
            == change.sha256
        ):
            return True
    latest = next((v for v in kept if v.is_latest), None)
    if tried:
        if latest is None or latest.deleted:
            storage.delete_object(bucket, key=key, ignore_missing=True)
        else:
            storage.restore_object_version(bucket, key=key, version_id=latest.version_id)
    return False
