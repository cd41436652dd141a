"""The declared foundation: what each center must hold before any department can order anything.

``declare(topology)`` computes, from the validated topology and its quota tree, per center the
OpenStack projects (with quotas and a tenant network) and the Kubernetes namespaces (with a
ResourceQuota) of every tenant. The Pulumi program in ``infra/`` declares exactly this, and
``cloudctl infra diff`` compares it with what the store implies, so the two never disagree about
what exists: both call this one pure function.

Rules, each a small function so a later change can move it:

- **Tenants** are the leaves of the org tree: a department, or a bureau without departments.
  They are the nodes that order resources; inner nodes (city, districts, bureaus with
  departments) only bound their subtree's quotas and get no project of their own.
- **Centers** (``foundation_centers``) are those the protection tiers place workloads in: every
  local center (each tier runs in the local centers), and every DR center when at least one tier
  copies data there (``Tier.reserves_dr_headroom``). The management center runs no tenant
  workloads, so no tier needs it.
- **Backends** (``backends_of``) come from the center's capability drivers: an ``openstack``
  compute driver means OpenStack projects, a ``kubernetes`` containers driver means namespaces.
  The ``simulator`` stands in for both, so the shipped topology (simulator everywhere) declares
  what production would hold: projects and namespaces in every local and DR center.
- **Quotas** of a tenant in a center are its effective limits there: the tightest of its own and
  its ancestors' limits on that center and on all centers (equal to its own limit whenever it
  sets one, because a child never exceeds an ancestor). OpenStack: vcpu → cores, ram_gb → ram in
  MiB (× 1024), instances → instances, volume_gb → gigabytes; object storage is not a project
  quota. Namespaces: ``requests.cpu`` = vcpu, ``requests.memory`` = ``{ram_gb}Gi``. A resource
  nothing bounds is unlimited (``None``).
- **DR headroom**: the DR center mirrors every tenant (same project, network and namespace
  names, so a failed-over workload finds its home) with the tenant's limits on the DR center:
  the quota tree already states the failover headroom the tiers reserve there.
- **Names** are the tenant's org id (a slug, a valid Keystone name and DNS label), with fixed
  suffixes for networks; nothing depends on order, so re-declaring renames nothing.

A wrong org tree is refused with ``errors.TopologyError`` before anything is declared: a
department at the root (without a parent), a node naming a parent that is not in the tree, a
limit over an ancestor's. Pure: no I/O, nothing but ``cloudctl.errors`` and ``cloudctl.model``.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict

from cloudctl import errors
from cloudctl.model import quotas
from cloudctl.model import topology as topo

MIB_PER_GB = 1024

TENANT_SUBNET_CIDR = "10.0.0.0/24"
"""Every tenant network gets the same range: Neutron keeps projects' address spaces apart, and the
DR mirror keeps the local addresses, so a failed-over workload keeps its IP plan."""

NETWORK_SUFFIX = "-net"
SUBNET_SUFFIX = "-subnet"

OPENSTACK_COMPUTE_DRIVERS = frozenset({"openstack", "simulator"})
"""Compute drivers whose center holds OpenStack projects (the simulator stands in for OpenStack)."""
KUBERNETES_CONTAINER_DRIVERS = frozenset({"kubernetes", "simulator"})
"""Containers drivers whose center holds Kubernetes namespaces (the simulator stands in for Kubernetes)."""


class Backend(enum.StrEnum):
    OPENSTACK = "openstack"
    KUBERNETES = "kubernetes"


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectQuota(_Frozen):
    """Nova and Cinder quotas of one project; ``None`` is unlimited."""

    cores: int | None
    ram_mib: int | None
    instances: int | None
    gigabytes: int | None


class Project(_Frozen):
    """An OpenStack project of one tenant in one center, with its tenant network."""

    center: str
    name: str
    display_name: str
    org_path: tuple[str, ...]
    quota: ProjectQuota
    network_name: str
    subnet_name: str
    subnet_cidr: str
    allocation_pool: tuple[str, str] | None = None
    """The addresses Neutron hands out on the subnet (first, last): this center's slice of the
    range its network maps share (``Topology.allocation_pool``), when the center's workload
    network is the tenant network's range; ``None``: the whole subnet."""


