"""``OpenStackNetwork``: Neutron for the compute driver (the network servers attach to, network quotas).

The network a server attaches to is the cloud's ``cloudctl.network`` setting:

- ``tenant`` (the default): the department's own tenant network, named as the declared
  foundation names it (``cloudctl.model.foundation``: network ``<project>-net`` with one IPv4
  subnet ``<project>-subnet``, ``10.0.0.0/24``, DHCP on). When Pulumi (``infra/``) made it, it is
  used as it is; when missing, it is made through the department's project connection on the
  first server there, so that it counts against that project's network quota. Found by name
  and project on every server create, never cached: a network deleted behind cloudctl's back
  is made again. Two creators racing on the first server of a project can make two networks
  when nothing bounds them; the oldest is used.
- ``none``: no network at all (the server boots without a NIC).

A server made with a ``base.PortRequest`` whose ``address`` is set gets that fixed IP on the
network above (a failover keeping or re-mapping the address it had); one another port holds is
``errors.Conflict`` on ``address`` (Nova answers 400, Neutron 409), one outside the subnet 400.
A ``PortRequest``'s ``pool`` becomes the tenant subnet's allocation pool (made so, or narrowed to
it when it differs), so Neutron hands out only that center's slice of the addresses a network map
shares (``Topology.allocation_pool``): two centers never hand out the same one. Fixed addresses
outside it are still given (a failover keeping one from the other slice).
- any other name: an existing network of that name, shared by the cloud's operators; cloudctl
  neither makes nor changes it.

Network quotas. The quota tree has no network resources (``quotas.Resource``), yet a
department's project must not hold more of Neutron than cloudctl gives it, so this module
derives the project's Neutron quota from its tree limits (``quota_for``), under keys
``network.<resource>`` that cannot collide with the tree's:

======================================  =====================================================
``network.networks`` = 1                 the department's tenant network
``network.subnets`` = 1                  its one IPv4 subnet
``network.ports`` = instances × 1 + 2    one NIC per server (cloudctl boots every server with
                                         one), plus the subnet's DHCP port and one router
                                         interface; unlimited when ``instances`` is
``network.routers`` = 1                  the router the network team may attach the tenant
                                         network to, for its way out
``network.floating_ips`` = 0             cloudctl hands out no public addresses: departments'
                                         services are reached through traffic steering
``network.security_groups`` = 1          the project's ``default`` group, which Neutron makes
``network.security_group_rules`` = 20    the ``default`` group's 4 rules, and 16 for the
                                         security administrators to open service ports
======================================  =====================================================

Invariants:

- ``set_project_quota`` writes only the resources this cloud's Neutron has (one without the
  L3 plugin has no ``routers`` nor ``floating_ips``), and only those that differ; an unlimited
  value is written as -1 and read back as absent, as Nova's and Cinder's are.
- ``quota_for`` over the resources the cloud has is exactly what ``get_project_quota`` reads
  back after ``set_project_quota`` with the same tree limits, so a reconciler can compare the
  two to find drift.
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Mapping
from typing import Any

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.openstack import cloud as cloud_module
from cloudctl.model import foundation

QUOTA_KEY_PREFIX = "network."
UNLIMITED = -1
PORTS_PER_SERVER = 1
PORT_ALLOWANCE = 2
"""Ports of a tenant network that are no server's: its subnet's DHCP port and one router interface."""
FIXED_QUOTA = {
    "networks": 1,
    "subnets": 1,
    "routers": 1,
    "floating_ips": 0,
    "security_groups": 1,
    "security_group_rules": 20,
}
"""Neutron quotas that do not depend on the tree, by openstacksdk's name (see the table above)."""
QUOTA_RESOURCES = (
    "networks",
    "subnets",
    "ports",
    "routers",
    "floating_ips",
    "security_groups",
    "security_group_rules",
)
"""The Neutron quotas cloudctl keeps, by openstacksdk's name; the others (subnet pools, RBAC
policies ...) are left as the cloud has them."""


