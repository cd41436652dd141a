"""The simulator's addresses on a segment stretched over two centers: the lowest free host,
given back when its server goes, and never the same one for two servers created at once (by
two threads, or two processes each with its own allocator, claiming without a lock)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl.drivers import base
from cloudctl.drivers import simulator as sim
from cloudctl.drivers.simulator import state as sim_state
from cloudctl.store import simulator_state
from tests.unit.drivers.test_simulator import make_topology

SEGMENT = "east/apps+west/apps"


def _port() -> base.PortRequest:
    return base.PortRequest(network="apps", subnet="10.9.0.0/24", segment=SEGMENT)


def _create(simulator: sim.Simulator, center: str, name: str) -> base.Server:
    return simulator.drivers(center).compute.create_server(
        name=name, project="dept", vcpu=1, ram_gb=1, disk_gb=1, port=_port()
    )


def test_a_server_takes_the_lowest_free_host_and_a_deleted_one_gives_its_address_back(
    backend: sim.StateBackend,
) -> None:
    simulator = sim.Simulator(make_topology(east_latency_ms=0), backend=backend, clock=clocks.ManualClock())
    first, second, third = (_create(simulator, "east", f"vm-{n}") for n in range(3))
    assert [first.addresses, second.addresses, third.addresses] == [
        ("10.9.0.2",),
        ("10.9.0.3",),
        ("10.9.0.4",),
    ]

    simulator.drivers("east").compute.delete_server(second.id)

    assert _create(simulator, "west", "vm-3").addresses == ("10.9.0.3",)
    assert _create(simulator, "west", "vm-4").addresses == ("10.9.0.5",)


def test_two_centers_of_a_stretched_segment_creating_at_once_never_share_an_address(
    shared_backend: sim.StateBackend,
) -> None:
    topology = make_topology(
        east_latency_ms=0,
        east_capacity={"vcpu": 64, "ram_gb": 256, "volume_gb": 1000, "object_gb": 10, "instances": 50},
    )
    simulator = sim.Simulator(topology, backend=shared_backend, clock=clocks.ManualClock())
    addresses: list[str] = []
    lock = threading.Lock()

    def create(center: str) -> None:
        for number in range(5):
            server = _create(simulator, center, f"vm-{center}-{number}")
            with lock:
                addresses.extend(server.addresses)

    threads = [threading.Thread(target=create, args=(center,)) for center in ("east", "west")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(addresses) == 10
    assert set(addresses) == {f"10.9.0.{host}" for host in range(2, 12)}


def _second_process(backend: simulator_state.StoreBackedState) -> sim.Simulator:
    """A simulator over the same database as another process's: its own allocators."""
    other = simulator_state.StoreBackedState(backend.store)
    return sim.Simulator(make_topology(east_latency_ms=0), backend=other, clock=clocks.ManualClock())


def test_an_address_another_process_took_is_passed_over(
    stored_backend: simulator_state.StoreBackedState,
) -> None:
    first = sim.Simulator(
        make_topology(east_latency_ms=0), backend=stored_backend, clock=clocks.ManualClock()
    )
    second = _second_process(stored_backend)

    assert _create(first, "east", "vm-0").addresses == ("10.9.0.2",)
    assert _create(second, "west", "vm-1").addresses == ("10.9.0.3",)
    assert _create(first, "east", "vm-2").addresses == ("10.9.0.4",)


def test_an_address_given_back_in_another_process_is_taken_first(
    stored_backend: simulator_state.StoreBackedState,
) -> None:
    first = sim.Simulator(
        make_topology(east_latency_ms=0), backend=stored_backend, clock=clocks.ManualClock()
    )
    second = _second_process(stored_backend)
    servers = [_create(first, "east", f"vm-{n}") for n in range(3)]

    second.drivers("east").compute.delete_server(servers[1].id)

    assert _create(first, "west", "vm-3").addresses == ("10.9.0.3",)
    assert _create(first, "west", "vm-4").addresses == ("10.9.0.5",)


def test_an_address_whose_creation_failed_is_handed_out_again(shared_backend: sim.StateBackend) -> None:
    simulator = sim.Simulator(
        make_topology(east_latency_ms=0), backend=shared_backend, clock=clocks.ManualClock()
    )
    compute = simulator.drivers("east").compute
    assert _create(simulator, "east", "vm-0").addresses == ("10.9.0.2",)
    unwritable: Any = {"owner": object()}  # claimed its address, then cannot be stored

    with pytest.raises((TypeError, sa.exc.StatementError)):
        compute.create_server(
            name="vm-1", project="dept", vcpu=1, ram_gb=1, disk_gb=1, port=_port(), metadata=unwritable
        )

    assert _create(simulator, "west", "vm-1").addresses == ("10.9.0.3",)


def test_two_processes_creating_on_both_centers_at_once_never_share_an_address(
    stored_backend: simulator_state.StoreBackedState,
) -> None:
    topology = make_topology(
        east_latency_ms=0,
        east_capacity={"vcpu": 64, "ram_gb": 256, "volume_gb": 1000, "object_gb": 10, "instances": 50},
    )
    processes = [
        sim.Simulator(topology, backend=backend, clock=clocks.ManualClock())
        for backend in (stored_backend, simulator_state.StoreBackedState(stored_backend.store))
    ]
    addresses: list[str] = []
    lock = threading.Lock()

    def create(process: int, center: str) -> None:
        for number in range(5):
            server = _create(processes[process], center, f"vm-{process}-{center}-{number}")
            with lock:
                addresses.extend(server.addresses)

    threads = [
        threading.Thread(target=create, args=(process, center))
        for process in (0, 1)
        for center in ("east", "west")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(addresses) == 20
    assert len(set(addresses)) == 20
    ports = stored_backend.list(sim_state.GLOBAL_CENTER, "port", key_prefix=f"{SEGMENT}/")
    assert sorted(port["address"] for port in ports) == sorted(addresses)
