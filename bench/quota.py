"""The quota engine in-process: reservations per second on a tree of 1,000 departments.

Setup: under the root of the bench topology, a bureau with the root's limits, ``size / 100``
districts (at least one) and ``size`` departments spread over them, built with
``store.orgs.create_node``; limits on every node for one local center and for all centers
(vcpu, ram_gb, instances) with ``store.quotas.apply_limits`` — so every reservation checks
and locks a chain of four nodes (root, bureau, district, department).

Subject: ``store.quotas.reserve`` of the smallest VM's amounts for the next department (round
robin), one reservation per ``Store.transaction()``, one thread.

Baseline: single-row ``UPDATE`` transactions through ``Store.transaction()`` on the same
database, one thread. Rounds alternate baseline and subject, each bounded by count and time.
Run for SQLite and PostgreSQL.
"""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

from bench import common
from cloudctl import clock as clocks
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs, quotas

NAME = "quota"
DEFAULT_SIZE = 1000
SMOKE_SIZE = 20
DEPARTMENTS_PER_DISTRICT = 100
ROUND_COUNT = 3000
SMOKE_ROUND_COUNT = 100
ROUND_TIME_LIMIT_S = 10.0
SMOKE_ROUND_TIME_LIMIT_S = 2.0
BACKENDS = ("sqlite", "postgres")
LIMITED = (q.Resource.VCPU, q.Resource.RAM_GB, q.Resource.INSTANCES)


def build_tree(context: ctx_module.Context, *, departments: int) -> list[str]:
    """The bureau, its districts and ``departments`` departments, with limits; the department ids."""
    topology = context.topology
    center = common.local_centers(topology)[0]
    centers = [c.name for c in topology.centers]
    now = context.clock.now()
    districts = max(1, departments // DEPARTMENTS_PER_DISTRICT)
    department_ids: list[str] = []
    with context.store.transaction() as tx:
        orgs.create_node(
            tx,
            node_id="bench-quota",
            display_name="配额基准",
            kind="bureau",
            parent_id=topology.org.id,
            centers=centers,
            now=now,
        )
        common.grant_like_root(tx, node_id="bench-quota", topology=topology)
        root_limit = {
            resource: min(
                value
                for spec in topology.org.quotas
                if spec.center_key in (center, q.ALL_CENTERS)
                for r, value in spec.limits().items()
                if r is resource
            )
            for resource in LIMITED
        }
        changes: dict[quotas.LimitKey, int | None] = {}
        for district in range(districts):
            district_id = f"bench-district-{district:03d}"
            orgs.create_node(
                tx,
                node_id=district_id,
                display_name=f"区{district}",
                kind="district",
                parent_id="bench-quota",
                centers=centers,
                now=now,
            )
            for key in (center, q.ALL_CENTERS):
                for resource in LIMITED:
                    changes[(district_id, key, resource)] = root_limit[resource] // districts
        for index in range(departments):
            district_id = f"bench-district-{index % districts:03d}"
            node_id = f"bench-q-{index:05d}"
            orgs.create_node(
                tx,
                node_id=node_id,
                display_name=f"部门{index}",
                kind="department",
                parent_id=district_id,
                centers=centers,
                now=now,
            )
            per_department = len(range(index % districts, departments, districts))
            for key in (center, q.ALL_CENTERS):
                for resource in LIMITED:
                    changes[(node_id, key, resource)] = root_limit[resource] // districts // per_department
            department_ids.append(node_id)
        quotas.apply_limits(tx, changes=changes)
    return department_ids


def smallest_vm(topology: topo.Topology) -> q.Amounts:
    offering = min(
        (o for o in topology.catalog if o.kind is topo.OfferingKind.VM), key=lambda o: (o.vcpu, o.ram_gb)
    )
    return offering.amounts()


def reservations_per_s(
    context: ctx_module.Context, *, departments: list[str], count: int, time_limit_s: float
) -> float:
    center = common.local_centers(context.topology)[0]
    amounts = smallest_vm(context.topology)
    targets = itertools.cycle(departments)
    started = time.perf_counter()
    deadline = started + time_limit_s
    done = 0
    while done < count and time.perf_counter() < deadline:
        with context.store.transaction() as tx:
            quotas.reserve(tx, node_id=next(targets), center=center, amounts=amounts, now=context.clock.now())
        done += 1
    return done / (time.perf_counter() - started)


def measure_backend(
    backend: str, *, departments: int, rounds: int, count: int, time_limit_s: float, workdir: Path
) -> dict[str, list[float]]:
    with common.throwaway_database(backend) as database_url:
        topology_file = common.write_bench_topology(workdir)
        context = common.open_context(
            database_url, home=workdir, topology_file=topology_file, clock=clocks.ManualClock()
        )
        try:
            started = time.perf_counter()
            department_ids = build_tree(context, departments=departments)
            setup_s = time.perf_counter() - started
            common.create_raw_table(context.store, rows=1)
            measured: dict[str, list[float]] = {
                "raw_tx_per_s": [],
                "reservations_per_s": [],
                "setup_s": [setup_s],
            }
            for _round in range(rounds):
                measured["raw_tx_per_s"].append(
                    common.raw_transactions_per_s(context.store, count=count, time_limit_s=time_limit_s)
                )
                measured["reservations_per_s"].append(
                    reservations_per_s(
                        context, departments=department_ids, count=count, time_limit_s=time_limit_s
                    )
                )
        finally:
            context.close()
    return measured


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    size = size or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    rounds = rounds or (1 if smoke else 3)
    count = SMOKE_ROUND_COUNT if smoke else ROUND_COUNT
    time_limit_s = SMOKE_ROUND_TIME_LIMIT_S if smoke else ROUND_TIME_LIMIT_S
    result = common.BenchResult(
        name=NAME,
        size=size,
        smoke=smoke,
        baseline="single-row UPDATE transactions on the same database, one thread",
    )
    result.notes.append(
        f"{size} departments under {max(1, size // DEPARTMENTS_PER_DISTRICT)} district(s) under one bureau; "
        f"each reservation locks a 4-node chain; rounds of at most {count} or {time_limit_s:g} s, "
        f"{rounds} round(s), medians"
    )
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-quota-") as directory:
        for backend in BACKENDS:
            workdir = Path(directory) / backend
            workdir.mkdir()
            measured = measure_backend(
                backend,
                departments=size,
                rounds=rounds,
                count=count,
                time_limit_s=time_limit_s,
                workdir=workdir,
            )
            result.details[backend] = {key: [round(v, 2) for v in values] for key, values in measured.items()}
            result.add(
                f"{backend}: reservations vs raw transactions",
                unit="/s",
                subject=common.median(measured["reservations_per_s"]),
                baseline=common.median(measured["raw_tx_per_s"]),
                meaning="fraction of the raw transaction rate",
            )
    return result
