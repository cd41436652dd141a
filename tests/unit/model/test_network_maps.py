"""The topology's network maps: which address a server takes in another center, and the one-line
errors (naming the path in the file) of maps that cannot be followed."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from cloudctl import errors
from cloudctl.model import topology as topo
from tests.conftest import TOPOLOGY

SHIPPED: dict[str, Any] = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))


def shipped() -> dict[str, Any]:
    return copy.deepcopy(SHIPPED)


def refused(data: dict[str, Any]) -> errors.TopologyError:
    with pytest.raises(errors.TopologyError) as caught:
        topo.from_data(data)
    assert "\n" not in str(caught.value)
    return caught.value


def test_a_stretched_network_keeps_the_address_in_both_directions() -> None:
    topology = topo.from_data(shipped())
    there = topology.move_address(center="qd-a", network="gov-apps", address="10.16.3.7", to_center="qd-b")
    back = topology.move_address(center="qd-b", network="gov-apps", address="10.16.3.7", to_center="qd-a")
    assert (
        there
        == back
        == topo.AddressMove(
            network="gov-apps", to_network="gov-apps", old="10.16.3.7", new="10.16.3.7", stretched=True
        )
    )
    assert there is not None and there.kept


def test_a_routed_network_remaps_the_host_part_and_back() -> None:
    topology = topo.from_data(shipped())
    there = topology.move_address(center="qd-b", network="gov-apps", address="10.16.3.7", to_center="dz-dr")
    assert there is not None and (there.to_network, there.new, there.kept) == (
        "gov-apps-dr",
        "10.80.3.7",
        False,
    )
    back = topology.move_address(center="dz-dr", network="gov-apps-dr", address="10.80.3.7", to_center="qd-a")
    assert back is not None and (back.to_network, back.new) == ("gov-apps", "10.16.3.7")


def test_a_pinned_address_wins_over_the_host_part_both_ways() -> None:
    data = shipped()
    data["network_maps"][1]["addresses"] = {"10.16.0.10": "10.80.15.250"}
    topology = topo.from_data(data)
    there = topology.move_address(center="qd-a", network="gov-apps", address="10.16.0.10", to_center="dz-dr")
    assert there is not None and there.new == "10.80.15.250"
    back = topology.move_address(
        center="dz-dr", network="gov-apps-dr", address="10.80.15.250", to_center="qd-a"
    )
    assert back is not None and back.new == "10.16.0.10"


def test_no_map_or_an_address_outside_the_subnet_moves_nothing() -> None:
    topology = topo.from_data(shipped())
    assert (
        topology.move_address(center="qd-a", network="gov-apps", address="192.168.1.1", to_center="qd-b")
        is None
    )
    assert (
        topology.move_address(center="qd-a", network="gov-apps", address="10.16.0.2", to_center="mgmt")
        is None
    )


def test_stretched_centers_share_one_segment_and_a_routed_center_has_its_own() -> None:
    topology = topo.from_data(shipped())
    assert (
        topology.segment("qd-a", "gov-apps")
        == topology.segment("qd-b", "gov-apps")
        == ("qd-a/gov-apps+qd-b/gov-apps")
    )
    assert topology.segment("dz-dr", "gov-apps-dr") == "dz-dr/gov-apps-dr"
    assert topology.workload_network("mgmt") is None


def test_the_centers_a_map_joins_hand_out_addresses_from_slices_of_their_own() -> None:
    """Three /20s joined by maps: 4,093 hosts (.0.2 to .15.254), 1,364 each in the order of
    their names, the last taking the remainder; every address a center hands out is neither
    one the stretched peer hands out nor one a failover to Dezhou maps a server onto."""
    topology = topo.from_data(shipped())
    pools = {
        c: topology.allocation_pool(c, n)
        for c, n in [("dz-dr", "gov-apps-dr"), ("qd-a", "gov-apps"), ("qd-b", "gov-apps")]
    }
    assert pools == {
        "dz-dr": ("10.80.0.2", "10.80.5.85"),
        "qd-a": ("10.16.5.86", "10.16.10.169"),
        "qd-b": ("10.16.10.170", "10.16.15.254"),
    }
    qd_a_last = topology.move_address(
        center="qd-a", network="gov-apps", address="10.16.10.169", to_center="dz-dr"
    )
    assert qd_a_last is not None and qd_a_last.new == "10.80.10.169"  # outside Dezhou's own slice


def test_a_network_no_map_joins_has_no_pool_and_tiny_subnets_share_none() -> None:
    data = shipped()
    data["networks"].append({"center": "mgmt", "name": "ops", "subnet": "10.200.0.0/24"})
    assert topo.from_data(data).allocation_pool("mgmt", "ops") is None
    data = shipped()
    for network in data["networks"]:
        network["subnet"] = {"gov-apps": "10.16.0.0/30", "gov-apps-dr": "10.80.0.0/30"}[network["name"]]
    data["network_maps"] = [m for m in data["network_maps"] if m.get("stretched")]
    assert topo.from_data(data).allocation_pool("qd-a", "gov-apps") is None  # one host for two


def test_a_topology_without_networks_maps_nothing() -> None:
    data = shipped()
    del data["networks"], data["network_maps"]
    topology = topo.from_data(data)
    assert topology.workload_network("qd-a") is None
    assert (
        topology.move_address(center="qd-a", network="gov-apps", address="10.16.0.2", to_center="qd-b")
        is None
    )


def test_overlapping_maps_of_one_pair_of_centers_are_refused() -> None:
    data = shipped()
    data["networks"].append({"center": "dz-dr", "name": "spare", "subnet": "10.96.0.0/20"})
    data["network_maps"].append(
        {"between": [{"center": "qd-a", "network": "gov-apps"}, {"center": "dz-dr", "network": "spare"}]}
    )
    error = refused(data)
    assert error.field == "network_maps[3].between"
    assert "overlaps network_maps[1]" in error.reason and "10.16.0.0/20 of qd-a" in error.reason


def test_overlapping_subnets_of_one_center_are_refused() -> None:
    data = shipped()
    data["networks"].append({"center": "qd-a", "name": "office", "subnet": "10.16.8.0/24"})
    error = refused(data)
    assert (error.field, error.reason) == (
        "networks[3].subnet",
        "10.16.8.0/24 overlaps 10.16.0.0/20 of network 'gov-apps' (networks[0]) in qd-a",
    )


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        (
            lambda d: d["network_maps"][1]["between"][1].update(center="dz-x"),
            "network_maps[1].between[1].center",
            "unknown center 'dz-x'",
        ),
        (
            lambda d: d["network_maps"][1]["between"][1].update(network="nowhere"),
            "network_maps[1].between[1].network",
            "unknown network 'nowhere' of dz-dr (declare it under networks)",
        ),
        (
            lambda d: d["networks"][2].update(center="dz-x"),
            "networks[2].center",
            "unknown center 'dz-x'",
        ),
        (
            lambda d: d["network_maps"][1].update(addresses={"10.16.0.10": "10.81.0.10"}),
            "network_maps[1].addresses.10.16.0.10",
            "10.81.0.10 is outside 10.80.0.0/20 of dz-dr/gov-apps-dr",
        ),
        (
            lambda d: d["network_maps"][1].update(addresses={"10.17.0.10": "10.80.0.10"}),
            "network_maps[1].addresses.10.17.0.10",
            "10.17.0.10 is outside 10.16.0.0/20 of qd-a/gov-apps",
        ),
        (
            lambda d: d["network_maps"][1].update(stretched=True),
            "network_maps[1].stretched",
            "a stretched network keeps its addresses: 10.16.0.0/20 and 10.80.0.0/20 differ",
        ),
        (
            lambda d: d["networks"][2].update(subnet="10.80.0.0/24"),
            "network_maps[1].between",
            "a re-mapped subnet keeps its size: 10.16.0.0/20 and 10.80.0.0/24 differ",
        ),
    ],
)
def test_a_map_that_cannot_be_followed_is_one_line_naming_its_path(
    change: Any, field: str, reason: str
) -> None:
    data = shipped()
    change(data)
    error = refused(data)
    assert (error.field, error.reason) == (field, reason)


def test_a_subnet_that_is_no_network_address_names_its_path() -> None:
    data = shipped()
    data["networks"][0]["subnet"] = "10.16.0.5/20"
    assert refused(data).field == "networks[0].subnet"
