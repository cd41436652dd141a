"""A drill and a failover killed with SIGKILL part-way, then finished by `cloudctl … resume`.

Real `cloudctl` processes on one SQLite store: the test polls the store (bounded) until the
run has done part of its work, kills the process outright, and resumes it from the command
line. Nothing done before the kill is done twice: no second set of canaries, no server
started twice, no quota left held.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl.drivers import simulator as sim
from cloudctl.services import faults, identity, provisioning, setup
from cloudctl.services import requests as requests_service
from cloudctl.store import audit as audit_store
from cloudctl.store import db, quotas, recovery, requests, simulator_state
from tests.conftest import POLICIES, TOPOLOGY, make_context
from tests.e2e.test_serve_crash import poll
from tests.support import operators

BIGDATA = identity.Principal(
    id="t:bigdata",
    role="dept-admin",
    department="bigdata",
    department_path=("qingdao", "shinan", "bigdata"),
)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    store = db.Store(db.sqlite_url(tmp_path))
    setup.initialise(make_context(store, clocks.SystemClock(), tmp_path))
    store.dispose()
    return tmp_path


def cloudctl(home: Path) -> Callable[..., subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "CLOUDCTL_HOME": str(home),
        "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
        "CLOUDCTL_POLICIES": str(POLICIES),
    }

    def start(*argv: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "cloudctl", *operators.break_glass(list(argv)), *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    return start


def killed(process: subprocess.Popen[bytes]) -> str:
    """Kill the process outright; what it had printed."""
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    printed = b""
    if process.stdout is not None:
        printed = process.stdout.read()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    return printed.decode(errors="replace")


def finished(process: subprocess.Popen[bytes]) -> tuple[int, str]:
    out, _ = process.communicate(timeout=600)
    return process.returncode, out.decode(errors="replace")


def live_reservations(store: db.Store) -> list[quotas.Reservation]:
    with store.read() as tx:
        return quotas.list_reservations(
            tx, states=[quotas.ReservationState.RESERVED, quotas.ReservationState.COMMITTED]
        )


GATE = """
import pathlib, sys, threading
entered, opened = (pathlib.Path(arg) for arg in sys.argv[1:3])
entered.touch()
pause = threading.Event()
for _ in range(3000):  # at most 300 s, then the check fails
    if opened.exists():
        sys.exit(0)
    pause.wait(0.1)