def allocation_pools(pool: tuple[str, str] | None, *, cidr: str) -> list[dict[str, str]] | None:
    """Neutron's ``allocation_pools`` of a subnet of ``cidr`` for ``pool``; ``None`` when there
    is no pool or it is not inside ``cidr`` (the subnet is then left as it is)."""
    if pool is None:
        return None
    subnet = ipaddress.ip_network(cidr)
    if not all(ipaddress.ip_address(end) in subnet for end in pool):
        return None
    return [{"start": pool[0], "end": pool[1]}]


def quota_key(resource: str) -> str:
    return f"{QUOTA_KEY_PREFIX}{resource}"


def quota_for(limits: Mapping[str, int]) -> dict[str, int]:
    """The Neutron quota (``network.*`` keys) of a project whose tree limits are ``limits``.

    Unlimited resources are absent, as in ``base.ProjectQuota.limits``."""
    wanted = dict(FIXED_QUOTA)
    instances = limits.get("instances")
    if instances is not None:
        wanted["ports"] = instances * PORTS_PER_SERVER + PORT_ALLOWANCE
    return {quota_key(resource): wanted[resource] for resource in QUOTA_RESOURCES if resource in wanted}


class OpenStackNetwork:
    """Tenant networks and network quotas of department projects in one center's cloud."""

    def __init__(self, cloud: cloud_module.Cloud) -> None:
        self._cloud = cloud
        self.center = cloud.center
        self._lock = threading.Lock()
        self._quota_resources: tuple[str, ...] | None = None

    # --- the network servers attach to -----------------------------------------------------

    def server_networks(
        self, project: str, *, fixed_ip: str | None = None, pool: tuple[str, str] | None = None
    ) -> Any:
        """What Nova's ``create_server`` takes as ``networks`` for a server of ``project``;
        ``fixed_ip``: the address its port gets (a failover keeping or re-mapping one); ``pool``:
        the addresses this center hands out on the tenant network (``ensure_tenant_network``)."""
        setting = self._cloud.settings.network
        if setting == cloud_module.NO_NETWORK:
            return "none"
        if setting == cloud_module.TENANT_NETWORK:
            network: dict[str, str] = {"uuid": self.ensure_tenant_network(project, pool=pool)}
        else:
            network = {"uuid": self._shared_network_id(setting)}
        if fixed_ip is not None:
            network["fixed_ip"] = fixed_ip
        return [network]

    def find_tenant_network(self, project: str) -> str | None:
        """The id of the department's tenant network, or ``None`` when it has none (yet)."""
        project_id = self._cloud.find_project_id(project)
        if project_id is None:
            return None
        return self._find_network(project + foundation.NETWORK_SUFFIX, project_id=project_id)

    def ensure_tenant_network(self, project: str, *, pool: tuple[str, str] | None = None) -> str:
        """The id of the department's tenant network, made (with its subnet) when missing; idempotent.
        With a ``pool`` (first and last address), the subnet's allocation pool is that range, so
        Neutron hands out only those; fixed addresses outside it are still given."""
        project_id = self._cloud.ensure_project(project)
        name = project + foundation.NETWORK_SUFFIX
        network_id = self._find_network(name, project_id=project_id)
        if network_id is None:
            connection = self._cloud.project_connection(project)
            try:
                created = self._cloud.call(
                    lambda: connection.network.create_network(
                        name=name, description=f"cloudctl tenant network of department {project}"
                    ),
                    what=f"network {name}",
                    project=project,
                )
                network_id = str(created.id)
            except errors.Conflict:
                # Over a quota of one network: someone made it since we looked. Take theirs.
                network_id = self._find_network(name, project_id=project_id)
                if network_id is None:
                    raise
        self._ensure_subnet(project, network_id=network_id, pool=pool)
        return network_id

    def _ensure_subnet(self, project: str, *, network_id: str, pool: tuple[str, str] | None) -> None:
        network = self._cloud.admin.network
        found = self._cloud.call(
            lambda: list(network.subnets(network_id=network_id, ip_version=4)), what=f"network {network_id}"
        )
        wanted = allocation_pools(pool, cidr=foundation.TENANT_SUBNET_CIDR)
        if found:
            subnet = found[0]
            held = allocation_pools(pool, cidr=str(subnet.cidr))
            if held is not None and list(subnet.allocation_pools or []) != held:
                self._cloud.call(
                    lambda: network.update_subnet(subnet, allocation_pools=held),
                    what=f"subnet {subnet.name}",
                    project=project,
                )
            return
        connection = self._cloud.project_connection(project)
        name = project + foundation.SUBNET_SUFFIX
        extra = {} if wanted is None else {"allocation_pools": wanted}
        self._cloud.call(
            lambda: connection.network.create_subnet(
                network_id=network_id,
                name=name,
                ip_version=4,
                cidr=foundation.TENANT_SUBNET_CIDR,
                is_dhcp_enabled=True,
                **extra,
            ),
            what=f"subnet {name}",
            project=project,
        )

    def _find_network(self, name: str, *, project_id: str) -> str | None:
        network = self._cloud.admin.network
        found = self._cloud.call(
            lambda: sorted(
                network.networks(name=name, project_id=project_id),
                key=lambda item: (item.created_at or "", item.id),
            ),
            what=f"network {name}",
        )
        return str(found[0].id) if found else None

    def _shared_network_id(self, name: str) -> str:
        found = self._cloud.call(
            lambda: list(self._cloud.admin.network.networks(name=name)), what=f"network {name}"
        )
        if not found:
            raise errors.OperationFailed(
                f"cloud {self._cloud.cloud_name} of center {self.center} has no network {name!r} "
                "(clouds.yaml: cloudctl.network)",
                field="network",
            )
        return str(found[0].id)

    # --- network quotas --------------------------------------------------------------------

    def quota_resources(self) -> tuple[str, ...]:
        """The resources of ``QUOTA_RESOURCES`` this cloud's Neutron keeps a quota of (read once)."""
        with self._lock:
            known = self._quota_resources
        if known is None:
            admin = self._cloud.admin
            own_project_id = self._cloud.call(lambda: admin.current_project_id, what="project of the admin")
            if own_project_id is None:
                raise errors.OperationFailed(
                    f"cloud {self._cloud.cloud_name} gave no project id", field="credentials"
                )
            own = self._cloud.call(lambda: admin.network.get_quota(own_project_id), what="quota")
            known = tuple(
                resource for resource in QUOTA_RESOURCES if getattr(own, resource, None) is not None
            )
            with self._lock:
                self._quota_resources = known
        return known

    def quota_for(self, limits: Mapping[str, int]) -> dict[str, int]:
        """``quota_for(limits)`` over the resources this cloud has."""
        kept = {quota_key(resource) for resource in self.quota_resources()}
        return {key: value for key, value in quota_for(limits).items() if key in kept}

    def set_project_quota(self, project: str, *, limits: Mapping[str, int]) -> None:
        """Make the project's Neutron quota ``quota_for(limits)``, writing only what differs."""
        project_id = self._cloud.ensure_project(project)
        wanted = self.quota_for(limits)
        network = self._cloud.admin.network
        found = self._cloud.call(lambda: network.get_quota(project_id), what=f"project {project}")
        changes = {
            resource: wanted.get(quota_key(resource), UNLIMITED)
            for resource in self.quota_resources()
            if getattr(found, resource) != wanted.get(quota_key(resource), UNLIMITED)
        }
        if changes:
            self._cloud.call(lambda: network.update_quota(project_id, **changes), what=f"project {project}")

    def get_project_quota(self, project: str) -> base.ProjectQuota:
        """The project's Neutron limits and usage, under ``network.*`` keys (unlimited: absent)."""
        resources = self.quota_resources()
        project_id = self._cloud.find_project_id(project)
        if project_id is None:
            nothing = {quota_key(resource): 0 for resource in resources}
            return base.ProjectQuota(project=project, center=self.center, limits={}, used=nothing)
        network = self._cloud.admin.network
        found = self._cloud.call(
            lambda: network.get_quota(project_id, details=True), what=f"project {project}"
        )
        limits: dict[str, int] = {}
        used: dict[str, int] = {}
        for resource in resources:
            detail = getattr(found, resource) or {}
            limit = int(detail.get("limit", UNLIMITED))
            if limit >= 0:
                limits[quota_key(resource)] = limit
            used[quota_key(resource)] = int(detail.get("used", 0))
        return base.ProjectQuota(project=project, center=self.center, limits=limits, used=used)
