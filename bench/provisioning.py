"""Provisioning: how fast the leader's concurrent reconciler drains an admitted backlog.

Simulator part (``--size``, default 10,000 admitted orders; smoke 100): a PostgreSQL store
(what replicas run on), the simulator at zero boot latency (``server_boot_s=0``, its
least), and a backlog of ``size`` admitted, not yet provisioned orders of one ``vm.small``
server each, spread over both local centers. The backlog is one order admitted the real
way (``services.requests.submit``) and clones of it written straight into the store
(``bench.population``), then set back to ``approved``, as admission leaves them.

- **subject**: ``services.provisioning.Provisioner`` (the serve leader's reconciler, default
  bounds) on a fenced store (``store.leases.FencedStore``, the leader's), from start until
  every order is ``ready``: workloads per second.
- **baseline**: the reconciler one object at a time (``run_pending``'s sequential path, what
  ``serve`` did before), over the first ``size / 20`` orders of a second, identical backlog,
  measured just before and just after the subject.

OpenStack part (``--openstack``, needs the loopback stack): ``count`` servers ordered at once
(20 orders of one ``vm.small`` each on the center whose compute is OpenStack) against one
order alone, both through the same reconciler; the figure is the time of all twenty over
the time of one (the goal: under 3).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import common, population
from cloudctl.model import states
from cloudctl.reconcile import provisioning as reconciler
from cloudctl.services import context as ctx_module
from cloudctl.services import provisioning
from cloudctl.services import requests as requests_service
from cloudctl.store import leases, schema

NAME = "provisioning"
DEFAULT_SIZE = 10_000
SMOKE_SIZE = 100
BASELINE_FRACTION = 20
BUDGET_S = 600.0
DEPARTMENT = "bench-provisioning"


def admitted_template(context: ctx_module.Context, *, center: str) -> population.WorkloadTemplate:
    """One order admitted the real way and not provisioned: the shape the clones copy."""
    body = requests_service.RequestCreate(
        offering="vm.small", count=1, tier="bronze", preferred_center=center, name=f"bench-{center}"
    )
    request, _created = requests_service.submit(
        context, principal=population.department_principal(context, DEPARTMENT), body=body
    )
    assert request.workload_id is not None and request.state == states.WorkloadState.APPROVED, request.state
    template = population.template_of(context, request.workload_id)
    with context.store.transaction() as tx:
        tx.execute(sa.text("DELETE FROM placements WHERE workload_id = :id"), {"id": request.workload_id})
        tx.execute(sa.text("DELETE FROM workloads WHERE id = :id"), {"id": request.workload_id})
        tx.execute(sa.text("DELETE FROM requests WHERE id = :id"), {"id": request.id})
    return template


def admit_backlog(
    context: ctx_module.Context, templates: list[population.WorkloadTemplate], *, count: int, prefix: str
) -> list[str]:
    """``count`` admitted orders (request and workload ``approved``, quota reserved), round robin
    over ``templates``; their request ids, oldest first."""
    workloads = population.clone_workloads(
        context, templates=templates, departments=[DEPARTMENT], count=count, prefix=prefix
    )
    with context.store.transaction() as tx:
        tx.execute(
            schema.requests.update()
            .where(schema.requests.c.workload_id.in_(workloads))
            .values(
                state=states.WorkloadState.APPROVED,
                steps=[{"step": "submitted", "at": context.clock.now()}],
            )
        )
        tx.execute(
            schema.workloads.update()
            .where(schema.workloads.c.id.in_(workloads))
            .values(state=states.WorkloadState.APPROVED)
        )
    return [f"req-{prefix}-{index:08d}" for index in range(count)]


def ready_count(context: ctx_module.Context, prefix: str) -> int:
    """Orders of the backlog ``prefix`` that are ready (one indexed count, cheap to poll)."""
    with context.store.read() as tx:
        return int(
            tx.execute(
                sa.select(sa.func.count())
                .select_from(schema.requests)
                .where(
                    schema.requests.c.state == states.WorkloadState.READY,
                    schema.requests.c.id.like(f"req-{prefix}-%"),
                )
            ).scalar_one()
        )


def concurrent_rate(context: ctx_module.Context, request_ids: list[str], *, prefix: str) -> float:
    """Orders per second the leader's ``Provisioner`` makes ready, on a fenced store."""
    fence = leases.Fence(name=leases.LEADER, holder="bench")
    with context.store.transaction() as tx:
        lease = leases.acquire(tx, name=leases.LEADER, holder="bench", ttl_s=3600, now=context.clock.now())
    fence.grant(epoch=lease.epoch, valid_for_s=3600, since_monotonic=time.monotonic())
    fenced = ctx_module.Context(
        settings=context.settings,
        clock=context.clock,
        _store=leases.FencedStore(context.settings.resolved_database_url(), fence=fence),
    )
    common.use_instant_simulator(fenced)
    provisioner = provisioning.Provisioner(fenced, interval_s=1.0)
    started = time.perf_counter()
    provisioner.start()
    try:
        done = ready_count(context, prefix)
        while done < len(request_ids):
            if time.perf_counter() - started > BUDGET_S:
                raise common.BudgetExceeded(f"{done} of {len(request_ids)} ready after {BUDGET_S:g} s")
            time.sleep(0.5)  # polling a running reconciler: the wait is the measurement
            done = ready_count(context, prefix)
        return len(request_ids) / (time.perf_counter() - started)
    finally:
        provisioner.stop(timeout_s=60)
        fenced.close()