class Namespace(_Frozen):
    """A Kubernetes namespace of one tenant in one center, with its ResourceQuota."""

    center: str
    name: str
    display_name: str
    org_path: tuple[str, ...]
    requests_cpu: str | None
    requests_memory: str | None

    def hard(self) -> dict[str, str]:
        """The ResourceQuota's ``spec.hard``; unlimited resources are left out."""
        hard = {"requests.cpu": self.requests_cpu, "requests.memory": self.requests_memory}
        return {key: value for key, value in hard.items() if value is not None}


class CenterFoundation(_Frozen):
    center: str
    role: topo.CenterRole
    backends: tuple[Backend, ...]
    projects: tuple[Project, ...]
    namespaces: tuple[Namespace, ...]


class Foundation(_Frozen):
    topology: str
    tenants: tuple[str, ...]
    centers: tuple[CenterFoundation, ...]

    def center(self, name: str) -> CenterFoundation:
        for center in self.centers:
            if center.center == name:
                return center
        known = ", ".join(center.center for center in self.centers) or "none"
        raise errors.NotFound(
            f"center {name!r} holds no foundation (centers that do: {known})", field="center"
        )


ResourceKind = Literal["project", "network", "namespace"]


class Difference(_Frozen):
    """One way two foundations disagree; ``None`` on a side means absent (or unlimited, for a quota)."""

    kind: ResourceKind
    center: str
    name: str
    field: str
    declared: str | int | None
    stored: str | int | None


# --- rules ---------------------------------------------------------------------------------------


def backends_of(center: topo.Center) -> tuple[Backend, ...]:
    """Which foundation backends a center holds, from its capability drivers."""
    drivers = center.drivers
    backends: list[Backend] = []
    if drivers.get(topo.Capability.COMPUTE) in OPENSTACK_COMPUTE_DRIVERS:
        backends.append(Backend.OPENSTACK)
    if drivers.get(topo.Capability.CONTAINERS) in KUBERNETES_CONTAINER_DRIVERS:
        backends.append(Backend.KUBERNETES)
    return tuple(backends)


def centers_needed_by_tiers(topology: topo.Topology) -> list[topo.Center]:
    """Local centers when any tier exists, plus DR centers when any tier copies data there."""
    if not topology.tiers:
        return []
    needs_dr = any(tier.reserves_dr_headroom for tier in topology.tiers)
    return [
        center
        for center in topology.centers
        if center.role is topo.CenterRole.LOCAL or (needs_dr and center.role is topo.CenterRole.DR)
    ]


def foundation_centers(topology: topo.Topology) -> list[topo.Center]:
    """Centers that hold a foundation: needed by the tiers and backed by OpenStack or Kubernetes."""
    return [center for center in centers_needed_by_tiers(topology) if backends_of(center)]


def effective_limits(chain: Sequence[topo.OrgNode], *, center: str) -> quotas.Amounts:
    """The tightest limit per resource on ``center`` along ``chain`` (root first, tenant last)."""
    result: quotas.Amounts = {}
    for node in chain:
        for spec in node.quotas:
            if spec.center_key not in (center, quotas.ALL_CENTERS):
                continue
            for resource, value in spec.limits().items():
                result[resource] = min(value, result.get(resource, value))
    return result


def project_quota(limits: Mapping[quotas.Resource, int]) -> ProjectQuota:
    ram_gb = limits.get(quotas.Resource.RAM_GB)
    return ProjectQuota(
        cores=limits.get(quotas.Resource.VCPU),
        ram_mib=None if ram_gb is None else ram_gb * MIB_PER_GB,
        instances=limits.get(quotas.Resource.INSTANCES),
        gigabytes=limits.get(quotas.Resource.VOLUME_GB),
    )


