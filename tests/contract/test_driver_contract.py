"""The driver contract of ``cloudctl.drivers.base``, one suite for every backend.

The ``drivers`` fixture yields the ``CenterDrivers`` of one center for each backend
in ``BACKENDS``; today only the simulator, later the OpenStack, S3, DNS and
Kubernetes drivers join as further params. Tests use nothing but the Protocols,
name everything uniquely and register cleanup right after each create, so they
run unchanged against a real cloud.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudctl import clock, errors
from cloudctl.drivers import base
from cloudctl.drivers import simulator as sim
from cloudctl.model import topology

TOPOLOGY_FILE = Path(__file__).resolve().parents[2] / "infra" / "topology.yaml"
BACKENDS = ["simulator"]
BOOT_TIMEOUT_S = 600.0


def _simulator_drivers() -> base.CenterDrivers:
    shipped = topology.parse(TOPOLOGY_FILE.read_text(encoding="utf-8"))
    simulated = sim.Simulator(shipped, clock=clock.ManualClock(), seed=7)
    local_center = shipped.centers_with_role(topology.CenterRole.LOCAL)[0]
    return simulated.drivers(local_center.name)


@pytest.fixture(params=BACKENDS)
def drivers(request: pytest.FixtureRequest) -> base.CenterDrivers:
    if request.param == "simulator":
        return _simulator_drivers()
    raise AssertionError(f"no drivers for backend {request.param!r}")


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


def test_server_is_created_found_listed_and_deleted(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    compute = drivers.compute
    name = unique("contract-vm")
    project = unique("contract-project")
    server = compute.create_server(
        name=name, project=project, vcpu=1, ram_gb=1, disk_gb=10, metadata={"tier": "gold"}
    )
    cleanup(lambda: compute.delete_server(server.id))

    assert (server.name, server.project, server.center) == (name, project, drivers.center)
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
    drivers: base.CenterDrivers,
) -> None:
    compute = drivers.compute
    server = compute.create_server(
        name=unique("contract-vm"), project=unique("p"), vcpu=1, ram_gb=1, disk_gb=1
    )
    compute.delete_server(server.id)
    compute.delete_server(server.id)
    compute.delete_server(server.id, ignore_missing=True)
    with pytest.raises(errors.NotFound):
        compute.delete_server(server.id, ignore_missing=False)


def test_server_becomes_active_then_stops_and_starts(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    compute = drivers.compute
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


def test_server_names_are_unique(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    compute = drivers.compute
    name = unique("contract-vm")
    server = compute.create_server(name=name, project="p", vcpu=1, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    with pytest.raises(errors.Conflict):
        compute.create_server(name=name, project="p", vcpu=1, ram_gb=1, disk_gb=1)


def test_project_quota_is_set_and_read_back(drivers: base.CenterDrivers) -> None:
    project = unique("contract-project")
    written = drivers.compute.set_project_quota(project, amounts={"vcpu": 8, "ram_gb": 32, "instances": 4})
    read = drivers.compute.get_project_quota(project)
    assert read.limits == written.limits == {"vcpu": 8, "ram_gb": 32, "instances": 4}
    assert read.project == project and read.center == drivers.center
    assert read.used["vcpu"] == 0


def test_project_quota_refuses_a_server_beyond_it(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    compute = drivers.compute
    project = unique("contract-project")
    compute.set_project_quota(project, amounts={"vcpu": 2, "instances": 5})
    server = compute.create_server(name=unique("contract-vm"), project=project, vcpu=2, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    assert compute.get_project_quota(project).used["vcpu"] == 2
    with pytest.raises(errors.QuotaExceeded):
        compute.create_server(name=unique("contract-vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)


# --- block storage ------------------------------------------------------------------------


def test_volume_and_snapshot_lifecycle(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    storage = drivers.block_storage
    project = unique("contract-project")
    volume = storage.create_volume(name=unique("contract-vol"), project=project, size_gb=2)
    cleanup(lambda: storage.delete_volume(volume.id))
    assert volume.size_gb == 2 and volume.status is base.VolumeStatus.AVAILABLE
    assert storage.get_volume(volume.id) == volume
    assert storage.find_volume(volume.name) == volume
    assert storage.list_volumes(project=project) == [volume]

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


# --- object storage -----------------------------------------------------------------------


def test_object_round_trip_keeps_bytes_and_checksums(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    objects = drivers.object_storage
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


def test_overwriting_an_object_gives_a_new_version(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    objects = drivers.object_storage
    bucket = objects.create_bucket(unique("contract-bucket"), versioning=True)
    cleanup(lambda: objects.delete_bucket(bucket.name))
    first = objects.put_object(bucket.name, key="k", data=b"one")
    cleanup(lambda: objects.delete_object(bucket.name, key="k"))
    second = objects.put_object(bucket.name, key="k", data=b"two")
    assert second.version_id != first.version_id
    assert objects.get_object(bucket.name, key="k")[0] == b"two"


def test_objects_are_listed_by_prefix_and_deleted(drivers: base.CenterDrivers, cleanup: Cleanup) -> None:
    objects = drivers.object_storage
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


def test_bucket_lifecycle_and_missing_buckets(drivers: base.CenterDrivers) -> None:
    objects = drivers.object_storage
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
    drivers: base.CenterDrivers, cleanup: Cleanup
) -> None:
    traffic = drivers.traffic
    zone = f"{unique('contract')}.example"
    name = "portal"
    target = drivers.center
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
        lambda: drivers.object_storage.get_bucket(f"b-{missing}"),
        lambda: drivers.object_storage.list_objects(f"b-{missing}"),
        lambda: drivers.containers.get_namespace(f"ns-{missing}"),
        lambda: drivers.traffic.get_record("missing.example", name=missing, target_center=drivers.center),
    ]
    for lookup in lookups:
        with pytest.raises(errors.NotFound):
            lookup()
    assert drivers.compute.find_server(missing) is None
    assert drivers.block_storage.find_volume(missing) is None
