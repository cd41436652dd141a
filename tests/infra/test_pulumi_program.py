"""The ``infra/`` Pulumi program, run under mocks for the shipped topology.

Expectations are read straight from the topology (leaves of the org tree, their own limits, the
centers' roles), not from ``cloudctl.model.foundation``, so these tests check that function too.
"""

from __future__ import annotations

import copy
import runpy
from pathlib import Path
from typing import Any

import foundation_components
import pulumi
import pytest
import yaml

from cloudctl import errors
from cloudctl.model import foundation
from cloudctl.model import topology as topo
from tests.conftest import TOPOLOGY
from tests.infra.conftest import INFRA, Declare, RecordingMocks, every_urn

PROJECT = "openstack:identity/project:Project"
COMPUTE_QUOTA = "openstack:compute/quotaSetV2:QuotaSetV2"
VOLUME_QUOTA = "openstack:blockstorage/quoteSetV3:QuoteSetV3"
NETWORK = "openstack:networking/network:Network"
SUBNET = "openstack:networking/subnet:Subnet"
NAMESPACE = "kubernetes:core/v1:Namespace"
RESOURCE_QUOTA = "kubernetes:core/v1:ResourceQuota"


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def shipped() -> topo.Topology:
    return foundation_components.load_topology(TOPOLOGY)


def tenants(topology: topo.Topology) -> list[topo.OrgNode]:
    return [node for node, _parent in topology.org.walk() if not node.children]


def own_limits(node: topo.OrgNode, center: str) -> topo.QuotaSpec:
    return next(spec for spec in node.quotas if spec.center == center)


def centers_the_tiers_need(topology: topo.Topology) -> list[str]:
    needs_dr = any(tier.dr_copy is not topo.DrCopy.NONE for tier in topology.tiers)
    roles = {topo.CenterRole.LOCAL, topo.CenterRole.DR} if needs_dr else {topo.CenterRole.LOCAL}
    return [center.name for center in topology.centers if center.role in roles]


def dr_center(topology: topo.Topology) -> str:
    return topology.centers_with_role(topo.CenterRole.DR)[0].name


def physical_names(registered: Any) -> list[tuple[str, str, str]]:
    names = []
    for resource in registered.resources:
        inputs = resource.inputs
        physical = inputs.get("name") or inputs.get("metadata", {}).get("name") or ""
        names.append((resource.typ, resource.name, physical))
    return sorted(names)


def test_every_tenant_gets_its_project_and_namespace_in_every_center_its_tiers_need(
    declare: Declare, shipped: topo.Topology
) -> None:
    expected_tenants = {node.id for node in tenants(shipped)}
    needed = centers_the_tiers_need(shipped)
    assert [center.center for center in foundation.declare(shipped).centers] == needed
    assert dr_center(shipped) in needed
    for center in needed:
        registered = declare(
            lambda center=center: foundation_components.declare_center(shipped, center=center)
        )
        assert {p.inputs["name"] for p in registered.of_type(PROJECT)} == expected_tenants, center
        assert {n.inputs["metadata"]["name"] for n in registered.of_type(NAMESPACE)} == expected_tenants
        assert {n.inputs["name"] for n in registered.of_type(NETWORK)} == {
            f"{t}-net" for t in expected_tenants
        }
        assert len(registered.of_type(SUBNET)) == len(expected_tenants)
        assert len(registered.of_type(COMPUTE_QUOTA)) == len(registered.of_type(VOLUME_QUOTA))
        assert len(registered.of_type(RESOURCE_QUOTA)) == len(expected_tenants)


def test_a_center_no_tier_needs_gets_nothing(shipped: topo.Topology, mocks: RecordingMocks) -> None:
    management = shipped.centers_with_role(topo.CenterRole.MANAGEMENT)[0].name
    with pytest.raises(errors.NotFound) as refused:
        foundation_components.declare_center(shipped, center=management)
    assert refused.value.field == "center"
    assert mocks.registered == []


def test_the_quotas_declared_equal_the_quota_tree(declare: Declare, shipped: topo.Topology) -> None:
    for center in centers_the_tiers_need(shipped):
        registered = declare(
            lambda center=center: foundation_components.declare_center(shipped, center=center)
        )
        compute = registered.by_name(COMPUTE_QUOTA)
        volume = registered.by_name(VOLUME_QUOTA)
        hard = {
            q.inputs["metadata"]["namespace"]: q.inputs["spec"]["hard"]
            for q in registered.of_type(RESOURCE_QUOTA)
        }
        for node in tenants(shipped):
            spec = own_limits(node, center)
            declared = compute[f"{center}-{node.id}-compute-quota"].inputs
            assert (declared["cores"], declared["ram"], declared["instances"]) == (
                spec.vcpu,
                spec.ram_gb * 1024 if spec.ram_gb is not None else None,
                spec.instances,
            ), (center, node.id)
            assert volume[f"{center}-{node.id}-volume-quota"].inputs["gigabytes"] == spec.volume_gb
            assert hard[node.id] == {"requests.cpu": str(spec.vcpu), "requests.memory": f"{spec.ram_gb}Gi"}


