"""The simulator's state in the durable store, so every cloudctl process sees one world.

``StoreBackedState(store)`` keeps the simulator's JSON documents in the
``sim_objects`` table (primary key ``center, kind, key``). It satisfies the
simulator's ``StateBackend`` Protocol structurally: the store and the drivers are
sibling layers and import neither each other; the services hand one to the other.

Invariants:

- Each verb alone runs in its own transaction (``get``/``list`` in a read
  snapshot, ``put``/``delete`` in a write transaction); ``transaction()`` groups
  verbs into one write transaction, committed at the end of the block and rolled
  back on any error.
- Inside ``transaction()``, ``get`` locks the row it reads (``SELECT ... FOR
  UPDATE`` on PostgreSQL; on SQLite the whole write transaction already holds the
  database lock from ``BEGIN IMMEDIATE``), so read-check-write sequences of
  concurrent processes serialise instead of losing updates.
- ``put`` is an upsert and ``insert`` an insert-unless-present (``ON CONFLICT``);
  ``updated_at`` is the injected clock's time of the write.
- ``list`` matches ``key_prefix`` exactly (case-sensitive, no wildcards) and sorts
  by key in code-point order whatever the database's collation.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cloudctl import clock as clocks
from cloudctl.store import db, schema

Doc = dict[str, Any]
DocList = list[Doc]

_table = schema.sim_objects


class StoreBackedState:
    """The simulator's document store on the ``sim_objects`` table."""

    def __init__(self, store: db.Store, *, clock: clocks.Clock | None = None) -> None:
        self.store = store
        self._clock: clocks.Clock = clock if clock is not None else clocks.SystemClock()

    def get(self, center: str, kind: str, key: str) -> Doc | None:
        with self.store.read() as connection:
            return StoreStateTransaction(connection, clock=self._clock, lock_rows=False).get(
                center, kind, key
            )

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        with self.transaction() as transaction:
            transaction.put(center, kind, key, doc)

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        with self.transaction() as transaction:
            return transaction.insert(center, kind, key, doc)

    def delete(self, center: str, kind: str, key: str) -> bool:
        with self.transaction() as transaction:
            return transaction.delete(center, kind, key)

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList:
        with self.store.read() as connection:
            return StoreStateTransaction(connection, clock=self._clock, lock_rows=False).list(
                center, kind, key_prefix=key_prefix
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreStateTransaction]:
        with self.store.transaction() as connection:
            yield StoreStateTransaction(connection, clock=self._clock, lock_rows=True)


class StoreStateTransaction:
    """The document verbs on one open connection; the caller owns the transaction."""

    def __init__(self, connection: sa.Connection, *, clock: clocks.Clock, lock_rows: bool) -> None:
        self._connection = connection
        self._clock = clock
        self._lock_rows = lock_rows

    def get(self, center: str, kind: str, key: str) -> Doc | None:
        query = sa.select(_table.c.doc).where(*_address(center, kind, key))
        if self._lock_rows:
            query = query.with_for_update()
        value = self._connection.execute(query).scalar_one_or_none()
        return None if value is None else _as_doc(value)

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        values = self._values(center, kind, key, doc)
        insert = self._dialect_insert()
        if insert is not None:
            insert = insert.values(values)
            statement = insert.on_conflict_do_update(
                index_elements=[_table.c.center, _table.c.kind, _table.c.key],
                set_={"doc": insert.excluded.doc, "updated_at": insert.excluded.updated_at},
            )
            self._connection.execute(statement)
            return
        updated = self._connection.execute(
            sa.update(_table)
            .where(*_address(center, kind, key))
            .values(doc=doc, updated_at=values["updated_at"])
        )
        if updated.rowcount == 0:
            self._connection.execute(sa.insert(_table).values(values))

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        values = self._values(center, kind, key, doc)
        insert = self._dialect_insert()
        if insert is not None:
            statement = (
                insert.values(values)
                .on_conflict_do_nothing(index_elements=[_table.c.center, _table.c.kind, _table.c.key])
                .returning(_table.c.key)
            )
            # RETURNING, not rowcount: the driver's rowcount is unreliable for ON CONFLICT.
            return self._connection.execute(statement).first() is not None
        if self.get(center, kind, key) is not None:
            return False
        self._connection.execute(sa.insert(_table).values(values))
        return True

    def _values(self, center: str, kind: str, key: str, doc: Doc) -> dict[str, Any]:
        return {
            "center": center,
            "kind": kind,
            "key": key,
            "doc": doc,
            "updated_at": self._clock.now(),
        }

    def _dialect_insert(self) -> sqlite.Insert | postgresql.Insert | None:
        """An INSERT that knows ON CONFLICT, where the database has one."""
        dialect = self._connection.dialect.name
        if dialect == "sqlite":
            return sqlite.insert(_table)
        if dialect == "postgresql":
            return postgresql.insert(_table)
        return None

    def delete(self, center: str, kind: str, key: str) -> bool:
        result = self._connection.execute(sa.delete(_table).where(*_address(center, kind, key)))
        return result.rowcount > 0

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList:
        query = sa.select(_table.c.key, _table.c.doc).where(_table.c.center == center, _table.c.kind == kind)
        if key_prefix:
            # LIKE narrows the rows (case-insensitively on SQLite); Python decides exactly.
            query = query.where(_table.c.key.startswith(key_prefix, autoescape=True))
        rows = [
            (str(key), value)
            for key, value in self._connection.execute(query)
            if str(key).startswith(key_prefix)
        ]
        return [_as_doc(value) for _, value in sorted(rows, key=lambda row: row[0])]


def _address(center: str, kind: str, key: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (_table.c.center == center, _table.c.kind == kind, _table.c.key == key)


def _as_doc(value: object) -> Doc:
    if not isinstance(value, dict):
        raise TypeError(f"sim_objects.doc holds {type(value).__name__}, not a JSON object")
    return {str(name): item for name, item in value.items()}
