"""Scale: how a steady-state reconcile pass and ``status`` grow with departments and workloads.

Sizes: ``size`` workloads and ``size / 100`` departments, with one tenth and one hundredth
of both (default 1,000 / 10,000 / 100,000 workloads in 10 / 100 / 1,000 departments), each
in a fresh SQLite store (the embedded default) on the simulator with a manual clock.

Population: one workload per tier and local center the real way, then clones written
straight into the store (see ``bench.population`` for the shortcut and what clones lack).
Every workload is ready and protected (its replication streams exist and are not due).

Per size, in interleaved rounds (baseline, pass, status; medians):

- **steady pass**: ``services.provisioning.run_pending`` + ``services.recovery.run_due`` with
  nothing changed — what ``cloudctl serve`` does every second when all is quiet;
- **status**: ``services.status.overview`` (what ``cloudctl status`` prints);
- **baseline**: a raw scan of the ``workloads`` and ``placements`` rows (SQLAlchemy Core,
  no objects built) — the least any pass that looks at every workload must read.

Then peak memory (tracemalloc, in a separate run so tracing does not slow the timed ones),
and the **incremental pass**: 1% of the workloads marked ``deleting``, one pass timed, its
cost reported against the steady pass. Growth exponents are least-squares slopes of
log(time) and log(peak memory) over log(workloads): 1.0 is linear.
"""

from __future__ import annotations

import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import common, population
from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import provisioning, recovery, status
from cloudctl.store import requests, schema

NAME = "scale"
DEFAULT_SIZE = 100_000
SMOKE_SIZE = 200
WORKLOADS_PER_DEPARTMENT = 100
CHANGED_FRACTION = 0.01
BYTES_PER_MIB = 1024 * 1024


