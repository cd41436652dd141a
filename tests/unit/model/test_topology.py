"""The topology model: the shipped example is valid and realistic; invalid files name the path."""

from __future__ import annotations

import copy
import subprocess
import sys
from typing import Any

import pytest
import yaml

from cloudctl import errors
from cloudctl.model import quotas, topology
from tests.conftest import TOPOLOGY


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def rejected(data: dict[str, Any]) -> errors.TopologyError:
    with pytest.raises(errors.TopologyError) as caught:
        topology.from_data(data)
    return caught.value


def test_shipped_topology_has_the_four_centers_of_two_sites() -> None:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    roles = sorted(center.role.value for center in parsed.centers)
    assert roles == ["dr", "local", "local", "management"]
    local_sites = {center.site for center in parsed.centers_with_role(topology.CenterRole.LOCAL)}
    dr_sites = {center.site for center in parsed.centers_with_role(topology.CenterRole.DR)}
    assert len(local_sites) == 1
    assert dr_sites.isdisjoint(local_sites)
    modes = {link.mode for link in parsed.links}
    assert {topology.LinkMode.SYNC, topology.LinkMode.ASYNC} <= modes


def test_shipped_org_tree_is_a_city_with_districts_and_twenty_departments() -> None:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    nodes = [node for node, _parent in parsed.org.walk()]
    kinds = [node.kind for node in nodes]
    assert kinds.count(topology.OrgKind.CITY) == 1
    assert kinds.count(topology.OrgKind.DISTRICT) >= 3
    assert kinds.count(topology.OrgKind.DEPARTMENT) + kinds.count(topology.OrgKind.BUREAU) >= 20
    for node in nodes:
        assert node.id.isascii()
        assert any("\u4e00" <= char <= "\u9fff" for char in node.display_name), node.id
    depths = {node.id: 0 for node in nodes}
    for node, parent in parsed.org.walk():
        if parent is not None:
            depths[node.id] = depths[parent] + 1
    assert max(depths.values()) >= 2


def test_every_tier_names_a_level_that_contains_its_targets() -> None:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    for tier in parsed.tiers:
        assert parsed.level_achieved(rto_s=tier.rto_target_s, rpo_s=tier.rpo_target_s) == tier.gbt20988_level


@pytest.mark.parametrize(
    ("rto_s", "rpo_s", "level"),
    [
        (30, 0, 6),
        (600, 0, 6),
        (7200, 0, 5),
        (600, 900, 5),
        (7200, 3600, 4),
        (3 * 86400, 3600, 3),
        (3 * 86400, 3 * 86400, 2),
        (3 * 86400, 8 * 86400, None),
    ],
)
def test_level_achieved_is_the_highest_level_containing_both_values(
    rto_s: int, rpo_s: int, level: int | None
) -> None:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    assert parsed.level_achieved(rto_s=rto_s, rpo_s=rpo_s) == level