def test_the_dr_center_gets_exactly_the_headroom_the_tiers_reserve(
    declare: Declare, shipped: topo.Topology
) -> None:
    dr = dr_center(shipped)
    registered = declare(lambda: foundation_components.declare_center(shipped, center=dr))
    cores = {
        q.name.removeprefix(f"{dr}-").removesuffix("-compute-quota"): q.inputs["cores"]
        for q in registered.of_type(COMPUTE_QUOTA)
    }
    reserved = {node.id: own_limits(node, dr).vcpu for node in tenants(shipped)}
    assert cores == reserved
    assert sum(cores.values()) == sum(v for v in reserved.values() if v is not None)
    gigabytes = {q.inputs["projectId"]: q.inputs["gigabytes"] for q in registered.of_type(VOLUME_QUOTA)}
    assert sorted(gigabytes.values()) == sorted(own_limits(node, dr).volume_gb for node in tenants(shipped))


def test_without_a_tier_copying_to_dr_the_dr_center_gets_nothing(
    raw: dict[str, Any], mocks: RecordingMocks
) -> None:
    data = copy.deepcopy(raw)
    for tier in data["tiers"]:
        tier["dr_copy"] = "none"
    local_only = topo.from_data(data)
    assert dr_center(local_only) not in [c.center for c in foundation.declare(local_only).centers]
    with pytest.raises(errors.NotFound):
        foundation_components.declare_center(local_only, center=dr_center(local_only))
    assert mocks.registered == []


def test_names_are_stable_across_runs_and_an_added_department_renames_nothing(
    declare: Declare, shipped: topo.Topology, raw: dict[str, Any]
) -> None:
    center = centers_the_tiers_need(shipped)[0]
    first = declare(lambda: foundation_components.declare_center(shipped, center=center))
    again = declare(lambda: foundation_components.declare_center(shipped, center=center))
    assert physical_names(first) == physical_names(again)
    for project in first.of_type(PROJECT):
        assert project.name == f"{center}-{project.inputs['name']}"

    data = copy.deepcopy(raw)
    district = next(node for node in data["org"]["children"] if node.get("kind") == "district")
    district["children"].insert(
        0, {"id": "aaa-new-department", "display_name": "新设部门", "kind": "department"}
    )
    grown = declare(lambda: foundation_components.declare_center(topo.from_data(data), center=center))
    before = {(r.typ, r.name): r.inputs for r in first.resources}
    after = {(r.typ, r.name): r.inputs for r in grown.resources}
    assert before.items() <= after.items()
    assert f"{center}-aaa-new-department" in grown.by_name(PROJECT)


def test_a_quota_over_its_parents_is_refused_before_any_resource(
    tmp_path: Path, raw: dict[str, Any], shipped: topo.Topology, mocks: RecordingMocks
) -> None:
    data = copy.deepcopy(raw)
    data["org"]["children"][0]["children"][0]["quotas"][0]["vcpu"] = 100_000
    broken = tmp_path / "topology.yaml"
    broken.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(errors.TopologyError) as refused:
        foundation_components.load_topology(broken)
    assert refused.value.field == "org.children[0].children[0].quotas[0].vcpu"

    parent = shipped.org.children[0]
    greedy = parent.children[0].model_copy(
        update={"quotas": (topo.QuotaSpec(center=parent.quotas[0].center, vcpu=100_000),)}
    )
    tree = shipped.org.model_copy(
        update={"children": (parent.model_copy(update={"children": (greedy,)}), *shipped.org.children[1:])}
    )
    with pytest.raises(errors.TopologyError) as refused_tree:
        foundation_components.declare_center(shipped, center=centers_the_tiers_need(shipped)[0], org=tree)
    assert "exceeds the limit" in refused_tree.value.reason
    assert mocks.registered == []


def test_a_department_without_a_parent_is_refused_before_any_resource(
    raw: dict[str, Any], mocks: RecordingMocks
) -> None:
    data = copy.deepcopy(raw)
    data["org"] = {"id": "lonely", "display_name": "无上级部门", "kind": "department"}
    with pytest.raises(errors.TopologyError) as refused:
        orphaned = topo.from_data(data)
        foundation_components.declare_center(orphaned, center=centers_the_tiers_need(orphaned)[0])
    assert "has no parent" in refused.value.reason
    assert mocks.registered == []


def test_the_program_declares_the_stack_s_center(shipped: topo.Topology) -> None:
    center = centers_the_tiers_need(shipped)[-1]
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, stack=center, preview=False)

    @pulumi.runtime.test
    def run_main() -> pulumi.Output[list[str]]:
        program = runpy.run_path(str(INFRA / "__main__.py"), run_name="__main__")
        return pulumi.Output.all(*every_urn(program["declared"]))

    run_main()
    centers = {r.name for r in mocks.registered if r.typ == "cloudctl:infra:CenterFoundation"}
    assert centers == {center}
    assert len([r for r in mocks.registered if r.typ == PROJECT]) == len(tenants(shipped))


def test_tenant_subnets_are_declared_with_their_centers_allocation_pool(declare: Declare) -> None:
    openstack_topology = foundation_components.load_topology(TOPOLOGY.parent / "topology.openstack.yaml")
    registered = declare(lambda: foundation_components.declare_center(openstack_topology, center="qd-b"))
    pools = [subnet.inputs.get("allocationPools") for subnet in registered.of_type(SUBNET)]
    assert pools and all(pool == [{"start": "10.0.0.170", "end": "10.0.0.254"}] for pool in pools), pools[:1]
