"""Which ``cloudctl serve`` replica leads: the database elects it, the leader fences its writes.

Every replica serves the API (it is stateless: everything lives in the store). One of
them, the holder of the ``leader`` lease row (``store.leases``), also runs the
provisioning reconciler and the periodic passes (``services.housekeeping``). Each
replica tries to take or renew the lease every ``renew_every_s``; a lease not renewed
for ``lease_s`` (a killed, paused or cut-off leader) is taken by the next replica that
asks, with the epoch one higher.

Invariants:
- The leader's reconcilers and passes write through a ``FencedStore``: every write
  transaction checks that the lease still names this replica and its epoch, so a
  former leader (paused, partitioned, slow to notice) writes nothing once another
  replica holds the lease. It also stops by itself once its last renewal is older than
  the lease, before the lease can change hands.
- A leader that stops cleanly releases the lease, so another replica takes over at its
  next attempt instead of waiting for the lease to expire.
- On SQLite exactly one ``serve`` runs (``single_serve_guard``): replicas need PostgreSQL.
- A replica whose database was superseded — the DR standby named by
  ``CLOUDCTL_MGMT_STANDBY_URL`` answers as a primary of the same cluster on a later
  timeline (``cloudctl mgmt promote`` ran there while this site was away) — fences its
  own database and never leads again: the old site cannot write after it comes back.
- Replica rows (``replicas``) record each serve process, its role and last heartbeat;
  ``cloudctl status`` and ``/readyz`` show them. Rows silent for ``FORGET_AFTER_S`` go.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from cloudctl import errors, metrics
from cloudctl.model import states
from cloudctl.services import access, housekeeping
from cloudctl.services import context as ctx_module
from cloudctl.services import provisioning as provisioning_service
from cloudctl.store import leases, pg_replication
from cloudctl.store.db import Transaction

log = logging.getLogger("cloudctl.leader")

REPLICA_ENV = "CLOUDCTL_REPLICA_ID"
"""Names the serve replica to the API worker processes it starts (``serve --workers N``)."""
FORGET_AFTER_S = 3600.0
"""Replica rows whose heartbeat is older than this are removed by the leader."""
PEER_CHECK_EVERY_S = 5.0
"""How often a replica asks the DR peer whether it was promoted (``CLOUDCTL_MGMT_STANDBY_URL``)."""


@dataclasses.dataclass(frozen=True)
class Timing:
    lease_s: float = 6.0
    """How long a lease lasts without renewal; a killed leader is replaced after at most this."""
    renew_every_s: float = 1.0
    """How often each replica renews (the leader) or asks for (the others) the lease."""
    margin_s: float = 2.0
    """The leader stops writing this long before its lease could expire (clock drift, GC pauses)."""


def began_too_recently(checked_at_monotonic: float) -> bool:
    return time.monotonic() - checked_at_monotonic < PEER_CHECK_EVERY_S


def new_replica_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def local_replica_id(ctx: ctx_module.Context) -> str | None:
    """The id of the serve replica this process belongs to, if it is one."""
    replica = ctx.cache.get("leader.replica_id")
    if isinstance(replica, str):
        return replica
    return os.environ.get(REPLICA_ENV) or None


@contextlib.contextmanager
def single_serve_guard(ctx: ctx_module.Context) -> Iterator[None]:
    """On SQLite, hold a lock file beside the database for as long as this serve runs.

    A second ``serve`` on the same SQLite store stops with one line (exit code 2). The
    operating system drops the lock when the process dies, however it dies.
    """
    if not ctx.store.is_sqlite:
        yield
        return
    path = Path(ctx.store.url.split(":///", 1)[-1]).with_suffix(".serve.lock")
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise errors.InvalidInput(
                f"another `cloudctl serve` ({holder}) already runs on the SQLite store "
                f"{ctx.describe_store()}; replicas need PostgreSQL (--database-url postgresql://...)",
                field="database",
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()


class Leadership:
    """The elector of one serve replica, and the leader's loops while it leads."""

    def __init__(
        self,
        ctx: ctx_module.Context,
        *,
        api_url: str,
        interval_s: float = 1.0,
        bounds: provisioning_service.Bounds | None = None,
        timing: Timing | None = None,
        replica_id: str | None = None,
    ) -> None:
        self._ctx = ctx
        self.replica_id = replica_id or new_replica_id()
        self.api_url = api_url
        self._interval_s = interval_s
        self._bounds = bounds or provisioning_service.Bounds()
        self.timing = timing or Timing()
        self.fence = leases.Fence(name=leases.LEADER, holder=self.replica_id)
        self._started_at = ctx.clock.now()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._leader_ctx: ctx_module.Context | None = None
        self._loops: list[Any] = []
        self.epoch: int | None = None
        self.provisioner: provisioning_service.Provisioner | None = None
        self.superseded_by: str | None = None
        self._peer_checked_at = float("-inf")
        ctx.cache["leader.replica_id"] = self.replica_id

    @property
    def is_leader(self) -> bool:
        return self.epoch is not None

    @functools.cached_property
    def policies_sha256(self) -> str:
        """The digest of the policies this process decides with, for its heartbeat. Read before a
        heartbeat's transaction opens: loading them may read the store (the topology's data classes)."""
        return access.policies(self._ctx).digest

    # --- running ----------------------------------------------------------------------------------

    def start(self) -> None:
        self.tick()
        self._thread = threading.Thread(target=self._run, name="cloudctl-elector", daemon=True)
        self._thread.start()

    def stop(self, *, timeout_s: float = 60.0) -> bool:
        """Stop the leader's loops (each finishes its step), give the lease up, leave as ``stopped``."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        stopped = self._stop_loops(timeout_s=timeout_s)
        epoch = self.epoch
        self._demote()
        policies_sha256 = self.policies_sha256
        with contextlib.suppress(errors.BackendUnavailable), self._ctx.store.transaction() as tx:
            if epoch is not None:
                leases.release(
                    tx, name=leases.LEADER, holder=self.replica_id, epoch=epoch, now=self._ctx.clock.now()
                )
            self._heartbeat(tx, role=states.ReplicaRole.STOPPED, epoch=None, policies_sha256=policies_sha256)
        if self._leader_ctx is not None:
            self._leader_ctx.close()
            self._leader_ctx = None
        return stopped

    def _run(self) -> None:
        while not self._stop.wait(self.timing.renew_every_s):
            self.tick()

    def tick(self) -> None:
        """Renew or ask for the lease once; start or stop the leader's loops accordingly."""
        began = time.monotonic()
        if self.superseded_by is not None or self._peer_promoted():
            return
        policies_sha256 = self.policies_sha256
        try:
            with self._ctx.store.transaction() as tx:
                lease = leases.acquire(
                    tx,
                    name=leases.LEADER,
                    holder=self.replica_id,
                    ttl_s=self.timing.lease_s,
                    now=self._ctx.clock.now(),
                )
                leading = lease.holder == self.replica_id
                self._heartbeat(
                    tx,
                    role=states.ReplicaRole.LEADER if leading else states.ReplicaRole.FOLLOWER,
                    epoch=lease.epoch if leading else None,
                    policies_sha256=policies_sha256,
                )
                if leading:
                    leases.delete_replicas(tx, heartbeat_before=self._ctx.clock.now() - FORGET_AFTER_S)
        except errors.BackendUnavailable as error:
            if self.is_leader and self.fence.epoch is None:
                log.warning("lost the store (%s) for longer than the lease; stepping down", error.one_line())
                self._step_down()
            return
        except Exception:
            log.exception("leader election failed; trying again")
            return
        if not leading:
            if self.is_leader:
                log.warning(
                    "replica %s lost the lease to %s (epoch %d)", self.replica_id, lease.holder, lease.epoch
                )
                self._step_down()
            return
        self.fence.grant(
            epoch=lease.epoch,
            valid_for_s=self.timing.lease_s - self.timing.margin_s,
            since_monotonic=began,
        )
        if self.epoch != lease.epoch:
            if self.is_leader:
                self._step_down()
            self._become_leader(lease.epoch)

    def _peer_promoted(self) -> bool:
        """Whether the DR peer was promoted over this site's database (then fence it, step down)."""
        peer = os.environ.get("CLOUDCTL_MGMT_STANDBY_URL")
        if not peer or self._ctx.store.is_sqlite or began_too_recently(self._peer_checked_at):
            return False
        self._peer_checked_at = time.monotonic()
        own = self._ctx.settings.resolved_database_url()
        try:
            newer = pg_replication.superseded_by(own, peer)
        except errors.BackendUnavailable:
            return False
        if newer is None:
            return False
        self.superseded_by = newer.url
        log.error(
            "the management database was promoted at %s (timeline %d): this site's database is "
            "fenced and replica %s stops leading",
            newer.url,
            newer.timeline,
            self.replica_id,
        )
        self._step_down()
        with contextlib.suppress(errors.BackendUnavailable):
            pg_replication.fence(own, reason={"superseded_by": newer.url, "replica": self.replica_id})
        return True

    # --- roles ------------------------------------------------------------------------------------

    def _become_leader(self, epoch: int) -> None:
        log.info("replica %s leads (epoch %d): starting the reconcilers", self.replica_id, epoch)
        self.epoch = epoch
        metrics.LEADER.set(1)
        metrics.LEADER_EPOCH.set(epoch)
        leader_ctx = self._leader_context()
        self.provisioner = provisioning_service.Provisioner(
            leader_ctx, interval_s=self._interval_s, bounds=self._bounds
        )
        loops: list[Any] = [self.provisioner]
        loops += [
            housekeeping.PassLoop(leader_ctx, periodic, default_interval_s=self._interval_s)
            for periodic in housekeeping.PASSES
        ]
        for loop in loops:
            loop.start()
        self._loops = loops

    def _leader_context(self) -> ctx_module.Context:
        if self._leader_ctx is None:
            store = leases.FencedStore(self._ctx.settings.resolved_database_url(), fence=self.fence)
            self._leader_ctx = ctx_module.Context(
                settings=self._ctx.settings, clock=self._ctx.clock, _store=store
            )
        return self._leader_ctx

    def _step_down(self) -> None:
        self._demote()
        for loop in self._loops:
            loop.request_stop()
        self._loops = []

    def _demote(self) -> None:
        self.fence.revoke()
        self.epoch = None
        self.provisioner = None
        metrics.LEADER.set(0)
        metrics.LEADER_EPOCH.set(0)

    def _stop_loops(self, *, timeout_s: float) -> bool:
        for loop in self._loops:
            loop.request_stop()
        deadline = time.monotonic() + timeout_s
        stopped = all(loop.join(max(deadline - time.monotonic(), 0.0)) for loop in self._loops)
        self._loops = []
        return stopped

    def _heartbeat(self, tx: Transaction, *, role: str, epoch: int | None, policies_sha256: str) -> None:
        leases.upsert_replica(
            tx,
            leases.ReplicaRecord(
                id=self.replica_id,
                host=socket.gethostname(),
                pid=os.getpid(),
                api_url=self.api_url,
                role=role,
                epoch=epoch,
                started_at=self._started_at,
                heartbeat_at=self._ctx.clock.now(),
                policies_sha256=policies_sha256,
            ),
        )
