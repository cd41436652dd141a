"""Leases held by the database (who leads the management center) and the serve replicas.

A lease is one row: its ``holder``, an ``epoch`` that grows by one each time the lease
changes hands, and the time it ``expires_at``. The database decides who holds it; no
consensus is written here.

Invariants:
- ``acquire`` runs in one transaction that locks the lease row (``FOR UPDATE``): it
  renews the lease of its holder, takes an expired or released lease with ``epoch + 1``,
  and otherwise leaves the row alone. Two replicas racing for a free lease serialise on
  the row (or on the insert of the first row), so one epoch has one holder.
- ``FencedStore`` is a store whose every write transaction first takes the lease's
  transaction-scoped advisory lock shared (PostgreSQL's ``pg_advisory_xact_lock_shared``;
  an in-memory lock, no row write) and fails with ``LeaseLost`` unless the lease row
  still names this holder and epoch. A takeover takes that advisory lock exclusively
  before it changes the epoch, so it waits for the fenced transactions in flight to
  commit, and every later one of the former holder fails: a leader that was paused past
  its lease writes nothing after the lease changed hands. (On SQLite every write
  transaction holds the database lock, which serialises the same way.)
- ``LeaseLost`` is deliberately not a ``CloudctlError``: no handler that turns errors
  into a failed request (and a clean-up of backend resources) catches it.
- Replica rows are a directory of the serve processes (heartbeat, role); they decide
  nothing, the lease does.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import time
import typing
import zlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from cloudctl.store import db, schema

if typing.TYPE_CHECKING:
    import psycopg

LEADER = "leader"
"""The lease of the reconcilers and periodic passes of ``cloudctl serve``."""

_leases = schema.leases
_replicas = schema.replicas


class LeaseLost(Exception):
    """This process no longer holds the lease it writes under; the write was not made."""


@dataclasses.dataclass(frozen=True)
class Lease:
    name: str
    holder: str
    epoch: int
    acquired_at: float
    expires_at: float

    def held_by(self, holder: str, *, now: float) -> bool:
        return self.holder == holder and self.expires_at > now


def get_lease(tx: db.Transaction, name: str, *, for_update: bool = False) -> Lease | None:
    statement = sa.select(_leases).where(_leases.c.name == name)
    if for_update:
        statement = statement.with_for_update()
    row = tx.execute(statement).mappings().first()
    return Lease(**row) if row is not None else None


def _epoch_key(name: str) -> int:
    return zlib.crc32(f"cloudctl.lease.{name}".encode())


def _epoch_lock(tx: db.Transaction, name: str, *, shared: bool) -> None:
    """The advisory lock that orders fenced writes against a change of epoch (PostgreSQL)."""
    if tx.dialect.name != "postgresql":
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    tx.execute(sa.text(f"SELECT {function}(:key)"), {"key": _epoch_key(name)})


@functools.cache
def _fence_statements(name: str) -> str:
    """PostgreSQL: the epoch lock taken shared, then the lease's holder and epoch read, as two
    statements of one query string (one round trip). Each statement of such a string takes its
    own snapshot, so the read sees a takeover that committed while the lock was waited for (one
    statement reading after taking the lock in it would not). The name is the code's constant."""
    quoted = name.replace("'", "''")
    return (
        f"SELECT pg_advisory_xact_lock_shared({_epoch_key(name)});"
        f" SELECT holder, epoch FROM leases WHERE name = '{quoted}'"
    )


def _fenced_holder(tx: db.Transaction, name: str) -> tuple[str, int] | None:
    """Take the epoch lock shared (PostgreSQL), then read who holds the lease: ``(holder, epoch)``."""
    if tx.dialect.name != "postgresql":
        current = get_lease(tx, name)
        return None if current is None else (current.holder, current.epoch)
    # The driver's cursor, not SQLAlchemy's statement machinery: every fenced transaction of
    # the leader pays this check, and a query string of two statements has no parameters.
    driver = typing.cast("psycopg.Connection[Any]", tx.connection.dbapi_connection)
    with driver.cursor() as cursor:
        cursor.execute(_fence_statements(name), prepare=False)
        cursor.nextset()
        row = cursor.fetchone()
    return None if row is None else (str(row[0]), int(row[1]))


