"""``object_sync.sync_bucket`` between two simulated centers: every behaviour, fast.

The same specification as ``tests/integration/test_object_sync.py`` (full pass,
incremental pass, damaged copy re-sent, resume after a crash, deletions propagated) on
the simulator with a manual clock, plus what is easier to provoke here: a corrupt
source, a damaged or replaced target copy that only a read-back can see, and the manifests.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers import simulator as sim
from cloudctl.model import topology
from cloudctl.recovery import object_sync

TOPOLOGY_FILE = Path(__file__).resolve().parents[3] / "infra" / "topology.yaml"
BUCKET = "dept-records"
OBJECT_COUNT = 200


class SimulatedCrash(RuntimeError):
    """Stops a pass the way a killed process would."""


@pytest.fixture
def simulated() -> sim.Simulator:
    shipped = topology.parse(TOPOLOGY_FILE.read_text(encoding="utf-8"))
    return sim.Simulator(shipped, clock=clocks.ManualClock(), seed=11)


@pytest.fixture
def source_center(simulated: sim.Simulator) -> str:
    return simulated.topology.centers_with_role(topology.CenterRole.LOCAL)[0].name


@pytest.fixture
def target_center(simulated: sim.Simulator) -> str:
    return simulated.topology.centers_with_role(topology.CenterRole.DR)[0].name


@pytest.fixture
def source(simulated: sim.Simulator, source_center: str) -> base.ObjectStorage:
    storage = simulated.drivers(source_center).object_storage
    storage.create_bucket(BUCKET)
    return storage


@pytest.fixture
def target(simulated: sim.Simulator, target_center: str) -> base.ObjectStorage:
    return simulated.drivers(target_center).object_storage


def payload(index: int, *, version: int = 1) -> bytes:
    return f"record {index:05d} version {version}\n".encode() * (1 + index % 7)


def key_of(index: int) -> str:
    return f"dept/records/{index:05d}"


def fill(storage: base.ObjectStorage, *, count: int) -> dict[str, bytes]:
    contents = {key_of(index): payload(index) for index in range(count)}
    for key, data in contents.items():
        storage.put_object(BUCKET, key=key, data=data)
    return contents


def contents_of(storage: base.ObjectStorage) -> dict[str, tuple[str, str, int]]:
    return {info.key: (info.sha256, info.etag, info.size_bytes) for info in storage.list_objects(BUCKET)}


def test_a_full_pass_copies_every_object_and_creates_the_target_bucket(
    source: base.ObjectStorage, target: base.ObjectStorage, source_center: str, target_center: str
) -> None:
    contents = fill(source, count=OBJECT_COUNT)

    report = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)

    assert report.succeeded
    assert (report.objects_examined, report.objects_copied) == (OBJECT_COUNT, OBJECT_COUNT)
    assert report.bytes_copied == sum(len(data) for data in contents.values())
    assert (report.source_center, report.target_center) == (source_center, target_center)
    assert target.get_bucket(BUCKET).versioning is True
    assert contents_of(target) == contents_of(source)


def test_an_incremental_pass_copies_exactly_the_changed_objects(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    fill(source, count=OBJECT_COUNT)
    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)
    changed = {key_of(index): payload(index, version=2) for index in (17, 140)}
    for key, data in changed.items():
        source.put_object(BUCKET, key=key, data=data)

    report = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)

    assert report.objects_copied == len(changed) == OBJECT_COUNT // 100
    assert report.bytes_copied == sum(len(data) for data in changed.values())
    assert report.objects_unchanged == OBJECT_COUNT - len(changed)
    assert contents_of(target) == contents_of(source)
    assert object_sync.sync_bucket(source=source, target=target, bucket=BUCKET).objects_copied == 0


def test_a_copy_damaged_at_rest_is_found_by_reading_back_and_resent(
    simulated: sim.Simulator, source: base.ObjectStorage, target: base.ObjectStorage, target_center: str
) -> None:
    fill(source, count=10)
    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)
    simulated.corrupt_object(target_center, bucket=BUCKET, key=key_of(6))

    # The listings still agree: damage at rest is invisible without reading the bytes.
    assert object_sync.sync_bucket(source=source, target=target, bucket=BUCKET).objects_copied == 0
    report = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, verify_target_bytes=True)

    assert (report.objects_resent, report.objects_copied, report.objects_reverified) == (1, 1, 9)
    assert target.get_object(BUCKET, key=key_of(6))[0] == payload(6)


def synced_with_a_manifest(
    source: base.ObjectStorage, target: base.ObjectStorage, *, count: int
) -> object_sync.InMemoryManifest:
    """``count`` objects at the source, synced once to the target; the manifest of that pass."""
    fill(source, count=count)
    manifest = object_sync.InMemoryManifest()
    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, manifest=manifest)
    return manifest


def test_a_target_copy_replaced_with_other_bytes_is_found_by_a_scrub_and_resent(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    manifest = synced_with_a_manifest(source, target, count=5)
    target.put_object(BUCKET, key=key_of(2), data=b"written over by another client")

    # The manifest says the target holds the source's bytes: only reading finds out.
    assert (
        object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, manifest=manifest).objects_copied
        == 0
    )
    report = object_sync.sync_bucket(
        source=source, target=target, bucket=BUCKET, manifest=manifest, verify_target_bytes=True
    )

    assert (report.objects_resent, report.resent_keys) == (1, (key_of(2),))
    assert target.get_object(BUCKET, key=key_of(2))[0] == payload(2)


def test_a_corrupt_source_object_is_reported_and_not_copied(
    simulated: sim.Simulator, source: base.ObjectStorage, target: base.ObjectStorage, source_center: str
) -> None:
    fill(source, count=5)
    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)
    source.put_object(BUCKET, key=key_of(1), data=b"new content")
    simulated.corrupt_object(source_center, bucket=BUCKET, key=key_of(1))
    manifest = object_sync.InMemoryManifest()

    report = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, manifest=manifest)

    assert not report.succeeded
    assert [error.key for error in report.errors] == [key_of(1)]
    assert "corrupt" in report.errors[0].reason
    assert target.get_object(BUCKET, key=key_of(1))[0] == payload(1)  # the last good copy stays
    recorded = manifest.load() or {}
    assert recorded[key_of(1)].etag == target.head_object(BUCKET, key=key_of(1)).etag  # tried again next pass


class DiesAfter:
    """The target storage of a process killed after ``puts`` copies: every later write fails.

    Killing it from ``on_progress`` instead would race the copying threads, which on a busy
    machine may finish every copy before the main thread sees the sixtieth.
    """

    def __init__(self, storage: base.ObjectStorage, *, puts: int) -> None:
        self._storage = storage
        self._left = puts
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)

    def put_replica(self, bucket: str, *, data: bytes, source: base.ObjectInfo) -> base.ObjectInfo:
        with self._lock:
            if self._left <= 0:
                raise SimulatedCrash("killed mid-pass")
            self._left -= 1
        return self._storage.put_replica(bucket, data=data, source=source)


def test_an_interrupted_pass_resumes_from_its_manifest(
    source: base.ObjectStorage, target: base.ObjectStorage, tmp_path: Path
) -> None:
    fill(source, count=OBJECT_COUNT)
    manifest = object_sync.JsonFileManifest(tmp_path / "sync.manifest.jsonl")
    crash_after_copies = 60

    with pytest.raises(SimulatedCrash):
        object_sync.sync_bucket(
            source=source,
            target=DiesAfter(target, puts=crash_after_copies),  # type: ignore[arg-type]
            bucket=BUCKET,
            parallelism=4,
            manifest=manifest,
        )
    done_before_crash = len(object_sync.JsonFileManifest(manifest.path).load() or {})
    assert done_before_crash == crash_after_copies

    resumed = object_sync.sync_bucket(
        source=source, target=target, bucket=BUCKET, manifest=object_sync.JsonFileManifest(manifest.path)
    )

    assert resumed.objects_unchanged == done_before_crash
    assert resumed.objects_copied == OBJECT_COUNT - done_before_crash
    assert contents_of(target) == contents_of(source)
    assert len(object_sync.JsonFileManifest(manifest.path).load() or {}) == OBJECT_COUNT


class CountingListings:
    """An object storage that counts the listings made of it."""

    def __init__(self, storage: base.ObjectStorage) -> None:
        self._storage = storage
        self.listings = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)

    def list_object_entries(self, bucket: str, *, prefix: str = "") -> list[base.ObjectEntry]:
        self.listings += 1
        return self._storage.list_object_entries(bucket, prefix=prefix)

    def list_objects(self, bucket: str, *, prefix: str = "") -> list[base.ObjectInfo]:
        self.listings += 1
        return self._storage.list_objects(bucket, prefix=prefix)


def test_with_a_manifest_a_pass_lists_the_source_only(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    fill(source, count=20)
    manifest = object_sync.InMemoryManifest()
    counted = CountingListings(target)
    object_sync.sync_bucket(source=source, target=counted, bucket=BUCKET, manifest=manifest)  # type: ignore[arg-type]
    assert counted.listings == 1  # no manifest yet: the target is listed once
    source.put_object(BUCKET, key=key_of(3), data=b"changed")
    source.delete_object(BUCKET, key=key_of(4))

    report = object_sync.sync_bucket(source=source, target=counted, bucket=BUCKET, manifest=manifest)  # type: ignore[arg-type]

    assert counted.listings == 1
    assert (report.objects_copied, report.objects_deleted, report.objects_unchanged) == (1, 1, 18)
    assert contents_of(target) == contents_of(source)


def test_deletions_at_the_source_are_propagated_unless_told_not_to(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    fill(source, count=20)
    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)
    deleted = [key_of(index) for index in (0, 9, 19)]
    for key in deleted:
        source.delete_object(BUCKET, key=key)

    kept = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, delete_extraneous=False)
    assert kept.objects_deleted == 0
    assert set(deleted) <= set(contents_of(target))

    propagated = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)
    assert (propagated.objects_deleted, propagated.objects_copied) == (len(deleted), 0)
    assert contents_of(target) == contents_of(source)


def test_progress_is_reported_for_every_object(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    fill(source, count=8)
    seen: list[object_sync.SyncProgress] = []

    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, on_progress=seen.append)

    assert sorted(progress.key for progress in seen) == [key_of(index) for index in range(8)]
    assert [progress.objects_done for progress in seen] == list(range(1, 9))
    assert {progress.objects_total for progress in seen} == {8}
    assert {progress.action for progress in seen} == {object_sync.SyncAction.COPIED}


def test_parallelism_must_be_positive(source: base.ObjectStorage, target: base.ObjectStorage) -> None:
    with pytest.raises(errors.InvalidInput):
        object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, parallelism=0)


def test_a_missing_source_bucket_is_not_found(target: base.ObjectStorage) -> None:
    with pytest.raises(errors.NotFound):
        object_sync.sync_bucket(source=target, target=target, bucket="no-such-bucket")


def test_a_file_manifest_survives_the_process_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sync.jsonl"
    written = object_sync.JsonFileManifest(path)
    assert written.load() is None
    written.record(object_sync.Synced(key="a/1", etag="e1", size_bytes=1, sha256="aa"))
    written.record(object_sync.Synced(key="a/2", etag="e2", size_bytes=2))
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps({"key": "a/3", "etag": "e3"})[:10])  # the crash tore this line

    assert object_sync.JsonFileManifest(path).load() == {
        "a/1": object_sync.Synced(key="a/1", etag="e1", size_bytes=1, sha256="aa"),
        "a/2": object_sync.Synced(key="a/2", etag="e2", size_bytes=2),
    }
    object_sync.JsonFileManifest(path).save({})
    assert object_sync.JsonFileManifest(path).load() == {}


def test_a_file_manifest_keeps_one_line_per_key_once_records_pile_up(tmp_path: Path) -> None:
    manifest = object_sync.JsonFileManifest(tmp_path / "sync.jsonl")
    for version in range(200):
        manifest.record(object_sync.Synced(key="hot", etag=f"e{version}", size_bytes=version))

    assert object_sync.JsonFileManifest(manifest.path).load() == {
        "hot": object_sync.Synced(key="hot", etag="e199", size_bytes=199)
    }
    assert len(manifest.path.read_text(encoding="utf-8").splitlines()) == 1


class MeetingAt:
    """An object storage whose named calls each wait at ``barrier`` before they run."""

    def __init__(self, storage: base.ObjectStorage, barrier: threading.Barrier, *names: str) -> None:
        self._storage = storage
        self._barrier = barrier
        self._names = names

    def __getattr__(self, name: str) -> object:
        found = getattr(self._storage, name)
        if name not in self._names:
            return found

        def met(*args: object, **kwargs: object) -> object:
            self._barrier.wait()
            return found(*args, **kwargs)

        return met


def test_the_source_is_listed_while_the_target_bucket_is_looked_up_and_asked_nothing_else(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    """Each of the two waits for the other before it answers: a pass that made them one after
    the other would break the barrier (after its generous timeout) instead of syncing. The
    source bucket is not looked up when the target's is there (its listing says it exists)."""
    fill(source, count=5)
    target.create_bucket(BUCKET)
    barrier = threading.Barrier(2, timeout=60)
    meeting_source = MeetingAt(source, barrier, "list_object_entries")
    meeting_target = MeetingAt(target, barrier, "get_bucket")
    lookups: list[str] = []
    meeting_source.get_bucket = lambda name: lookups.append(name) or source.get_bucket(name)  # type: ignore[attr-defined]

    report = object_sync.sync_bucket(
        source=meeting_source,  # type: ignore[arg-type]
        target=meeting_target,  # type: ignore[arg-type]
        bucket=BUCKET,
        manifest=object_sync.InMemoryManifest(),
    )

    assert (report.objects_copied, report.source_center, report.target_center) == (
        5,
        source.center,
        target.center,
    )
    assert lookups == []
    assert contents_of(target) == contents_of(source)


def test_a_target_bucket_that_is_gone_is_made_again_though_the_manifest_says_all_is_there(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    manifest = synced_with_a_manifest(source, target, count=5)
    for key in [info.key for info in target.list_objects(BUCKET)]:
        target.delete_object(BUCKET, key=key)
    target.delete_bucket(BUCKET)

    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, manifest=manifest)

    assert target.get_bucket(BUCKET).versioning == source.get_bucket(BUCKET).versioning
    assert sorted(info.key for info in target.list_objects(BUCKET)) == sorted(
        info.key for info in source.list_objects(BUCKET)
    )
