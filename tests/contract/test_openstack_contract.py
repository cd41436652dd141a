"""The driver contract of ``cloudctl.drivers.base`` held against the OpenStack driver.

The same assertions as ``test_driver_contract.py`` makes of the simulator, for the two
capabilities OpenStack serves (compute and block storage), against the real loopback
OpenStack of ``scripts/openstack/stack`` (brought up or reused once per test process; a
stack that cannot be brought up fails these tests, never skips them). The test names are
those of the shared suite, so that folding this module into it as an ``openstack`` param
is a matter of deleting the copies here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers import openstack as openstack_driver
from cloudctl.model import topology
from tests.integration.openstack import stack

TOPOLOGY_FILE = Path(__file__).resolve().parents[2] / "infra" / "topology.yaml"
BOOT_TIMEOUT_S = 600.0

# openstacksdk 4.22 warns about its own internals on every call; nothing a caller can change.

Cleanup = Callable[[Callable[[], object]], None]


class OpenStackDrivers:
    """The capabilities OpenStack serves for one center, named as in ``base.CenterDrivers``."""

    def __init__(self, cloud: openstack_driver.Cloud) -> None:
        self.center = cloud.center
        self.compute: base.Compute = openstack_driver.OpenStackCompute(cloud)
        self.block_storage: base.BlockStorage = openstack_driver.OpenStackBlockStorage(cloud)


@pytest.fixture(scope="module")
def drivers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenStackDrivers]:
    shipped = topology.parse(TOPOLOGY_FILE.read_text(encoding="utf-8"))
    center = shipped.centers_with_role(topology.CenterRole.LOCAL)[0].name
    clouds_yaml = stack.write_clouds_yaml(
        tmp_path_factory.mktemp("contract") / "clouds.yaml", centers=[center]
    )
    cloud = stack.open_cloud(center=center, clouds_yaml=clouds_yaml)
    yield OpenStackDrivers(cloud)
    cloud.close()


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    """Register an undo right after each create; undos run last-first after the test."""
    undos: list[Callable[[], object]] = []
    yield undos.append
    for undo in reversed(undos):
        undo()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --- compute ------------------------------------------------------------------------------


def test_server_is_created_found_listed_and_deleted(drivers: OpenStackDrivers, cleanup: Cleanup) -> None:
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


def test_deleting_a_server_twice_is_harmless_unless_missing_is_an_error(drivers: OpenStackDrivers) -> None:
    compute = drivers.compute
    server = compute.create_server(
        name=unique("contract-vm"), project=unique("p"), vcpu=1, ram_gb=1, disk_gb=1
    )
    compute.delete_server(server.id)
    compute.delete_server(server.id)
    compute.delete_server(server.id, ignore_missing=True)
    with pytest.raises(errors.NotFound):
        compute.delete_server(server.id, ignore_missing=False)


def test_server_becomes_active_then_stops_and_starts(drivers: OpenStackDrivers, cleanup: Cleanup) -> None:
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


def test_server_names_are_unique(drivers: OpenStackDrivers, cleanup: Cleanup) -> None:
    compute = drivers.compute
    name = unique("contract-vm")
    server = compute.create_server(name=name, project="p", vcpu=1, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    with pytest.raises(errors.Conflict):
        compute.create_server(name=name, project="p", vcpu=1, ram_gb=1, disk_gb=1)


def test_project_quota_is_set_and_read_back(drivers: OpenStackDrivers) -> None:
    project = unique("contract-project")
    written = drivers.compute.set_project_quota(project, amounts={"vcpu": 8, "ram_gb": 32, "instances": 4})
    read = drivers.compute.get_project_quota(project)
    assert read.limits == written.limits == {"vcpu": 8, "ram_gb": 32, "instances": 4}
    assert read.project == project and read.center == drivers.center
    assert read.used["vcpu"] == 0


def test_project_quota_refuses_a_server_beyond_it(drivers: OpenStackDrivers, cleanup: Cleanup) -> None:
    compute = drivers.compute
    project = unique("contract-project")
    compute.set_project_quota(project, amounts={"vcpu": 2, "instances": 5})
    server = compute.create_server(name=unique("contract-vm"), project=project, vcpu=2, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    assert compute.get_project_quota(project).used["vcpu"] == 2
    with pytest.raises(errors.QuotaExceeded):
        compute.create_server(name=unique("contract-vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)


# --- block storage ------------------------------------------------------------------------


def test_volume_and_snapshot_lifecycle(drivers: OpenStackDrivers, cleanup: Cleanup) -> None:
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


# --- not found, everywhere ----------------------------------------------------------------


def test_every_get_of_something_missing_raises_not_found(drivers: OpenStackDrivers) -> None:
    missing = str(uuid.uuid4())
    lookups: list[Callable[[], object]] = [
        lambda: drivers.compute.get_server(missing),
        lambda: drivers.compute.start_server(missing),
        lambda: drivers.compute.stop_server(missing),
        lambda: drivers.block_storage.get_volume(missing),
        lambda: drivers.block_storage.get_snapshot(missing),
        lambda: drivers.block_storage.create_snapshot(missing, name="s"),
    ]
    for lookup in lookups:
        with pytest.raises(errors.NotFound):
            lookup()
    assert drivers.compute.find_server(missing) is None
    assert drivers.block_storage.find_volume(missing) is None