def acquire(tx: db.Transaction, *, name: str, holder: str, ttl_s: float, now: float) -> Lease:
    """Renew or take the lease for ``holder`` if it is theirs or free; the lease as it now stands."""
    seen = get_lease(tx, name)
    if seen is not None and seen.holder != holder and seen.expires_at > now:
        # Held by another: answer without locking, so the followers' polls never queue the leader.
        return seen
    current = get_lease(tx, name, for_update=True)
    if current is None:
        fresh = Lease(name=name, holder=holder, epoch=1, acquired_at=now, expires_at=now + ttl_s)
        if db.insert_unless_present(tx, _leases, dataclasses.asdict(fresh)):
            return fresh
        current = get_lease(tx, name, for_update=True)
        assert current is not None
    if current.holder == holder and current.expires_at > now:
        renewed = dataclasses.replace(current, expires_at=now + ttl_s)
        db.update_values(tx, _leases, where={"name": name}, values={"expires_at": renewed.expires_at})
        return renewed
    if current.expires_at > now:
        return current
    taken = Lease(name=name, holder=holder, epoch=current.epoch + 1, acquired_at=now, expires_at=now + ttl_s)
    _epoch_lock(tx, name, shared=False)
    db.update_values(
        tx,
        _leases,
        where={"name": name},
        values={"holder": holder, "epoch": taken.epoch, "acquired_at": now, "expires_at": taken.expires_at},
    )
    return taken


def release(tx: db.Transaction, *, name: str, holder: str, epoch: int, now: float) -> bool:
    """Give the lease up at once (a clean shutdown) if ``holder`` still holds ``epoch``."""
    current = get_lease(tx, name, for_update=True)
    if current is None or current.holder != holder or current.epoch != epoch:
        return False
    db.update_values(tx, _leases, where={"name": name}, values={"expires_at": now})
    return True


def check_fence(tx: db.Transaction, *, name: str, holder: str, epoch: int) -> None:
    """Raise ``LeaseLost`` unless ``holder`` holds ``epoch`` of the lease; until the transaction
    ends, no other holder can take the lease."""
    current = _fenced_holder(tx, name)
    if current is None or current != (holder, epoch):
        now_holder = "nobody" if current is None else f"{current[0]} (epoch {current[1]})"
        raise LeaseLost(f"lease {name!r} of epoch {epoch} is lost; {now_holder} holds it now")


class Fence:
    """What a leader writes under: holder, epoch and the local deadline of its lease.

    ``valid_until`` is on the monotonic clock: the lease's holder stops writing once
    its last renewal is older than the lease, without asking the database, so a
    process that was paused fails its first write after it wakes.
    """

    def __init__(self, *, name: str, holder: str) -> None:
        self.name = name
        self.holder = holder
        self._lock = threading.Lock()
        self._epoch: int | None = None
        self._valid_until = 0.0

    def grant(self, *, epoch: int, valid_for_s: float, since_monotonic: float) -> None:
        with self._lock:
            self._epoch = epoch
            self._valid_until = since_monotonic + valid_for_s

    def revoke(self) -> None:
        with self._lock:
            self._epoch = None
            self._valid_until = 0.0

    @property
    def epoch(self) -> int | None:
        with self._lock:
            if self._epoch is None or time.monotonic() >= self._valid_until:
                return None
            return self._epoch

    def current(self) -> int:
        """The epoch to write under; ``LeaseLost`` when there is none (any more)."""
        epoch = self.epoch
        if epoch is None:
            raise LeaseLost(f"{self.holder} does not hold lease {self.name!r} (or its renewal is overdue)")
        return epoch


class FencedStore(db.Store):
    """A store whose write transactions commit only while ``fence`` holds its lease."""

    def __init__(self, url: str, *, fence: Fence) -> None:
        super().__init__(url)
        self.fence = fence

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        if self.current_unit() is not None:
            # A savepoint of a unit of work: the unit's transaction was checked when it began.
            with super().transaction() as tx:
                yield tx
            return
        epoch = self.fence.current()
        with super().transaction() as tx:
            check_fence(tx, name=self.fence.name, holder=self.fence.holder, epoch=epoch)
            yield tx


# --- replicas -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReplicaRecord:
    id: str
    host: str
    pid: int
    api_url: str
    role: str
    """``leader``, ``follower`` or ``stopped``."""
    epoch: int | None
    started_at: float
    heartbeat_at: float
    policies_sha256: str | None = None
    """``PolicyEngine.digest`` of the policies it decides with; ``None`` from before migration 0014."""


def upsert_replica(tx: db.Transaction, record: ReplicaRecord) -> None:
    values = dataclasses.asdict(record)
    if db.insert_unless_present(tx, _replicas, values):
        return
    key = values.pop("id")
    db.update_values(tx, _replicas, where={"id": key}, values=values)


def list_replicas(tx: db.Transaction) -> list[ReplicaRecord]:
    rows = tx.execute(sa.select(_replicas).order_by(_replicas.c.started_at, _replicas.c.id)).mappings()
    return [ReplicaRecord(**row) for row in rows]


def delete_replicas(tx: db.Transaction, *, heartbeat_before: float) -> int:
    """Forget replicas silent since ``heartbeat_before``; how many."""
    result = tx.execute(sa.delete(_replicas).where(_replicas.c.heartbeat_at < heartbeat_before))
    return int(result.rowcount or 0)
