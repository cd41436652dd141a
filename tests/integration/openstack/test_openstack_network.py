"""The OpenStack driver's networking against the loopback Neutron: NICs and network quotas.

Servers boot with one port on their department's tenant network, bound by ML2's openvswitch
mechanism driver to the compute host (whose agent is the stack's reporting-only stand-in), with
an address from the tenant subnet; deleting the server releases the port. Each department
project's Neutron quota is derived from its tree limits (``network.quota_for``) and counts the
servers' ports. What is checked is read back from Neutron itself, through the SDK.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudctl.drivers import base
from cloudctl.drivers import openstack as openstack_driver
from cloudctl.drivers.openstack import network as network_module
from cloudctl.model import foundation
from tests.integration.openstack import stack
from tests.integration.openstack.conftest import Cleanup

BOOT_TIMEOUT_S = 120.0
UNBOUND_VIF_TYPES = ("unbound", "binding_failed", "", None)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ports_of(cloud: openstack_driver.Cloud, server_id: str) -> list[Any]:
    return list(cloud.admin.network.ports(device_id=server_id))


def boot(compute: openstack_driver.OpenStackCompute, cleanup: Cleanup, *, project: str) -> base.Server:
    server = compute.create_server(name=unique("vm"), project=project, vcpu=1, ram_gb=1, disk_gb=1)
    cleanup(lambda: compute.delete_server(server.id))
    return compute.wait_for_status(
        server.id, status=base.ServerStatus.ACTIVE, timeout_s=BOOT_TIMEOUT_S, poll_interval_s=0.5
    )


@pytest.fixture
def cloud_with_network(
    request: pytest.FixtureRequest, tmp_path: Path, openstack_center: str
) -> Iterator[openstack_driver.Cloud]:
    """A second driver ``Cloud`` on the stack whose ``cloudctl.network`` is ``request.param``."""
    clouds_yaml = stack.write_clouds_yaml(
        tmp_path / "clouds.yaml", centers=[openstack_center], network=request.param
    )
    cloud = stack.open_cloud(center=openstack_center, clouds_yaml=clouds_yaml)
    yield cloud
    cloud.close()


def test_a_server_boots_with_one_bound_port_on_its_department_network(
    openstack_cloud: openstack_driver.Cloud, compute: openstack_driver.OpenStackCompute, cleanup: Cleanup
) -> None:
    project = unique("dept")
    server = boot(compute, cleanup, project=project)

    (port,) = ports_of(openstack_cloud, server.id)
    nova_server = openstack_cloud.admin.compute.get_server(server.id)
    assert port.binding_vif_type not in UNBOUND_VIF_TYPES
    assert port.binding_vif_type == "ovs"
    assert port.binding_host_id == nova_server.compute_host
    network = openstack_cloud.admin.network.get_network(port.network_id)
    project_id = openstack_cloud.find_project_id(project)
    assert (network.name, network.project_id) == (project + foundation.NETWORK_SUFFIX, project_id)
    (fixed_ip,) = port.fixed_ips
    subnet = openstack_cloud.admin.network.get_subnet(fixed_ip["subnet_id"])
    assert subnet.name == project + foundation.SUBNET_SUFFIX
    assert ipaddress.ip_address(fixed_ip["ip_address"]) in ipaddress.ip_network(foundation.TENANT_SUBNET_CIDR)
    assert fixed_ip["ip_address"] in {
        address["addr"] for addresses in nova_server.addresses.values() for address in addresses
    }


def test_ml2_binds_ports_only_on_the_host_whose_agent_reports(
    openstack_cloud: openstack_driver.Cloud, cleanup: Cleanup
) -> None:
    """Binding is ML2's own: the stand-in agent makes the compute host bindable, and no other."""
    neutron = openstack_cloud.admin.network
    (agent,) = [agent for agent in neutron.agents(agent_type="Open vSwitch agent") if agent.is_alive]
    assert agent.configuration["cloudctl_stand_in"] is True
    network_id = network_module.OpenStackNetwork(openstack_cloud).ensure_tenant_network(unique("dept"))

    here = neutron.create_port(network_id=network_id, binding_host_id=agent.host)
    cleanup(lambda: neutron.delete_port(here))
    elsewhere = neutron.create_port(network_id=network_id, binding_host_id=unique("host-without-agent"))
    cleanup(lambda: neutron.delete_port(elsewhere))

    assert (here.binding_vif_type, elsewhere.binding_vif_type) == ("ovs", "binding_failed")


