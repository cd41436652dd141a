"""Running the reconcilers: once for one object (the CLI), or as a loop (``cloudctl serve``).

Invariants: the loop takes its work from the store each pass (level-based: a
restarted process finds what was in flight); a stop request lets the pass in
progress finish its current step and then returns — nothing is left half-written
because every step is its own transaction. Each object is retried no sooner than
its ``requeue_after_s``.
"""

from __future__ import annotations

import logging
import threading

from cloudctl.reconcile import provisioning, quota_sync
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers

log = logging.getLogger("cloudctl.reconcile")


def environment(ctx: ctx_module.Context) -> provisioning.Environment:
    ctx.require_initialised()
    return provisioning.Environment(
        store=ctx.store,
        topology=ctx.topology,
        drivers_for=lambda center: drivers.center_drivers(ctx, center),
        clock=ctx.clock,
    )


def reconcile(ctx: ctx_module.Context, *, kind: str, object_id: str) -> provisioning.Result:
    """Reconcile one object; a workload that became ready gets its replication streams."""
    result = provisioning.reconcile_once(environment(ctx), kind, object_id)
    if result.done and result.message == "ready":
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


def run_pending(ctx: ctx_module.Context) -> dict[str, provisioning.Result]:
    """One pass over everything in flight; what each object's reconcile returned."""
    env = environment(ctx)
    return {
        object_id: provisioning.reconcile_once(env, kind, object_id)
        for kind, object_id in provisioning.pending_work(env)
    }


class Loop:
    """The reconcile loop of ``cloudctl serve``, on its own thread."""

    def __init__(self, ctx: ctx_module.Context, *, interval_s: float = 1.0) -> None:
        self._ctx = ctx
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._not_before: dict[str, float] = {}
        self._thread: threading.Thread | None = None
        self._last_housekeeping_at = float("-inf")
        self._last_quota_sync_at = float("-inf")
        self.passes = 0
        from cloudctl.services import replication_scrub

        self._objects = replication_scrub.ObjectHousekeeping(ctx)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cloudctl-reconcile", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_s: float = 30.0) -> bool:
        """Ask the loop to stop after the step in progress; whether it stopped in time."""
        self._stop.set()
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def run_pass(self) -> int:
        """Reconcile what is due; how many objects were looked at."""
        env = environment(self._ctx)
        now = self._ctx.clock.now()
        looked = 0
        for kind, object_id in provisioning.pending_work(env):
            if self._stop.is_set():
                break
            if self._not_before.get(object_id, 0.0) > now:
                continue
            looked += 1
            try:
                result = provisioning.reconcile_once(env, kind, object_id)
            except Exception:
                log.exception("reconcile of %s %s failed; retrying later", kind, object_id)
                self._not_before[object_id] = now + 10 * self._interval_s
                continue
            if result.done:
                self._not_before.pop(object_id, None)
            elif result.requeue_after_s is not None:
                self._not_before[object_id] = now + result.requeue_after_s
        self._replicate()
        self._housekeeping()
        self._objects.run_once()
        self.passes += 1
        return looked

    def _housekeeping(self) -> None:
        """Every five minutes: project quotas back to the quota tree; hourly: audit retention."""
        now = self._ctx.clock.now()
        if now - self._last_quota_sync_at >= 300:
            self._last_quota_sync_at = now
            try:
                for result in sync_quotas(self._ctx):
                    if result.drift:
                        log.info("corrected %d quota drift(s) in %s", len(result.drift), result.center)
            except Exception:
                log.exception("quota sync failed; retrying in five minutes")
        if now - self._last_housekeeping_at < 3600:
            return
        self._last_housekeeping_at = now
        from cloudctl.services import audit

        try:
            audit.apply_retention(self._ctx)
        except Exception:
            log.exception("audit retention failed; retrying in an hour")

    def _replicate(self) -> None:
        """Protect newly ready workloads, run the replication passes that are due, then take
        the replication points (volume snapshots) those passes call for."""
        from cloudctl.services import recovery, replication_points

        try:
            results = recovery.run_due(self._ctx)
        except Exception:
            log.exception("replication pass failed; retrying next pass")
            return
        try:
            replication_points.take_points(self._ctx, results)
        except Exception:
            log.exception("replication points failed; retrying next pass")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pass()
            except Exception:
                log.exception("reconcile pass failed")
            self._stop.wait(self._interval_s)