sys.exit(1)
"""
"""A pre-check that holds the drill at the end of its warm-up until the test opens it."""


def test_a_drill_killed_during_its_warm_up_is_finished_by_drill_resume(home: Path, tmp_path: Path) -> None:
    # The warm-up ends with its pre-checks; this one says it has started, then waits for the
    # gate to open. The drill is killed while it waits: inside the warm-up whatever the machine's
    # speed, every canary write of the warm-up made and saved, the fault not yet struck.
    entered, opened = tmp_path / "gate-entered", tmp_path / "gate-opened"
    gate = {"argv": [sys.executable, "-c", GATE, str(entered), str(opened)], "timeout_s": 600}
    plan = {
        "name": "kill-and-resume",
        "description": "lose qd-a; killed during the warm-up, then resumed",
        "scenario": {"kind": "lose-local-center", "center": "qd-a"},
        "scope": {"tiers": ["platinum", "gold"]},
        "canary": {"writes_per_s": 1, "warmup_s": 60, "object_bytes": 512, "workloads_per_tier": 5},
        "steps": [{"pre": [{"name": "gate", "command": gate}]}],
        "simulated_time": True,
    }
    plan_file = tmp_path / "kill-and-resume.yaml"
    plan_file.write_text(yaml.safe_dump(plan), encoding="utf-8")
    store = db.Store(db.sqlite_url(home))
    run = cloudctl(home)

    def saved() -> dict[str, Any]:
        with store.read() as tx:
            runs = recovery.list_drill_runs(tx, plan="kill-and-resume")
        return dict(runs[0].report.get("progress", {})) if runs else {}

    first = run("drill", "run", str(plan_file))
    poll(entered.exists, what="the drill to reach its pre-check")
    killed(first)
    opened.touch()  # lets the orphaned check exit, and the resumed drill's check pass at once
    interrupted = saved()
    assert interrupted["phase"] == "prepare"  # killed in the warm-up, before the fault
    assert interrupted["sequence"] == 600  # its writes made: 60 s at 1 write/s to 10 canaries
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudctl",
            *operators.break_glass(["drill"]),
            "drill",
            "history",
            "-o",
            "json",
        ],
        env={**os.environ, "CLOUDCTL_HOME": str(home), "CLOUDCTL_TOPOLOGY": str(TOPOLOGY)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"state": "interrupted"' in shown.stdout  # its process is gone: never left "running"

    with store.read() as tx:
        drill_id = recovery.list_drill_runs(tx, plan="kill-and-resume")[0].id
    code, out = finished(run("drill", "resume", drill_id))

    assert code == 0, out
    with store.read() as tx:
        (done,) = [r for r in recovery.list_drill_runs(tx, plan="kill-and-resume") if r.id == drill_id]
        canaries = [r for r in requests.list_requests(tx) if r.name.startswith("drill-")]
    assert (done.state, done.passed) == ("done", True)
    assert len(canaries) == 10  # the resumed drill made no second set
    workloads = done.report["workloads"]
    assert [w["writes_acknowledged"] for w in workloads] == [60] * 10  # no write made twice
    assert all(w["writes_lost"] == 0 for w in workloads)
    assert [w["recovered_in"] for w in workloads] == ["qd-b"] * 10
    assert [(c["name"], c["phase"], c["passed"]) for c in done.report["checks"]] == [("gate", "pre", True)]
    assert live_reservations(store) == []
    ctx = make_context(store, clocks.SystemClock(), home)
    assert faults.list_faults(ctx) == []
    store.dispose()


def test_a_failover_killed_part_way_is_finished_by_failover_resume(home: Path) -> None:
    store = db.Store(db.sqlite_url(home))
    ctx = make_context(store, clocks.SystemClock(), home)
    workload_ids = []
    # One workload per tier, each its own priority group: gold recovers in qd-b, silver and
    # bronze in dz-dr, each group's servers started together and booting once.
    recovered_in = {"gold": "qd-b", "silver": "dz-dr", "bronze": "dz-dr"}
    for number, tier in enumerate(recovered_in):
        body = requests_service.RequestCreate(
            offering="vm.small",
            tier=tier,
            preferred_center="qd-a",
            name=f"kill-resume-{number}",
        )
        request, _ = requests_service.submit(ctx, principal=BIGDATA, body=body)
        assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
        workload_ids.append(request.workload_id or "")
    run = cloudctl(home)

    def steps_done() -> int:
        with store.read() as tx:
            runs = recovery.list_runs(tx)
        return len(runs[0].progress) if runs else 0

    # Real time: each tier's promotions wait for its servers to boot (2 s in the simulator), so
    # after gold's first steps two boots remain, silver's and bronze's.
    first = run("failover", "--from", "qd-a", "--planned")
    poll(lambda: steps_done() >= 2, what="the failover to finish its first steps")
    killed_output = killed(first)
    with store.read() as tx:
        (interrupted,) = recovery.list_runs(tx)
    assert f"failover run {interrupted.id} started" in killed_output  # printed before the work
    assert interrupted.state == "running"  # as the killed process left it
    assert 2 <= len(interrupted.progress) < len(interrupted.plan)
    assert interrupted.result["workloads"]  # what the finished steps did, shown while it waits

    code, out = finished(run("failover", "list", "-o", "json"))
    assert code == 0, out
    (listed,) = json.loads(out)
    assert (listed["id"], listed["state"]) == (interrupted.id, "interrupted")
    assert listed["resume"] == f"cloudctl failover resume {interrupted.id}"
    with store.read() as tx:
        outcomes = [r.outcome for r in audit_store.list_records(tx) if r.detail.get("run") == interrupted.id]
    assert outcomes == ["started", "interrupted"]

    code, out = finished(run("failover", "resume", interrupted.id))

    assert code == 0, out
    with store.read() as tx:
        done = recovery.get_run(tx, interrupted.id)
        workloads = [requests.get_workload(tx, workload_id) for workload_id in workload_ids]
    assert done.state == "done"
    assert sorted(step["id"] for step in done.progress) == sorted(step["id"] for step in done.plan)
    for workload, center in zip(workloads, recovered_in.values(), strict=True):
        serving = [p.center for p in workload.placements if p.role == "primary" and p.state == "ready"]
        assert serving == [center]
    simulator = sim.Simulator(
        ctx.topology, backend=simulator_state.StoreBackedState(store), clock=clocks.SystemClock()
    )
    for workload_id, center in zip(workload_ids, recovered_in.values(), strict=True):
        names = [server.name for server in simulator.drivers(center).compute.list_servers()]
        assert names.count(f"{workload_id}-0") == 1  # started once, not again on resume
    store.dispose()