def test_servers_of_one_department_share_its_tenant_network(
    openstack_cloud: openstack_driver.Cloud, compute: openstack_driver.OpenStackCompute, cleanup: Cleanup
) -> None:
    project = unique("dept")
    first = boot(compute, cleanup, project=project)
    second = boot(compute, cleanup, project=project)

    (first_port,) = ports_of(openstack_cloud, first.id)
    (second_port,) = ports_of(openstack_cloud, second.id)
    assert first_port.network_id == second_port.network_id
    project_id = openstack_cloud.find_project_id(project)
    networks = list(openstack_cloud.admin.network.networks(project_id=project_id))
    assert [network.id for network in networks] == [first_port.network_id]
    assert len(list(openstack_cloud.admin.network.subnets(network_id=first_port.network_id))) == 1


def test_deleting_a_server_releases_its_port(
    openstack_cloud: openstack_driver.Cloud, compute: openstack_driver.OpenStackCompute, cleanup: Cleanup
) -> None:
    project = unique("dept")
    server = boot(compute, cleanup, project=project)
    assert len(ports_of(openstack_cloud, server.id)) == 1

    compute.delete_server(server.id)

    assert ports_of(openstack_cloud, server.id) == []
    assert compute.get_network_quota(project).used["network.ports"] == 0


def test_the_network_quota_is_derived_from_the_tree_limits(
    openstack_cloud: openstack_driver.Cloud, compute: openstack_driver.OpenStackCompute
) -> None:
    project = unique("dept")
    compute.set_project_quota(project, amounts={"vcpu": 8, "instances": 4})

    neutron = openstack_cloud.admin.network.get_quota(openstack_cloud.find_project_id(project))
    assert (neutron.networks, neutron.subnets, neutron.ports, neutron.routers) == (1, 1, 4 + 2, 1)
    assert (neutron.floating_ips, neutron.security_groups, neutron.security_group_rules) == (0, 1, 20)
    assert compute.get_network_quota(project).limits == {
        "network.networks": 1,
        "network.subnets": 1,
        "network.ports": 6,
        "network.routers": 1,
        "network.floating_ips": 0,
        "network.security_groups": 1,
        "network.security_group_rules": 20,
    }
    assert compute.get_derived_project_limits(project) == compute.derived_project_limits({"instances": 4})


def test_ports_are_unlimited_when_instances_are(
    openstack_cloud: openstack_driver.Cloud, compute: openstack_driver.OpenStackCompute
) -> None:
    project = unique("dept")
    compute.set_project_quota(project, amounts={"instances": 4})
    compute.set_project_quota(project, amounts={"vcpu": 2})

    neutron = openstack_cloud.admin.network.get_quota(openstack_cloud.find_project_id(project))
    assert (neutron.ports, neutron.networks) == (-1, 1)
    assert "network.ports" not in compute.get_network_quota(project).limits


def test_the_network_quota_counts_the_servers_ports(
    compute: openstack_driver.OpenStackCompute, cleanup: Cleanup
) -> None:
    project = unique("dept")
    compute.set_project_quota(project, amounts={"instances": 2})
    boot(compute, cleanup, project=project)
    boot(compute, cleanup, project=project)

    quota = compute.get_network_quota(project)
    assert quota.used["network.ports"] == 2  # no DHCP agent runs on the stack: no DHCP port
    assert (quota.used["network.networks"], quota.used["network.subnets"]) == (1, 1)
    assert quota.limits["network.ports"] == 4


@pytest.mark.parametrize("cloud_with_network", ["none"], indirect=True)
def test_a_cloud_set_to_no_network_boots_servers_without_a_port(
    cloud_with_network: openstack_driver.Cloud, cleanup: Cleanup
) -> None:
    compute = openstack_driver.OpenStackCompute(cloud_with_network)
    project = unique("dept")
    server = boot(compute, cleanup, project=project)

    assert ports_of(cloud_with_network, server.id) == []
    assert compute.get_network_quota(project).used["network.networks"] == 0


@pytest.mark.parametrize("cloud_with_network", ["cloudctl-net"], indirect=True)
def test_a_cloud_set_to_a_shared_network_binds_servers_there(
    cloud_with_network: openstack_driver.Cloud, cleanup: Cleanup
) -> None:
    compute = openstack_driver.OpenStackCompute(cloud_with_network)
    server = boot(compute, cleanup, project=unique("dept"))

    (port,) = ports_of(cloud_with_network, server.id)
    shared = cloud_with_network.admin.network.find_network("cloudctl-net")
    assert port.network_id == shared.id
    assert port.binding_vif_type == "ovs"
    (fixed_ip,) = port.fixed_ips
    subnet = cloud_with_network.admin.network.get_subnet(fixed_ip["subnet_id"])
    assert ipaddress.ip_address(fixed_ip["ip_address"]) in ipaddress.ip_network(subnet.cidr)
