"""The OpenStack driver against the loopback OpenStack: what the shared contract cannot see.

Departments as Keystone projects, quotas as Nova and Cinder hold them (their own units),
quota refusals naming cloudctl's resources, and things landing in the department's project.
The contract itself (create / get / list / delete, waiting, NotFound) is
``tests/contract/test_driver_contract.py``; servers' NICs and network quotas are
``test_openstack_network.py``.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers import openstack as openstack_driver
from tests.integration.openstack import stack
from tests.integration.openstack.conftest import Cleanup


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def test_the_stack_reports_itself_up() -> None:
    stack.ensure_up()
    done = subprocess.run(
        [sys.executable, str(stack.STACK_SCRIPT), "status"],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("up (RegionOne, RegionTwo, RegionThree): keystone")


def test_a_department_project_is_made_once(openstack_cloud: openstack_driver.Cloud) -> None:
    name = unique("dept")
    assert openstack_cloud.find_project_id(name) is None
    project_id = openstack_cloud.ensure_project(name)
    assert openstack_cloud.ensure_project(name) == project_id
    assert openstack_cloud.find_project_id(name) == project_id
    assert openstack_cloud.project_name(project_id) == name


def test_quotas_are_kept_in_nova_and_cinder_units(
    openstack_cloud: openstack_driver.Cloud, compute: openstack_driver.OpenStackCompute
) -> None:
    project = unique("dept")
    amounts = {"vcpu": 4, "ram_gb": 8, "volume_gb": 50, "object_gb": 100, "instances": 3}
    written = compute.set_project_quota(project, amounts=amounts)
    assert written.limits == amounts
    project_id = openstack_cloud.ensure_project(project)
    nova = openstack_cloud.admin.compute.get_quota_set(project_id)
    cinder = openstack_cloud.admin.block_storage.get_quota_set(project_id)
    assert (nova.cores, nova.ram, nova.instances, cinder.gigabytes) == (4, 8 * 1024, 3, 50)

    narrowed = compute.set_project_quota(project, amounts={"vcpu": 2})
    assert narrowed.limits == compute.get_project_quota(project).limits == {"vcpu": 2}
    nova = openstack_cloud.admin.compute.get_quota_set(project_id)
    cinder = openstack_cloud.admin.block_storage.get_quota_set(project_id)
    assert (nova.cores, nova.ram, nova.instances, cinder.gigabytes) == (2, -1, -1, -1)


def test_the_quota_of_a_project_never_made_is_empty(compute: openstack_driver.OpenStackCompute) -> None:
    quota = compute.get_project_quota(unique("never-made"))
    assert quota.limits == {}
    assert quota.used == {"vcpu": 0, "ram_gb": 0, "instances": 0, "volume_gb": 0}


def test_a_server_over_the_ram_quota_names_ram_in_gb(
    compute: openstack_driver.OpenStackCompute, cleanup: Cleanup
) -> None:
    project = unique("dept")
    compute.set_project_quota(project, amounts={"ram_gb": 2})
    first = compute.create_server(name=unique("vm"), project=project, vcpu=1, ram_gb=2, disk_gb=1)
    cleanup(lambda: compute.delete_server(first.id))
    with pytest.raises(errors.QuotaExceeded) as raised:
        compute.create_server(name=unique("vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)
    (shortfall,) = raised.value.shortfalls
    assert (shortfall.node, shortfall.resource, shortfall.limit, shortfall.in_use) == (
        project,
        "ram_gb",
        2,
        2,
    )


def test_a_volume_over_the_quota_is_refused(
    compute: openstack_driver.OpenStackCompute, block_storage: openstack_driver.OpenStackBlockStorage
) -> None:
    project = unique("dept")
    compute.set_project_quota(project, amounts={"volume_gb": 2})
    with pytest.raises(errors.QuotaExceeded) as raised:
        block_storage.create_volume(name=unique("vol"), project=project, size_gb=3)
    (shortfall,) = raised.value.shortfalls
    assert (shortfall.resource, shortfall.limit, shortfall.requested) == ("volume_gb", 2, 3)
    assert block_storage.list_volumes(project=project) == []


def test_servers_volumes_and_snapshots_live_in_the_department_project(
    openstack_cloud: openstack_driver.Cloud,
    compute: openstack_driver.OpenStackCompute,
    block_storage: openstack_driver.OpenStackBlockStorage,
    cleanup: Cleanup,
) -> None:
    project = unique("dept")
    server = compute.create_server(name=unique("vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    volume = block_storage.create_volume(name=unique("vol"), project=project, size_gb=1)
    cleanup(lambda: block_storage.delete_volume(volume.id))
    snapshot = block_storage.create_snapshot(volume.id, name=unique("snap"))
    cleanup(lambda: block_storage.delete_snapshot(snapshot.id))

    project_id = openstack_cloud.find_project_id(project)
    assert openstack_cloud.admin.compute.get_server(server.id).project_id == project_id
    assert openstack_cloud.admin.block_storage.get_volume(volume.id).project_id == project_id
    assert openstack_cloud.admin.block_storage.get_snapshot(snapshot.id).project_id == project_id
    assert compute.get_project_quota(project).used == {"vcpu": 1, "ram_gb": 1, "instances": 1, "volume_gb": 1}


def test_a_protected_server_is_restarted_in_the_recovery_center(
    compute: openstack_driver.OpenStackCompute, cleanup: Cleanup
) -> None:
    """Failover restarts a stopped standby: start is idempotent, stop of a stopped one too."""
    server = compute.create_server(
        name=unique("standby"), project=unique("dept"), vcpu=1, ram_gb=1, disk_gb=1
    )
    cleanup(lambda: compute.delete_server(server.id))
    compute.wait_for_status(server.id, status=base.ServerStatus.ACTIVE, timeout_s=120, poll_interval_s=0.5)
    compute.stop_server(server.id)
    compute.wait_for_status(server.id, status=base.ServerStatus.SHUTOFF, timeout_s=120, poll_interval_s=0.5)
    assert compute.stop_server(server.id).status is base.ServerStatus.SHUTOFF
    compute.start_server(server.id)
    started = compute.wait_for_status(
        server.id, status=base.ServerStatus.ACTIVE, timeout_s=120, poll_interval_s=0.5
    )
    assert compute.start_server(server.id) == started
