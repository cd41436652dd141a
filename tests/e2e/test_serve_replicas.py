"""Three `cloudctl serve` replicas on one PostgreSQL database: one leads, the others take over when
it is killed with SIGKILL under load, and every order is provisioned exactly once.

Real processes on loopback; outcomes are read from the raw tables with SQLAlchemy (the
simulator's servers in ``sim_objects``, the requests in ``requests``), not through cloudctl's
reads. The test only polls (bounded); it never sleeps for time.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl.services import access, identity, setup
from cloudctl.store import db
from tests.conftest import POLICIES, TOPOLOGY, make_context
from tests.e2e.test_serve_crash import free_port, poll

TAKEOVER_LIMIT_S = 15.0
ORDERS_BEFORE_KILL = 12
ORDERS_AFTER_KILL = 6
SERVERS_PER_ORDER = 2


@pytest.fixture
def database_url(pg_admin_url: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, initialised database of its own (the replicas' store), dropped afterwards."""
    name = f"cloudctl_replicas_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(db.normalise_url(pg_admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    store = db.Store(url)
    setup.initialise(make_context(store, clocks.SystemClock(), tmp_path))
    store.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def replicas(
    database_url: str, tmp_path: Path
) -> Iterator[Callable[[], tuple[int, subprocess.Popen[bytes]]]]:
    started: list[subprocess.Popen[bytes]] = []

    def start() -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        env = {
            **os.environ,
            "CLOUDCTL_HOME": str(tmp_path),
            "CLOUDCTL_DATABASE_URL": database_url,
            "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
            "CLOUDCTL_POLICIES": str(POLICIES),
        }
        command = [sys.executable, "-m", "cloudctl", "serve", "--port", str(port)]
        command += ["--reconcile-interval-s", "0.2", "--provision-workers", "4"]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started.append(process)
        poll(lambda: readiness(port) is not None, what=f"replica on port {port} to be ready", deadline_s=90)
        return port, process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.wait(10)


def readiness(port: int) -> dict[str, Any] | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def role_of(port: int) -> str | None:
    ready = readiness(port)
    return str(ready["role"]) if ready else None


def test_the_leader_of_three_replicas_killed_under_load_is_replaced_and_nothing_is_lost_or_doubled(
    database_url: str, replicas: Callable[[], tuple[int, subprocess.Popen[bytes]]], tmp_path: Path
) -> None:
    store = db.Store(database_url)
    ctx = make_context(store, clocks.SystemClock(), tmp_path)
    secret = identity.create_token(
        ctx, principal=identity.local_operator("secadmin"), role="dept-admin", department="bigdata"
    ).secret
    started = [replicas() for _ in range(3)]
    ports = [port for port, _process in started]
    poll(lambda: [role_of(p) for p in ports].count("leader") == 1, what="one leader among three replicas")
    ready = readiness(ports[0])
    assert ready is not None
    assert sorted(str(r["role"]) for r in ready["replicas"]) == ["follower", "follower", "leader"]
    shipped = access.policies(ctx).digest  # the three read the same policies directory
    assert [(r["policies_sha256"], r["policies_differ"]) for r in ready["replicas"]] == [(shipped, False)] * 3
    with store.read() as tx:  # and wrote it to PostgreSQL, as a plain SELECT reads it
        stored = tx.execute(sa.text("SELECT policies_sha256 FROM replicas")).scalars().all()
    assert stored == [shipped] * 3
    leader_index = [role_of(p) for p in ports].index("leader")
    leader_port, leader_process = started[leader_index]
    survivors = [p for p in ports if p != leader_port]

    admitted: list[str] = []
    lock = threading.Lock()

    def order(port: int, index: int) -> None:
        body = {
            "offering": "vm.small",
            "count": SERVERS_PER_ORDER,
            "tier": "bronze",
            "preferred_center": "qd-a" if index % 2 else "qd-b",
            "name": f"replica-load-{index}",
        }
        answer = httpx.post(
            f"http://127.0.0.1:{port}/v1/requests",
            json=body,
            headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": f"load-{index}"},
            timeout=60,
        )
        assert answer.status_code == 201, answer.text
        with lock:
            admitted.append(answer.json()["id"])

    for index in range(ORDERS_BEFORE_KILL):
        order(ports[index % 3], index)

    def provisioning_in_flight() -> bool:
        with store.read() as tx:
            states = collections.Counter(tx.execute(sa.text("SELECT state FROM requests")).scalars())
        return states["provisioning"] >= 1 and states["ready"] < ORDERS_BEFORE_KILL

    poll(provisioning_in_flight, what="the leader to be provisioning")
    leader_process.send_signal(signal.SIGKILL)
    leader_process.wait(10)
    killed_at = time.monotonic()

    for index in range(ORDERS_BEFORE_KILL, ORDERS_BEFORE_KILL + ORDERS_AFTER_KILL):
        order(survivors[index % 2], index)
    poll(
        lambda: [role_of(p) for p in survivors].count("leader") == 1,
        what="a surviving replica to take the lease",
        deadline_s=60,
    )
    takeover_s = time.monotonic() - killed_at
    assert takeover_s < TAKEOVER_LIMIT_S, f"takeover took {takeover_s:.1f} s"

    def all_ready() -> bool:
        with store.read() as tx:
            rows = tx.execute(sa.text("SELECT id, state FROM requests")).all()
        return len(rows) == len(admitted) and all(state == "ready" for _id, state in rows)

    poll(all_ready, what="every admitted order to be provisioned")

    with store.read() as tx:
        requests_by_workload = dict(tx.execute(sa.text("SELECT workload_id, id FROM requests")).all())
        names = list(
            tx.execute(
                sa.text("SELECT doc FROM sim_objects WHERE kind = 'server' AND center IN ('qd-a', 'qd-b')")
            ).scalars()
        )
        epochs = list(tx.execute(sa.text("SELECT epoch FROM leases WHERE name = 'leader'")).scalars())
    server_names = collections.Counter(
        (doc if isinstance(doc, dict) else json.loads(doc))["name"] for doc in names
    )
    assert sorted(requests_by_workload.values()) == sorted(admitted)  # none forgotten
    expected = {f"{workload}-{n}" for workload in requests_by_workload for n in range(SERVERS_PER_ORDER)}
    assert set(server_names) == expected
    assert all(count == 1 for count in server_names.values())  # none provisioned twice
    assert epochs == [2]

    # A clean stop (SIGTERM) gives the lease up: the last replica leads without waiting it out.
    new_leader = next(p for p in survivors if role_of(p) == "leader")
    last = next(p for p in survivors if p != new_leader)
    process = next(proc for port, proc in started if port == new_leader)
    process.send_signal(signal.SIGTERM)
    assert process.wait(90) == 0
    poll(lambda: role_of(last) == "leader", what="the last replica to lead", deadline_s=60)
    with store.read() as tx:
        roles = dict(tx.execute(sa.text("SELECT api_url, role FROM replicas")).all())
        released = tx.execute(sa.text("SELECT epoch FROM leases WHERE name = 'leader'")).scalar_one()
    assert roles[f"http://127.0.0.1:{new_leader}"] == "stopped"
    assert released == 3
    store.dispose()