def test_negative_capacity_names_its_path(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["centers"][2]["capacity"]["vcpu"] = -4
    error = rejected(data)
    assert error.field == "centers[2].capacity.vcpu"
    assert "greater than or equal to 0" in error.reason
    assert error.exit_code == 2


def test_unknown_field_is_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["centers"][0]["colour"] = "blue"
    error = rejected(data)
    assert (error.field, error.reason) == ("centers[0].colour", "unknown field")


def test_link_to_an_unknown_center_is_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["links"][0]["between"] = ["qd-a", "qd-c"]
    error = rejected(data)
    assert error.field == "links[0].between[1]"
    assert "qd-c" in error.reason


def test_child_quota_over_its_parent_names_the_ancestor(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    bureau = data["org"]["children"][0]
    bureau["children"][0]["quotas"][0]["vcpu"] = bureau["quotas"][0]["vcpu"] + 1
    error = rejected(data)
    assert error.field == "org.children[0].children[0].quotas[0].vcpu"
    assert f"ancestor '{bureau['id']}'" in error.reason


def test_child_per_center_quota_is_bounded_by_the_parent_all_centers_limit(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    bureau = data["org"]["children"][0]
    all_centers = next(spec for spec in bureau["quotas"] if spec["center"] == "all")
    bureau["quotas"] = [all_centers]
    child_spec = bureau["children"][0]["quotas"][0]
    child_spec["instances"] = all_centers["instances"] + 1
    error = rejected(data)
    assert error.field == "org.children[0].children[0].quotas[0].instances"
    assert f"ancestor '{bureau['id']}' on all centers" in error.reason


def test_duplicate_org_ids_are_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["org"]["children"][1]["id"] = data["org"]["children"][0]["id"]
    error = rejected(data)
    assert error.field == "org.children[1].id"


def test_non_ascii_org_id_is_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["org"]["children"][0]["id"] = "人社局"
    error = rejected(data)
    assert error.field == "org.children[0].id"
    assert "ASCII" in error.reason


def test_tier_targets_outside_its_declared_level_are_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["tiers"][0]["rpo_target_s"] = 600
    error = rejected(data)
    assert error.field == "tiers[0].gbt20988_level"
    assert "outside level 6" in error.reason


def test_quota_on_an_unknown_center_is_rejected(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["org"]["quotas"][0]["center"] = "sh-x"
    error = rejected(data)
    assert error.field == "org.quotas[0].center"


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(errors.TopologyError) as caught:
        topology.parse("version: 1\ncenters: [\n")
    assert caught.value.field is not None
    assert caught.value.field.startswith("line ")


def test_yaml_nested_too_deep_is_one_line_not_a_crash() -> None:
    # libyaml's composer recurses on the C stack: tens of thousands of brackets killed the process
    script = "import sys; from cloudctl import errors; from cloudctl.model import topology\n"
    script += "try:\n    topology.parse('centers: ' + '[' * 50_000 + ']' * 50_000)\n"
    script += "except errors.TopologyError as error:\n    print(error.one_line())\n"
    argv = [sys.executable, "-c", script]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.startswith("line 1: not valid YAML (nested deeper than 100 levels")


def test_aliases_that_expand_past_the_bound_are_refused_before_validation() -> None:
    # a few kilobytes of aliases of aliases: the org tree below holds a million nodes to validate
    lines = ["org:", "  id: city", "  display_name: x", "  kind: city", "  children:"]
    lines.append("    - &n0 {id: leaf, display_name: x, kind: department}")
    for level in range(1, 7):
        children = ", ".join([f"*n{level - 1}"] * 10)
        lines.append(
            f"    - &n{level} {{id: n{level}, display_name: x, kind: bureau, children: [{children}]}}"
        )
    with pytest.raises(errors.TopologyError) as caught:
        topology.parse("\n".join(lines) + "\n")
    assert caught.value.field is not None and caught.value.field.startswith("line ")
    assert "aliases expand to more than 100000 nodes" in caught.value.reason


def test_a_key_given_twice_is_refused_naming_its_second_line() -> None:
    # YAML keeps the last of two equal keys: a second `centers:` block dropped the first unsaid
    text = TOPOLOGY.read_text(encoding="utf-8") + "centers: []\n"
    with pytest.raises(errors.TopologyError) as caught:
        topology.parse(text)
    assert caught.value.one_line() == (
        f"line {text.count(chr(10))}: not valid YAML (duplicate key 'centers')"
    )
    with pytest.raises(errors.TopologyError) as caught:
        topology.parse("sites:\n  - {name: a, name: b}\n")
    assert caught.value.one_line() == "line 2: not valid YAML (duplicate key 'name')"


def test_offering_amounts_count_an_instance_per_vm() -> None:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    small = parsed.offering("vm.small")
    assert small.amounts()[quotas.Resource.INSTANCES] == 1
    bucket = parsed.offering("bucket.100g")
    assert quotas.Resource.INSTANCES not in bucket.amounts()


def test_a_department_with_children_is_rejected_naming_where(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    bureau = next(node for node in data["org"]["children"] if node.get("children"))
    department = bureau["children"][0]
    department["children"] = [{"id": "sub-office", "display_name": "下属科", "kind": "department"}]
    error = rejected(data)
    index = data["org"]["children"].index(bureau)
    assert error.field == f"org.children[{index}].children[0].children"
    assert f"department '{department['id']}' cannot have children ('sub-office')" in error.reason


def test_data_classes_and_the_count_limit_are_declared_in_the_topology() -> None:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    assert parsed.data_classes == ("public", "internal", "sensitive", "secret")
    assert parsed.catalog_limits.max_count == 100
    assert parsed.max_count(parsed.offering("vm.small")) == 100


def test_an_older_topology_without_them_gets_the_defaults(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data.pop("data_classes", None)
    data.pop("catalog_limits", None)
    parsed = topology.from_data(data)
    assert parsed.data_classes == topology.DEFAULT_DATA_CLASSES
    assert parsed.catalog_limits.max_count == topology.DEFAULT_MAX_COUNT


def test_an_offering_may_lower_the_count_limit_only(raw: dict[str, Any]) -> None:
    data = copy.deepcopy(raw)
    data["catalog_limits"] = {"max_count": 20}
    data["catalog"][1]["max_count"] = 5
    parsed = topology.from_data(data)
    assert parsed.max_count(parsed.catalog[0]) == 20
    assert parsed.max_count(parsed.catalog[1]) == 5
    data["catalog"][1]["max_count"] = 21
    error = rejected(data)
    assert (error.field, error.reason) == ("catalog[1].max_count", "21 exceeds catalog_limits.max_count 20")


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"data_classes": []}, "data_classes", "declare at least one data class"),
        ({"data_classes": ["public", "internal", "public"]}, "data_classes[2]", "duplicate name 'public'"),
        ({"data_classes": ["Public"]}, "data_classes[0]", "must be a lower-case ASCII id"),
        ({"catalog_limits": {"max_count": 0}}, "catalog_limits.max_count", "greater than or equal to 1"),
        ({"catalog_limits": {"max": 10}}, "catalog_limits.max", "unknown field"),
    ],
)
def test_bad_data_classes_or_limits_name_their_path(
    raw: dict[str, Any], change: dict[str, Any], field: str, reason: str
) -> None:
    error = rejected({**copy.deepcopy(raw), **change})
    assert error.field == field
    assert reason in error.reason
    assert "\n" not in error.one_line()


def test_an_unknown_data_class_names_the_field_and_the_known_ones() -> None:
    parsed = topology.parse(TOPOLOGY.read_text(encoding="utf-8"))
    parsed.check_data_class("secret")
    with pytest.raises(errors.InvalidInput) as caught:
        parsed.check_data_class("top-secret", field="consumer_data_class")
    assert caught.value.one_line() == (
        "consumer_data_class: unknown data class 'top-secret' (known: public, internal, sensitive, secret)"
    )
