"""Provisioning on the loopback OpenStack: twenty servers ordered at once against one alone.

The loopback stack (``scripts/openstack/stack``, Nova's fake driver) serves the first local
center of ``infra/topology.openstack.yaml`` (quotas and capacity × 10, project quotas
synced first). Every order goes through the leader's concurrent
reconciler (``services.provisioning.Provisioner``) until it is ``ready`` (its servers ACTIVE
as Nova reports them). Interleaved rounds; medians:

- **one order of one server** — the baseline;
- **one order of twenty servers** — created together, then waited for together;
- **twenty orders of one server at once** — with ``--per-center 20`` so none waits for a slot.

The goal: twenty at once in less than three times the time of one. Everything created is
deleted again through the reconciler after each round.
"""

from __future__ import annotations

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
        timings: dict[str, list[float]] = {"one": [], "one_order_of_n": [], "n_orders": []}
        for index in range(rounds):
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
    return result