def test_a_second_serve_on_one_sqlite_store_is_refused_with_one_line(tmp_path: Path) -> None:
    store = db.Store(db.sqlite_url(tmp_path))
    setup.initialise(make_context(store, clocks.SystemClock(), tmp_path))
    store.dispose()
    env = {
        **os.environ,
        "CLOUDCTL_HOME": str(tmp_path),
        "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
        "CLOUDCTL_POLICIES": str(POLICIES),
    }
    env.pop("CLOUDCTL_DATABASE_URL", None)
    first_port = free_port()
    first = subprocess.Popen(
        [sys.executable, "-m", "cloudctl", "serve", "--port", str(first_port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: readiness(first_port) is not None, what="the first serve to be ready", deadline_s=90)
        second = subprocess.run(
            [sys.executable, "-m", "cloudctl", "serve", "--port", str(free_port())],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert second.returncode == 2
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1, second.stderr
        assert lines[0].startswith("error: database: another `cloudctl serve` (pid ")
        assert "replicas need PostgreSQL" in lines[0]
        assert readiness(first_port) is not None  # the first one carries on
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(60)


def test_serve_with_workers_answers_from_several_processes_and_provisions_from_one(tmp_path: Path) -> None:
    store = db.Store(db.sqlite_url(tmp_path))
    ctx = make_context(store, clocks.SystemClock(), tmp_path)
    setup.initialise(ctx)
    secret = identity.create_token(
        ctx, principal=identity.local_operator("secadmin"), role="dept-admin", department="bigdata"
    ).secret
    env = {
        **os.environ,
        "CLOUDCTL_HOME": str(tmp_path),
        "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
        "CLOUDCTL_POLICIES": str(POLICIES),
    }
    env.pop("CLOUDCTL_DATABASE_URL", None)
    port = free_port()
    command = [sys.executable, "-m", "cloudctl", "serve", "--port", str(port), "--workers", "2"]
    command += ["--reconcile-interval-s", "0.2"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: readiness(port) is not None, what="serve --workers 2 to be ready", deadline_s=90)
        ready = readiness(port)
        assert ready is not None and ready["role"] == "leader"
        created = [
            httpx.post(
                f"http://127.0.0.1:{port}/v1/requests",
                json={"offering": "vm.small", "count": 1, "tier": "bronze", "name": f"workers-{index}"},
                headers={"Authorization": f"Bearer {secret}"},
                timeout=60,
            )
            for index in range(4)
        ]
        assert [answer.status_code for answer in created] == [201] * 4

        def provisioned() -> bool:
            with store.read() as tx:
                states = set(tx.execute(sa.text("SELECT state FROM requests")).scalars())
            return states == {"ready"}

        poll(provisioned, what="the leader process to provision what the workers admitted")
        process.send_signal(signal.SIGTERM)
        assert process.wait(90) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    with store.read() as tx:
        roles = list(tx.execute(sa.text("SELECT role FROM replicas")).scalars())
    assert roles == ["stopped"]  # one replica (the supervising process), stopped cleanly
    store.dispose()
