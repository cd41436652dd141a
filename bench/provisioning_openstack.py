"""Provisioning on the loopback OpenStack: twenty servers ordered at once against one alone.

The loopback stack (``scripts/openstack/stack``, Nova's fake driver) serves the first local
center of ``infra/topology.openstack.yaml`` (quotas and capacity × 10, project quotas
synced first). Every order goes through the leader's concurrent
reconciler (``services.provisioning.Provisioner``) until it is ``ready`` (its servers ACTIVE
as Nova reports them). Interleaved rounds; medians:

- **one order of one server** — the baseline;
- **one order of twenty servers** — created together, then waited for together;
- **twenty orders of one server at once** — with ``--per-center 20`` so none waits for a slot;
- **the stack alone** — one server, then twenty at once, created straight through the OpenStack
  driver and waited for until Nova reports them ACTIVE (no store, no reconciler): the floor
  any control plane on this stack stands on.

The goal: twenty at once in less than three times the time of one. Everything created is
deleted again through the reconciler after each round.
"""

from __future__ import annotations

import concurrent.futures
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench import common, population
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, identity, provisioning, setup
from cloudctl.services import requests as requests_service
from cloudctl.store import db, requests
from tests.integration.openstack import stack

NAME = "provisioning-openstack"
DEFAULT_SIZE = 20
SMOKE_SIZE = 2
DEPARTMENT = "bench-openstack"
OPENSTACK_TOPOLOGY = common.ROOT / "infra" / "topology.openstack.yaml"
DEADLINE_S = 600.0
OPENSTACK_SCALE = 10
"""Quotas and capacity × 10 (not the bench's × 1000: Nova caps a project's RAM quota at 2^31 MiB)."""


