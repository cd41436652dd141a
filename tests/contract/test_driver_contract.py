"""The driver contract of ``cloudctl.drivers.base``, one suite for every backend.

Each capability has a fixture parametrised over the backends that implement it:

- ``compute_drivers`` (compute, block storage): ``COMPUTE_BACKENDS``, the simulator and the
  OpenStack driver against the loopback OpenStack of ``scripts/openstack/stack``;
- ``drivers`` (containers, and lookups across every capability): ``BACKENDS``, the simulator;
- ``objects_under_test`` (object storage): ``OBJECT_STORAGE_BACKENDS``, the simulator
  and ``S3ObjectStorage`` against a real ``moto_server`` process;
- ``traffic_under_test`` (traffic): ``TRAFFIC_BACKENDS``, the simulator and
  ``Route53Traffic`` against the same server.

The simulator and every real driver pass the same assertions. Where a check needs to
act behind the driver's back (damage stored bytes, make the backend unreachable), the
fixture gives a backend-specific hook, so the assertion itself stays shared. Tests use
nothing but the Protocols, name everything uniquely and register cleanup right after
each create, so they run unchanged against a real cloud.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import boto3
import pytest

from cloudctl import clock, errors
from cloudctl.drivers import base, dns, s3
from cloudctl.drivers import simulator as sim
from cloudctl.model import topology
from tests.integration import moto_servers

TOPOLOGY_FILE = Path(__file__).resolve().parents[2] / "infra" / "topology.yaml"
BACKENDS = ["simulator"]
OBJECT_STORAGE_BACKENDS = ["simulator", "s3-on-moto"]
TRAFFIC_BACKENDS = ["simulator", "route53-on-moto"]
BOOT_TIMEOUT_S = 600.0


def _shipped_topology() -> topology.Topology:
    return topology.parse(TOPOLOGY_FILE.read_text(encoding="utf-8"))


def _simulator() -> tuple[sim.Simulator, str]:
    shipped = _shipped_topology()
    simulated = sim.Simulator(shipped, clock=clock.ManualClock(), seed=7)
    local_center = shipped.centers_with_role(topology.CenterRole.LOCAL)[0]
    return simulated, local_center.name


def _simulator_drivers() -> base.CenterDrivers:
    simulated, center = _simulator()
    return simulated.drivers(center)


@pytest.fixture(params=BACKENDS)
def drivers(request: pytest.FixtureRequest) -> base.CenterDrivers:
    if request.param == "simulator":
        return _simulator_drivers()
    raise AssertionError(f"no drivers for backend {request.param!r}")


@dataclasses.dataclass(frozen=True)
class ComputeUnderTest:
    """The compute and block-storage drivers of one center (what OpenStack serves)."""

    center: str
    compute: base.Compute
    block_storage: base.BlockStorage


COMPUTE_BACKENDS = ("simulator", "openstack")


@pytest.fixture(scope="module")
def openstack_compute(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComputeUnderTest]:
    """The OpenStack driver on the loopback stack (brought up or reused; fails, never skips)."""
    from cloudctl.drivers import openstack as openstack_driver
    from tests.integration.openstack import stack

    center = _shipped_topology().centers_with_role(topology.CenterRole.LOCAL)[0].name
    clouds_yaml = stack.write_clouds_yaml(
        tmp_path_factory.mktemp("contract") / "clouds.yaml", centers=[center]
    )
    cloud = stack.open_cloud(center=center, clouds_yaml=clouds_yaml)
    yield ComputeUnderTest(
        center=center,
        compute=openstack_driver.OpenStackCompute(cloud),
        block_storage=openstack_driver.OpenStackBlockStorage(cloud),
    )
    cloud.close()


@pytest.fixture(params=COMPUTE_BACKENDS)
def compute_drivers(request: pytest.FixtureRequest) -> ComputeUnderTest:
    if request.param == "simulator":
        simulated = _simulator_drivers()
        return ComputeUnderTest(
            center=simulated.center, compute=simulated.compute, block_storage=simulated.block_storage
        )
    if request.param == "openstack":
        under_test = request.getfixturevalue("openstack_compute")
        assert isinstance(under_test, ComputeUnderTest)
        return under_test
    raise AssertionError(f"no compute drivers for backend {request.param!r}")


@dataclasses.dataclass(frozen=True)
class ObjectStorageUnderTest:
    """An object-storage driver of one center and the hooks that act behind its back."""

    storage: base.ObjectStorage
    center: str
    corrupt_object: Callable[[str, str], None]
    """``corrupt_object(bucket, key)``: change the stored bytes, keep the recorded sha256."""
    unreachable: Callable[[], base.ObjectStorage]
    """A driver of the same center whose backend does not answer."""


@dataclasses.dataclass(frozen=True)
class TrafficUnderTest:
    traffic: base.Traffic
    center: str
    unreachable: Callable[[], base.Traffic]


def _simulated_object_storage() -> ObjectStorageUnderTest:
    simulated, center = _simulator()

    def unreachable() -> base.ObjectStorage:
        simulated.center_down(center)
        return simulated.drivers(center).object_storage

    return ObjectStorageUnderTest(
        storage=simulated.drivers(center).object_storage,
        center=center,
        corrupt_object=lambda bucket, key: simulated.corrupt_object(center, bucket=bucket, key=key),
        unreachable=unreachable,
    )


def _s3_on_moto(server: moto_servers.MotoServer) -> ObjectStorageUnderTest:
    _, center = _simulator()

    def driver(endpoint_url: str) -> s3.S3ObjectStorage:
        return s3.S3ObjectStorage(
            center=center,
            endpoint_url=endpoint_url,
            access_key=moto_servers.ACCESS_KEY,
            secret_key=moto_servers.SECRET_KEY,
            region=moto_servers.REGION,
            clock=clock.ManualClock(),
        )

    def corrupt_object(bucket: str, key: str) -> None:
        # Another client replaces the bytes but copies the old sha256 metadata along.
        raw = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=moto_servers.ACCESS_KEY,
            aws_secret_access_key=moto_servers.SECRET_KEY,
            region_name=moto_servers.REGION,
        )
        stored = raw.get_object(Bucket=bucket, Key=key)
        data = bytearray(stored["Body"].read())
        data[len(data) // 2] ^= 0xFF
        raw.put_object(Bucket=bucket, Key=key, Body=bytes(data), Metadata=stored["Metadata"])

    return ObjectStorageUnderTest(
        storage=driver(server.endpoint_url),
        center=center,
        corrupt_object=corrupt_object,
        unreachable=lambda: driver(f"http://{moto_servers.LOOPBACK}:{moto_servers.closed_port()}"),
    )


@pytest.fixture(params=OBJECT_STORAGE_BACKENDS)
def objects_under_test(request: pytest.FixtureRequest) -> ObjectStorageUnderTest:
    if request.param == "simulator":
        return _simulated_object_storage()
    if request.param == "s3-on-moto":
        return _s3_on_moto(request.getfixturevalue("moto_server"))
    raise AssertionError(f"no object storage for backend {request.param!r}")


def _simulated_traffic() -> TrafficUnderTest:
    simulated, center = _simulator()

    def unreachable() -> base.Traffic:
        simulated.center_down(center)
        return simulated.drivers(center).traffic

    return TrafficUnderTest(traffic=simulated.drivers(center).traffic, center=center, unreachable=unreachable)


def _route53_on_moto(server: moto_servers.MotoServer) -> TrafficUnderTest:
    shipped = _shipped_topology()
    _, center = _simulator()

    def driver(endpoint_url: str) -> dns.Route53Traffic:
        return dns.Route53Traffic(
            center=center,
            endpoint_url=endpoint_url,
            access_key=moto_servers.ACCESS_KEY,
            secret_key=moto_servers.SECRET_KEY,
            region=moto_servers.REGION,
            centers=[known.name for known in shipped.centers],
            clock=clock.ManualClock(),
        )

    return TrafficUnderTest(
        traffic=driver(server.endpoint_url),
        center=center,
        unreachable=lambda: driver(f"http://{moto_servers.LOOPBACK}:{moto_servers.closed_port()}"),
    )


@pytest.fixture(params=TRAFFIC_BACKENDS)
def traffic_under_test(request: pytest.FixtureRequest) -> TrafficUnderTest:
    if request.param == "simulator":
        return _simulated_traffic()
    if request.param == "route53-on-moto":
        return _route53_on_moto(request.getfixturevalue("moto_server"))
    raise AssertionError(f"no traffic driver for backend {request.param!r}")


@pytest.fixture
def cleanup() -> Iterator[Callable[[Callable[[], object]], None]]:
    """Register an undo right after each create; undos run last-first after the test."""
    undos: list[Callable[[], object]] = []
    yield undos.append
    for undo in reversed(undos):
        undo()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


Cleanup = Callable[[Callable[[], object]], None]


# --- compute ------------------------------------------------------------------------------


def test_server_is_created_found_listed_and_deleted(
    compute_drivers: ComputeUnderTest, cleanup: Cleanup
) -> None:
    compute = compute_drivers.compute
    name = unique("contract-vm")
    project = unique("contract-project")
    server = compute.create_server(
        name=name, project=project, vcpu=1, ram_gb=1, disk_gb=10, metadata={"tier": "gold"}
    )
    cleanup(lambda: compute.delete_server(server.id))

    assert (server.name, server.project, server.center) == (name, project, compute_drivers.center)
    assert (server.vcpu, server.ram_gb, server.disk_gb) == (1, 1, 10)
    assert server.metadata == {"tier": "gold"}
    assert compute.get_server(server.id).id == server.id
    found = compute.find_server(name)
    assert found is not None and found.id == server.id
    assert [s.id for s in compute.list_servers(project=project)] == [server.id]

    compute.delete_server(server.id)
    with pytest.raises(errors.NotFound):
        compute.get_server(server.id)
    assert compute.find_server(name) is None
    assert compute.list_servers(project=project) == []


def test_deleting_a_server_twice_is_harmless_unless_missing_is_an_error(
    compute_drivers: ComputeUnderTest,
) -> None:
    compute = compute_drivers.compute
    server = compute.create_server(
        name=unique("contract-vm"), project=unique("p"), vcpu=1, ram_gb=1, disk_gb=1
    )
    compute.delete_server(server.id)
    compute.delete_server(server.id)
    compute.delete_server(server.id, ignore_missing=True)
    with pytest.raises(errors.NotFound):
        compute.delete_server(server.id, ignore_missing=False)


def test_server_becomes_active_then_stops_and_starts(
    compute_drivers: ComputeUnderTest, cleanup: Cleanup
) -> None:
    compute = compute_drivers.compute
    server = compute.create_server(
        name=unique("contract-vm"), project=unique("p"), vcpu=1, ram_gb=1, disk_gb=1
    )
    cleanup(lambda: compute.delete_server(server.id))

    active = compute.wait_for_status(
        server.id, status=base.ServerStatus.ACTIVE, timeout_s=BOOT_TIMEOUT_S, poll_interval_s=1
    )
    assert active.status is base.ServerStatus.ACTIVE
    compute.stop_server(server.id)
    stopped = compute.wait_for_status(
        server.id, status=base.ServerStatus.SHUTOFF, timeout_s=BOOT_TIMEOUT_S, poll_interval_s=1
    )
    assert stopped.status is base.ServerStatus.SHUTOFF
    compute.start_server(server.id)
    assert (
        compute.wait_for_status(
            server.id, status=base.ServerStatus.ACTIVE, timeout_s=BOOT_TIMEOUT_S, poll_interval_s=1
        ).status
        is base.ServerStatus.ACTIVE
    )


def test_server_names_are_unique(compute_drivers: ComputeUnderTest, cleanup: Cleanup) -> None:
    compute = compute_drivers.compute
    name = unique("contract-vm")
    server = compute.create_server(name=name, project="p", vcpu=1, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    with pytest.raises(errors.Conflict):
        compute.create_server(name=name, project="p", vcpu=1, ram_gb=1, disk_gb=1)


def test_project_quota_is_set_and_read_back(compute_drivers: ComputeUnderTest) -> None:
    project = unique("contract-project")
    written = compute_drivers.compute.set_project_quota(
        project, amounts={"vcpu": 8, "ram_gb": 32, "instances": 4}
    )
    read = compute_drivers.compute.get_project_quota(project)
    assert read.limits == written.limits == {"vcpu": 8, "ram_gb": 32, "instances": 4}
    assert read.project == project and read.center == compute_drivers.center
    assert read.used["vcpu"] == 0


def test_project_quota_refuses_a_server_beyond_it(
    compute_drivers: ComputeUnderTest, cleanup: Cleanup
) -> None:
    compute = compute_drivers.compute
    project = unique("contract-project")
    compute.set_project_quota(project, amounts={"vcpu": 2, "instances": 5})
    server = compute.create_server(name=unique("contract-vm"), project=project, vcpu=2, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    # Nova counts a server's cores once it is scheduled into a cell (the instance record): on a
    # busy machine that is after create_server returns, so wait for the server to be active.
    compute.wait_for_status(server.id, status=base.ServerStatus.ACTIVE, timeout_s=300, poll_interval_s=0.5)
    assert compute.get_project_quota(project).used["vcpu"] == 2
    with pytest.raises(errors.QuotaExceeded):
        compute.create_server(name=unique("contract-vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)


# --- block storage ------------------------------------------------------------------------


def test_volume_and_snapshot_lifecycle(compute_drivers: ComputeUnderTest, cleanup: Cleanup) -> None:
    storage = compute_drivers.block_storage
    project = unique("contract-project")
    volume = storage.create_volume(name=unique("contract-vol"), project=project, size_gb=2)
    cleanup(lambda: storage.delete_volume(volume.id))
    assert volume.size_gb == 2 and volume.status is base.VolumeStatus.AVAILABLE
    assert storage.get_volume(volume.id) == volume
    assert storage.find_volume(volume.name) == volume
    assert storage.list_volumes(project=project) == [volume]
    assert storage.list_volumes(project=project, name_prefixes=["nothing-", volume.name[:-2]]) == [volume]
    assert storage.list_volumes(project=project, name_prefixes=[f"{volume.name}-", volume.name[1:]]) == []

    snapshot = storage.create_snapshot(volume.id, name=unique("contract-snap"))
    cleanup(lambda: storage.delete_snapshot(snapshot.id))
    assert snapshot.volume_id == volume.id and snapshot.size_gb == 2
    assert storage.get_snapshot(snapshot.id) == snapshot
    assert storage.list_snapshots(volume_id=volume.id) == [snapshot]
    with pytest.raises(errors.Conflict):
        storage.delete_volume(volume.id)

    restored = storage.create_volume(
        name=unique("contract-vol"), project=project, size_gb=3, snapshot_id=snapshot.id
    )
    cleanup(lambda: storage.delete_volume(restored.id))
    assert restored.source_snapshot_id == snapshot.id

    storage.delete_snapshot(snapshot.id)
    storage.delete_snapshot(snapshot.id)
    with pytest.raises(errors.NotFound):
        storage.delete_snapshot(snapshot.id, ignore_missing=False)
    storage.delete_volume(volume.id)
    storage.delete_volume(volume.id)
    with pytest.raises(errors.NotFound):
        storage.get_volume(volume.id)
    with pytest.raises(errors.NotFound):
        storage.delete_volume(volume.id, ignore_missing=False)
    assert storage.find_volume(volume.name) is None


def test_a_volume_is_attached_to_a_server_once_and_freed_when_the_server_goes(
    compute_drivers: ComputeUnderTest, cleanup: Cleanup
) -> None:
    compute, storage = compute_drivers.compute, compute_drivers.block_storage
    project = unique("contract-project")
    server = compute.create_server(name=unique("contract-vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    compute.wait_for_status(server.id, status=base.ServerStatus.ACTIVE, timeout_s=300, poll_interval_s=0.5)
    volume = storage.create_volume(name=unique("contract-vol"), project=project, size_gb=1)
    cleanup(lambda: storage.delete_volume(volume.id))
    assert compute.attached_volumes(server.id) == []

    compute.attach_volume(server.id, volume_id=volume.id)
    compute.attach_volume(server.id, volume_id=volume.id)  # attached already: nothing to do
    assert compute.attached_volumes(server.id) == [volume.id]
    assert storage.get_volume(volume.id).status is base.VolumeStatus.IN_USE
    with pytest.raises(errors.Conflict):
        storage.delete_volume(volume.id)
    other = compute.create_server(name=unique("contract-vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(other.id))
    compute.wait_for_status(other.id, status=base.ServerStatus.ACTIVE, timeout_s=300, poll_interval_s=0.5)
    with pytest.raises(errors.Conflict):
        compute.attach_volume(other.id, volume_id=volume.id)

    compute.delete_server(server.id)
    assert storage.get_volume(volume.id).status is base.VolumeStatus.AVAILABLE
    with pytest.raises(errors.NotFound):
        compute.attached_volumes(server.id)


# --- object storage -----------------------------------------------------------------------


def test_object_round_trip_keeps_bytes_and_checksums(
    objects_under_test: ObjectStorageUnderTest, cleanup: Cleanup
) -> None:
    objects = objects_under_test.storage
    bucket = objects.create_bucket(unique("contract-bucket"))
    cleanup(lambda: objects.delete_bucket(bucket.name))
    data = b"acknowledged write 42\n" * 100

    written = objects.put_object(bucket.name, key="canary/0001", data=data)
    cleanup(lambda: objects.delete_object(bucket.name, key="canary/0001"))
    assert written.sha256 == hashlib.sha256(data).hexdigest()
    assert written.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
    assert written.size_bytes == len(data)
    assert written.version_id

    read, info = objects.get_object(bucket.name, key="canary/0001")
    assert read == data
    assert info == written
    assert objects.head_object(bucket.name, key="canary/0001") == written


def test_overwriting_an_object_gives_a_new_version(
    objects_under_test: ObjectStorageUnderTest, cleanup: Cleanup
) -> None:
    objects = objects_under_test.storage
    bucket = objects.create_bucket(unique("contract-bucket"), versioning=True)
    cleanup(lambda: objects.delete_bucket(bucket.name))
    first = objects.put_object(bucket.name, key="k", data=b"one")
    cleanup(lambda: objects.delete_object(bucket.name, key="k"))
    second = objects.put_object(bucket.name, key="k", data=b"two")
    assert second.version_id != first.version_id
    assert objects.get_object(bucket.name, key="k")[0] == b"two"


def test_objects_are_listed_by_prefix_and_deleted(
    objects_under_test: ObjectStorageUnderTest, cleanup: Cleanup
) -> None:
    objects = objects_under_test.storage
    bucket = objects.create_bucket(unique("contract-bucket"))
    cleanup(lambda: objects.delete_bucket(bucket.name))
    for key in ("a/2", "a/1", "b/1"):
        objects.put_object(bucket.name, key=key, data=key.encode())
        cleanup(functools.partial(objects.delete_object, bucket.name, key=key))

    assert [info.key for info in objects.list_objects(bucket.name, prefix="a/")] == ["a/1", "a/2"]
    assert len(objects.list_objects(bucket.name)) == 3
    assert bucket.name in [b.name for b in objects.list_buckets()]
    with pytest.raises(errors.Conflict):
        objects.delete_bucket(bucket.name)

    objects.delete_object(bucket.name, key="a/1")
    objects.delete_object(bucket.name, key="a/1")
    with pytest.raises(errors.NotFound):
        objects.delete_object(bucket.name, key="a/1", ignore_missing=False)
    with pytest.raises(errors.NotFound):
        objects.get_object(bucket.name, key="a/1")
    with pytest.raises(errors.NotFound):
        objects.head_object(bucket.name, key="a/1")


def test_bucket_lifecycle_and_missing_buckets(objects_under_test: ObjectStorageUnderTest) -> None:
    objects = objects_under_test.storage
    name = unique("contract-bucket")
    created = objects.create_bucket(name, versioning=False)
    assert objects.get_bucket(name) == created and created.versioning is False
    with pytest.raises(errors.Conflict):
        objects.create_bucket(name)
    objects.delete_bucket(name)
    objects.delete_bucket(name)
    with pytest.raises(errors.NotFound):
        objects.delete_bucket(name, ignore_missing=False)
    with pytest.raises(errors.NotFound):
        objects.get_bucket(name)
    with pytest.raises(errors.NotFound):
        objects.put_object(name, key="k", data=b"x")


def test_a_corrupted_object_is_refused_on_read(
    objects_under_test: ObjectStorageUnderTest, cleanup: Cleanup
) -> None:
    objects = objects_under_test.storage
    bucket = objects.create_bucket(unique("contract-bucket"))
    cleanup(lambda: objects.delete_bucket(bucket.name))
    written = objects.put_object(bucket.name, key="ledger/0001", data=b"balance: 1000\n" * 50)
    cleanup(lambda: objects.delete_object(bucket.name, key="ledger/0001"))

    objects_under_test.corrupt_object(bucket.name, "ledger/0001")

    with pytest.raises(base.ChecksumMismatchError) as raised:
        objects.get_object(bucket.name, key="ledger/0001")
    assert raised.value.expected_sha256 == written.sha256
    assert raised.value.actual_sha256 != written.sha256
    assert raised.value.center == objects_under_test.center


def test_bucket_names_are_checked(objects_under_test: ObjectStorageUnderTest) -> None:
    for bad in ("ab", "Upper-Case", "under_score", "-leading", "a..b"):
        with pytest.raises(errors.InvalidInput):
            objects_under_test.storage.create_bucket(bad)


def test_every_object_storage_lookup_of_something_missing_raises_not_found(
    objects_under_test: ObjectStorageUnderTest, cleanup: Cleanup
) -> None:
    objects = objects_under_test.storage
    missing = uuid.uuid4().hex
    bucket = objects.create_bucket(unique("contract-bucket"))
    cleanup(lambda: objects.delete_bucket(bucket.name))
    lookups: list[Callable[[], object]] = [
        lambda: objects.get_bucket(f"b-{missing}"),
        lambda: objects.list_objects(f"b-{missing}"),
        lambda: objects.get_object(f"b-{missing}", key="k"),
        lambda: objects.head_object(f"b-{missing}", key="k"),
        lambda: objects.delete_object(f"b-{missing}", key="k"),
        lambda: objects.get_object(bucket.name, key=missing),
        lambda: objects.head_object(bucket.name, key=missing),
        lambda: objects.delete_object(bucket.name, key=missing, ignore_missing=False),
        lambda: objects.delete_bucket(f"b-{missing}", ignore_missing=False),
    ]
    for lookup in lookups:
        with pytest.raises(errors.NotFound):
            lookup()
    assert objects.list_objects(bucket.name) == []


def test_an_unreachable_object_store_raises_backend_unavailable(
    objects_under_test: ObjectStorageUnderTest,
) -> None:
    objects = objects_under_test.unreachable()
    calls: list[Callable[[], object]] = [
        objects.list_buckets,
        lambda: objects.get_bucket("contract-bucket"),
        lambda: objects.create_bucket(unique("contract-bucket")),
        lambda: objects.put_object("contract-bucket", key="k", data=b"x"),
        lambda: objects.get_object("contract-bucket", key="k"),
        lambda: objects.list_objects("contract-bucket"),
    ]
    for call in calls:
        with pytest.raises(errors.BackendUnavailable):
            call()


# --- containers ---------------------------------------------------------------------------


def test_namespace_lifecycle_and_quota(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    containers = drivers.containers
    name = unique("contract-ns")
    namespace = containers.create_namespace(name, vcpu=2, ram_gb=4)
    cleanup(lambda: containers.delete_namespace(name))
    assert (namespace.vcpu, namespace.ram_gb) == (2, 4)
    assert containers.get_namespace(name) == namespace
    assert name in [ns.name for ns in containers.list_namespaces()]
    with pytest.raises(errors.Conflict):
        containers.create_namespace(name, vcpu=1, ram_gb=1)

    resized = containers.set_namespace_quota(name, vcpu=4, ram_gb=8)
    assert (resized.vcpu, resized.ram_gb) == (4, 8)
    assert containers.get_namespace(name) == resized

    containers.delete_namespace(name)
    containers.delete_namespace(name)
    with pytest.raises(errors.NotFound):
        containers.get_namespace(name)
    with pytest.raises(errors.NotFound):
        containers.delete_namespace(name, ignore_missing=False)
    with pytest.raises(errors.NotFound):
        containers.set_namespace_quota(name, vcpu=1, ram_gb=1)


# --- traffic ------------------------------------------------------------------------------


def test_failover_records_are_upserted_listed_and_deleted(
    traffic_under_test: TrafficUnderTest, cleanup: Cleanup
) -> None:
    traffic = traffic_under_test.traffic
    zone = f"{unique('contract')}.example"
    name = "portal"
    target = traffic_under_test.center
    record = traffic.upsert_record(zone, name=name, target_center=target, weight=100, ttl_s=30)
    cleanup(lambda: traffic.delete_record(zone, name=name, target_center=target))
    assert (record.zone, record.name, record.target_center) == (zone, name, target)
    assert (record.weight, record.ttl_s) == (100, 30)

    drained = traffic.upsert_record(zone, name=name, target_center=target, weight=0, ttl_s=30)
    assert drained.weight == 0
    assert traffic.get_record(zone, name=name, target_center=target) == drained
    assert traffic.list_records(zone) == [drained]
    assert traffic.list_records(zone, name=name) == [drained]
    assert traffic.list_records(zone, name="other") == []

    traffic.delete_record(zone, name=name, target_center=target)
    traffic.delete_record(zone, name=name, target_center=target)
    with pytest.raises(errors.NotFound):
        traffic.get_record(zone, name=name, target_center=target)
    with pytest.raises(errors.NotFound):
        traffic.delete_record(zone, name=name, target_center=target, ignore_missing=False)


def test_a_name_has_one_weighted_record_per_target_center(
    traffic_under_test: TrafficUnderTest, cleanup: Cleanup
) -> None:
    traffic = traffic_under_test.traffic
    zone = f"{unique('contract')}.example"
    centers = sorted(center.name for center in _shipped_topology().centers)
    for weight, center in enumerate(reversed(centers)):
        traffic.upsert_record(zone, name="portal", target_center=center, weight=weight, ttl_s=30)
        cleanup(functools.partial(traffic.delete_record, zone, name="portal", target_center=center))
    traffic.upsert_record(zone, name="api", target_center=centers[0], weight=100)
    cleanup(functools.partial(traffic.delete_record, zone, name="api", target_center=centers[0]))

    portal = traffic.list_records(zone, name="portal")
    assert [record.target_center for record in portal] == centers
    assert {record.target_center: record.weight for record in portal} == {
        center: weight for weight, center in enumerate(reversed(centers))
    }
    assert [(record.name, record.target_center) for record in traffic.list_records(zone)] == [
        ("api", centers[0]),
        *[("portal", center) for center in centers],
    ]


def test_records_are_checked(traffic_under_test: TrafficUnderTest) -> None:
    traffic = traffic_under_test.traffic
    zone = f"{unique('contract')}.example"
    with pytest.raises(errors.NotFound):
        traffic.upsert_record(zone, name="portal", target_center=f"no-such-center-{uuid.uuid4().hex[:6]}")
    with pytest.raises(errors.InvalidInput):
        traffic.upsert_record(zone, name="portal", target_center=traffic_under_test.center, weight=256)
    with pytest.raises(errors.InvalidInput):
        traffic.upsert_record(zone, name="portal", target_center=traffic_under_test.center, ttl_s=-1)
    with pytest.raises(errors.InvalidInput):
        traffic.upsert_record(zone, name="bad name", target_center=traffic_under_test.center)
    assert traffic.list_records(zone) == []


def test_every_traffic_lookup_of_something_missing_raises_not_found(
    traffic_under_test: TrafficUnderTest,
) -> None:
    traffic = traffic_under_test.traffic
    missing = uuid.uuid4().hex
    with pytest.raises(errors.NotFound):
        traffic.get_record("missing.example", name=missing, target_center=traffic_under_test.center)
    with pytest.raises(errors.NotFound):
        traffic.delete_record(
            "missing.example", name=missing, target_center=traffic_under_test.center, ignore_missing=False
        )
    traffic.delete_record("missing.example", name=missing, target_center=traffic_under_test.center)
    assert traffic.list_records(f"{missing}.example") == []


def test_an_unreachable_traffic_service_raises_backend_unavailable(
    traffic_under_test: TrafficUnderTest,
) -> None:
    traffic = traffic_under_test.unreachable()
    center = traffic_under_test.center
    calls: list[Callable[[], object]] = [
        lambda: traffic.upsert_record("contract.example", name="portal", target_center=center),
        lambda: traffic.get_record("contract.example", name="portal", target_center=center),
        lambda: traffic.list_records("contract.example"),
        lambda: traffic.delete_record("contract.example", name="portal", target_center=center),
    ]
    for call in calls:
        with pytest.raises(errors.BackendUnavailable):
            call()


# --- not found, everywhere ----------------------------------------------------------------


def test_every_get_of_something_missing_raises_not_found(drivers: base.CenterDrivers) -> None:
    missing = uuid.uuid4().hex
    lookups: list[Callable[[], object]] = [
        lambda: drivers.compute.get_server(missing),
        lambda: drivers.compute.start_server(missing),
        lambda: drivers.compute.stop_server(missing),
        lambda: drivers.block_storage.get_volume(missing),
        lambda: drivers.block_storage.get_snapshot(missing),
        lambda: drivers.block_storage.create_snapshot(missing, name="s"),
        lambda: drivers.containers.get_namespace(f"ns-{missing}"),
    ]
    for lookup in lookups:
        with pytest.raises(errors.NotFound):
            lookup()
    assert drivers.compute.find_server(missing) is None
    assert drivers.block_storage.find_volume(missing) is None
