"""The simulator's addresses on a segment stretched over two centers: the lowest free host,
given back when its server goes, and never the same one for two servers created at once."""

from __future__ import annotations

import threading

from cloudctl import clock as clocks
from cloudctl.drivers import base
from cloudctl.drivers import simulator as sim
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
