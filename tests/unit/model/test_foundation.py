"""The declared foundation: which centers, which tenants, which quotas, and how two foundations differ."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from cloudctl import errors
from cloudctl.model import foundation, quotas
from cloudctl.model import topology as topo
from tests.conftest import TOPOLOGY


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def shipped() -> topo.Topology:
    return topo.parse(TOPOLOGY.read_text(encoding="utf-8"))


def entry(node_id: str, parent: str | None, kind: str, **limits: int) -> foundation.OrgEntry:
    return foundation.OrgEntry(
        id=node_id,
        parent=parent,
        display_name=node_id.upper(),
        kind=kind,
        limits={("qd-a", quotas.Resource(name)): value for name, value in limits.items()},
    )


def test_the_shipped_topology_declares_every_leaf_in_the_local_and_dr_centers(shipped: topo.Topology) -> None:
    declared = foundation.declare(shipped)
    leaves = [node.id for node, _parent in shipped.org.walk() if not node.children]
    assert list(declared.tenants) == leaves
    roles = [center.role for center in declared.centers]
    assert sorted(roles) == sorted(
        c.role for c in shipped.centers if c.role is not topo.CenterRole.MANAGEMENT
    )
    for center in declared.centers:
        assert center.backends == (foundation.Backend.OPENSTACK, foundation.Backend.KUBERNETES)
        assert [project.name for project in center.projects] == leaves
        assert [namespace.name for namespace in center.namespaces] == leaves


def test_backends_follow_the_capability_drivers(shipped: topo.Topology) -> None:
    center = shipped.centers_with_role(topo.CenterRole.LOCAL)[0]
    drivers = dict(center.drivers)
    drivers[topo.Capability.COMPUTE] = "openstack"
    drivers[topo.Capability.CONTAINERS] = "none"
    assert foundation.backends_of(center.model_copy(update={"drivers": drivers})) == (
        foundation.Backend.OPENSTACK,
    )
    drivers[topo.Capability.COMPUTE] = "vmware"
    drivers[topo.Capability.CONTAINERS] = "kubernetes"
    assert foundation.backends_of(center.model_copy(update={"drivers": drivers})) == (
        foundation.Backend.KUBERNETES,
    )


def test_a_project_quota_converts_units_and_leaves_unbounded_resources_unlimited() -> None:
    limits = {quotas.Resource.VCPU: 8, quotas.Resource.RAM_GB: 16}
    assert foundation.project_quota(limits) == foundation.ProjectQuota(
        cores=8, ram_mib=16 * 1024, instances=None, gigabytes=None
    )
    assert foundation.namespace_requests(limits) == ("8", "16Gi")
    assert foundation.namespace_requests({}) == (None, None)


def test_a_tenant_without_its_own_limit_gets_the_tightest_ancestor_bound() -> None:
    tree = foundation.org_from_entries(
        [
            entry("city", None, "city", vcpu=100, ram_gb=50),
            entry("district", "city", "district", vcpu=40),
            entry("dept", "district", "department"),
        ]
    )
    chain = [tree, tree.children[0], tree.children[0].children[0]]
    assert foundation.effective_limits(chain, center="qd-a") == {
        quotas.Resource.VCPU: 40,
        quotas.Resource.RAM_GB: 50,
    }
    assert foundation.effective_limits(chain, center="qd-b") == {}


def test_an_all_centers_limit_bounds_every_center(shipped: topo.Topology) -> None:
    node = topo.OrgNode(
        id="dept",
        display_name="部门",
        kind=topo.OrgKind.DEPARTMENT,
        quotas=(topo.QuotaSpec(center="qd-a", vcpu=32), topo.QuotaSpec(center="all", vcpu=20)),
    )
    assert foundation.effective_limits([node], center="qd-a") == {quotas.Resource.VCPU: 20}


def test_the_dr_center_is_left_out_when_no_tier_copies_there(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    for tier in data["tiers"]:
        tier["dr_copy"] = "none"
    declared = foundation.declare(topo.from_data(data))
    assert {center.role for center in declared.centers} == {topo.CenterRole.LOCAL}


def test_an_orphan_is_refused_naming_its_missing_parent() -> None:
    with pytest.raises(errors.TopologyError) as refused:
        foundation.org_from_entries([entry("city", None, "city"), entry("dept", "gone", "department")])
    assert refused.value.field == "org.dept.parent"
    assert "'gone'" in refused.value.reason


def test_a_department_at_the_root_is_refused(shipped: topo.Topology) -> None:
    lonely = topo.OrgNode(id="lonely", display_name="部门", kind=topo.OrgKind.DEPARTMENT)
    with pytest.raises(errors.TopologyError) as refused:
        foundation.declare(shipped, org=lonely)
    assert "has no parent" in refused.value.reason


def test_a_tree_with_a_limit_over_its_parents_is_refused() -> None:
    tree = foundation.org_from_entries(
        [entry("city", None, "city", vcpu=10), entry("dept", "city", "department", vcpu=11)]
    )
    with pytest.raises(errors.TopologyError) as refused:
        foundation.check_org(tree)
    assert refused.value.field == "org.children[0].quotas[0].vcpu"


def test_a_tree_from_the_store_with_a_department_under_a_department_is_refused() -> None:
    tree = foundation.org_from_entries(
        [entry("city", None, "city"), entry("dept", "city", "department"), entry("sub", "dept", "department")]
    )
    with pytest.raises(errors.TopologyError) as refused:
        foundation.check_org(tree)
    assert refused.value.field == "org.children[0].children"


def test_the_shipped_tree_rebuilt_from_flat_entries_declares_the_same_foundation(
    shipped: topo.Topology,
) -> None:
    entries = [
        foundation.OrgEntry(
            id=node.id,
            parent=parent,
            display_name=node.display_name,
            kind=node.kind.value,
            limits={
                (spec.center_key, resource): value
                for spec in node.quotas
                for resource, value in spec.limits().items()
            },
        )
        for node, parent in shipped.org.walk()
    ]
    rebuilt = foundation.declare(shipped, org=foundation.org_from_entries(entries))
    assert foundation.diff(declared=foundation.declare(shipped), stored=rebuilt) == []


def test_diff_names_each_changed_field_and_each_missing_resource(shipped: topo.Topology) -> None:
    declared = foundation.declare(shipped)
    center = declared.centers[0]
    first, *rest = center.projects
    changed = first.model_copy(update={"quota": first.quota.model_copy(update={"cores": 1})})
    stored = declared.model_copy(
        update={
            "centers": (center.model_copy(update={"projects": (changed, *rest[1:])}), *declared.centers[1:])
        }
    )
    differences = foundation.diff(declared=declared, stored=stored)
    assert [(d.kind, d.name, d.field, d.declared, d.stored) for d in differences] == [
        ("network", rest[0].network_name, foundation.EXISTS_FIELD, "yes", None),
        ("project", rest[0].name, foundation.EXISTS_FIELD, "yes", None),
        ("project", first.name, "quota.cores", first.quota.cores, 1),
    ]
    assert rest[0].name < first.name, "sorted by name within a kind"
    assert {d.center for d in differences} == {center.center}


def test_tenant_subnets_hand_out_only_their_centers_slice_of_a_shared_range() -> None:
    """On the OpenStack topology the tenant range 10.0.0.0/24 is the centers' workload network,
    joined by maps: each center's tenant subnets hand out its own slice; on the shipped one the
    workload network is another range, and the tenant subnets are left whole."""
    openstack_topology = topo.parse((TOPOLOGY.parent / "topology.openstack.yaml").read_text(encoding="utf-8"))
    pools = {
        center.center: {project.allocation_pool for project in center.projects}
        for center in foundation.declare(openstack_topology).centers
    }
    assert pools == {
        "dz-dr": {("10.0.0.2", "10.0.0.85")},
        "qd-a": {("10.0.0.86", "10.0.0.169")},
        "qd-b": {("10.0.0.170", "10.0.0.254")},
    }
    shipped_topology = topo.parse(TOPOLOGY.read_text(encoding="utf-8"))
    assert {
        project.allocation_pool
        for center in foundation.declare(shipped_topology).centers
        for project in center.projects
    } == {None}