def namespace_requests(limits: Mapping[quotas.Resource, int]) -> tuple[str | None, str | None]:
    """``(requests.cpu, requests.memory)`` of a ResourceQuota."""
    vcpu = limits.get(quotas.Resource.VCPU)
    ram_gb = limits.get(quotas.Resource.RAM_GB)
    return (None if vcpu is None else str(vcpu), None if ram_gb is None else f"{ram_gb}Gi")


# --- the org tree ----------------------------------------------------------------------------------


def check_org(org: topo.OrgNode) -> None:
    """Refuse a tree no foundation can be declared from (``topology.check_org_tree``: the same
    rules the topology parser applies, for trees built elsewhere, from the store or by hand)."""
    topo.check_org_tree(org)


@dataclasses.dataclass(frozen=True)
class OrgEntry:
    """One org node as a flat row (the store keeps the tree this way)."""

    id: str
    parent: str | None
    display_name: str
    kind: str
    limits: Mapping[tuple[str, quotas.Resource], int]
    """Limits keyed by (center name or ``quotas.ALL_CENTERS``, resource)."""


def org_from_entries(entries: Sequence[OrgEntry]) -> topo.OrgNode:
    """Build the org tree from flat rows; refuse orphans and anything but exactly one root."""
    ids = {entry.id for entry in entries}
    for entry in entries:
        if entry.parent is not None and entry.parent not in ids:
            raise errors.TopologyError(
                f"{entry.kind} {entry.id!r} names parent {entry.parent!r}, which is not in the org tree",
                field=f"org.{entry.id}.parent",
            )
    roots = [entry for entry in entries if entry.parent is None]
    if len(roots) != 1:
        names = ", ".join(sorted(entry.id for entry in roots)) or "none"
        raise errors.TopologyError(f"the org tree needs exactly one root (found: {names})", field="org")
    children: dict[str, list[OrgEntry]] = {}
    for entry in sorted(entries, key=lambda item: item.id):
        if entry.parent is not None:
            children.setdefault(entry.parent, []).append(entry)

    def build(entry: OrgEntry, path: str) -> topo.OrgNode:
        try:
            kind = topo.OrgKind(entry.kind)
        except ValueError:
            raise errors.TopologyError(f"unknown org kind {entry.kind!r}", field=f"{path}.kind") from None
        return topo.OrgNode(
            id=entry.id,
            display_name=entry.display_name,
            kind=kind,
            quotas=_quota_specs(entry.limits),
            children=tuple(build(child, f"{path}.{child.id}") for child in children.get(entry.id, [])),
        )

    return build(roots[0], f"org.{roots[0].id}")


def _quota_specs(limits: Mapping[tuple[str, quotas.Resource], int]) -> tuple[topo.QuotaSpec, ...]:
    by_center: dict[str, dict[str, int]] = {}
    for (center, resource), value in limits.items():
        by_center.setdefault(center, {})[resource.value] = value
    return tuple(
        topo.QuotaSpec.model_validate({"center": "all" if center == quotas.ALL_CENTERS else center, **values})
        for center, values in sorted(by_center.items())
    )


def tenants_of(org: topo.OrgNode) -> list[tuple[topo.OrgNode, tuple[topo.OrgNode, ...]]]:
    """Every leaf of the tree with its chain from the root (inclusive), in tree order."""
    result: list[tuple[topo.OrgNode, tuple[topo.OrgNode, ...]]] = []

    def visit(node: topo.OrgNode, chain: tuple[topo.OrgNode, ...]) -> None:
        chain = (*chain, node)
        if not node.children:
            result.append((node, chain))
        for child in node.children:
            visit(child, chain)

    visit(org, ())
    return result


# --- declaring -------------------------------------------------------------------------------------


