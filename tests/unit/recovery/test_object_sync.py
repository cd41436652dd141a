"""``object_sync.sync_bucket`` between two simulated centers: every behaviour, fast.

The same specification as ``tests/integration/test_object_sync.py`` (full pass,
incremental pass, damaged copy re-sent, resume after a crash, deletions propagated) on
the simulator with a manual clock, plus what is easier to provoke here: a corrupt
source, a damaged target copy that only a read-back can see, and the checkpoints.
"""

from __future__ import annotations

import dataclasses
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


def test_a_target_copy_that_disagrees_with_the_listing_is_resent(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    fill(source, count=5)
    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)
    listed = next(info for info in source.list_objects(BUCKET) if info.key == key_of(2))
    # A target whose listing claims the source's sha256 with another ETag (S3: bytes
    # replaced behind cloudctl's back, old sha256 metadata kept).
    lying_target = _ListingOverride(target, {key_of(2): dataclasses.replace(listed, etag="0" * 32)})

    report = object_sync.sync_bucket(source=source, target=lying_target, bucket=BUCKET)

    assert (report.objects_resent, report.objects_copied) == (1, 1)


def test_a_corrupt_source_object_is_reported_and_not_copied(
    simulated: sim.Simulator, source: base.ObjectStorage, target: base.ObjectStorage, source_center: str
) -> None:
    fill(source, count=5)
    object_sync.sync_bucket(source=source, target=target, bucket=BUCKET)
    source.put_object(BUCKET, key=key_of(1), data=b"new content")
    simulated.corrupt_object(source_center, bucket=BUCKET, key=key_of(1))
    checkpoint = object_sync.InMemoryCheckpoint()

    report = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, checkpoint=checkpoint)

    assert not report.succeeded
    assert [error.key for error in report.errors] == [key_of(1)]
    assert "corrupt" in report.errors[0].reason
    assert target.get_object(BUCKET, key=key_of(1))[0] == payload(1)  # the last good copy stays
    assert checkpoint.completed() == {}


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

    def put_object(self, bucket: str, *, key: str, data: bytes) -> base.ObjectInfo:
        with self._lock:
            if self._left <= 0:
                raise SimulatedCrash("killed mid-pass")
            self._left -= 1
        return self._storage.put_object(bucket, key=key, data=data)


def test_an_interrupted_pass_resumes_from_its_checkpoint(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    fill(source, count=OBJECT_COUNT)
    checkpoint = object_sync.InMemoryCheckpoint()
    crash_after_copies = 60

    with pytest.raises(SimulatedCrash):
        object_sync.sync_bucket(
            source=source,
            target=DiesAfter(target, puts=crash_after_copies),  # type: ignore[arg-type]
            bucket=BUCKET,
            parallelism=4,
            checkpoint=checkpoint,
        )
    done_before_crash = len(checkpoint.completed())
    assert done_before_crash == crash_after_copies

    resumed = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, checkpoint=checkpoint)

    assert resumed.objects_skipped == done_before_crash
    assert resumed.objects_copied == OBJECT_COUNT - done_before_crash
    assert contents_of(target) == contents_of(source)
    assert checkpoint.completed() == {}


def test_a_checkpointed_key_changed_since_is_copied_again(
    source: base.ObjectStorage, target: base.ObjectStorage
) -> None:
    fill(source, count=3)
    checkpoint = object_sync.InMemoryCheckpoint()
    checkpoint.record(key=key_of(0), sha256=source.head_object(BUCKET, key=key_of(0)).sha256)
    checkpoint.record(key=key_of(1), sha256="stale")

    report = object_sync.sync_bucket(source=source, target=target, bucket=BUCKET, checkpoint=checkpoint)

    assert (report.objects_skipped, report.objects_copied) == (1, 2)


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


def test_a_file_checkpoint_survives_the_process_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "state" / "sync.jsonl"
    written = object_sync.JsonFileCheckpoint(path)
    written.record(key="a/1", sha256="aa")
    written.record(key="a/2", sha256="bb")
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps({"key": "a/3", "sha256": "cc"})[:10])  # the crash tore this line

    assert object_sync.JsonFileCheckpoint(path).completed() == {"a/1": "aa", "a/2": "bb"}
    object_sync.JsonFileCheckpoint(path).clear()
    assert object_sync.JsonFileCheckpoint(path).completed() == {}
    assert not path.exists()


class _ListingOverride:
    """An object storage whose ``list_objects`` reports some entries differently."""

    def __init__(self, storage: base.ObjectStorage, overrides: dict[str, base.ObjectInfo]) -> None:
        self._storage = storage
        self._overrides = overrides

    def __getattr__(self, name: str) -> object:
        return getattr(self._storage, name)

    def list_objects(self, bucket: str, *, prefix: str = "") -> list[base.ObjectInfo]:
        listed = self._storage.list_objects(bucket, prefix=prefix)
        return [self._overrides.get(info.key, info) for info in listed]
