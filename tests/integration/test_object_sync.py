"""``object_sync.sync_bucket`` between two real S3 servers (one ``moto_server`` per center).

Specifies, against real HTTP endpoints: a full pass copies everything; an incremental
pass copies exactly the changed objects; a target copy replaced behind cloudctl's back
is detected from the listings and re-sent; a pass interrupted mid-way resumes from its
file checkpoint; deletions at the source are propagated (or not, when asked); the
sync works between two different drivers (simulator to S3); bytes at the source that miss
their sha256 are reported and leave the target's last good copy; a GET that breaks off
part-way (a TCP relay cuts it) leaves nothing at the target nor in the manifest, or lands
whole when a retry gets through; keys of any characters arrive with their bytes.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import socket
import threading
import typing
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl.drivers import base, s3
from cloudctl.drivers import simulator as sim
from cloudctl.model import topology
from cloudctl.recovery import object_sync
from tests.integration import conftest, moto_servers

OBJECT_COUNT = 200


class SimulatedCrash(RuntimeError):
    """Raised by ``on_progress`` to stop a pass the way a killed process would."""


def payload(index: int, *, version: int = 1) -> bytes:
    return f"record {index:05d} version {version}\n".encode() * (1 + index % 7)


def fill(storage: base.ObjectStorage, bucket: str, *, count: int) -> dict[str, bytes]:
    contents = {f"dept/records/{index:05d}": payload(index) for index in range(count)}
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda item: storage.put_object(bucket, key=item[0], data=item[1]), contents.items()))
    return contents


def contents_of(storage: base.ObjectStorage, bucket: str) -> dict[str, tuple[str, str, int]]:
    return {info.key: (info.sha256, info.etag, info.size_bytes) for info in storage.list_objects(bucket)}


@pytest.fixture
def source(object_storage: conftest.ObjectStorageFactory, source_center: str) -> s3.S3ObjectStorage:
    return object_storage(source_center)


@pytest.fixture
def target(object_storage: conftest.ObjectStorageFactory, target_center: str) -> s3.S3ObjectStorage:
    return object_storage(target_center)


@pytest.fixture
def servers(
    moto_servers_by_center: dict[str, moto_servers.MotoServer], source_center: str, target_center: str
) -> tuple[moto_servers.MotoServer, moto_servers.MotoServer]:
    return moto_servers_by_center[source_center], moto_servers_by_center[target_center]


@pytest.fixture
def bucket(
    source: s3.S3ObjectStorage,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
    request: pytest.FixtureRequest,
) -> str:
    """A new bucket at the source; removed from both centers after the test."""
    name = f"sync-{uuid.uuid4().hex[:12]}"
    source.create_bucket(name)
    for server in servers:
        request.addfinalizer(functools.partial(moto_servers.purge_bucket, server, name))
    return name


def test_a_full_pass_copies_every_object_and_an_incremental_pass_only_the_changed_ones(
    source: s3.S3ObjectStorage, target: s3.S3ObjectStorage, bucket: str
) -> None:
    contents = fill(source, bucket, count=OBJECT_COUNT)

    full = object_sync.sync_bucket(source=source, target=target, bucket=bucket)

    assert full.succeeded, full.errors
    assert (full.objects_examined, full.objects_copied) == (OBJECT_COUNT, OBJECT_COUNT)
    assert full.bytes_copied == sum(len(data) for data in contents.values())
    assert (full.source_center, full.target_center) == (source.center, target.center)
    assert contents_of(target, bucket) == contents_of(source, bucket)
    assert target.get_bucket(bucket).versioning is True

    changed = {f"dept/records/{index:05d}": payload(index, version=2) for index in (3, 150)}
    for key, data in changed.items():
        source.put_object(bucket, key=key, data=data)

    incremental = object_sync.sync_bucket(source=source, target=target, bucket=bucket)

    assert incremental.succeeded, incremental.errors
    assert incremental.objects_copied == len(changed) == OBJECT_COUNT // 100
    assert incremental.bytes_copied == sum(len(data) for data in changed.values())
    assert incremental.objects_unchanged == OBJECT_COUNT - len(changed)
    assert incremental.objects_resent == incremental.objects_deleted == 0
    for key, data in changed.items():
        assert target.get_object(bucket, key=key)[0] == data

    again = object_sync.sync_bucket(source=source, target=target, bucket=bucket)
    assert (again.objects_copied, again.bytes_copied) == (0, 0)


def test_a_target_copy_replaced_behind_our_back_is_copied_again_by_a_listing_pass(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
) -> None:
    fill(source, bucket, count=10)
    object_sync.sync_bucket(source=source, target=target, bucket=bucket)
    key = "dept/records/00004"
    raw = moto_servers.raw_client(servers[1])
    metadata = raw.head_object(Bucket=bucket, Key=key)["Metadata"]
    raw.put_object(Bucket=bucket, Key=key, Body=b"tampered", Metadata=metadata)  # old sha256 kept

    report = object_sync.sync_bucket(source=source, target=target, bucket=bucket)

    assert report.succeeded, report.errors
    assert report.objects_copied == 1
    assert target.get_object(bucket, key=key)[0] == source.get_object(bucket, key=key)[0]


def test_with_a_manifest_a_replaced_target_copy_is_found_by_a_scrub_and_resent(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
) -> None:
    fill(source, bucket, count=10)
    manifest = object_sync.InMemoryManifest()
    object_sync.sync_bucket(source=source, target=target, bucket=bucket, manifest=manifest)
    key = "dept/records/00004"
    raw = moto_servers.raw_client(servers[1])
    raw.put_object(Bucket=bucket, Key=key, Body=b"written by another client")

    quiet = object_sync.sync_bucket(source=source, target=target, bucket=bucket, manifest=manifest)
    scrub = object_sync.sync_bucket(
        source=source, target=target, bucket=bucket, manifest=manifest, verify_target_bytes=True
    )

    assert quiet.objects_copied == 0  # the source did not change: the target is not listed
    assert (scrub.objects_resent, scrub.resent_keys, scrub.objects_reverified) == (1, (key,), 9)
    body = raw.get_object(Bucket=bucket, Key=key)["Body"].read()
    assert body == source.get_object(bucket, key=key)[0]


def test_a_target_bucket_deleted_behind_our_back_is_made_again_and_filled_whole(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
) -> None:
    """The manifest says the target holds everything; the bucket is gone (removed with boto3,
    not through cloudctl): the pass must not believe the manifest, and boto3 finds every object."""
    contents = fill(source, bucket, count=10)
    manifest = object_sync.InMemoryManifest()
    object_sync.sync_bucket(source=source, target=target, bucket=bucket, manifest=manifest)
    moto_servers.purge_bucket(servers[1], bucket)

    report = object_sync.sync_bucket(source=source, target=target, bucket=bucket, manifest=manifest)

    assert (report.objects_copied, report.objects_unchanged) == (10, 0), report.errors
    raw = moto_servers.raw_client(servers[1])
    assert raw.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled"
    for key, data in contents.items():
        assert raw.get_object(Bucket=bucket, Key=key)["Body"].read() == data


def request_lines(server: moto_servers.MotoServer, method: str) -> int:
    """How many ``method`` requests the server has logged so far."""
    text = server.log_path.read_text(encoding="utf-8", errors="replace")
    return sum(1 for line in text.splitlines() if f'"{method} /' in line)


def test_a_pass_makes_one_get_and_one_put_per_copy_and_no_head(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
) -> None:
    fill(source, bucket, count=20)
    before = {
        (side, method): request_lines(server, method)
        for side, server in zip(("source", "target"), servers, strict=True)
        for method in ("HEAD", "GET", "PUT")
    }

    report = object_sync.sync_bucket(source=source, target=target, bucket=bucket)

    assert report.objects_copied == 20
    after = {
        key: request_lines(dict(zip(("source", "target"), servers, strict=True))[key[0]], key[1])
        for key in before
    }
    made = {key: after[key] - before[key] for key in before}
    assert made[("source", "HEAD")] == made[("target", "HEAD")] == 0
    assert made[("target", "PUT")] - 20 <= 2  # the copies, and the bucket with its versioning
    object_gets = made[("source", "GET")]
    assert 20 <= object_gets <= 20 + 4  # the copies, the listing and the bucket lookups


def test_a_pass_sends_content_md5_and_the_sha256_and_no_checksum_of_its_own(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
) -> None:
    data = b"ledger line\n" * 1000
    source.put_object(bucket, key="ledger", data=data)

    object_sync.sync_bucket(source=source, target=target, bucket=bucket)

    raw = moto_servers.raw_client(servers[1])
    stored = raw.head_object(Bucket=bucket, Key="ledger", ChecksumMode="ENABLED")
    assert stored["ETag"].strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert stored["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert not [name for name in stored if name.startswith("Checksum")]  # no CRC computed by botocore


def test_an_interrupted_pass_resumes_from_its_file_manifest(
    source: s3.S3ObjectStorage, target: s3.S3ObjectStorage, bucket: str, tmp_path: Path
) -> None:
    fill(source, bucket, count=OBJECT_COUNT)
    manifest = object_sync.JsonFileManifest(tmp_path / "sync.manifest.jsonl")
    crash_after_copies = 50

    def crash_midway(progress: object_sync.SyncProgress) -> None:
        if progress.action is object_sync.SyncAction.COPIED and progress.objects_done >= crash_after_copies:
            raise SimulatedCrash("killed mid-pass")

    with pytest.raises(SimulatedCrash):
        object_sync.sync_bucket(
            source=source, target=target, bucket=bucket, manifest=manifest, on_progress=crash_midway
        )
    # A new process reads what the killed one wrote.
    resumed_manifest = object_sync.JsonFileManifest(manifest.path)
    done_before_crash = len(resumed_manifest.load() or {})
    assert crash_after_copies <= done_before_crash < OBJECT_COUNT

    resumed = object_sync.sync_bucket(source=source, target=target, bucket=bucket, manifest=resumed_manifest)

    assert resumed.succeeded, resumed.errors
    assert resumed.objects_unchanged == done_before_crash
    assert resumed.objects_copied == OBJECT_COUNT - done_before_crash
    assert contents_of(target, bucket) == contents_of(source, bucket)
    assert len(resumed_manifest.load() or {}) == OBJECT_COUNT


def test_objects_deleted_at_the_source_are_deleted_at_the_target_unless_told_not_to(
    source: s3.S3ObjectStorage, target: s3.S3ObjectStorage, bucket: str
) -> None:
    fill(source, bucket, count=20)
    object_sync.sync_bucket(source=source, target=target, bucket=bucket)
    deleted = [f"dept/records/{index:05d}" for index in (0, 7, 19)]
    for key in deleted:
        source.delete_object(bucket, key=key)

    kept = object_sync.sync_bucket(source=source, target=target, bucket=bucket, delete_extraneous=False)
    assert kept.objects_deleted == 0
    assert set(deleted) <= set(contents_of(target, bucket))

    propagated = object_sync.sync_bucket(source=source, target=target, bucket=bucket)
    assert propagated.objects_deleted == len(deleted)
    assert propagated.objects_copied == 0
    assert contents_of(target, bucket) == contents_of(source, bucket)


def test_reading_back_verifies_every_target_copy(
    source: s3.S3ObjectStorage, target: s3.S3ObjectStorage, bucket: str
) -> None:
    fill(source, bucket, count=12)
    first = object_sync.sync_bucket(source=source, target=target, bucket=bucket, verify_target_bytes=True)
    assert (first.objects_copied, first.objects_reverified) == (12, 0)

    second = object_sync.sync_bucket(source=source, target=target, bucket=bucket, verify_target_bytes=True)
    assert (second.objects_copied, second.objects_reverified, second.objects_unchanged) == (0, 12, 12)


def test_a_bucket_syncs_from_a_simulated_center_to_a_real_s3_center(
    target: s3.S3ObjectStorage,
    shipped_topology: topology.Topology,
    source_center: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
    request: pytest.FixtureRequest,
) -> None:
    simulated = sim.Simulator(shipped_topology, clock=clocks.ManualClock(), seed=3)
    source = simulated.drivers(source_center).object_storage
    bucket = f"sync-{uuid.uuid4().hex[:12]}"
    source.create_bucket(bucket)
    request.addfinalizer(functools.partial(moto_servers.purge_bucket, servers[1], bucket))
    fill(source, bucket, count=30)

    report = object_sync.sync_bucket(source=source, target=target, bucket=bucket)

    assert report.succeeded, report.errors
    assert report.objects_copied == 30
    assert contents_of(target, bucket) == contents_of(source, bucket)


WAIT_S = 30.0


class Gauge:
    """How many calls are in progress, and the most seen at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.most = 0

    @contextlib.contextmanager
    def held(self) -> Iterator[int]:
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)
            now = self.now
        try:
            yield now
        finally:
            with self.lock:
                self.now -= 1


