"""What every benchmark shares: results, interleaved measurement, throwaway stores, the bench topology.

Invariants:
- Every figure is a ratio to a baseline measured in the same run, interleaved with the
  subject (baseline, subject, baseline, subject ...) and summarised by medians, so a
  machine shared with other work shifts both sides alike. Absolute numbers ride along
  for context only.
- Stores are throwaway: a SQLite file in a temporary directory, or a PostgreSQL database
  created on the server ``scripts/ensure-postgres.sh`` names and dropped afterwards.
- The bench topology is a copy of ``infra/topology.yaml`` with every center's simulator
  latency at zero and the city's quotas and the centers' capacity multiplied, so that the
  size of a benchmark, not the example's quotas, bounds it. Nothing names a center: the
  centers are read from the topology by role.
- A time budget (``time_budget``) interrupts a run that would take too long with
  ``BudgetExceeded``, so a slow size is reported as such instead of hanging the suite.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import math
import os
import platform
import signal
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.drivers import simulator as simulator_driver
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers as drivers_service
from cloudctl.services import setup
from cloudctl.store import db, orgs, quotas

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_TOPOLOGY = ROOT / "infra" / "topology.yaml"
POLICIES = ROOT / "policies"
ENSURE_POSTGRES = ROOT / "scripts" / "ensure-postgres.sh"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
QUOTA_SCALE = 1000
"""How much the bench topology multiplies the city's quotas and the centers' capacity."""
RAW_TABLE = "bench_raw_rows"
"""A scratch table the raw-transaction baselines update; only ever in a throwaway database."""
SERVER_POLL_INTERVAL_S = 0.05


# --- results ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Figure:
    """One reported number: the subject, its baseline measured side by side, and their ratio."""

    name: str
    unit: str
    subject: float | None
    baseline: float | None
    ratio: float | None
    ratio_meaning: str
    """How to read ``ratio``, e.g. ``subject/baseline: fraction of the web stack's ceiling``."""


@dataclasses.dataclass
class BenchResult:
    """What one benchmark reports; ``as_json`` is the shape stored in ``results.json``."""

    name: str
    size: int
    smoke: bool
    baseline: str
    """What the baseline is, in words."""
    figures: list[Figure] = dataclasses.field(default_factory=list)
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Absolute numbers per round, per size, per backend: context for the figures."""
    notes: list[str] = dataclasses.field(default_factory=list)
    duration_s: float = 0.0

    def add(
        self,
        name: str,
        *,
        unit: str,
        subject: float | None,
        baseline: float | None,
        meaning: str = "subject/baseline",
    ) -> Figure:
        figure = Figure(
            name=name,
            unit=unit,
            subject=_rounded(subject),
            baseline=_rounded(baseline),
            ratio=_rounded(ratio(subject, baseline)),
            ratio_meaning=meaning,
        )
        self.figures.append(figure)
        return figure

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ratio(subject: float | None, baseline: float | None) -> float | None:
    if subject is None or baseline is None or baseline == 0:
        return None
    return subject / baseline


def _rounded(value: float | None) -> float | None:
    if value is None or value == 0 or not math.isfinite(value):
        return value
    digits = max(4 - math.floor(math.log10(abs(value))), 0)
    return round(value, digits)


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def percentile(values: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` 0.99 for p99)."""
    if not values:
        return None
    ordered = sorted(values)
    index = min(max(math.ceil(fraction * len(ordered)) - 1, 0), len(ordered) - 1)
    return ordered[index]


def loglog_slope(sizes: Sequence[float], values: Sequence[float | None]) -> float | None:
    """Least-squares slope of log(value) over log(size): the growth exponent (1.0 is linear)."""
    points = [
        (math.log(size), math.log(value))
        for size, value in zip(sizes, values, strict=True)
        if value is not None and value > 0 and size > 0
    ]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def machine() -> dict[str, Any]:
    """The machine a run measured on (for README.md and results.json)."""
    memory = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        memory = subprocess.run(["free", "-h"], capture_output=True, text=True, check=False).stdout.rstrip()
    return {
        "nproc": os.cpu_count(),
        "free_h": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
    }


