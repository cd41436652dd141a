"""The simulator driver: capacity, latency, checksummed data, faults and shared state.

The topology here is a small one of its own (centers ``mgmt``, ``east``, ``west``,
``far``), which also shows that nothing in the simulator knows the shipped names.
Every test runs on a ``ManualClock``: nothing really sleeps.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers import simulator as sim
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.model import topology
from cloudctl.store import db, simulator_state

BOOT_S = 30.0
EAST_CAPACITY = {"vcpu": 8, "ram_gb": 16, "volume_gb": 100, "object_gb": 1, "instances": 3}


def make_topology(
    *,
    east_capacity: dict[str, int] | None = None,
    east_latency_ms: float = 5.0,
    east_error_rate: float = 0.0,
) -> topology.Topology:
    def center(name: str, role: str, site: str, **extra: Any) -> dict[str, Any]:
        return {
            "name": name,
            "display_name": name.title(),
            "site": site,
            "role": role,
            "capacity": {"vcpu": 64, "ram_gb": 256, "volume_gb": 1000, "object_gb": 10, "instances": 50},
            "simulator": {"latency_ms": 1.0},
            **extra,
        }

    return topology.from_data(
        {
            "version": 1,
            "name": "test-cloud",
            "display_name": "Test cloud",
            "sites": [
                {"name": "north", "display_name": "North", "city": "North"},
                {"name": "south", "display_name": "South", "city": "South"},
            ],
            "centers": [
                center("mgmt", "management", "north"),
                center(
                    "east",
                    "local",
                    "north",
                    capacity=east_capacity or EAST_CAPACITY,
                    simulator={"latency_ms": east_latency_ms, "error_rate": east_error_rate},
                ),
                center("west", "local", "north"),
                center("far", "dr", "south"),
            ],
            "links": [
                {"between": ["east", "west"], "mode": "sync", "rtt_ms": 1.0, "bandwidth_mbps": 1000},
                {"between": ["east", "far"], "mode": "async", "rtt_ms": 10.0, "bandwidth_mbps": 100},
                {"between": ["west", "far"], "mode": "async", "rtt_ms": 10.0, "bandwidth_mbps": 100},
                {"between": ["mgmt", "east"], "mode": "control", "rtt_ms": 0.5, "bandwidth_mbps": 1000},
            ],
            "gbt20988_levels": [],
            "tiers": [],
            "catalog": [],
            "org": {"id": "city", "display_name": "City", "kind": "city"},
        }
    )


@pytest.fixture
def simulator(clock: clocks.ManualClock) -> sim.Simulator:
    return sim.Simulator(make_topology(), clock=clock, seed=1, server_boot_s=BOOT_S)


def new_server(
    drivers: base.CenterDrivers,
    name: str,
    *,
    vcpu: int = 1,
    ram_gb: int = 1,
    disk_gb: int = 10,
    project: str = "dept",
) -> base.Server:
    return drivers.compute.create_server(
        name=name, project=project, vcpu=vcpu, ram_gb=ram_gb, disk_gb=disk_gb
    )


# --- one driver a capability -------------------------------------------------------------


@pytest.mark.parametrize(
    ("capability", "protocol", "simulator_only"),
    [
        ("compute", base.Compute, set()),
        (
            "block_storage",
            base.BlockStorage,
            {"write_volume_block", "read_volume_block", "corrupt_volume_block"},
        ),
        ("object_storage", base.ObjectStorage, {"corrupt_object"}),
        ("containers", base.Containers, set()),
        ("traffic", base.Traffic, set()),
    ],
)
def test_each_capability_is_its_own_driver_offering_its_protocol_and_no_other(
    simulator: sim.Simulator, capability: str, protocol: type, simulator_only: set[str]
) -> None:
    drivers = simulator.drivers("east")
    driver = getattr(drivers, capability)
    offered = {name for name in dir(type(driver)) if not name.startswith("_")}
    assert offered == {name for name in dir(protocol) if not name.startswith("_")} | simulator_only
    capabilities = ("compute", "block_storage", "object_storage", "containers", "traffic")
    assert len({id(getattr(drivers, name)) for name in capabilities}) == len(capabilities)


# --- capacity -----------------------------------------------------------------------------


def test_capacity_total_is_the_topology_capacity(simulator: sim.Simulator) -> None:
    assert simulator.capacity_total("east") == EAST_CAPACITY
    assert simulator.capacity_used("east") == dict.fromkeys(EAST_CAPACITY, 0)


def test_a_server_consumes_vcpu_ram_disk_and_an_instance_until_deleted(
    simulator: sim.Simulator,
) -> None:
    east = simulator.drivers("east")
    server = new_server(east, "web", vcpu=2, ram_gb=4, disk_gb=40)

    assert simulator.capacity_used("east") == {
        "vcpu": 2,
        "ram_gb": 4,
        "volume_gb": 40,
        "object_gb": 0,
        "instances": 1,
    }
    assert simulator.capacity_used("west")["vcpu"] == 0
    east.compute.delete_server(server.id)
    assert simulator.capacity_used("east") == dict.fromkeys(EAST_CAPACITY, 0)


def test_a_server_beyond_capacity_is_refused_naming_center_and_resource(
    simulator: sim.Simulator,
) -> None:
    east = simulator.drivers("east")
    new_server(east, "web", vcpu=6)

    with pytest.raises(errors.Conflict) as refused:
        new_server(east, "big", vcpu=3)

    assert refused.value.field == "capacity.vcpu"
    assert "center east" in refused.value.reason and "vcpu" in refused.value.reason
    assert "requested 3, available 2 of 8" in refused.value.reason
    assert simulator.capacity_used("east")["vcpu"] == 6
    assert east.compute.find_server("big") is None


def test_instances_run_out_like_any_other_resource(simulator: sim.Simulator) -> None:
    east = simulator.drivers("east")
    for number in range(3):
        new_server(east, f"vm-{number}")

    with pytest.raises(errors.Conflict) as refused:
        new_server(east, "vm-3")
    assert refused.value.field == "capacity.instances"


def test_volumes_and_namespaces_consume_capacity_and_free_it(simulator: sim.Simulator) -> None:
    east = simulator.drivers("east")
    volume = east.block_storage.create_volume(name="data", project="dept", size_gb=60)
    with pytest.raises(errors.Conflict, match="volume_gb"):
        east.block_storage.create_volume(name="more", project="dept", size_gb=41)
    east.containers.create_namespace("apps", vcpu=8, ram_gb=8)
    with pytest.raises(errors.Conflict, match="vcpu"):
        new_server(east, "web")

    east.containers.set_namespace_quota("apps", vcpu=4, ram_gb=8)
    new_server(east, "web", disk_gb=10)
    assert simulator.capacity_used("east")["vcpu"] == 5
    with pytest.raises(errors.Conflict, match="vcpu"):
        east.containers.set_namespace_quota("apps", vcpu=8, ram_gb=8)

    east.block_storage.delete_volume(volume.id)
    east.containers.delete_namespace("apps")
    assert simulator.capacity_used("east") == {
        "vcpu": 1,
        "ram_gb": 1,
        "volume_gb": 10,
        "object_gb": 0,
        "instances": 1,
    }


def test_stored_object_bytes_count_in_whole_gb_rounded_up(simulator: sim.Simulator) -> None:
    objects = simulator.drivers("east").object_storage
    objects.create_bucket("files")
    objects.put_object("files", key="one-byte", data=b"x")
    assert simulator.capacity_used("east")["object_gb"] == 1

    objects.put_object("files", key="one-byte", data=b"")
    assert simulator.capacity_used("east")["object_gb"] == 0
    objects.put_object("files", key="two", data=b"xy")
    objects.delete_object("files", key="two")
    assert simulator.capacity_used("east")["object_gb"] == 0


def test_objects_beyond_object_capacity_are_refused(clock: clocks.ManualClock) -> None:
    tiny = sim.Simulator(make_topology(east_capacity={"object_gb": 0}), clock=clock)
    objects = tiny.drivers("east").object_storage
    objects.create_bucket("files")
    objects.put_object("files", key="empty", data=b"")

    with pytest.raises(errors.Conflict) as refused:
        objects.put_object("files", key="k", data=b"x")
    assert refused.value.field == "capacity.object_gb"
    with pytest.raises(errors.NotFound):
        objects.head_object("files", key="k")


def test_a_project_quota_refuses_what_exceeds_it(simulator: sim.Simulator) -> None:
    east = simulator.drivers("east")
    east.compute.set_project_quota("dept", amounts={"instances": 1, "volume_gb": 20})
    new_server(east, "web", disk_gb=10)

    with pytest.raises(errors.QuotaExceeded) as refused:
        new_server(east, "web-2", disk_gb=10)
    shortfall = refused.value.shortfalls[0]
    assert (shortfall.node, shortfall.center, shortfall.resource) == ("dept", "east", "instances")
    assert (shortfall.limit, shortfall.in_use, shortfall.requested) == (1, 1, 1)
    with pytest.raises(errors.QuotaExceeded):
        east.block_storage.create_volume(name="data", project="dept", size_gb=11)
    east.block_storage.create_volume(name="data", project="other", size_gb=11)
    assert east.compute.get_project_quota("dept").used == {
        "vcpu": 1,
        "ram_gb": 1,
        "instances": 1,
        "volume_gb": 10,
    }


def test_a_project_quota_names_only_known_resources(simulator: sim.Simulator) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        simulator.drivers("east").compute.set_project_quota("dept", amounts={"gpus": 1})
    assert refused.value.field == "amounts"


def test_concurrent_creates_never_overcommit(shared_backend: sim.StateBackend) -> None:
    backend = shared_backend
    capacity = {"vcpu": 8, "ram_gb": 100, "volume_gb": 1000, "object_gb": 1, "instances": 100}
    simulator = sim.Simulator(
        make_topology(east_capacity=capacity), backend=backend, clock=clocks.ManualClock()
    )
    compute = simulator.drivers("east").compute
    refusals: list[errors.Conflict] = []

    def create_two(worker: int) -> None:
        for number in range(2):
            try:
                compute.create_server(
                    name=f"vm-{worker}-{number}", project="dept", vcpu=1, ram_gb=1, disk_gb=1
                )
            except errors.Conflict as refused:
                refusals.append(refused)

    threads = [threading.Thread(target=create_two, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(compute.list_servers()) == 8
    assert len(refusals) == 4
    assert simulator.capacity_used("east")["vcpu"] == 8


# --- latency and the clock ----------------------------------------------------------------


def test_every_operation_waits_the_center_latency_on_the_injected_clock() -> None:
    clock = clocks.ManualClock()
    slow = sim.Simulator(make_topology(east_latency_ms=60_000), clock=clock)
    objects = slow.drivers("east").object_storage
    started_s, wall_started_s = clock.now(), time.monotonic()

    objects.create_bucket("files")
    objects.put_object("files", key="k", data=b"x")
    objects.get_object("files", key="k")

    assert clock.now() - started_s == pytest.approx(180.0)
    assert time.monotonic() - wall_started_s < 5.0


def test_a_new_server_builds_for_the_boot_time_then_is_active(
    simulator: sim.Simulator, clock: clocks.ManualClock
) -> None:
    compute = simulator.drivers("east").compute
    server = new_server(simulator.drivers("east"), "web")
    assert server.status is base.ServerStatus.BUILD
    created_s = clock.now()

    active = compute.wait_for_status(
        server.id, status=base.ServerStatus.ACTIVE, timeout_s=300, poll_interval_s=1
    )

    assert active.status is base.ServerStatus.ACTIVE
    assert BOOT_S <= clock.now() - created_s <= BOOT_S + 1.1


def test_waiting_past_the_timeout_fails(simulator: sim.Simulator, clock: clocks.ManualClock) -> None:
    compute = simulator.drivers("east").compute
    server = new_server(simulator.drivers("east"), "web")
    started_s = clock.now()

    with pytest.raises(errors.OperationFailed, match="still build after 10 s"):
        compute.wait_for_status(server.id, status=base.ServerStatus.ACTIVE, timeout_s=10, poll_interval_s=3)
    assert 10 <= clock.now() - started_s < 10.1


def test_a_building_server_cannot_be_stopped(simulator: sim.Simulator) -> None:
    server = new_server(simulator.drivers("east"), "web")
    with pytest.raises(errors.Conflict, match="is build"):
        simulator.drivers("east").compute.stop_server(server.id)


# --- stored data and checksums ------------------------------------------------------------


def test_object_bytes_come_back_with_their_checksums(simulator: sim.Simulator) -> None:
    objects = simulator.drivers("east").object_storage
    objects.create_bucket("files")
    data = bytes(range(256)) * 10

    written = objects.put_object("files", key="blob", data=data)
    read, info = objects.get_object("files", key="blob")

    assert read == data
    assert info.sha256 == written.sha256 == hashlib.sha256(data).hexdigest()
    assert info.etag == hashlib.md5(data, usedforsecurity=False).hexdigest()


def test_an_unversioned_bucket_names_every_version_null(simulator: sim.Simulator) -> None:
    objects = simulator.drivers("east").object_storage
    objects.create_bucket("plain", versioning=False)
    assert objects.put_object("plain", key="k", data=b"x").version_id == "null"


def test_a_corrupted_object_is_detected_on_read(simulator: sim.Simulator) -> None:
    objects = simulator.drivers("east").object_storage
    objects.create_bucket("files")
    written = objects.put_object("files", key="blob", data=b"precious records")

    simulator.corrupt_object("east", bucket="files", key="blob")

    with pytest.raises(base.ChecksumMismatchError) as detected:
        objects.get_object("files", key="blob")
    assert detected.value.expected_sha256 == written.sha256
    assert detected.value.actual_sha256 != written.sha256
    assert detected.value.center == "east"
    assert objects.head_object("files", key="blob") == written


def test_volume_blocks_are_checksummed_and_snapshots_copy_them(simulator: sim.Simulator) -> None:
    east = simulator.center("east").block_storage
    volume = east.create_volume(name="data", project="dept", size_gb=1)
    checksum = east.write_volume_block(volume.id, index=3, data=b"block three")
    assert checksum == hashlib.sha256(b"block three").hexdigest()
    assert east.read_volume_block(volume.id, index=3) == b"block three"
    assert east.read_volume_block(volume.id, index=4) == b""
    with pytest.raises(errors.InvalidInput):
        east.write_volume_block(volume.id, index=1024, data=b"beyond 1 GB of 1 MiB blocks")

    snapshot = east.create_snapshot(volume.id, name="before")
    restored = east.create_volume(name="restored", project="dept", size_gb=1, snapshot_id=snapshot.id)
    east.corrupt_volume_block(volume.id, index=3)

    with pytest.raises(base.ChecksumMismatchError):
        east.read_volume_block(volume.id, index=3)
    assert east.read_volume_block(restored.id, index=3) == b"block three"


def test_deleting_a_volume_deletes_its_blocks(simulator: sim.Simulator) -> None:
    east = simulator.center("east").block_storage
    volume = east.create_volume(name="data", project="dept", size_gb=1)
    east.write_volume_block(volume.id, index=0, data=b"x")

    east.delete_volume(volume.id)

    assert simulator.backend.list("east", sim_core.KIND_VOLUME_BLOCK) == []


# --- transfers between centers ------------------------------------------------------------


def test_copy_object_keeps_version_and_checksum(simulator: sim.Simulator) -> None:
    for name in ("east", "far"):
        simulator.drivers(name).object_storage.create_bucket("records")
    written = simulator.drivers("east").object_storage.put_object("records", key="r1", data=b"entry")

    moved = simulator.copy_object(source_center="east", target_center="far", bucket="records", key="r1")

    assert moved.size_bytes == 5 and moved.link_state == "up"
    assert moved.object_info is not None
    assert moved.object_info.center == "far"
    assert (moved.object_info.version_id, moved.object_info.sha256) == (
        written.version_id,
        written.sha256,
    )
    data, _ = simulator.drivers("far").object_storage.get_object("records", key="r1")
    assert data == b"entry"


def test_transfer_time_follows_link_rtt_and_bandwidth(
    simulator: sim.Simulator, clock: clocks.ManualClock
) -> None:
    started_s = clock.now()
    moved = simulator.transfer("east", "far", size_bytes=1_250_000)

    # 10 ms round trip + 10 Mbit over 100 Mbit/s
    assert moved.duration_s == pytest.approx(0.01 + 0.1)
    assert clock.now() - started_s == pytest.approx(moved.duration_s)


def test_a_degraded_link_is_slower_by_its_factor(simulator: sim.Simulator) -> None:
    simulator.link_degraded("far", "east", factor=4)

    moved = simulator.transfer("east", "far", size_bytes=1_250_000)

    assert simulator.link_state("east", "far") == "degraded"
    assert moved.link_state == "degraded"
    assert moved.duration_s == pytest.approx(0.04 + 0.4)
    assert simulator.transfer("east", "west", size_bytes=0).link_state == "up"


def test_a_cut_link_stops_copies_between_its_centers(simulator: sim.Simulator) -> None:
    for name in ("east", "west", "far"):
        simulator.drivers(name).object_storage.create_bucket("records")
    simulator.drivers("east").object_storage.put_object("records", key="r1", data=b"entry")

    fault = simulator.link_cut("east", "far")

    assert simulator.link_state("far", "east") == "cut"
    with pytest.raises(errors.InjectedFault, match="cut"):
        simulator.copy_object(source_center="east", target_center="far", bucket="records", key="r1")
    with pytest.raises(errors.NotFound):
        simulator.drivers("far").object_storage.head_object("records", key="r1")
    simulator.copy_object(source_center="east", target_center="west", bucket="records", key="r1")

    simulator.clear(fault.id)
    assert simulator.link_state("east", "far") == "up"
    simulator.copy_object(source_center="east", target_center="far", bucket="records", key="r1")


def test_a_corrupt_source_is_not_copied(simulator: sim.Simulator) -> None:
    for name in ("east", "far"):
        simulator.drivers(name).object_storage.create_bucket("records")
    simulator.drivers("east").object_storage.put_object("records", key="r1", data=b"entry")
    simulator.corrupt_object("east", bucket="records", key="r1")

    with pytest.raises(base.ChecksumMismatchError):
        simulator.copy_object(source_center="east", target_center="far", bucket="records", key="r1")
    assert simulator.drivers("far").object_storage.list_objects("records") == []


def test_a_copy_needs_a_link_in_the_topology(simulator: sim.Simulator) -> None:
    with pytest.raises(errors.NotFound) as missing:
        simulator.transfer("mgmt", "far", size_bytes=1)
    assert missing.value.field == "link"


# --- faults -------------------------------------------------------------------------------


def test_a_center_that_is_down_refuses_every_operation(simulator: sim.Simulator) -> None:
    east = simulator.drivers("east")
    server = new_server(east, "web")
    east.object_storage.create_bucket("files")

    fault = simulator.center_down("east")

    assert simulator.center_health("east") == "down"
    assert simulator.center_health("west") == "up"
    operations: list[Callable[[], object]] = [
        lambda: east.compute.get_server(server.id),
        east.compute.list_servers,
        lambda: east.compute.delete_server(server.id),
        lambda: east.compute.get_project_quota("dept"),
        lambda: east.block_storage.create_volume(name="v", project="dept", size_gb=1),
        east.block_storage.list_snapshots,
        lambda: east.object_storage.put_object("files", key="k", data=b"x"),
        east.object_storage.list_buckets,
        lambda: east.containers.create_namespace("apps", vcpu=1, ram_gb=1),
        lambda: east.traffic.upsert_record("gov.example", name="www", target_center="east"),
        lambda: simulator.transfer("west", "east", size_bytes=1),
    ]
    for operation in operations:
        with pytest.raises(errors.InjectedFault):
            operation()
    assert simulator.drivers("west").compute.list_servers() == []

    simulator.clear(fault.id)
    assert simulator.center_health("east") == "up"
    assert east.compute.get_server(server.id).id == server.id


def test_copies_to_a_center_that_is_down_fail(simulator: sim.Simulator) -> None:
    for name in ("east", "far"):
        simulator.drivers(name).object_storage.create_bucket("records")
    simulator.drivers("east").object_storage.put_object("records", key="r1", data=b"entry")
    simulator.center_down("far")

    with pytest.raises(errors.InjectedFault, match="far"):
        simulator.copy_object(source_center="east", target_center="far", bucket="records", key="r1")


def test_fault_ids_name_what_they_hit_and_injecting_again_replaces(
    simulator: sim.Simulator,
) -> None:
    simulator.center_down("east")
    simulator.center_down("east")
    simulator.link_cut("far", "east")
    simulator.link_degraded("east", "west", factor=2)
    simulator.link_degraded("west", "east", factor=3)
    simulator.api_error_rate("west", rate=0.25)

    faults = simulator.list_faults()

    assert [fault.id for fault in faults] == [
        "api-error-rate:west",
        "center-down:east",
        "link-cut:east~far",
        "link-degraded:east~west",
    ]
    degraded = faults[3]
    assert (degraded.kind, degraded.link, degraded.factor) == (
        sim.FaultKind.LINK_DEGRADED,
        ("east", "west"),
        3,
    )
    assert faults[0].rate == 0.25


def test_faults_are_cleared_one_by_one_or_all_at_once(simulator: sim.Simulator) -> None:
    simulator.center_down("east")
    simulator.link_cut("east", "far")
    simulator.api_error_rate("west", rate=1)

    simulator.clear("center-down:east")
    simulator.clear("center-down:east")
    with pytest.raises(errors.NotFound):
        simulator.clear("center-down:east", ignore_missing=False)
    assert len(simulator.list_faults()) == 2

    assert simulator.clear_all() == 2
    assert simulator.list_faults() == []
    assert simulator.link_state("east", "far") == "up"


def test_an_error_rate_of_one_fails_every_operation(simulator: sim.Simulator) -> None:
    simulator.api_error_rate("east", rate=1)

    with pytest.raises(errors.InjectedFault, match="error rate"):
        simulator.drivers("east").object_storage.list_buckets()
    assert simulator.drivers("west").object_storage.list_buckets() == []


def test_the_topology_error_rate_applies_until_a_fault_overrides_it(
    clock: clocks.ManualClock,
) -> None:
    flaky = sim.Simulator(make_topology(east_error_rate=1.0), clock=clock)
    objects = flaky.drivers("east").object_storage
    with pytest.raises(errors.InjectedFault):
        objects.list_buckets()

    flaky.api_error_rate("east", rate=0)

    assert objects.list_buckets() == []


def test_a_seeded_error_rate_fails_the_same_operations_every_time() -> None:
    def failures(seed: int) -> list[bool]:
        simulator = sim.Simulator(make_topology(), clock=clocks.ManualClock(), seed=seed)
        simulator.api_error_rate("east", rate=0.5)
        outcome = []
        for _ in range(40):
            try:
                simulator.drivers("east").containers.list_namespaces()
                outcome.append(False)
            except errors.InjectedFault:
                outcome.append(True)
        return outcome

    first, again = failures(42), failures(42)

    assert first == again
    assert 5 < sum(first) < 35
    assert failures(43) != first


def test_faults_are_checked_against_the_topology(simulator: sim.Simulator) -> None:
    with pytest.raises(errors.NotFound):
        simulator.center_down("nowhere")
    with pytest.raises(errors.NotFound):
        simulator.link_cut("mgmt", "far")
    with pytest.raises(errors.InvalidInput):
        simulator.link_degraded("east", "far", factor=0.5)
    with pytest.raises(errors.InvalidInput):
        simulator.api_error_rate("east", rate=1.5)
    with pytest.raises(errors.NotFound):
        simulator.drivers("nowhere")
    assert simulator.list_faults() == []


# --- state shared between simulators ------------------------------------------------------


def test_two_simulators_over_one_backend_see_the_same_world(backend: sim.StateBackend) -> None:
    clock = clocks.ManualClock()
    first = sim.Simulator(make_topology(), backend=backend, clock=clock, server_boot_s=0)
    east = first.drivers("east")
    server = new_server(east, "web", vcpu=2)
    east.object_storage.create_bucket("files")
    east.object_storage.put_object("files", key="k", data=b"shared bytes")
    east.traffic.upsert_record("gov.example", name="www", target_center="west", weight=0)
    first.link_cut("east", "far")

    second = sim.Simulator(make_topology(), backend=backend, clock=clock, server_boot_s=0)
    seen = second.drivers("east")

    assert seen.compute.get_server(server.id) == server
    assert seen.object_storage.get_object("files", key="k")[0] == b"shared bytes"
    assert seen.traffic.get_record("gov.example", name="www", target_center="west").weight == 0
    assert second.capacity_used("east") == first.capacity_used("east")
    assert second.capacity_used("east")["vcpu"] == 2
    assert second.link_state("east", "far") == "cut"

    second.center_down("east")
    with pytest.raises(errors.InjectedFault):
        east.compute.list_servers()


def test_two_processes_on_one_sqlite_file_share_the_simulation(tmp_path: Path) -> None:
    stores = [db.Store(db.sqlite_url(tmp_path)) for _ in range(2)]
    stores[0].migrate()
    try:
        one, two = (
            sim.Simulator(
                make_topology(),
                backend=simulator_state.StoreBackedState(store),
                clock=clocks.ManualClock(),
            )
            for store in stores
        )
        namespace = one.drivers("west").containers.create_namespace("apps", vcpu=2, ram_gb=4)
        one.api_error_rate("west", rate=1)

        with pytest.raises(errors.InjectedFault):
            two.drivers("west").containers.get_namespace("apps")
        two.clear_all()
        assert one.drivers("west").containers.get_namespace("apps") == namespace
        assert two.capacity_used("west")["ram_gb"] == 4
    finally:
        for store in stores:
            store.dispose()


@pytest.mark.parametrize("east_latency_ms", [0.0, 5.0])
def test_a_fault_injected_through_another_store_stops_the_very_next_operation(
    stored_backend: simulator_state.StoreBackedState, east_latency_ms: float
) -> None:
    """The CLI and ``serve`` are two processes: two ``Store`` instances on one database."""
    other_store = db.Store(stored_backend.store.url)
    clock = clocks.ManualClock()
    topo = make_topology(east_latency_ms=east_latency_ms)
    serving = sim.Simulator(topo, backend=stored_backend, clock=clock, server_boot_s=0)
    cli = sim.Simulator(topo, backend=simulator_state.StoreBackedState(other_store), clock=clock)
    east = serving.drivers("east")
    try:
        server = new_server(east, "web")
        assert east.compute.find_server("web") == server

        cli.center_down("east")
        for operation in (
            lambda: east.compute.find_server("web"),
            lambda: east.compute.get_server(server.id),
            east.compute.list_servers,
            lambda: new_server(east, "db"),
            lambda: east.compute.delete_server(server.id),
        ):
            with pytest.raises(errors.InjectedFault, match="east is down"):
                operation()
        assert serving.capacity_used("east")["instances"] == 1

        cli.clear_all()
        assert east.compute.get_server(server.id) == server
        cli.api_error_rate("east", rate=1)
        with pytest.raises(errors.InjectedFault, match="error rate"):
            east.compute.find_server("web")
        with pytest.raises(errors.InjectedFault, match="error rate"):
            new_server(east, "db")
        cli.clear_all()
        assert new_server(east, "db").name == "db"
        assert serving.capacity_used("east")["instances"] == 2
    finally:
        other_store.dispose()


def test_a_center_that_is_down_fails_before_its_latency_is_waited() -> None:
    clock = clocks.ManualClock()
    slow = sim.Simulator(make_topology(east_latency_ms=60_000), clock=clock)
    slow.center_down("east")
    started_s = clock.now()

    with pytest.raises(errors.InjectedFault):
        slow.drivers("east").compute.find_server("web")
    with pytest.raises(errors.InjectedFault):
        new_server(slow.drivers("east"), "web")

    assert clock.now() == started_s