def sequential_rate(context: ctx_module.Context, request_ids: list[str]) -> float:
    """Orders per second reconciled one at a time (the loop before it went concurrent)."""
    env = provisioning.environment(context)
    started = time.perf_counter()
    for request_id in request_ids:
        result = reconciler.reconcile_request(env, request_id)
        assert result.done, result.message
    return len(request_ids) / (time.perf_counter() - started)


def measure_simulator(size: int) -> dict[str, Any]:
    baseline_size = max(size // BASELINE_FRACTION, 10)
    with (
        tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as directory,
        common.throwaway_database("postgres") as url,
    ):
        home = Path(directory)
        context = common.open_context(url, home=home, topology_file=common.write_bench_topology(home))
        common.use_instant_simulator(context)
        common.create_bench_node(context, node_id=DEPARTMENT)
        templates = [admitted_template(context, center=c) for c in common.local_centers(context.topology)]
        # Each backlog is admitted just before it is measured: the subject's reconciler takes
        # every admitted order in the store, so nothing else may be waiting while it runs.
        before = sequential_rate(
            context, admit_backlog(context, templates, count=baseline_size, prefix="before")
        )
        subject_ids = admit_backlog(context, templates, count=size, prefix="subject")
        subject = concurrent_rate(context, subject_ids, prefix="subject")
        after = sequential_rate(
            context, admit_backlog(context, templates, count=baseline_size, prefix="after")
        )
        context.close()
    return {
        "backlog": size,
        "subject_workloads_per_s": subject,
        "baseline_workloads_per_s": [before, after],
        "baseline_orders_each": baseline_size,
        "bounds": provisioning.Bounds().__dict__,
    }


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    backlog = size or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    result = common.BenchResult(
        name=NAME,
        size=backlog,
        smoke=smoke,
        baseline="the same reconciler one object at a time, just before and just after the subject",
    )
    result.notes.append(
        "PostgreSQL store, simulator with server_boot_s=0, admitted backlog cloned into the store "
        "(bench/population.py); the subject runs on the leader's fenced store with default bounds"
    )
    measured = measure_simulator(backlog)
    result.details["simulator"] = measured
    result.add(
        f"provisioned from an admitted backlog of {backlog:,}",
        unit="workloads/s",
        subject=measured["subject_workloads_per_s"],
        baseline=common.median(measured["baseline_workloads_per_s"]),
        meaning="times the one-at-a-time reconciler (goal: subject ≥ 100 workloads/s)",
    )
    return result
