"""The periodic passes of ``cloudctl serve``, each on its own thread, so none stalls another.

Provisioning never waits for housekeeping: an order placed while a quota sync runs is
provisioned as fast as one placed outside it, because the sync runs on its own loop.

Adding a pass: write a function ``def run(ctx: Context) -> None`` (it raises on failure;
the loop logs and retries at the next interval) and add one ``Pass`` to ``PASSES``.
``interval_s=None`` means "the serve's reconcile interval" (``--reconcile-interval-s``).
A pass runs on the elected leader only, with the leader's fenced store: a pass of a
former leader writes nothing.

Invariants: a pass runs at start, then every ``interval_s`` after the previous run
started (never two runs of one pass at once); a stop request lets the run in progress
finish its current step; every pass is idempotent, so a run cut short is simply run again.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Sequence

from cloudctl import metrics
from cloudctl import settings as settings_module
from cloudctl.services import context as ctx_module

log = logging.getLogger("cloudctl.housekeeping")


@dataclasses.dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[ctx_module.Context], None]
    interval_s: float | Callable[[settings_module.Settings], float] | None
    """Seconds between runs, or the setting that says; ``None``: the serve's reconcile interval."""

    def interval_in(self, ctx: ctx_module.Context, *, default_s: float) -> float:
        if self.interval_s is None:
            return default_s
        if callable(self.interval_s):
            return self.interval_s(ctx.settings)
        return self.interval_s


def replicate(ctx: ctx_module.Context) -> None:
    """Protect newly ready workloads, run the replication passes that are due, then take the
    replication points (volume snapshots) those passes call for."""
    from cloudctl.services import recovery, replication_points

    results = recovery.run_due(ctx)
    replication_points.take_points(ctx, results)


def sync_quotas(ctx: ctx_module.Context) -> None:
    """Project quotas of every cloud center back to the quota tree."""
    from cloudctl.services import provisioning

    for result in provisioning.sync_quotas(ctx):
        if result.drift:
            log.info("corrected %d quota drift(s) in %s", len(result.drift), result.center)


def audit_retention(ctx: ctx_module.Context) -> None:
    from cloudctl.services import audit

    audit.apply_retention(ctx)


def audit_checkpoint(ctx: ctx_module.Context) -> None:
    """Verify the audit records since the newest checkpoint and sign the head into the
    checkpoint file, outside the database (``settings.audit_checkpoint_interval_s``)."""
    from cloudctl.services import audit

    written = audit.checkpoint(ctx)
    if not written.written:
        log.error("audit chain does not verify; no checkpoint written: %s", written.problem)


def object_housekeeping(ctx: ctx_module.Context) -> None:
    """The continuous replica scrub (``settings.replication_scrub_streams_per_minute``) and the
    retirement of what deleted workloads left in every center."""
    from cloudctl.services import replication_scrub

    keeper = ctx.cache.get("housekeeping.objects")
    if keeper is None:
        keeper = ctx.cache["housekeeping.objects"] = replication_scrub.ObjectHousekeeping(ctx)
    keeper.run_once()


def record_usage(ctx: ctx_module.Context) -> None:
    """The ended hours' usage per department, center and tier, and the centers' capacity samples
    (showback and the capacity forecast); each hour is recorded once, whoever records it."""
    from cloudctl.services import usage

    usage.record_due(ctx)


def expire_grants(ctx: ctx_module.Context) -> None:
    """End the data grants whose expiry has passed and take their bucket policies away; finish
    the activation of grants approved in full that a backend failure left inactive."""
    from cloudctl.services import grants

    ended = grants.expire_due(ctx)
    if ended:
        log.info("expired %d data grant(s)", len(ended))
    activated = grants.activate_approved(ctx)
    if activated:
        log.info("activated %d approved data grant(s)", len(activated))


PASSES: tuple[Pass, ...] = (
    Pass("replication", replicate, interval_s=None),
    Pass("object-housekeeping", object_housekeeping, interval_s=None),
    Pass("quota-sync", sync_quotas, interval_s=300.0),
    Pass("usage", record_usage, interval_s=60.0),
    Pass("data-grant-expiry", expire_grants, interval_s=60.0),
    Pass("audit-retention", audit_retention, interval_s=3600.0),
    Pass(
        "audit-checkpoint", audit_checkpoint, interval_s=lambda settings: settings.audit_checkpoint_interval_s
    ),
)
"""Every periodic pass the leader runs; add yours here (see the module docstring)."""


def find(name: str, passes: Sequence[Pass] = PASSES) -> Pass:
    for candidate in passes:
        if candidate.name == name:
            return candidate
    raise KeyError(name)


def run_once(ctx: ctx_module.Context, name: str) -> None:
    """Run one pass now, on this thread (the CLI and tests)."""
    find(name).run(ctx)


class PassLoop:
    """One pass on its own thread, every ``interval_s`` on the context's clock."""

    def __init__(self, ctx: ctx_module.Context, periodic: Pass, *, default_interval_s: float) -> None:
        self._ctx = ctx
        self.periodic = periodic
        self.interval_s = periodic.interval_in(ctx, default_s=default_interval_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.runs = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=f"cloudctl-{self.periodic.name}", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        self._stop.set()

    def join(self, timeout_s: float) -> bool:
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def run_now(self) -> None:
        started = time.perf_counter()
        try:
            self.periodic.run(self._ctx)
            outcome = "done"
        except Exception:
            outcome = "error"
            log.exception("%s pass failed; retrying in %g s", self.periodic.name, self.interval_s)
        finally:
            metrics.HOUSEKEEPING_DURATION.labels(name=self.periodic.name).observe(
                time.perf_counter() - started
            )
        metrics.HOUSEKEEPING_RUNS.labels(name=self.periodic.name, outcome=outcome).inc()
        self.runs += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = self._ctx.clock.now()
            self.run_now()
            remaining_s = self.interval_s - (self._ctx.clock.now() - began)
            self._stop.wait(max(remaining_s, 0.0))
