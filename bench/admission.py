"""Admission: sustained ``POST /v1/requests`` throughput and latency with 32 concurrent clients.

Subject: the cloudctl API (``create_app``) served by uvicorn in its own process on loopback,
over a throwaway store, ordering the smallest VM offering. The load is spread the way a city's
departments spread it: ``DEPARTMENTS`` departments, half of them three levels below the root
(city → bureau → division → department) and half four (city → district → bureau → division →
department), every node of every chain with limits of its own (the root's, generous in the
bench topology), so each admission checks and moves the counters of a 4- or 5-node chain.
Client ``i`` orders as department ``i mod DEPARTMENTS`` (its own token) in tier ``i mod tiers``:
every protection tier, so single-center, standby and active-active placements, with and without
a DR hold, are all admitted.

Besides the 32-client rounds, rounds with one client measure the latency of an admission on
an otherwise idle server against one no-op call.

Baselines, in the same rounds (noop, subject, bare noop, raw; repeated; medians):

- (a) **web stack**: a no-op FastAPI ``async`` endpoint served the same way (uvicorn, one
  process, behind the API's own middleware ``api.hardening``), parsing a body of the same
  shape — the ceiling of FastAPI + uvicorn on this machine; beside it the same endpoint
  without the middleware, to show what the middleware costs;
- (b) **store**: 32 threads each running single-row ``UPDATE`` transactions through
  ``Store.transaction()`` on the same database — the ceiling of the store's write path.

The HTTP clients are 32 keep-alive connections of one asyncio process (``bench/load.py``),
not threads of this one: it reports the CPU it used per round, to show it is not the limit.
Each round also records the serving process's own CPU per answered call (from ``/proc``, all
its threads): on a shared machine it moves much less with the load than throughput does.

Each round is bounded by a request count and a time limit, whichever comes first. Run for
SQLite and PostgreSQL (a database created for the run and dropped after it).
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from bench import common
from cloudctl.model import topology as topo
from cloudctl.services import identity

NAME = "admission"
DEFAULT_SIZE = 2000
SMOKE_SIZE = 40
CLIENTS = 32
ROUND_TIME_LIMIT_S = 15.0
SMOKE_ROUND_TIME_LIMIT_S = 3.0
SERVER_START_TIMEOUT_S = 60.0
SINGLE_CLIENT_COUNT = 300
SMOKE_SINGLE_CLIENT_COUNT = 20
BACKENDS = ("sqlite", "postgres")
THREAD_BATCHES = 40
"""Batches per round when the admission thread is measured alone (and profiled)."""
SMOKE_THREAD_BATCHES = 2
PROFILE_BUDGET_S = 60.0
DEPARTMENTS = 24
"""At least 20 departments; half at depth 3 below the root, half at depth 4."""


@dataclasses.dataclass(frozen=True)
class RoundResult:
    """One bounded burst of calls from ``CLIENTS`` workers."""

    completed: int
    failed: int
    elapsed_s: float
    latencies_s: tuple[float, ...]
    statuses: dict[str, int]
    client_cpu_s: float | None = None
    """CPU the load generator spent in the burst (``None``: clients in this process)."""
    server_cpu_s: float | None = None
    """CPU the serving process spent in the burst, all its threads (``None``: not measured)."""

    @property
    def throughput_per_s(self) -> float:
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        p50 = common.percentile(self.latencies_s, 0.50)
        p99 = common.percentile(self.latencies_s, 0.99)
        return {
            "completed": self.completed,
            "failed": self.failed,
            "elapsed_s": round(self.elapsed_s, 3),
            "throughput_per_s": round(self.throughput_per_s, 1),
            "p50_ms": None if p50 is None else round(p50 * 1e3, 2),
            "p99_ms": None if p99 is None else round(p99 * 1e3, 2),
            "client_cpu_share": None
            if self.client_cpu_s is None or self.elapsed_s <= 0
            else round(self.client_cpu_s / self.elapsed_s, 3),
            "server_cpu_ms_per_call": None
            if self.server_cpu_s is None or not self.completed
            else round(self.server_cpu_s / self.completed * 1e3, 3),
            "statuses": self.statuses,
        }


def _result(
    statuses: dict[str, int], latencies: list[float], elapsed_s: float, cpu_s: float | None
) -> RoundResult:
    completed = sum(n for status, n in statuses.items() if status == "ok" or status.startswith("2"))
    return RoundResult(
        completed=completed,
        failed=sum(statuses.values()) - completed,
        elapsed_s=elapsed_s,
        latencies_s=tuple(latencies),
        statuses=statuses,
        client_cpu_s=cpu_s,
    )


def burst(call: Callable[[int], str], *, workers: int, count: int, time_limit_s: float) -> RoundResult:
    """Run ``call(worker)`` from ``workers`` threads until ``count`` calls or ``time_limit_s``.

    ``call`` returns a status label; ``"ok"`` (or an HTTP 2xx code) counts as completed.
    """
    tickets = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    started = time.perf_counter()
    deadline = started + time_limit_s

    def work(worker: int) -> None:
        mine: list[float] = []
        seen: dict[str, int] = {}
        while next(tickets) < count and time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                status = call(worker)
            except Exception as error:  # a failed call is counted, not fatal to the round
                status = type(error).__name__
            mine.append(time.perf_counter() - began)
            seen[status] = seen.get(status, 0) + 1
        with lock:
            latencies.extend(mine)
            for status, number in seen.items():
                statuses[status] = statuses.get(status, 0) + number

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(work, worker) for worker in range(workers)]:
            future.result()
    return _result(statuses, latencies, time.perf_counter() - started, None)


class LoadProcess:
    """``python -m bench.load`` in a child process: the HTTP clients, off the benchmark's interpreter."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.load"],
            cwd=common.ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def burst(
        self,
        url: str,
        path: str,
        *,
        requests: list[dict[str, Any]],
        connections: int,
        count: int,
        time_limit_s: float,
    ) -> RoundResult:
        assert self.process.stdin is not None and self.process.stdout is not None
        command = {
            "url": url,
            "path": path,
            "requests": requests,
            "connections": connections,
            "count": count,
            "time_limit_s": time_limit_s,
        }
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"bench.load exited with {self.process.wait()}")
        answer = json.loads(line)
        return _result(answer["statuses"], answer["latencies_s"], answer["elapsed_s"], answer["cpu_s"])

    def stop(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)