# --- timing ------------------------------------------------------------------------------------


def timed(work: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of ``work()`` and what it returned."""
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


class BudgetExceeded(Exception):
    """A run took longer than its time budget and was interrupted."""


@contextlib.contextmanager
def time_budget(seconds: float) -> Iterator[None]:
    """Interrupt the block with ``BudgetExceeded`` after ``seconds`` (main thread only).

    The alarm repeats every second until the block is left, so ``finally`` clauses inside
    the interrupted code (a drill's cleanup) cannot run on unbounded either. Once it has gone
    off, whatever the block raises is ``BudgetExceeded``: the interrupted code may have wrapped
    it (SQLAlchemy does, when the alarm strikes inside a statement).
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("time_budget needs the main thread (it uses SIGALRM)")
    state = {"armed": True, "fired": False}

    def interrupt(_signum: int, _frame: object) -> None:
        if state["armed"]:
            state["fired"] = True
            raise BudgetExceeded(f"over the budget of {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    except BudgetExceeded:
        raise
    except Exception as error:
        if state["fired"]:
            raise BudgetExceeded(f"over the budget of {seconds:g} s") from error
        raise
    finally:
        state["armed"] = False
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until(predicate: Callable[[], bool], *, timeout_s: float, what: str) -> None:
    """Bounded polling for a server to come up; ``RuntimeError`` naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come up within {timeout_s:g} s")
        time.sleep(SERVER_POLL_INTERVAL_S)  # polling a server that is starting: the one sleep allowed


# --- the bench topology -----------------------------------------------------------------------


BENCH_PREFIX = 14
"""The prefix length of the bench topology's networks (each /20 widened to the /14 holding it)."""


def bench_topology_text(*, scale: int = QUOTA_SCALE) -> str:
    """The shipped topology with zero simulator latency and ``scale`` times the city's quota and capacity."""
    document = yaml.safe_load(SHIPPED_TOPOLOGY.read_text(encoding="utf-8"))
    for center in document["centers"]:
        center.setdefault("simulator", {})["latency_ms"] = 0
        center["capacity"] = {name: value * scale for name, value in center["capacity"].items()}
    document["org"]["quotas"] = [
        {key: (value * scale if key != "center" else value) for key, value in spec.items()}
        for spec in document["org"]["quotas"]
    ]
    for network in document.get("networks", []):
        # Room for a 10,000-workload backlog: the city's /20s hold 4,093 servers each.
        network["subnet"] = str(ipaddress.ip_network(network["subnet"]).supernet(new_prefix=BENCH_PREFIX))
    return yaml.safe_dump(document, allow_unicode=True, sort_keys=False)


def write_bench_topology(directory: Path) -> Path:
    path = directory / "topology.bench.yaml"
    path.write_text(bench_topology_text(), encoding="utf-8")
    return path


def local_centers(topology: topo.Topology) -> list[str]:
    return [center.name for center in topology.centers_with_role(topo.CenterRole.LOCAL)]


# --- stores ---------------------------------------------------------------------------------------


def pg_admin_url() -> str:
    """The admin URL of the PostgreSQL server ``scripts/ensure-postgres.sh`` makes answer."""
    if os.environ.get("CLOUDCTL_TEST_PG_URL"):
        return os.environ["CLOUDCTL_TEST_PG_URL"]
    finished = subprocess.run(
        [str(ENSURE_POSTGRES)], capture_output=True, text=True, check=False, timeout=600
    )
    if finished.returncode != 0:
        raise RuntimeError(f"scripts/ensure-postgres.sh failed: {finished.stderr.strip()[-500:]}")
    return finished.stdout.strip().splitlines()[-1] or DEFAULT_PG_ADMIN_URL


@contextlib.contextmanager
def throwaway_database(backend: str) -> Iterator[str]:
    """A URL of an empty database on ``backend`` (``sqlite`` or ``postgres``), removed afterwards."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="cloudctl-bench-") as directory:
            yield db.sqlite_url(Path(directory))
        return
    if backend != "postgres":
        raise ValueError(f"unknown backend {backend!r}")
    admin_url = pg_admin_url()
    name = f"cloudctl_bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(db.normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def open_context(
    database_url: str, *, home: Path, topology_file: Path, clock: clocks.Clock | None = None
) -> ctx_module.Context:
    """An initialised services context on ``database_url`` with the given topology."""
    settings = settings_module.Settings(
        home=home, database_url=database_url, topology=topology_file, policies=POLICIES
    )
    context = ctx_module.Context(settings=settings, clock=clock or clocks.SystemClock())
    setup.initialise(context)
    return context


def use_instant_simulator(context: ctx_module.Context) -> None:
    """Give the context a simulator whose servers boot at once (``server_boot_s=0``, the least it takes)."""
    from cloudctl.store import simulator_state

    context.cache[drivers_service._CACHE_KEY] = simulator_driver.Simulator(
        context.topology,
        backend=simulator_state.StoreBackedState(context.store, clock=context.clock),
        clock=context.clock,
        server_boot_s=0.0,
    )


def grant_like_root(tx: db.Transaction, *, node_id: str, topology: topo.Topology) -> None:
    """Give ``node_id`` the same limits as the root of the org tree (generous in the bench topology)."""
    changes: dict[quotas.LimitKey, int | None] = {}
    for spec in topology.org.quotas:
        for resource, value in spec.limits().items():
            changes[(node_id, spec.center_key, resource)] = value
    quotas.apply_limits(tx, changes=changes)


def create_bench_node(
    context: ctx_module.Context,
    *,
    node_id: str,
    kind: str = "department",
    display_name: str = "基准测试",
    parent: str | None = None,
) -> str:
    """An org node under ``parent`` (default: the root) with the root's (generous) limits; its id."""
    topology = context.topology
    with context.store.transaction() as tx:
        orgs.create_node(
            tx,
            node_id=node_id,
            display_name=display_name,
            kind=kind,
            parent_id=parent or topology.org.id,
            centers=[center.name for center in topology.centers],
            now=context.clock.now(),
        )
        grant_like_root(tx, node_id=node_id, topology=topology)
    return node_id


# --- the raw-transaction baseline ----------------------------------------------------------------


def create_raw_table(store: db.Store, *, rows: int) -> None:
    """The scratch table of the raw baseline: ``rows`` rows, one per concurrent writer."""
    with store.transaction() as tx:
        tx.execute(sa.text(f"CREATE TABLE IF NOT EXISTS {RAW_TABLE} (id INTEGER PRIMARY KEY, n BIGINT)"))
        tx.execute(sa.text(f"DELETE FROM {RAW_TABLE}"))
        tx.execute(
            sa.text(f"INSERT INTO {RAW_TABLE} (id, n) VALUES (:id, 0)"), [{"id": i} for i in range(rows)]
        )


def raw_update(store: db.Store, *, row: int) -> None:
    """One transaction that updates one row: the least a store write costs."""
    with store.transaction() as tx:
        tx.execute(sa.text(f"UPDATE {RAW_TABLE} SET n = n + 1 WHERE id = :id"), {"id": row})


def raw_transactions_per_s(store: db.Store, *, count: int, time_limit_s: float) -> float:
    """Single-threaded single-row update transactions per second, bounded by count and time."""
    started = time.perf_counter()
    deadline = started + time_limit_s
    done = 0
    while done < count and time.perf_counter() < deadline:
        raw_update(store, row=0)
        done += 1
    return done / (time.perf_counter() - started)