def sizes_for(largest: int) -> list[tuple[int, int]]:
    """(workloads, departments) for the largest size and its tenth and hundredth."""
    return [
        (workloads, max(1, workloads // WORKLOADS_PER_DEPARTMENT))
        for workloads in sorted({max(largest // 100, 1), max(largest // 10, 1), largest})
    ]


def populate(context: ctx_module.Context, *, workloads: int, departments: int) -> list[str]:
    """Departments under a bench bureau and ``workloads`` ready, protected workloads; their ids."""
    common.use_instant_simulator(context)
    common.create_bench_node(context, node_id="bench-scale", kind="bureau")
    department_ids = population.create_departments(context, parent="bench-scale", count=departments)
    vm = min(
        (o for o in context.topology.catalog if o.kind.value == "vm"), key=lambda o: (o.vcpu, o.ram_gb)
    ).name
    templates = [
        population.make_template(
            context, department=department_ids[0], offering=vm, tier=tier.name, preferred_center=center
        )
        for tier in context.topology.tiers
        for center in common.local_centers(context.topology)
    ]
    with context.read() as tx:
        real = [w.id for w in requests.list_workloads(tx)]
    clones = population.clone_workloads(
        context, templates=templates, departments=department_ids, count=max(workloads - len(real), 0)
    )
    return real + clones


def steady_pass(context: ctx_module.Context) -> dict[str, int]:
    reconciled = provisioning.run_pending(context)
    replicated = recovery.run_due(context)
    return {"reconciled": len(reconciled), "replication_passes": len(replicated)}


def raw_scan(context: ctx_module.Context) -> int:
    with context.store.read() as tx:
        rows = len(tx.execute(sa.select(schema.workloads)).all())
        rows += len(tx.execute(sa.select(schema.placements)).all())
    return rows


def peak_mib(work: Any) -> float:
    """Peak traced memory while ``work()`` runs, above what was allocated before, in MiB."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        work()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return (peak - before) / BYTES_PER_MIB


def mark_deleting(context: ctx_module.Context, workload_ids: list[str]) -> None:
    now = context.clock.now()
    with context.store.transaction() as tx:
        for workload_id in workload_ids:
            current = requests.get_workload(tx, workload_id, for_update=True)
            requests.update_workload(tx, current, state="deleting", now=now)


def measure_size(workloads: int, departments: int, *, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-scale-") as directory:
        home = Path(directory)
        context = common.open_context(
            f"sqlite:///{home / 'state.db'}",
            home=home,
            topology_file=common.write_bench_topology(home),
            clock=clocks.ManualClock(),
        )
        try:
            started = time.perf_counter()
            workload_ids = populate(context, workloads=workloads, departments=departments)
            measured: dict[str, Any] = {
                "workloads": len(workload_ids),
                "departments": departments,
                "setup_s": round(time.perf_counter() - started, 2),
                "scan_s": [],
                "steady_pass_s": [],
                "status_s": [],
                "incremental_scan_s": [],
                "incremental_pass_s": [],
            }
            for _round in range(rounds):
                measured["scan_s"].append(common.timed(lambda: raw_scan(context))[0])
                seconds, outcome = common.timed(lambda: steady_pass(context))
                measured["steady_pass_s"].append(seconds)
                measured["steady_pass_outcome"] = outcome
                measured["status_s"].append(common.timed(lambda: status.overview(context))[0])
            measured["scan_peak_mib"] = peak_mib(lambda: raw_scan(context))
            measured["steady_pass_peak_mib"] = peak_mib(lambda: steady_pass(context))
            measured["status_peak_mib"] = peak_mib(lambda: status.overview(context))
            changed = max(1, round(len(workload_ids) * CHANGED_FRACTION))
            for round_index in range(rounds):
                chosen = workload_ids[round_index::rounds][:changed]
                mark_deleting(context, chosen)
                measured["incremental_scan_s"].append(common.timed(lambda: raw_scan(context))[0])
                seconds, outcome = common.timed(lambda: steady_pass(context))
                measured["incremental_pass_s"].append(seconds)
                if outcome["reconciled"] != len(chosen):
                    raise RuntimeError(f"the incremental pass reconciled {outcome}, expected {len(chosen)}")
            measured["changed_per_round"] = changed
        finally:
            context.close()
    return measured


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    largest = size or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    rounds = rounds or (1 if smoke else 3)
    result = common.BenchResult(
        name=NAME,
        size=largest,
        smoke=smoke,
        baseline="raw scan of the workloads and placements rows (SQLAlchemy Core) on the same store",
    )
    result.notes.append(
        "SQLite store, simulator, manual clock; workloads cloned straight into the store "
        f"(bench/population.py); {rounds} round(s), medians; peak memory from a separate tracemalloc run"
    )
    per_size: list[dict[str, Any]] = []
    for workloads, departments in sizes_for(largest):
        measured = measure_size(workloads, departments, rounds=rounds)
        per_size.append(measured)
        label = f"{measured['workloads']:,} workloads / {departments:,} depts"
        steady = common.median(measured["steady_pass_s"])
        scan = common.median(measured["scan_s"])
        result.add(
            f"{label}: steady pass", unit="s", subject=steady, baseline=scan, meaning="times a raw scan"
        )
        result.add(
            f"{label}: status overview",
            unit="s",
            subject=common.median(measured["status_s"]),
            baseline=scan,
            meaning="times a raw scan",
        )
        result.add(
            f"{label}: steady pass peak memory",
            unit="MiB",
            subject=measured["steady_pass_peak_mib"],
            baseline=measured["scan_peak_mib"],
            meaning="times a raw scan's peak",
        )
        result.add(
            f"{label}: incremental pass ({CHANGED_FRACTION:.0%} deleting)",
            unit="s",
            subject=common.median(measured["incremental_pass_s"]),
            baseline=steady,
            meaning=f"fraction of a steady pass (proportional: ≈{CHANGED_FRACTION:g} + fixed cost)",
        )
    result.details["sizes"] = [
        {key: (_round_all(value)) for key, value in measured.items()} for measured in per_size
    ]
    counts = [float(m["workloads"]) for m in per_size]
    if len(per_size) > 1:
        for figure, key, baseline_key in (
            ("steady pass time", "steady_pass_s", "scan_s"),
            ("status time", "status_s", "scan_s"),
            ("incremental pass time", "incremental_pass_s", "incremental_scan_s"),
        ):
            result.add(
                f"growth exponent: {figure}",
                unit="log-log slope",
                subject=common.loglog_slope(counts, [common.median(m[key]) for m in per_size]),
                baseline=common.loglog_slope(counts, [common.median(m[baseline_key]) for m in per_size]),
                meaning="subject's exponent / the raw scan's (1.0 = grows like the scan)",
            )
        result.add(
            "growth exponent: steady pass peak memory",
            unit="log-log slope",
            subject=common.loglog_slope(counts, [m["steady_pass_peak_mib"] for m in per_size]),
            baseline=common.loglog_slope(counts, [m["scan_peak_mib"] for m in per_size]),
            meaning="subject's exponent / the raw scan's (1.0 = grows like the scan)",
        )
    return result


def _round_all(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, list):
        return [_round_all(item) for item in value]
    return value