class Server:
    """``python -m bench.serve`` in a child process on a free loopback port."""

    def __init__(self, arguments: list[str], *, log_path: Path) -> None:
        self.port = common.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.serve", "--port", str(self.port), *arguments],
            cwd=common.ROOT,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            common.wait_until(
                self._answers, timeout_s=SERVER_START_TIMEOUT_S, what=f"bench.serve {arguments}"
            )
        except BaseException:
            self.stop()
            raise

    def _answers(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"bench.serve exited with {self.process.returncode}; see {self._log.name}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def cpu_s(self) -> float:
        """User and system CPU the server process has used so far (its ``/proc`` entry)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)
        self._log.close()


def order_bodies(topology: topo.Topology) -> list[dict[str, Any]]:
    """The smallest VM offering, once in every protection tier (by priority)."""
    offering = min(
        (o for o in topology.catalog if o.kind is topo.OfferingKind.VM), key=lambda o: (o.vcpu, o.ram_gb)
    )
    tiers = sorted(topology.tiers, key=lambda t: t.priority)
    return [{"offering": offering.name, "count": 1, "tier": tier.name} for tier in tiers]


def create_department_tree(context: Any, *, count: int) -> list[str]:
    """``count`` departments, alternately 3 and 4 levels below the root; every node with limits.

    Depth 3: root → bureau → division → department (3 bureaus). Depth 4: root → district →
    bureau → division → department (2 districts of 2 bureaus). A division is of kind bureau: a
    department takes no children.
    """
    root = context.topology.org.id

    def node(node_id: str, parent: str, kind: str) -> str:
        return common.create_bench_node(context, node_id=node_id, parent=parent, kind=kind)

    shallow = [
        node(f"bench-bureau-{b}-division", node(f"bench-bureau-{b}", root, "bureau"), "bureau")
        for b in range(3)
    ]
    deep = []
    for d in range(2):
        district = node(f"bench-district-{d}", root, "district")
        for b in range(2):
            bureau = node(f"{district}-bureau-{b}", district, "bureau")
            deep.append(node(f"{bureau}-division", bureau, "bureau"))
    shallow_parents, deep_parents = itertools.cycle(shallow), itertools.cycle(deep)
    return [
        node(f"bench-dept-{index:02d}", next(deep_parents if index % 2 else shallow_parents), "department")
        for index in range(count)
    ]


def measure_backend(
    backend: str,
    *,
    size: int,
    single_count: int,
    rounds: int,
    time_limit_s: float,
    thread_batches: int,
    workdir: Path,
) -> dict[str, Any]:
    """The HTTP rounds against the no-op and cloudctl servers, the store's raw write rounds,
    then the admission thread alone in this process (``admission_thread.measure``)."""
    with common.throwaway_database(backend) as database_url:
        home = workdir / backend
        home.mkdir()
        topology_file = common.write_bench_topology(workdir)
        context = common.open_context(database_url, home=home, topology_file=topology_file)
        try:
            departments = create_department_tree(context, count=DEPARTMENTS)
            secrets = [
                identity.create_token(
                    context,
                    principal=identity.local_operator("secadmin"),
                    role="dept-user",
                    department=department,
                ).secret
                for department in departments
            ]
            common.create_raw_table(context.store, rows=CLIENTS)
            bodies = order_bodies(context.topology)
            orders = [
                {"headers": {"Authorization": f"Bearer {secret}"}, "body": bodies[index % len(bodies)]}
                for index, secret in enumerate(secrets)
            ]
            noops = [{"headers": {}, "body": body} for body in bodies]
            servers = {
                "noop": Server(["--app", "noop"], log_path=workdir / f"noop-{backend}.log"),
                "noop_bare": Server(["--app", "noop-bare"], log_path=workdir / f"noop-bare-{backend}.log"),
                "admission": Server(
                    [
                        "--app",
                        "cloudctl",
                        "--database-url",
                        database_url,
                        "--home",
                        str(home),
                        "--topology",
                        str(topology_file),
                    ],
                    log_path=workdir / f"cloudctl-{backend}.log",
                ),
            }
            load = LoadProcess()
            try:
                targets = {
                    "noop": (servers["noop"].url, "/noop", noops),
                    "noop_bare": (servers["noop_bare"].url, "/noop", noops),
                    "admission": (servers["admission"].url, "/v1/requests", orders),
                }

                def http(label: str, clients: int, count: int, limit_s: float) -> RoundResult:
                    url, path, requests = targets[label]
                    before = servers[label].cpu_s()
                    result = load.burst(
                        url, path, requests=requests, connections=clients, count=count, time_limit_s=limit_s
                    )
                    return dataclasses.replace(result, server_cpu_s=servers[label].cpu_s() - before)

                def raw(worker: int) -> str:
                    common.raw_update(context.store, row=worker)
                    return "ok"

                # warm-up: connections, the policy engine, caches
                for label in targets:
                    http(label, CLIENTS, CLIENTS * 4, time_limit_s)
                burst(raw, workers=CLIENTS, count=CLIENTS, time_limit_s=time_limit_s)
                measured: dict[str, list[RoundResult]] = {
                    label: [] for label in ("noop", "noop_bare", "admission", "raw", "noop_1", "admission_1")
                }
                for _round in range(rounds):
                    for label in ("noop", "admission", "noop_bare"):
                        measured[label].append(http(label, CLIENTS, size, time_limit_s))
                    measured["raw"].append(burst(raw, workers=CLIENTS, count=size, time_limit_s=time_limit_s))
                    for label in ("noop", "admission"):
                        measured[f"{label}_1"].append(http(label, 1, single_count, time_limit_s))
            finally:
                load.stop()
                for server in servers.values():
                    server.stop()
            cleanup = counter_cleanup(context) if backend == "postgres" else None
            from bench import admission_thread  # it builds on this module's departments and orders

            in_process = admission_thread.measure(
                context,
                departments,
                batches=thread_batches,
                rounds=rounds,
                profile_budget_s=PROFILE_BUDGET_S,
            )
        finally:
            context.close()
    summaries: dict[str, Any] = {label: [r.summary() for r in results] for label, results in measured.items()}
    if cleanup is not None:
        summaries["counter_cleanup"] = cleanup
    summaries["admission_thread"] = in_process
    return summaries


def counter_cleanup(context: Any) -> dict[str, Any]:
    """Whether PostgreSQL could clean the quota counters' old row versions during the run.

    Every admission batch writes a new version of each counter row it moves. Pruning and
    vacuum remove the old ones only behind the oldest snapshot of the whole server: a
    transaction left open in any database, with autovacuum off, lets them pile up, and each
    lock and update of a counter then walks more versions (admission slows as the run goes on).
    """
    with context.store.engine.connect() as connection:
        updated, hot, dead, live = connection.exec_driver_sql(
            "SELECT n_tup_upd, n_tup_hot_upd, n_dead_tup, n_live_tup FROM pg_stat_user_tables "
            "WHERE relname = 'quota_counters'"
        ).one()
        oldest_s = connection.exec_driver_sql(
            "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0) FROM pg_stat_activity "
            "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()"
        ).scalar_one()
        autovacuum = connection.exec_driver_sql("SHOW autovacuum").scalar_one()
    return {
        "quota_counters_updates": int(updated),
        "quota_counters_hot_updates": int(hot),
        "quota_counters_dead_versions": int(dead),
        "quota_counters_live_rows": int(live),
        "oldest_open_transaction_s": round(float(oldest_s), 1),
        "autovacuum": autovacuum,
    }


def _admission_thread_note(backend: str, figures: dict[str, Any]) -> str:
    """Where an admission's time goes in the serving process, from ``admission_thread.measure``."""
    batch, alone, profile = figures["batched"], figures["alone"], figures["profile_batched"]
    hot = profile["top_cumulative_in_cloudctl"][1:6]  # the first is the batch itself
    top = ", ".join(f"{entry['function']} {entry['cumulative_s']:.2f} s" for entry in hot)
    return (
        f"{backend}: the admission thread alone (in process): CPU "
        f"{statistics.median(batch['cpu_ms_per_admission']):.2f} ms and wall "
        f"{statistics.median(batch['wall_ms_per_admission']):.2f} ms per admission in batches of "
        f"{figures['batch_size']}, "
        f"{statistics.median(alone['cpu_ms_per_admission']):.2f} and "
        f"{statistics.median(alone['wall_ms_per_admission']):.2f} ms in batches of one (the one-client "
        f"case); profile of the batches ({profile['profiled_s']} s, details.{backend}.admission_thread): "
        f"most cumulative time in {top}"
    )


def _median_of(rounds: list[dict[str, Any]], key: str) -> float | None:
    return common.median([r[key] for r in rounds if r[key] is not None])


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    size = size or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    single_count = SMOKE_SINGLE_CLIENT_COUNT if smoke else SINGLE_CLIENT_COUNT
    rounds = rounds or (1 if smoke else 3)
    time_limit_s = SMOKE_ROUND_TIME_LIMIT_S if smoke else ROUND_TIME_LIMIT_S
    result = common.BenchResult(
        name=NAME,
        size=size,
        smoke=smoke,
        baseline="(a) no-op FastAPI endpoint served the same way; (b) 32 threads of single-row UPDATE "
        "transactions on the same database",
    )
    result.notes.append(
        f"{CLIENTS} keep-alive connections from one asyncio client process (bench/load.py), its CPU "
        f"reported per round; each server in its own process; rounds of at most {size} calls or "
        f"{time_limit_s:g} s, {rounds} round(s), medians; the no-op baseline behind the API's own "
        "middleware (api.hardening), a bare no-op beside it"
    )
    result.notes.append(
        f"load over {DEPARTMENTS} departments (half 3, half 4 levels below the root, a token each) and "
        "every protection tier; one-client rounds of at most "
        f"{single_count} calls after each 32-client round"
    )
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-admission-") as directory:
        for backend in BACKENDS:
            workdir = Path(directory) / f"work-{backend}"
            workdir.mkdir()
            measured = measure_backend(
                backend,
                size=size,
                single_count=single_count,
                rounds=rounds,
                time_limit_s=time_limit_s,
                thread_batches=SMOKE_THREAD_BATCHES if smoke else THREAD_BATCHES,
                workdir=workdir,
            )
            result.details[backend] = measured
            result.notes.append(_admission_thread_note(backend, measured["admission_thread"]))
            admission, noop, raw = measured["admission"], measured["noop"], measured["raw"]
            result.add(
                f"{backend}: throughput vs no-op endpoint",
                unit="req/s",
                subject=_median_of(admission, "throughput_per_s"),
                baseline=_median_of(noop, "throughput_per_s"),
                meaning="fraction of the web stack's ceiling",
            )
            result.add(
                f"{backend}: throughput vs bare no-op endpoint (no middleware)",
                unit="req/s",
                subject=_median_of(admission, "throughput_per_s"),
                baseline=_median_of(measured["noop_bare"], "throughput_per_s"),
                meaning="fraction of the bare web stack's ceiling",
            )
            result.add(
                f"{backend}: throughput vs raw store transactions",
                unit="req/s vs tx/s",
                subject=_median_of(admission, "throughput_per_s"),
                baseline=_median_of(raw, "throughput_per_s"),
                meaning="fraction of the store's write ceiling",
            )
            for key in ("p50_ms", "p99_ms"):
                result.add(
                    f"{backend}: {key.removesuffix('_ms')} latency vs no-op endpoint",
                    unit="ms",
                    subject=_median_of(admission, key),
                    baseline=_median_of(noop, key),
                    meaning="times the no-op latency",
                )
            result.add(
                f"{backend}: p50 latency with one client vs no-op endpoint",
                unit="ms",
                subject=_median_of(measured["admission_1"], "p50_ms"),
                baseline=_median_of(measured["noop_1"], "p50_ms"),
                meaning="times the no-op latency (one client)",
            )
            result.add(
                f"{backend}: server CPU per call, admission vs no-op endpoint",
                unit="ms",
                subject=_median_of(admission, "server_cpu_ms_per_call"),
                baseline=_median_of(noop, "server_cpu_ms_per_call"),
                meaning="the serving process's CPU (all threads) per answered call, 32 clients; "
                "less sensitive to the machine's load than throughput",
            )
            result.add(
                f"{backend}: load generator CPU share, admission vs no-op rounds",
                unit="cores",
                subject=_median_of(admission, "client_cpu_share"),
                baseline=_median_of(noop, "client_cpu_share"),
                meaning="client CPU per wall second, admission rounds / no-op rounds",
            )
            cleanup = measured.get("counter_cleanup")
            if cleanup and cleanup["quota_counters_dead_versions"] > 10 * cleanup["quota_counters_live_rows"]:
                result.notes.append(
                    f"{backend}: {cleanup['quota_counters_dead_versions']:,} old versions of "
                    f"{cleanup['quota_counters_live_rows']:,} quota counter rows were left uncleaned "
                    f"(autovacuum {cleanup['autovacuum']}, oldest open transaction on the server "
                    f"{cleanup['oldest_open_transaction_s']:g} s): admission slowed as the run went on"
                )
            failures = sum(r["failed"] for r in admission + measured["admission_1"])
            if failures:
                statuses = [r["statuses"] for r in admission]
                result.notes.append(f"{backend}: {failures} admission calls did not answer 2xx: {statuses}")
    return result
