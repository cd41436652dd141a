"""Running the reconcilers: once for one object (the CLI), or concurrently (``cloudctl serve``).

``Provisioner`` reconciles many requests (and deleting workloads) at once on a pool of
worker threads, with a bound per center and per backend: an object is handed to a worker
only when every center it touches, and the backend of each, has a free slot, so a slow
or failing center fills its own slots and leaves the workers to the others. Periodic
passes (replication, quota sync, audit retention, ...) are not here: they run on loops of
their own (``services.housekeeping``), so they never hold provisioning back.

Invariants: the work comes from the store (level-based: a restarted process, or a new
leader, finds what was in flight); one object is never reconciled by two workers of one
process at once (and two processes never both lead: ``services.leader``); a stop request
lets each worker finish the step it is in and then returns — nothing is left half-written
because every step is its own transaction (on an instant simulator, a resource and its
record share one: ``steps_grouped``), or shares one with the same step of other objects
(``GroupStarter``, ``GroupFinisher``, ``GroupCreator``: group commit), which commits or fails
as a whole. Each object is retried no sooner than its ``requeue_after_s``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import logging
import threading
import time
import typing

from cloudctl import errors, metrics
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.reconcile import provisioning, quota_sync
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers
from cloudctl.store import requests

log = logging.getLogger("cloudctl.reconcile")


def environment(ctx: ctx_module.Context) -> provisioning.Environment:
    ctx.require_initialised()
    return provisioning.Environment(
        store=ctx.store,
        topology=ctx.topology,
        drivers_for=lambda center: drivers.center_drivers(ctx, center),
        clock=ctx.clock,
    )


def steps_grouped(ctx: ctx_module.Context) -> bool:
    """Whether the provisioning reconciler may order a resource and record it in one store
    transaction (``reconcile.provisioning.reconcile_request``'s ``group_steps``).

    So it may when every capability of every center is the simulator over this very store
    and answers at once (no latency, servers active as soon as they exist): nothing is then
    waited for while the transaction is open, and the simulated resource is a row of the
    same transaction as its record. A real backend, or a simulator that makes its callers
    wait, gets a transaction per step.
    """
    from cloudctl.store import simulator_state

    for center in ctx.topology.centers:
        if any(center.drivers.get(c, drivers.SIMULATOR) != drivers.SIMULATOR for c in topo.Capability):
            return False
    simulated = drivers.simulator(ctx)
    backend = simulated.backend
    if not isinstance(backend, simulator_state.StoreBackedState) or backend.store is not ctx.store:
        return False
    return all(simulated.answers_at_once(center.name) for center in ctx.topology.centers)


def reconcile(ctx: ctx_module.Context, *, kind: str, object_id: str) -> provisioning.Result:
    """Reconcile one object; a workload that became ready gets its replication streams."""
    env = environment(ctx)
    result = provisioning.reconcile_once(env, kind, object_id, group_steps=steps_grouped(ctx))
    if result.done and result.message == states.WorkloadState.READY:
        from cloudctl.services import recovery
        from cloudctl.store import requests

        with ctx.read() as tx:
            workload_id = requests.get_request(tx, object_id).workload_id if kind == "request" else object_id
        recovery.protect_workloads(ctx, [workload_id or ""])
    return result


def sync_quotas(
    ctx: ctx_module.Context, *, center: str | None = None, dry_run: bool = False
) -> list[quota_sync.SyncResult]:
    """Keep every cloud center's project quotas equal to the quota tree (or show the drift)."""
    env = environment(ctx)
    centers = [ctx.topology.center(center).name] if center else quota_sync.cloud_centers(ctx.topology)
    return [quota_sync.sync_center(env, center=name, dry_run=dry_run) for name in centers]


def backlog(ctx: ctx_module.Context) -> dict[str, int]:
    """What the provisioning reconciler has yet to finish: requests to provision, workloads to delete."""
    from cloudctl.store import requests

    with ctx.read() as tx:
        by_state = requests.count_by_state(tx)
        deleting = len(requests.list_workloads(tx, states=[states.WorkloadState.DELETING]))
    in_flight = by_state.get(states.WorkloadState.APPROVED, 0) + by_state.get(
        states.WorkloadState.PROVISIONING, 0
    )
    return {"request": in_flight, "workload": deleting}


def run_pending(ctx: ctx_module.Context) -> dict[str, provisioning.Result]:
    """One pass over everything in flight; what each object's reconcile returned."""
    env = environment(ctx)
    grouped = steps_grouped(ctx)
    return {
        item.object_id: provisioning.reconcile_once(env, item.kind, item.object_id, group_steps=grouped)
        for item in provisioning.pending_work(env)
    }


Item = typing.TypeVar("Item")
Outcome = typing.TypeVar("Outcome")


class _Batches(typing.Generic[Item, Outcome]):
    """Group commit: an item handed in under one key while a batch of that key runs waits,
    and the next to go runs everything queued under its key (``run_together``); other keys
    run side by side. A batch that fails is run again one item at a time (``run_alone``), so
    one item's error is its own caller's. Each caller gets its own item's outcome."""

    def __init__(
        self,
        run_together: typing.Callable[[list[Item]], list[Outcome]],
        run_alone: typing.Callable[[Item], Outcome],
    ) -> None:
        self._run_together = run_together
        self._run_alone = run_alone
        self._changed = threading.Condition()
        self._queues: dict[str, list[_Piece[Item, Outcome]]] = {}
        self._running: set[str] = set()
        self.batches = 0
        """Transactions committed (a test's view of the grouping)."""

    def waiting(self, key: str) -> int:
        """Items handed in under ``key`` and queued behind the batch running."""
        with self._changed:
            return len(self._queues.get(key, ()))

    def run(self, key: str, item: Item) -> Outcome:
        mine: _Piece[Item, Outcome] = _Piece(item)
        batch: list[_Piece[Item, Outcome]] = []
        with self._changed:
            self._queues.setdefault(key, []).append(mine)
            while key in self._running and not mine.done:
                self._changed.wait()
            if not mine.done:
                batch = self._queues.pop(key)
                self._running.add(key)
        if batch:
            try:
                self._run(batch)
            except BaseException as error:
                for piece in batch:
                    if piece.error is None and not piece.finished:
                        piece.error = errors.OperationFailed(
                            f"the batch was interrupted: {error!r}", field="provisioning"
                        )
                raise
            finally:
                with self._changed:
                    self._running.discard(key)
                    for piece in batch:
                        piece.done = True
                    self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        return typing.cast(Outcome, mine.outcome)

    def _run(self, batch: list[_Piece[Item, Outcome]]) -> None:
        if len(batch) > 1:
            try:
                outcomes = self._run_together([piece.item for piece in batch])
            except Exception:
                log.info("a batch of %d failed; running its items one at a time", len(batch))
            else:
                self.batches += 1
                for piece, outcome in zip(batch, outcomes, strict=True):
                    piece.outcome, piece.finished = outcome, True
                return
        for piece in batch:
            try:
                piece.outcome, piece.finished = self._run_alone(piece.item), True
                self.batches += 1
            except Exception as error:
                piece.error = error


@dataclasses.dataclass
class _Piece(typing.Generic[Item, Outcome]):
    item: Item
    outcome: Outcome | None = None
    finished: bool = False
    done: bool = False
    error: Exception | None = None


class _OneBatch(typing.Generic[Item, Outcome]):
    """Group commit of one kind of step under one key: ``__call__`` runs an item with those
    handed in at the same time (``together``, one transaction), alone when that batch fails."""

    def __init__(self, together: typing.Callable[[list[Item]], list[Outcome]]) -> None:
        self._together = together
        self._batches: _Batches[Item, Outcome] = _Batches(together, self._alone)

    @property
    def batches(self) -> int:
        return self._batches.batches

    @property
    def waiting(self) -> int:
        return self._batches.waiting("")

    def __call__(self, item: Item) -> Outcome:
        return self._batches.run("", item)

    def _alone(self, item: Item) -> Outcome:
        return self._together([item])[0]


class GroupFinisher(_OneBatch[provisioning.LastStep, None]):
    """The last steps of orders finishing at the same time, run in one transaction
    (``reconcile.provisioning.Finisher``). Every order of a department commits quota to the
    same counter rows (and to their all-centers totals), so one transaction each would queue
    them all behind one another's commits; a batch locks them, and commits, once."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        super().__init__(self._finish)

    def _finish(self, steps: list[provisioning.LastStep]) -> list[None]:
        with self._ctx.store.transaction() as tx:
            provisioning.commit_last_steps(tx, steps, now=self._ctx.clock.now())
        return [None for _ in steps]


class GroupStarter(_OneBatch[str, requests.WorkloadRecord | provisioning.Result]):
    """The first steps of orders starting at the same time (each request read and moved to
    provisioning with its workload, ``reconcile.provisioning.start_orders``), run in one
    transaction: the requests and workloads are read, and written, one statement per table for
    all of them, and the fenced store checks its lease once for them all."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        super().__init__(self._start)

    def _start(self, request_ids: list[str]) -> list[requests.WorkloadRecord | provisioning.Result]:
        with self._ctx.store.transaction() as tx:
            return provisioning.start_orders(tx, request_ids, now=self._ctx.clock.now())


class GroupCreator:
    """Resources of orders of one center ordered at the same time, each made and recorded
    in one unit of work with the others (``reconcile.provisioning.Creator``; used on an
    instant simulator over this store, ``steps_grouped``). Every creation in a center locks
    the center's usage row until it commits, so they run one after another whatever the
    number of workers; one unit for those queued takes the lock, and commits, once."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        self._batches: _Batches[provisioning.CreateStep, provisioning.Created] = _Batches(
            self._together, self._alone
        )

    @property
    def batches(self) -> int:
        return self._batches.batches

    def waiting(self, center: str) -> int:
        return self._batches.waiting(center)

    def __call__(self, center: str, step: provisioning.CreateStep) -> provisioning.Created:
        return self._batches.run(center, step)

    def _together(self, steps: list[provisioning.CreateStep]) -> list[provisioning.Created]:
        with self._ctx.store.unit_of_work(savepoints=False):
            return [step() for step in steps]

    def _alone(self, step: provisioning.CreateStep) -> provisioning.Created:
        return self._together([step])[0]


RESCAN_BUSY_S = 10.0
"""While a backlog lasts, how often it is read again from the store."""


@dataclasses.dataclass(frozen=True)
class Bounds:
    """How much provisioning runs at once."""

    workers: int = 16
    """Worker threads of the provisioner (objects reconciled at once, in all)."""
    per_center: int = 8
    """Objects being reconciled at once that touch one center."""
    per_backend: int = 16
    """Objects being reconciled at once whose centers share one backend (an OpenStack cloud,
    the simulator)."""


def backend_of(center: topo.Center) -> str:
    """The backend a center provisions compute on: centers sharing it share its bound."""
    driver = center.drivers.get(topo.Capability.COMPUTE, "simulator")
    if driver == "openstack":
        settings = center.backends.openstack
        return f"openstack:{(settings.cloud if settings else None) or center.name}"
    return driver


class _Slots:
    """Counters of what runs per center and per backend; taken all together or not at all."""

    def __init__(self, topology: topo.Topology, bounds: Bounds) -> None:
        self._bounds = bounds
        self._backend = {center.name: backend_of(center) for center in topology.centers}
        self._used: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def keys(self, centers: tuple[str, ...]) -> list[str]:
        keys = [f"center:{name}" for name in dict.fromkeys(centers)]
        keys += [f"backend:{self._backend.get(name, name)}" for name in dict.fromkeys(centers)]
        return list(dict.fromkeys(keys))

    def _limit(self, key: str) -> int:
        return self._bounds.per_center if key.startswith("center:") else self._bounds.per_backend

    def try_take(self, keys: list[str]) -> bool:
        with self._lock:
            if any(self._used[key] >= self._limit(key) for key in keys):
                return False
            for key in keys:
                self._used[key] += 1
            return True

    def give_back(self, keys: list[str]) -> None:
        with self._lock:
            for key in keys:
                self._used[key] -= 1


class Provisioner:
    """The provisioning reconciler of ``cloudctl serve``: a dispatcher thread and a worker pool."""

    def __init__(
        self, ctx: ctx_module.Context, *, interval_s: float = 1.0, bounds: Bounds | None = None
    ) -> None:
        self._ctx = ctx
        self._interval_s = interval_s
        self.bounds = bounds or Bounds()
        self._slots = _Slots(ctx.topology, self.bounds)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()
        self._not_before: dict[str, float] = {}
        self._queues: dict[tuple[str, ...], collections.deque[provisioning.WorkItem]] = {}
        self._scanned_at = float("-inf")
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None
        self._steps_grouped: bool | None = None
        self.starter = GroupStarter(ctx)
        self.finisher = GroupFinisher(ctx)
        self.creator = GroupCreator(ctx)
        self.finished = 0

    def start(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=self.bounds.workers, thread_name_prefix="cloudctl-provision"
        )
        self._thread = threading.Thread(target=self._run, name="cloudctl-provisioner", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout_s: float) -> bool:
        """Wait for the dispatcher and the workers' current steps; whether they ended in time."""
        deadline = time.monotonic() + timeout_s
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        while time.monotonic() < deadline:
            with self._lock:
                if not self._in_flight:
                    break
            self._wake.wait(0.05)
        with self._lock:
            return not self._in_flight and not (self._thread and self._thread.is_alive())

    def stop(self, *, timeout_s: float = 30.0) -> bool:
        self.request_stop()
        return self.join(timeout_s)

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def dispatch(self) -> int:
        """Hand what is due and fits the bounds to the workers; how many were handed out.

        The backlog, read from the store, waits in one queue per set of centers, oldest
        first. A queue whose centers have no free slot waits as a whole (one check), so a
        dispatch costs the same with ten thousand orders waiting as with ten. The store is
        read again when the backlog has run out (at most every interval) and, while it
        lasts, every ``RESCAN_BUSY_S``; an object that asked to be retried later leaves its
        queue and comes back with the next read once it is due.
        """
        env = environment(self._ctx)
        if self._steps_grouped is None:
            self._steps_grouped = steps_grouped(self._ctx)
        now = self._ctx.clock.now()
        # Paced in real time, like the loop's waits: the context's clock may be a manual one.
        if time.monotonic() - self._scanned_at >= (RESCAN_BUSY_S if self._queues else self._interval_s):
            self._scanned_at = time.monotonic()
            with self._lock:
                busy = set(self._in_flight)
            queues: dict[tuple[str, ...], collections.deque[provisioning.WorkItem]] = {}
            for item in provisioning.pending_work(env):
                if item.object_id not in busy:
                    queues.setdefault(item.centers, collections.deque()).append(item)
            self._queues = queues
        handed = 0
        for centers, queue in list(self._queues.items()):
            keys = self._slots.keys(centers)
            while queue and not self._stop.is_set() and self.in_flight < self.bounds.workers:
                item = queue[0]
                if self._not_before.get(item.object_id, 0.0) > now:
                    queue.popleft()
                    continue
                if not self._slots.try_take(keys):
                    break
                queue.popleft()
                with self._lock:
                    self._in_flight.add(item.object_id)
                assert self._pool is not None
                self._pool.submit(self._work, env, item, keys)
                handed += 1
            if not queue:
                del self._queues[centers]
        return handed

    def _work(self, env: provisioning.Environment, item: provisioning.WorkItem, keys: list[str]) -> None:
        now = self._ctx.clock.now()
        try:
            if self._stop.is_set():
                return
            result = provisioning.reconcile_once(
                env,
                item.kind,
                item.object_id,
                group_steps=bool(self._steps_grouped),
                finish=self.finisher,
                create=self.creator,
                start=self.starter,
            )
        except Exception:
            log.exception("reconcile of %s %s failed; retrying later", item.kind, item.object_id)
            self._not_before[item.object_id] = now + 10 * self._interval_s
        else:
            if result.done:
                self._not_before.pop(item.object_id, None)
                metrics.PROVISIONING_FINISHED.labels(kind=item.kind, outcome=_outcome(result)).inc()
            elif result.requeue_after_s is not None:
                self._not_before[item.object_id] = now + result.requeue_after_s
        finally:
            self._slots.give_back(keys)
            with self._lock:
                self._in_flight.discard(item.object_id)
                self.finished += 1
            self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.dispatch()
            except Exception:
                log.exception("provisioning dispatch failed")
            self._wake.wait(self._interval_s)
            self._wake.clear()


def _outcome(result: provisioning.Result) -> str:
    if result.message in (states.WorkloadState.READY, states.WorkloadState.DELETED):
        return str(result.message)
    if result.message and not result.message.startswith("nothing"):
        return states.WorkloadState.FAILED.value
    return "done"
