"""Opening the store: engine, transactions and migrations, on SQLite or PostgreSQL.

Invariants:
- ``Store.transaction()`` is the only way to write. On SQLite it starts with
  ``BEGIN IMMEDIATE`` so concurrent writers queue on the database lock instead
  of failing on upgrade, and the writers of one process take turns first, in the
  order they came (``FifoLock``); on PostgreSQL callers lock rows with ``FOR UPDATE``.
- The schema is created and upgraded by Alembic only (``migrate()``).
- ``Store.unit_of_work()`` groups every transaction and read that its thread opens
  inside the block into one database transaction: a nested ``transaction()`` is a
  savepoint (an error inside it undoes only its own writes), a nested ``read()``
  sees the unit's writes, and everything commits together at the end of the block.
  Other threads are unaffected (on SQLite they queue on the database lock until the
  unit commits, so a unit must not wait on another thread's writes). A unit opened with
  ``savepoints=False`` joins nested transactions to its own without a savepoint (two
  statements fewer each): an error inside one then undoes the whole unit, so it is for
  work that lets every error leave the block.
- An unreachable database raises ``errors.BackendUnavailable`` (exit code 3). On
  PostgreSQL a pooled connection that sat idle for ``IDLE_PING_AFTER_S`` is pinged before it
  is handed out (a dead one is replaced, as ``pool_pre_ping`` would); one back from use a
  moment ago is not, which saves a round trip per transaction under load. A connection
  that breaks in use raises ``BackendUnavailable`` once and SQLAlchemy discards the pool's
  older connections with it, so callers that retry (reconcilers, clients) get fresh ones.
- A store the database cannot read (SQLite: a file that is not a database, or damaged)
  raises ``errors.InvalidInput`` naming where it is; it is not retried, nor touched.
- The store never opens more than ``pool.size + pool.max_overflow`` connections,
  whatever the number of threads: a caller that finds them all in use waits up to
  ``pool.timeout_s`` for one to come back, then gets ``errors.BackendUnavailable``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc

from cloudctl import errors

SQLITE_BUSY_TIMEOUT_S = 60

Transaction = sa.Connection
"""What ``Store.transaction()`` and ``Store.read()`` hand out; layers above name it by this alias."""


def sqlite_url(home: Path) -> str:
    return f"sqlite:///{home / 'state.db'}"


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` URLs and use the psycopg 3 driver for them."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


STORE_BACKENDS = ("sqlite", "postgresql")
"""The databases the store runs on (their SQLAlchemy backend names)."""


def check_url(url: str) -> None:
    """``InvalidInput`` naming ``database_url`` unless ``url`` (as ``normalise_url`` leaves it) is a
    SQLite or PostgreSQL URL: a typo is one line, not a driver's traceback."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise errors.InvalidInput(
            "not a database URL (sqlite:///PATH or postgresql://USER@HOST:PORT/DB)", field="database_url"
        ) from None
    if parsed.get_backend_name() not in STORE_BACKENDS:
        raise errors.InvalidInput(
            f"{parsed.get_backend_name()!r} is not a store database: use sqlite:///PATH or postgresql://…",
            field="database_url",
        )


IDLE_PING_AFTER_S = 1.0
"""A pooled PostgreSQL connection idle at least this long is pinged before it is handed out."""


def _note_checkin(dbapi_connection: Any, record: Any) -> None:
    record.info["checked_in_at"] = time.monotonic()