def topology_file(directory: Path) -> Path:
    document = yaml.safe_load(OPENSTACK_TOPOLOGY.read_text(encoding="utf-8"))
    for center in document["centers"]:
        center["capacity"] = {name: value * OPENSTACK_SCALE for name, value in center["capacity"].items()}
    document["org"]["quotas"] = [
        {key: (value * OPENSTACK_SCALE if key != "center" else value) for key, value in spec.items()}
        for spec in document["org"]["quotas"]
    ]
    path = directory / "topology.openstack.bench.yaml"
    path.write_text(yaml.safe_dump(document, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def order(context: ctx_module.Context, *, center: str, count: int, name: str) -> str:
    body = requests_service.RequestCreate(
        offering="vm.small", count=count, tier="bronze", preferred_center=center, name=name
    )
    request, _created = requests_service.submit(
        context, principal=population.department_principal(context, DEPARTMENT), body=body
    )
    if request.state == "pending-approval":  # a large order waits for an operator, as it should
        requests_service.approve(
            context, principal=identity.local_operator("sysadmin"), request_id=request.id
        )
    return request.id


def drain(context: ctx_module.Context, bounds: provisioning.Bounds, request_ids: list[str]) -> float:
    """Seconds from starting the reconciler until every order is ready (or failed: then raise)."""
    provisioner = provisioning.Provisioner(context, interval_s=0.2, bounds=bounds)
    started = time.perf_counter()
    provisioner.start()
    try:
        while True:
            with context.read() as tx:
                found = [requests.get_request(tx, request_id) for request_id in request_ids]
            states = [request.state for request in found]
            if all(state == "ready" for state in states):
                return time.perf_counter() - started
            if "failed" in states or time.perf_counter() - started > DEADLINE_S:
                reasons = sorted({reason for request in found for reason in request.reasons})
                raise RuntimeError(f"orders did not all become ready: {sorted(set(states))}; {reasons[:3]}")
            time.sleep(0.2)  # polling a running reconciler: the wait is the measurement
    finally:
        provisioner.stop(timeout_s=120)


def clean_up(context: ctx_module.Context, request_ids: list[str]) -> None:
    from cloudctl.services import workloads

    with context.read() as tx:
        workload_ids = [requests.get_request(tx, request_id).workload_id or "" for request_id in request_ids]
    principal = population.department_principal(context, DEPARTMENT)
    for workload_id in workload_ids:
        try:
            workloads.delete(context, principal=principal, workload_id=workload_id)
        except errors.Conflict:
            continue  # still provisioning after a failed round: the next run's start removes its servers
    for _attempt in range(20):
        if not any(result.done is False for result in provisioning.run_pending(context).values()):
            return


def stack_alone(compute: Any, *, project: str, count: int, name: str) -> float:
    """Seconds for ``count`` servers created at once straight through the OpenStack driver (no
    store, no admission, no reconciler) until Nova reports every one ACTIVE: the floor any
    control plane on this stack stands on. They are deleted after."""
    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
        made = list(
            pool.map(
                lambda n: compute.create_server(
                    name=f"{name}-{n}", project=project, vcpu=1, ram_gb=1, disk_gb=10
                ),
                range(count),
            )
        )
    try:
        waiting = {server.id for server in made}
        while waiting:
            if time.perf_counter() - started > DEADLINE_S:
                raise RuntimeError(f"{len(waiting)} of {count} servers not ACTIVE after {DEADLINE_S:g} s")
            states = {server_id: compute.get_server(server_id).status for server_id in waiting}
            failed = [server_id for server_id, status in states.items() if str(status).upper() == "ERROR"]
            if failed:
                raise RuntimeError(f"Nova put {len(failed)} of {count} servers in ERROR")
            waiting = {server_id for server_id, status in states.items() if str(status).upper() != "ACTIVE"}
            if waiting:
                time.sleep(0.2)  # polling Nova: the wait is the measurement
        return time.perf_counter() - started
    finally:
        with concurrent.futures.ThreadPoolExecutor(max_workers=count) as pool:
            list(pool.map(lambda server: compute.delete_server(server.id, ignore_missing=True), made))


def measure(size: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as directory:
        home = Path(directory)
        clouds = stack.write_clouds_yaml(home / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])
        settings = settings_module.Settings(
            home=home, topology=topology_file(home), policies=common.POLICIES, clouds_yaml=clouds
        )
        context = ctx_module.Context(settings=settings, _store=db.Store(db.sqlite_url(home)))
        setup.initialise(context)
        center = context.topology.centers_with_role(topo.CenterRole.LOCAL)[0].name
        common.create_bench_node(context, node_id=DEPARTMENT)
        provisioning.sync_quotas(context, center=center)
        compute = drivers.center_drivers(context, center).compute
        for leftover in compute.list_servers(project=DEPARTMENT):  # of an earlier, interrupted run
            compute.delete_server(leftover.id, ignore_missing=True)
        wide = provisioning.Bounds(workers=size, per_center=size, per_backend=size)
        timings: dict[str, list[float]] = {
            "one": [],
            "one_order_of_n": [],
            "n_orders": [],
            "stack_one": [],
            "stack_n": [],
        }
        for index in range(rounds):
            for label, count in (("stack_one", 1), ("stack_n", size)):
                timings[label].append(
                    stack_alone(compute, project=DEPARTMENT, count=count, name=f"{label}-{index}")
                )
            for label in ("one", "one_order_of_n", "n_orders"):
                if label == "one":
                    ids = [order(context, center=center, count=1, name=f"one-{index}")]
                elif label == "one_order_of_n":
                    ids = [order(context, center=center, count=size, name=f"batch-{index}")]
                else:
                    ids = [
                        order(context, center=center, count=1, name=f"many-{index}-{n}") for n in range(size)
                    ]
                try:
                    timings[label].append(drain(context, wide, ids))
                finally:
                    clean_up(context, ids)
        context.close()
    return {"center": center, "servers": size, "rounds": rounds, "seconds": timings}


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    servers = size or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    rounds = rounds or (1 if smoke else 3)
    result = common.BenchResult(
        name=NAME,
        size=servers,
        smoke=smoke,
        baseline="one order of one server on the same center, in the same rounds",
    )
    result.notes.append(
        "loopback OpenStack (Nova fake driver); until every order is ready with its servers ACTIVE; "
        f"{rounds} interleaved round(s), medians"
    )
    measured = measure(servers, rounds)
    result.details["openstack"] = measured
    one = common.median(measured["seconds"]["one"])
    result.add(
        f"one order of {servers} servers",
        unit="s",
        subject=common.median(measured["seconds"]["one_order_of_n"]),
        baseline=one,
        meaning="times one server alone (goal: < 3)",
    )
    result.add(
        f"{servers} orders of one server at once",
        unit="s",
        subject=common.median(measured["seconds"]["n_orders"]),
        baseline=one,
        meaning=f"times one server alone (goal: < 3; --per-center {servers})",
    )
    result.add(
        f"the stack alone: {servers} servers at once through the driver",
        unit="s",
        subject=common.median(measured["seconds"]["stack_n"]),
        baseline=common.median(measured["seconds"]["stack_one"]),
        meaning="times one server through the driver alone: the floor of the two ratios above",
    )
    result.add(
        f"{servers} orders at once against the stack alone",
        unit="s",
        subject=common.median(measured["seconds"]["n_orders"]),
        baseline=common.median(measured["seconds"]["stack_n"]),
        meaning="what the control plane adds to the same twenty servers",
    )
    return result