class Watched:
    """A driver whose GETs and PUTs are counted; each PUT waits until a GET has run while
    every PUT slot was taken (at most once for ``WAIT_S``: after that nothing waits)."""

    def __init__(self, storage: s3.S3ObjectStorage, *, parallelism: int, reads: Gauge, writes: Gauge) -> None:
        self.storage = storage
        self.parallelism = parallelism
        self.reads, self.writes = reads, writes
        self.read_while_writes_full = threading.Event()
        self.waited_out = threading.Event()

    def __getattr__(self, name: str) -> object:
        return getattr(self.storage, name)

    def get_object(self, bucket: str, *, key: str) -> tuple[bytes, base.ObjectInfo]:
        with self.reads.held():
            if self.writes.now >= self.parallelism:
                self.read_while_writes_full.set()
            return self.storage.get_object(bucket, key=key)

    def put_replica(self, bucket: str, *, data: bytes, source: base.ObjectInfo) -> base.ObjectInfo:
        with self.writes.held():
            if not self.waited_out.is_set() and not self.read_while_writes_full.wait(timeout=WAIT_S):
                self.waited_out.set()
            return self.storage.put_replica(bucket, data=data, source=source)


def test_parallelism_bounds_each_side_and_reads_go_on_while_the_writes_are_busy(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
) -> None:
    contents = fill(source, bucket, count=12)
    reads, writes = Gauge(), Gauge()
    parallelism = 2
    watched_source = Watched(source, parallelism=parallelism, reads=reads, writes=writes)
    watched_target = Watched(target, parallelism=parallelism, reads=reads, writes=writes)
    watched_target.read_while_writes_full = watched_source.read_while_writes_full

    report = object_sync.sync_bucket(
        source=typing.cast(base.ObjectStorage, watched_source),
        target=typing.cast(base.ObjectStorage, watched_target),
        bucket=bucket,
        parallelism=parallelism,
    )

    assert report.succeeded, report.errors
    assert report.objects_copied == len(contents)
    assert watched_source.read_while_writes_full.is_set()  # a GET ran while both PUTs were in progress
    assert reads.most <= parallelism and writes.most <= parallelism
    raw = moto_servers.raw_client(servers[1])
    assert {key: raw.get_object(Bucket=bucket, Key=key)["Body"].read() for key in contents} == contents