def _ping_when_idle(dialect: sa.Dialect, dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Ping a connection that sat idle; a dead one is discarded and the pool opens another
    (SQLAlchemy retries a checkout refused with ``DisconnectionError``)."""
    last = record.info.get("checked_in_at")
    if last is not None and time.monotonic() - last < IDLE_PING_AFTER_S:
        return
    try:
        dialect.do_ping(dbapi_connection)
    except Exception as error:
        raise exc.DisconnectionError(f"the store connection is gone: {error}") from error


@dataclasses.dataclass(frozen=True)
class PoolSettings:
    """How many connections one store keeps and may open, and how long a caller waits for one."""

    size: int = 10
    max_overflow: int = 10
    timeout_s: float = 30.0

    @property
    def limit(self) -> int:
        return self.size + self.max_overflow


@dataclasses.dataclass(frozen=True)
class PoolStatus:
    """What the connection pool holds now: its configured bounds and the connections handed out."""

    size: int
    max_overflow: int
    in_use: int


def _private_file(database: str | None) -> None:
    """Make a SQLite store's file, where there is none yet, readable by its owner only: it holds
    the token hashes and every department's records (SQLite gives its WAL files the same mode)."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    with contextlib.suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


class Store:
    """A handle on the durable store; cheap to keep, one per process."""

    def __init__(self, url: str, *, pool: PoolSettings | None = None) -> None:
        self.url = normalise_url(url)
        check_url(self.url)
        self.is_sqlite = self.url.startswith("sqlite")
        self.pool = pool or PoolSettings()
        self.engine = self._create_engine()
        self._ambient = threading.local()
        self._writers = FifoLock() if self.is_sqlite else None

    def _create_engine(self) -> sa.Engine:
        bounds: dict[str, Any] = {
            "poolclass": sa.pool.QueuePool,
            "pool_size": self.pool.size,
            "max_overflow": self.pool.max_overflow,
            "pool_timeout": self.pool.timeout_s,
        }
        if self.is_sqlite:
            _private_file(sa.engine.make_url(self.url).database)
            engine = sa.create_engine(
                self.url,
                connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False},
                **bounds,
            )
            event.listen(engine, "connect", _sqlite_on_connect)
            event.listen(engine, "begin", _sqlite_begin_immediate)
            return engine
        engine = sa.create_engine(self.url, **bounds)
        # Many rows of one insert go as one multi-row INSERT, not one statement a row.
        engine.dialect.use_insertmanyvalues_wo_returning = True
        event.listen(engine, "connect", _note_checkin)  # a new connection needs no ping
        event.listen(engine, "checkin", _note_checkin)
        event.listen(engine, "checkout", functools.partial(_ping_when_idle, engine.dialect))
        return engine

    def pool_status(self) -> PoolStatus:
        pool = self.engine.pool
        in_use = pool.checkedout() if isinstance(pool, sa.pool.QueuePool) else 0
        return PoolStatus(size=self.pool.size, max_overflow=self.pool.max_overflow, in_use=in_use)

    @contextlib.contextmanager
    def unit_of_work(self, *, savepoints: bool = True) -> Iterator[UnitOfWork]:
        """One database transaction for everything this thread does inside the block.

        Nested units join the outer one. Use it around many small writes that belong
        together (a tick of a simulated drill, a batch of reconciliations): each
        would otherwise pay for its own transaction. ``savepoints=False``: a nested
        ``transaction()`` is not a savepoint, for work that catches no error raised
        inside one and goes on (the unit's whole transaction is undone instead).
        """
        current = self.current_unit()
        if current is not None:
            yield current
            return
        with self.transaction() as connection:
            unit = UnitOfWork(connection, savepoints=savepoints)
            self._ambient.unit = unit
            try:
                yield unit
                unit.flush()
            finally:
                self._ambient.unit = None

    def current_unit(self) -> UnitOfWork | None:
        """The unit of work this thread is inside, if any."""
        unit: UnitOfWork | None = getattr(self._ambient, "unit", None)
        return unit

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        """A read-write transaction: committed on success, rolled back on any error."""
        unit = self.current_unit()
        if unit is not None:
            with unit.savepoint() if unit.savepoints else contextlib.nullcontext():
                yield unit.connection
            return
        with (
            self._unavailable_as_error(),
            self._writers or contextlib.nullcontext(),
            self.engine.begin() as connection,
        ):
            yield connection

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only snapshot: on SQLite a deferred transaction that does not queue writers."""
        unit = self.current_unit()
        if unit is not None:
            yield unit.connection
            return
        with self._unavailable_as_error(), self.engine.connect() as raw:
            connection = raw.execution_options(cloudctl_read_only=True)
            with connection.begin():
                yield connection

    @contextlib.contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        """A database that does not answer, or a pool that stays exhausted, is ``BackendUnavailable``."""
        try:
            yield
        except (exc.OperationalError, WriterQueueTimeout) as error:
            raise errors.BackendUnavailable(
                f"the store did not answer: {_first_line(error)}", field="database"
            ) from error
        except exc.TimeoutError as error:
            raise errors.BackendUnavailable(
                f"all {self.pool.limit} store connections stayed in use for {self.pool.timeout_s:g} s",
                field="database",
            ) from error
        except exc.DatabaseError as error:
            # The base class itself, not its kinds (integrity, programming, ...): SQLite says so of
            # a file that is not a database or whose pages are damaged. Retrying cannot mend it,
            # and the file is left as it is for whoever restores it.
            if type(error) is not exc.DatabaseError:
                raise
            raise errors.InvalidInput(
                f"the store at {self.describe()} cannot be read ({_first_line(error)}): "
                "restore it from a backup",
                field="database",
            ) from error

    def describe(self) -> str:
        """Where the store is, without credentials: a SQLite file's path, or the server's URL."""
        url = self.engine.url
        return str(url.database) if self.is_sqlite else url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest migration."""
        from cloudctl.store import migrations

        with self._unavailable_as_error():
            migrations.upgrade(self.engine)

    def is_migrated(self) -> bool:
        from cloudctl.store import migrations

        with self._unavailable_as_error():
            return migrations.is_current(self.engine)

    def schema_revision(self) -> str | None:
        """The migration revision the database is at; ``None``: it holds no schema of ours."""
        from cloudctl.store import migrations

        with self._unavailable_as_error():
            return migrations.current_revision(self.engine)


class WriterQueueTimeout(Exception):
    """A writer waited for its turn longer than the store's busy timeout."""


