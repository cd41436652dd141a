"""A `cloudctl serve` killed with SIGKILL in the middle of provisioning, restarted on the same
store, finishes every in-flight request: no leaked reservation, no duplicate resource.

Real processes on loopback; the test only polls them (bounded), it never sleeps for time.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from cloudctl import clock as clocks
from cloudctl.drivers import simulator as sim
from cloudctl.services import identity, setup
from cloudctl.store import db, quotas, requests, simulator_state
from tests.conftest import POLICIES, TOPOLOGY, make_context

DEADLINE_S = 180.0


def poll(condition: Callable[[], bool], *, what: str, deadline_s: float = DEADLINE_S) -> None:
    pause = threading.Event()
    until = time.monotonic() + deadline_s
    while time.monotonic() < until:
        if condition():
            return
        pause.wait(0.1)
    pytest.fail(f"timed out waiting for {what}", pytrace=False)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    store = db.Store(db.sqlite_url(tmp_path))
    setup.initialise(make_context(store, clocks.SystemClock(), tmp_path))
    store.dispose()
    return tmp_path


@pytest.fixture
def serve(home: Path) -> Iterator[Callable[[int], subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start(port: int) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "CLOUDCTL_HOME": str(home),
            "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
            "CLOUDCTL_POLICIES": str(POLICIES),
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "cloudctl", "serve", "--port", str(port), "--reconcile-interval-s", "0.2"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(process)

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        poll(answers, what="cloudctl serve to answer", deadline_s=60)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def test_a_killed_serve_finishes_provisioning_after_a_restart(
    home: Path, serve: Callable[[int], subprocess.Popen[bytes]]
) -> None:
    store = db.Store(db.sqlite_url(home))
    ctx = make_context(store, clocks.SystemClock(), home)
    secret = identity.create_token(
        ctx, principal=identity.local_operator("secadmin"), role="dept-admin", department="bigdata"
    ).secret
    port = free_port()
    first = serve(port)
    body = {
        "offering": "vm.small",
        "count": 4,
        "tier": "gold",
        "preferred_center": "qd-a",
        "name": "crash-test",
    }
    created = httpx.post(
        f"http://127.0.0.1:{port}/v1/requests",
        json=body,
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert created.status_code == 201, created.text
    workload_id = created.json()["workload_id"]

    def some_servers_made() -> bool:
        with store.read() as tx:
            workload = requests.get_workload(tx, workload_id)
        primary = next(p for p in workload.placements if p.role == "primary")
        return len(primary.resources) >= 1 and primary.state != "ready"

    poll(some_servers_made, what="provisioning to be half-way")
    first.send_signal(signal.SIGKILL)
    first.wait(10)

    second = serve(port)

    def ready() -> bool:
        with store.read() as tx:
            return requests.get_workload(tx, workload_id).state == "ready"

    poll(ready, what="the restarted serve to finish provisioning")
    second.send_signal(signal.SIGTERM)
    second.wait(60)

    with store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
        held = {p.role: quotas.get_reservation(tx, p.reservation_id).state.value for p in workload.placements}
        live = quotas.list_reservations(
            tx,
            node_id="bigdata",
            states=[quotas.ReservationState.RESERVED, quotas.ReservationState.COMMITTED],
        )
    assert held == {"primary": "committed", "standby": "reserved", "dr": "reserved"}
    assert len(live) == 3  # one per placement: nothing leaked
    topology = ctx.topology
    simulated = sim.Simulator(
        topology, backend=simulator_state.StoreBackedState(store), clock=clocks.SystemClock()
    )
    servers = [s.name for s in simulated.drivers("qd-a").compute.list_servers(project="bigdata")]
    assert sorted(servers) == [f"{workload_id}-{n}" for n in range(4)]  # no duplicate
    store.dispose()