# --- wrong bytes and broken reads at the source -------------------------------------------

LARGE_BYTES = 640 * 1024
"""Objects large enough for a read to break off part-way (``CUT_AFTER_BYTES``)."""
CUT_AFTER_BYTES = 512 * 1024
ODD_KEYS = ["dept/a b+c%d", "dept/数据/2026-12-04", "dept/~tilde=equals&amp", "dept/(1) [x]"]


def large_payload(index: int, *, version: int = 1) -> bytes:
    return hashlib.sha256(f"{index}/{version}".encode()).digest() * (LARGE_BYTES // 32)


class BreakingProxy:
    """A TCP relay in front of one S3 server that cuts the answers to GETs of one object path
    after ``cut_after_bytes`` (the connection closes mid-body, as a failing link would), the
    first ``breaks`` times; everything else it relays whole."""

    def __init__(
        self, upstream: moto_servers.MotoServer, *, path: str, cut_after_bytes: int, breaks: int
    ) -> None:
        self.upstream_port = upstream.port
        self.request_line = f"GET {path} ".encode()
        self.cut_after_bytes = cut_after_bytes
        self.breaks_left = breaks
        self.broken = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server((moto_servers.LOOPBACK, 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint_url(self) -> str:
        return f"http://{moto_servers.LOOPBACK}:{self.port}"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection((moto_servers.LOOPBACK, self.upstream_port)) as upstream:
            first = client.recv(65536)
            with self.lock:
                cut = first.startswith(self.request_line) and self.breaks_left > 0
                if cut:
                    self.breaks_left -= 1
                    self.broken += 1
            upstream.sendall(first)
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()
            relayed = 0
            while data := upstream.recv(65536):
                if cut and relayed + len(data) >= self.cut_after_bytes:
                    client.sendall(data[: self.cut_after_bytes - relayed])
                    # Shut down, not only closed: the pipe thread's pending recv would hold it open.
                    client.shutdown(socket.SHUT_RDWR)
                    return
                client.sendall(data)
                relayed += len(data)

    @staticmethod
    def _pipe(reader: socket.socket, writer: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := reader.recv(65536):
                writer.sendall(data)


@pytest.fixture
def proxied_source(
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
    source_center: str,
    clock: clocks.ManualClock,
    request: pytest.FixtureRequest,
) -> Callable[[str, int], tuple[s3.S3ObjectStorage, BreakingProxy]]:
    """``proxied_source(path, breaks)``: a driver of the source center whose GETs of ``path``
    break off mid-body ``breaks`` times."""

    def make(path: str, breaks: int) -> tuple[s3.S3ObjectStorage, BreakingProxy]:
        proxy = BreakingProxy(servers[0], path=path, cut_after_bytes=CUT_AFTER_BYTES, breaks=breaks)
        request.addfinalizer(proxy.close)
        storage = s3.S3ObjectStorage(
            center=source_center,
            endpoint_url=proxy.endpoint_url,
            access_key=moto_servers.ACCESS_KEY,
            secret_key=moto_servers.SECRET_KEY,
            region=moto_servers.REGION,
            clock=clock,
        )
        return storage, proxy

    return make


def test_source_bytes_that_miss_their_sha256_are_reported_and_the_target_keeps_its_last_good_copy(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
    tmp_path: Path,
) -> None:
    good = large_payload(1)
    written = source.put_object(bucket, key="ledger", data=good)
    manifest = object_sync.JsonFileManifest(tmp_path / "manifest.jsonl")
    assert object_sync.sync_bucket(source=source, target=target, bucket=bucket, manifest=manifest).succeeded
    # Other bytes under the same key, carrying the old sha256: damage the listing cannot see.
    raw_source = moto_servers.raw_client(servers[0])
    raw_source.put_object(
        Bucket=bucket, Key="ledger", Body=large_payload(2), Metadata={"sha256": written.sha256}
    )

    report = object_sync.sync_bucket(source=source, target=target, bucket=bucket, manifest=manifest)

    assert [error.key for error in report.errors] == ["ledger"]
    assert "sha256" in report.errors[0].reason
    assert report.objects_copied == 0
    raw_target = moto_servers.raw_client(servers[1])
    assert raw_target.get_object(Bucket=bucket, Key="ledger")["Body"].read() == good
    recorded = manifest.load()
    assert recorded is not None and recorded["ledger"].sha256 == written.sha256


def test_a_get_that_breaks_off_part_way_leaves_no_object_at_the_target_nor_in_the_manifest(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
    proxied_source: Callable[[str, int], tuple[s3.S3ObjectStorage, BreakingProxy]],
    tmp_path: Path,
) -> None:
    source.put_object(bucket, key="whole", data=large_payload(1))
    source.put_object(bucket, key="broken", data=large_payload(2))
    breaking, proxy = proxied_source(f"/{bucket}/broken", 1000)
    manifest = object_sync.JsonFileManifest(tmp_path / "manifest.jsonl")

    report = object_sync.sync_bucket(source=breaking, target=target, bucket=bucket, manifest=manifest)

    assert [error.key for error in report.errors] == ["broken"]
    assert proxy.broken == s3.RetryPolicy().attempts  # each attempt of the GET broke off
    raw_target = moto_servers.raw_client(servers[1])
    assert sorted(
        entry["Key"] for entry in raw_target.list_objects_v2(Bucket=bucket).get("Contents", [])
    ) == ["whole"]
    recorded = manifest.load()
    assert recorded is not None and sorted(recorded) == ["whole"]


def test_a_get_that_breaks_off_once_is_copied_again_and_lands_whole(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
    proxied_source: Callable[[str, int], tuple[s3.S3ObjectStorage, BreakingProxy]],
) -> None:
    data = large_payload(3)
    source.put_object(bucket, key="flaky", data=data)
    breaking, proxy = proxied_source(f"/{bucket}/flaky", 1)

    report = object_sync.sync_bucket(source=breaking, target=target, bucket=bucket)

    assert report.succeeded, report.errors
    assert report.copied_keys == ("flaky",)
    assert proxy.broken == 1
    raw_target = moto_servers.raw_client(servers[1])
    assert raw_target.get_object(Bucket=bucket, Key="flaky")["Body"].read() == data


def test_keys_of_any_characters_are_copied_across_with_their_bytes_and_sha256(
    source: s3.S3ObjectStorage,
    target: s3.S3ObjectStorage,
    bucket: str,
    servers: tuple[moto_servers.MotoServer, moto_servers.MotoServer],
) -> None:
    contents = {key: large_payload(index) for index, key in enumerate(ODD_KEYS)}
    for key, data in contents.items():
        source.put_object(bucket, key=key, data=data)

    report = object_sync.sync_bucket(source=source, target=target, bucket=bucket)

    assert report.succeeded, report.errors
    assert sorted(report.copied_keys) == sorted(ODD_KEYS)
    raw_target = moto_servers.raw_client(servers[1])
    for key, data in contents.items():
        answer = raw_target.get_object(Bucket=bucket, Key=key)
        assert answer["Body"].read() == data
        assert answer["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
        assert answer["ETag"].strip('"') == hashlib.md5(data, usedforsecurity=False).hexdigest()