class FifoLock:
    """A lock handed to waiters in the order they asked, re-entered freely by its holder.

    SQLite's own write lock is not fair: waiting writers sleep and retry, so under load
    some wait for seconds while later ones pass. Queueing this process's writers here
    first, in order, leaves SQLite's lock to settle only between processes. A waiter
    gives up after ``timeout_s`` (``WriterQueueTimeout``), as a writer waiting on SQLite would.
    """

    def __init__(self, *, timeout_s: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        self._condition = threading.Condition(threading.Lock())
        self._timeout_s = timeout_s
        self._next_ticket = 0
        self._serving = 0
        self._abandoned: set[int] = set()
        self._owner: int | None = None
        self._depth = 0

    def __enter__(self) -> None:
        me = threading.get_ident()
        with self._condition:
            if self._owner == me:
                self._depth += 1
                return
            ticket = self._next_ticket
            self._next_ticket += 1
            deadline = time.monotonic() + self._timeout_s
            while self._serving != ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._abandoned.add(ticket)
                    raise WriterQueueTimeout("database is locked (waited for the writers before)")
                self._condition.wait(remaining)
            self._owner, self._depth = me, 1

    def __exit__(self, *_exc: object) -> None:
        with self._condition:
            self._depth -= 1
            if self._depth == 0:
                self._owner = None
                self._serving += 1
                while self._serving in self._abandoned:
                    self._abandoned.discard(self._serving)
                    self._serving += 1
                self._condition.notify_all()


class UnitOfWork:
    """The open transaction of ``Store.unit_of_work``; holds per-unit caches for the layers above.

    ``cache(name)`` is a dict that lives as long as the unit. A cache must stay true
    to the database: whoever fills it records an undo step (``on_rollback``) for each
    change made inside a savepoint, so that a savepoint rolled back also rolls back
    what the cache learned inside it.
    """

    def __init__(self, connection: sa.Connection, *, savepoints: bool = True) -> None:
        self.connection = connection
        self.savepoints = savepoints
        """Whether a nested ``Store.transaction()`` is a savepoint of the unit."""
        self._caches: dict[str, dict[Any, Any]] = {}
        self._undo: list[list[Callable[[], None]]] = []
        self._flushes: dict[str, Callable[[sa.Connection], None]] = {}

    def before_commit(self, name: str, flush: Callable[[sa.Connection], None]) -> None:
        """Have ``flush`` write what was held back under ``name`` before the unit commits (once)."""
        self._flushes.setdefault(name, flush)

    def flush(self) -> None:
        for flush in self._flushes.values():
            flush(self.connection)

    def cache(self, name: str) -> dict[Any, Any]:
        return self._caches.setdefault(name, {})

    @property
    def in_savepoint(self) -> bool:
        """Whether a savepoint is open (only then can part of the unit roll back alone)."""
        return bool(self._undo)

    def on_rollback(self, undo: Callable[[], None]) -> None:
        """Run ``undo`` if the innermost open savepoint is rolled back."""
        if self._undo:
            self._undo[-1].append(undo)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        self._undo.append([])
        try:
            with self.connection.begin_nested():
                yield
        except BaseException:
            for undo in reversed(self._undo.pop()):
                undo()
            raise
        done = self._undo.pop()
        if self._undo:
            self._undo[-1].extend(done)


@functools.cache
def update_where(table: sa.Table, keys: tuple[str, ...], columns: tuple[str, ...]) -> sa.Update:
    """``UPDATE table SET c = :set_c, ... WHERE k = :key_k AND ...``, built once per shape.

    Building a statement costs several times what executing a built one does; the hot
    paths execute these with a parameter dict (see ``update_values``).
    """
    statement = table.update()
    for key in keys:
        statement = statement.where(table.c[key] == sa.bindparam(f"key_{key}"))
    return statement.values({column: sa.bindparam(f"set_{column}") for column in columns})


def update_values(
    tx: Transaction, table: sa.Table, *, where: dict[str, Any], values: dict[str, Any]
) -> sa.CursorResult[Any]:
    """Run ``update_where`` for these keys and values; the result tells the rows matched."""
    statement = update_where(table, tuple(where), tuple(values))
    params = {f"key_{key}": value for key, value in where.items()}
    params.update({f"set_{column}": value for column, value in values.items()})
    return tx.execute(statement, params)


def insert_unless_present(tx: Transaction, table: sa.Table, values: dict[str, Any]) -> bool:
    """Insert a row unless its primary key exists; whether this call inserted it.

    On PostgreSQL a concurrent insert of the same key waits for the other
    transaction, so exactly one of two racing callers gets ``True``.
    """
    if tx.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql

        statement: Any = postgresql.insert(table)
    else:
        from sqlalchemy.dialects import sqlite

        statement = sqlite.insert(table)
    key = list(table.primary_key.columns)
    # RETURNING, not rowcount: the drivers' rowcount is unreliable for ON CONFLICT.
    inserted = tx.execute(
        statement.values(values).on_conflict_do_nothing(index_elements=key).returning(key[0])
    )
    return inserted.first() is not None


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, issue BEGIN, so that it can be BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin_immediate(connection: sa.Connection) -> None:
    read_only = connection.get_execution_options().get("cloudctl_read_only", False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


def _first_line(error: Exception) -> str:
    return str(getattr(error, "orig", error)).strip().splitlines()[0]