def tenant_pool(topology: topo.Topology, center: str) -> tuple[str, str] | None:
    """The allocation pool of the tenant subnets in ``center``: its slice of its workload
    network's range when that network is the tenant range (``TENANT_SUBNET_CIDR``), as the
    servers' ports ask for it (``drivers.base.PortRequest.pool``)."""
    network = topology.workload_network(center)
    if network is None or str(network.subnet) != TENANT_SUBNET_CIDR:
        return None
    return topology.allocation_pool(center, network.name)


def declare(topology: topo.Topology, *, org: topo.OrgNode | None = None) -> Foundation:
    """The foundation of every center; ``org`` replaces the topology's quota tree (the store's, say)."""
    tree = topology.org if org is None else org
    check_org(tree)
    tenants = tenants_of(tree)
    centers = []
    for center in foundation_centers(topology):
        backends = backends_of(center)
        projects: list[Project] = []
        namespaces: list[Namespace] = []
        for node, chain in tenants:
            limits = effective_limits(chain, center=center.name)
            org_path = tuple(ancestor.id for ancestor in chain)
            if Backend.OPENSTACK in backends:
                projects.append(
                    Project(
                        center=center.name,
                        name=node.id,
                        display_name=node.display_name,
                        org_path=org_path,
                        quota=project_quota(limits),
                        network_name=node.id + NETWORK_SUFFIX,
                        subnet_name=node.id + SUBNET_SUFFIX,
                        subnet_cidr=TENANT_SUBNET_CIDR,
                        allocation_pool=tenant_pool(topology, center.name),
                    )
                )
            if Backend.KUBERNETES in backends:
                cpu, memory = namespace_requests(limits)
                namespaces.append(
                    Namespace(
                        center=center.name,
                        name=node.id,
                        display_name=node.display_name,
                        org_path=org_path,
                        requests_cpu=cpu,
                        requests_memory=memory,
                    )
                )
        centers.append(
            CenterFoundation(
                center=center.name,
                role=center.role,
                backends=backends,
                projects=tuple(projects),
                namespaces=tuple(namespaces),
            )
        )
    return Foundation(
        topology=topology.name, tenants=tuple(node.id for node, _chain in tenants), centers=tuple(centers)
    )


# --- comparing -------------------------------------------------------------------------------------

Inventory = dict[tuple[ResourceKind, str, str], dict[str, str | int | None]]
"""(kind, center, name) → the fields that matter for drift."""


def inventory(foundation: Foundation) -> Inventory:
    """Every declared resource with its comparable fields."""
    result: Inventory = {}
    for center in foundation.centers:
        for project in center.projects:
            result[("project", center.center, project.name)] = {
                "display_name": project.display_name,
                "quota.cores": project.quota.cores,
                "quota.ram_mib": project.quota.ram_mib,
                "quota.instances": project.quota.instances,
                "quota.gigabytes": project.quota.gigabytes,
            }
            result[("network", center.center, project.network_name)] = {
                "project": project.name,
                "subnet_cidr": project.subnet_cidr,
            }
        for namespace in center.namespaces:
            result[("namespace", center.center, namespace.name)] = {
                "display_name": namespace.display_name,
                "hard.requests.cpu": namespace.requests_cpu,
                "hard.requests.memory": namespace.requests_memory,
            }
    return result


EXISTS_FIELD = "(exists)"


def diff(*, declared: Foundation, stored: Foundation) -> list[Difference]:
    """How ``stored`` differs from ``declared``, sorted by center, kind, name and field."""
    left, right = inventory(declared), inventory(stored)
    differences: list[Difference] = []
    for key in sorted({*left, *right}, key=lambda item: (item[1], item[0], item[2])):
        kind, center, name = key
        if key not in right or key not in left:
            differences.append(
                Difference(
                    kind=kind,
                    center=center,
                    name=name,
                    field=EXISTS_FIELD,
                    declared="yes" if key in left else None,
                    stored="yes" if key in right else None,
                )
            )
            continue
        for field in sorted({*left[key], *right[key]}):
            a, b = left[key].get(field), right[key].get(field)
            if a != b:
                differences.append(
                    Difference(kind=kind, center=center, name=name, field=field, declared=a, stored=b)
                )
    return differences
