"""The simulator's state in the durable store, so every cloudctl process sees one world.

``StoreBackedState(store)`` keeps the simulator's JSON documents in the
``sim_objects`` table (primary key ``center, kind, key``). It satisfies the
simulator's ``StateBackend`` Protocol structurally: the store and the drivers are
sibling layers and import neither each other; the services hand one to the other.

Invariants:

- Each verb alone runs in its own transaction (``get``/``list``/``get_many`` in a
  read snapshot, ``put``/``delete`` in a write transaction); ``transaction()`` groups
  verbs into one write transaction, committed at the end of the block and rolled
  back on any error; ``reading()`` groups reading verbs into one read snapshot.
- Inside ``transaction()``, ``get`` locks the row it reads (``SELECT ... FOR
  UPDATE`` on PostgreSQL; on SQLite the whole write transaction already holds the
  database lock from ``BEGIN IMMEDIATE``), so read-check-write sequences of
  concurrent processes serialise instead of losing updates. A row the transaction
  holds (locked by such a ``get``, or written by it) is read from the database once:
  nobody else can change it before the end. ``get_many`` never locks: it reads the
  given keys of one ``(center, kind)`` in one statement. The ``put``s of a
  transaction are held and written together, in one statement, before the first
  read of a kind they touch and at the end of the block (sorted by address), so
  every read still sees the transaction's own writes.
- ``put`` is an upsert and ``insert`` an insert-unless-present (``ON CONFLICT``);
  ``updated_at`` is the injected clock's time of the write, and the ``name`` column is the
  document's ``name`` field when that is a string (else ``NULL``), written with it.
- ``find_by`` and ``find_all_by`` on the ``name``, ``attached_to`` or ``volume_id`` field probe
  the index on ``(center, kind, <field>)`` (``COLUMN_FIELDS``), and a search by the start of
  the name probes the name's: looking a server up by name, or a volume's snapshots, costs the
  same with ten in the center as with ten thousand. Any other field is compared in the JSON of
  every document of the kind.
- ``list`` (and ``keys``, which reads only the keys) matches ``key_prefix`` exactly
  (case-sensitive, no wildcards) and sorts by key in code-point order whatever the
  database's collation.
- Inside a ``Store.unit_of_work()`` the documents are written back, not through:
  every verb runs in the unit's transaction, what it reads is remembered for the
  rest of the unit (a document is read from the database once; on PostgreSQL a row
  first read without a lock is read again, locked, by a ``get`` inside
  ``transaction()``), and what ``transaction()`` writes is held until the unit
  commits, then written in a few bulk statements. A ``transaction()`` that fails
  leaves nothing behind, and neither does a store savepoint around it that rolls
  back. An ``insert`` that finds at commit that another process inserted the same
  document first fails the unit (``errors.Conflict``): it never replaces. Three verbs
  read through even so: ``find_by`` and ``find_all_by`` read the rows that may match (first
  writing what the unit holds back of that kind, unless inside a store savepoint) and ``keys``
  only the keys (never the whole kind, which grows with every server), ``get_many(fresh=True)``
  reads its documents again (an operation meets the faults as they are when it runs), and
  ``hold`` writes a missing lock row at once (a row not in the database locks nothing), and
  so does ``claim`` its document (a claim nobody can see claims nothing).
  The documents the unit holds (locked or written) win over what these read.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import documents
from cloudctl.store import db, schema

Doc = dict[str, Any]
DocList = list[Doc]
KeyList = list[str]

_table = schema.sim_objects
_UNIT_STATE = "sim_objects"
NAME_FIELD = documents.NAME_FIELD
"""The document field the table keeps in its indexed ``name`` column too (when a string)."""
COLUMN_FIELDS = (NAME_FIELD, "attached_to", "volume_id")
"""The document fields the table keeps in indexed columns of the same name (when strings)."""

_ADDRESS = (
    _table.c.center == sa.bindparam("center"),
    _table.c.kind == sa.bindparam("kind"),
    _table.c.key == sa.bindparam("key"),
)
_GET = sa.select(_table.c.doc).where(*_ADDRESS)
_GET_LOCKED = _GET.with_for_update()
_GET_MANY = sa.select(_table.c.key, _table.c.doc).where(
    _table.c.center == sa.bindparam("center"),
    _table.c.kind == sa.bindparam("kind"),
    _table.c.key.in_(sa.bindparam("keys", expanding=True)),
)
_DELETE = sa.delete(_table).where(*_ADDRESS)
_LIST = sa.select(_table.c.key, _table.c.doc).where(
    _table.c.center == sa.bindparam("center"), _table.c.kind == sa.bindparam("kind")
)
_KEYS = sa.select(_table.c.key).where(
    _table.c.center == sa.bindparam("center"), _table.c.kind == sa.bindparam("kind")
)
_UPDATE = (
    sa.update(_table)
    .where(*_ADDRESS)
    .values(
        doc=sa.bindparam("doc"),
        updated_at=sa.bindparam("updated_at"),
        **{field: sa.bindparam(field) for field in COLUMN_FIELDS},
    )
)


def _upsert(insert: Any) -> Any:
    return insert.on_conflict_do_update(
        index_elements=[_table.c.center, _table.c.kind, _table.c.key],
        set_={
            "doc": insert.excluded.doc,
            "updated_at": insert.excluded.updated_at,
            **{field: insert.excluded[field] for field in COLUMN_FIELDS},
        },
    )


def _insert_new(insert: Any) -> Any:
    return insert.on_conflict_do_nothing(
        index_elements=[_table.c.center, _table.c.kind, _table.c.key]
    ).returning(_table.c.key)


_UPSERT = {"sqlite": _upsert(sqlite.insert(_table)), "postgresql": _upsert(postgresql.insert(_table))}
_INSERT_NEW = {
    "sqlite": _insert_new(sqlite.insert(_table)),
    "postgresql": _insert_new(postgresql.insert(_table)),
}


class StoreBackedState:
    """The simulator's document store on the ``sim_objects`` table."""

    def __init__(self, store: db.Store, *, clock: clocks.Clock | None = None) -> None:
        self.store = store
        self._clock: clocks.Clock = clock if clock is not None else clocks.SystemClock()

    def get(self, center: str, kind: str, key: str) -> Doc | None:
        with self.reading() as verbs:
            return verbs.get(center, kind, key)

    def get_many(self, center: str, kind: str, keys: Sequence[str], *, fresh: bool = False) -> dict[str, Doc]:
        with self.reading() as verbs:
            return verbs.get_many(center, kind, keys, fresh=fresh)

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        with self.transaction() as transaction:
            transaction.put(center, kind, key, doc)

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        with self.transaction() as transaction:
            return transaction.insert(center, kind, key, doc)

    def claim(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        return self.insert(center, kind, key, doc)

    def hold(self, center: str, kind: str, key: str, *, empty: Doc) -> None:
        with self.transaction() as transaction:
            transaction.hold(center, kind, key, empty=empty)

    def delete(self, center: str, kind: str, key: str) -> bool:
        with self.transaction() as transaction:
            return transaction.delete(center, kind, key)

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList:
        with self.reading() as verbs:
            return verbs.list(center, kind, key_prefix=key_prefix)

    def find_by(self, center: str, kind: str, *, field: str, value: str) -> Doc | None:
        with self.reading() as verbs:
            return verbs.find_by(center, kind, field=field, value=value)

    def find_all_by(
        self, center: str, kind: str, *, where: Mapping[str, str], name_prefixes: Sequence[str] = ()
    ) -> DocList:
        with self.reading() as verbs:
            return verbs.find_all_by(center, kind, where=where, name_prefixes=name_prefixes)

    def keys(self, center: str, kind: str, *, key_prefix: str = "") -> KeyList:
        with self.reading() as verbs:
            return verbs.keys(center, kind, key_prefix=key_prefix)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[StoreStateTransaction | _UnitTransaction]:
        unit = self.store.current_unit()
        if unit is not None:
            layer = _UnitTransaction(_unit_state(unit, self._clock), lock_rows=True)
            yield layer
            layer.commit()
            return
        with self.store.transaction() as connection:
            transaction = StoreStateTransaction(connection, clock=self._clock, lock_rows=True)
            yield transaction
            transaction.flush()

    @contextlib.contextmanager
    def reading(self) -> Iterator[StoreStateTransaction | _UnitTransaction]:
        """Verbs for reading alone: the unit's, or a read snapshot's."""
        unit = self.store.current_unit()
        if unit is not None:
            yield _UnitTransaction(_unit_state(unit, self._clock), lock_rows=False)
            return
        with self.store.read() as connection:
            yield StoreStateTransaction(connection, clock=self._clock, lock_rows=False)


class StoreStateTransaction:
    """The document verbs on one open connection; the caller owns the transaction."""

    def __init__(self, connection: sa.Connection, *, clock: clocks.Clock, lock_rows: bool) -> None:
        self._connection = connection
        self._clock = clock
        self._lock_rows = lock_rows
        self._dialect = connection.dialect.name
        self._held: dict[Address, Doc] = {}
        """Rows this write transaction holds (locked or written), as they are now."""
        self._pending: dict[Address, dict[str, Any]] = {}
        """Puts not written yet: the values of their upsert, by address."""

    def flush(self, center: str | None = None, kind: str | None = None) -> None:
        """Write the held puts, in one statement; only if one touches ``(center, kind)`` if given."""
        if not self._pending:
            return
        if kind is not None and not any((c, k) == (center, kind) for c, k, _key in self._pending):
            return
        puts = [values for _address, values in sorted(self._pending.items())]
        self._pending = {}
        upsert = _UPSERT.get(self._dialect)
        if upsert is not None:
            self._connection.execute(upsert, puts)
            return
        for values in puts:
            if self._connection.execute(_UPDATE, values).rowcount == 0:
                self._connection.execute(sa.insert(_table), values)

    def get(self, center: str, kind: str, key: str) -> Doc | None:
        held = self._held.get((center, kind, key))
        if held is not None:
            copy: Doc = _clone(held)
            return copy
        query = _GET_LOCKED if self._lock_rows and self._dialect == "postgresql" else _GET
        found = self._connection.execute(query, {"center": center, "kind": kind, "key": key})
        value = found.scalar_one_or_none()
        if value is None:
            return None  # a missing row locks nothing: read it again next time
        doc = _as_doc(value)
        if self._lock_rows:
            self._held[(center, kind, key)] = _clone(doc)
        return doc

    def get_many(self, center: str, kind: str, keys: Sequence[str], *, fresh: bool = False) -> dict[str, Doc]:
        # Always read from the database: ``fresh`` changes nothing here.
        if not keys:
            return {}
        self.flush(center, kind)
        rows = self._connection.execute(_GET_MANY, {"center": center, "kind": kind, "keys": list(keys)})
        return {str(key): _as_doc(value) for key, value in rows}

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        self._pending[(center, kind, key)] = _values(center, kind, key, _clone(doc), at=self._clock.now())
        self._held[(center, kind, key)] = _clone(doc)

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        if (center, kind, key) in self._pending:
            return False  # this transaction put it
        created = _insert_row(self._connection, _values(center, kind, key, doc, at=self._clock.now()))
        if created:
            self._held[(center, kind, key)] = _clone(doc)
        return created

    def claim(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        return self.insert(center, kind, key, doc)  # an insert here reaches the database at once

    def hold(self, center: str, kind: str, key: str, *, empty: Doc) -> None:
        if self.get(center, kind, key) is None:
            self.insert(center, kind, key, empty)
            self.get(center, kind, key)

    def delete(self, center: str, kind: str, key: str) -> bool:
        self._held.pop((center, kind, key), None)
        was_put = self._pending.pop((center, kind, key), None) is not None
        result = self._connection.execute(_DELETE, {"center": center, "kind": kind, "key": key})
        return was_put or result.rowcount > 0

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList:
        self.flush(center, kind)
        rows = _list_rows(self._connection, center, kind, key_prefix)
        return [doc for _, doc in sorted(rows, key=lambda row: row[0])]

    def keys(self, center: str, kind: str, *, key_prefix: str = "") -> KeyList:
        self.flush(center, kind)
        return sorted(_stored_keys(self._connection, center, kind, key_prefix))

    def find_by(self, center: str, kind: str, *, field: str, value: str) -> Doc | None:
        return next(iter(self.find_all_by(center, kind, where={field: value})), None)

    def find_all_by(
        self, center: str, kind: str, *, where: Mapping[str, str], name_prefixes: Sequence[str] = ()
    ) -> DocList:
        # The database narrows the rows; Python decides (JSON text comparison is loose).
        self.flush(center, kind)
        search = _searching(center, kind, where, name_prefixes, dialect=self._dialect)
        rows = {str(key): doc for key, doc in self._connection.execute(*search)}
        found = (_as_doc(doc) for _key, doc in sorted(rows.items()))
        return [doc for doc in found if documents.matches(doc, where, name_prefixes)]


# --- inside a unit of work ----------------------------------------------------------------------

Address = tuple[str, str, str]
Entry = tuple[Doc | None, bool]
"""A document as the unit knows it (``None``: there is none) and whether its row is locked."""


class _UnitState:
    """What one unit of work knows of the documents, and what it still has to write."""

    def __init__(self, unit: db.UnitOfWork, clock: clocks.Clock) -> None:
        self.unit = unit
        self.connection = unit.connection
        self.dialect = unit.connection.dialect.name
        self.clock = clock
        self.docs: dict[tuple[str, str], dict[str, Entry]] = {}
        self.listed: dict[tuple[str, str], set[str]] = {}
        self.pending: dict[Address, str] = {}
        """Writes held back until the unit commits: ``put``, ``insert`` or ``delete``."""
        self.pending_keys: dict[tuple[str, str], set[str]] = {}
        """The keys of ``pending`` by ``(center, kind)``: what the database does not show yet."""

    def set_pending(self, address: Address, operation: str | None) -> None:
        """Hold back ``operation`` on ``address`` (``None``: no write any more)."""
        center, kind, key = address
        if operation is None:
            self.pending.pop(address, None)
            self.pending_keys.get((center, kind), set()).discard(key)
        else:
            self.pending[address] = operation
            self.pending_keys.setdefault((center, kind), set()).add(key)

    def search(
        self, center: str, kind: str, where: Mapping[str, str], name_prefixes: Sequence[str]
    ) -> dict[str, Doc | None]:
        """The documents that may match a search as the unit sees them, by key: the database's
        rows that may match (one statement, learnt; one the unit holds stays as it has it),
        and every document the unit still has to write in ``(center, kind)`` (``None``: deleted)."""
        if not self.unit.in_savepoint:
            # Written first, so that the database answers for them too: what the unit holds
            # back may be thousands (a failover's), too many to compare with each search. Not
            # inside a store savepoint, whose rollback would undo writes it did not make.
            self.flush(self.connection, only=(center, kind))
        docs = self.known(center, kind)
        found: dict[str, Doc | None] = {}
        search = _searching(center, kind, where, name_prefixes, dialect=self.dialect)
        for key, value in self.connection.execute(*search):
            entry = docs.get(str(key))
            if entry is None or not entry[1]:
                entry = docs[str(key)] = (_as_doc(value), False)
            found[str(key)] = entry[0]
        found.update(self.unwritten(center, kind))
        return found

    def known(self, center: str, kind: str) -> dict[str, Entry]:
        docs = self.docs.get((center, kind))
        if docs is None:
            docs = self.docs[(center, kind)] = {}
        return docs

    def load(self, center: str, kind: str, key: str, *, lock: bool) -> Entry:
        docs = self.known(center, kind)
        entry = docs.get(key)
        if entry is not None and (entry[1] or not lock or self.dialect != "postgresql"):
            return entry
        query = _GET_LOCKED if lock and self.dialect == "postgresql" else _GET
        value = self.connection.execute(query, {"center": center, "kind": kind, "key": key})
        found = value.scalar_one_or_none()
        entry = (None if found is None else _as_doc(found), lock)
        docs[key] = entry
        return entry

    def load_many(
        self, center: str, kind: str, keys: Sequence[str], *, fresh: bool = False
    ) -> dict[str, Entry]:
        """The entries of ``keys``, those the unit does not know yet read in one statement;
        with ``fresh``, also those it read before without holding them, read again."""
        docs = self.known(center, kind)
        unknown = [key for key in dict.fromkeys(keys) if key not in docs or (fresh and not docs[key][1])]
        if unknown:
            rows = self.connection.execute(_GET_MANY, {"center": center, "kind": kind, "keys": unknown})
            found = {str(key): _as_doc(value) for key, value in rows}
            for key in unknown:
                docs[key] = (found.get(key), False)
        return {key: docs[key] for key in keys}

    def unwritten(self, center: str, kind: str) -> Iterator[tuple[str, Doc | None]]:
        """The documents of ``(center, kind)`` the unit still has to write, by key (``None``:
        deleted): where the database is not what the unit sees."""
        docs = self.known(center, kind)
        for key in self.pending_keys.get((center, kind), ()):
            yield key, docs[key][0]

    def insert_now(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        """Insert the document in the database now unless it is there; whether this did. The
        unit holds a row it inserted; one it did not is read (and locked) again when next asked."""
        docs = self.known(center, kind)
        if not _insert_row(self.connection, _values(center, kind, key, doc, at=self.clock.now())):
            docs.pop(key, None)
            return False
        docs[key] = (_clone(doc), True)

        def forget() -> None:
            docs.pop(key, None)

        self.unit.on_rollback(forget)
        return True

    def stored_keys(self, center: str, kind: str, key_prefix: str) -> set[str]:
        """The keys under ``key_prefix`` in the database now (keys only, one statement)."""
        return _stored_keys(self.connection, center, kind, key_prefix)

    def load_listing(self, center: str, kind: str, key_prefix: str) -> dict[str, Entry]:
        docs = self.known(center, kind)
        prefixes = self.listed.setdefault((center, kind), set())
        if not any(key_prefix.startswith(prefix) for prefix in prefixes):
            for key, doc in _list_rows(self.connection, center, kind, key_prefix):
                docs.setdefault(key, (doc, False))
            prefixes.add(key_prefix)
        return docs

    def apply(self, staged: dict[Address, tuple[str, Doc | None]]) -> None:
        """Make a finished transaction's writes the unit's; undone if a store savepoint rolls back."""
        remember = self.unit.in_savepoint
        undo: list[tuple[Address, Entry | None, str | None]] = []
        for address, (operation, doc) in staged.items():
            center, kind, key = address
            docs = self.known(center, kind)
            if remember:
                undo.append((address, docs.get(key), self.pending.get(address)))
            docs[key] = (doc, True)
            self.set_pending(address, _merge(self.pending.get(address), operation))

        def forget() -> None:
            for (center, kind, key), entry, operation in reversed(undo):
                if entry is None:
                    self.known(center, kind).pop(key, None)
                    self.listed.pop((center, kind), None)
                else:
                    self.known(center, kind)[key] = entry
                self.set_pending((center, kind, key), operation)

        if remember:
            self.unit.on_rollback(forget)

    def flush(self, connection: sa.Connection, *, only: tuple[str, str] | None = None) -> None:
        """Write what the unit held back (of ``(center, kind)`` ``only``, if given): deletes,
        then upserts, then inserts that must be new."""
        at = self.clock.now()
        deletes, puts, inserts = [], [], []
        if only is None:
            addresses = sorted(self.pending.items())
        else:
            keys = self.pending_keys.pop(only, set())
            addresses = sorted(((*only, key), self.pending.pop((*only, key))) for key in keys)
        for (center, kind, key), operation in addresses:
            doc = self.known(center, kind)[key][0]
            if operation == "delete" or doc is None:
                deletes.append({"center": center, "kind": kind, "key": key})
            elif operation == "put":
                puts.append(_values(center, kind, key, doc, at=at))
            else:
                inserts.append(_values(center, kind, key, doc, at=at))
        if deletes:
            connection.execute(_DELETE, deletes)
        if puts:
            upsert = _UPSERT.get(self.dialect)
            if upsert is None:
                for values in puts:
                    if connection.execute(_UPDATE, values).rowcount == 0:
                        connection.execute(sa.insert(_table), values)
            else:
                connection.execute(upsert, puts)
        for values in inserts:
            if not _insert_row(connection, values):
                raise errors.Conflict(
                    f"simulator document {values['center']}/{values['kind']}/{values['key']} "
                    "was created by another process meanwhile",
                    field="simulator",
                )
        if only is None:
            self.pending.clear()
            self.pending_keys.clear()


def _merge(before: str | None, after: str) -> str | None:
    """The one write that has the effect of ``before`` then ``after`` (``None``: no write at all)."""
    if before is None:
        return after
    if before == "insert":
        return None if after == "delete" else "insert"
    if before == "delete":
        return "put" if after != "delete" else "delete"
    return "delete" if after == "delete" else "put"


def _unit_state(unit: db.UnitOfWork, clock: clocks.Clock) -> _UnitState:
    holder = unit.cache(_UNIT_STATE)
    state: _UnitState | None = holder.get("state")
    if state is None:
        state = holder["state"] = _UnitState(unit, clock)
        unit.before_commit(_UNIT_STATE, state.flush)
    return state


class _UnitTransaction:
    """The document verbs inside a unit of work: reads through, writes staged until ``commit``."""

    def __init__(self, state: _UnitState, *, lock_rows: bool) -> None:
        self._state = state
        self._lock_rows = lock_rows
        self._staged: dict[Address, tuple[str, Doc | None]] = {}

    def _current(self, center: str, kind: str, key: str) -> Doc | None:
        staged = self._staged.get((center, kind, key))
        if staged is not None:
            return staged[1]
        return self._state.load(center, kind, key, lock=self._lock_rows)[0]

    def get(self, center: str, kind: str, key: str) -> Doc | None:
        doc = self._current(center, kind, key)
        return None if doc is None else _clone(doc)

    def get_many(self, center: str, kind: str, keys: Sequence[str], *, fresh: bool = False) -> dict[str, Doc]:
        entries = self._state.load_many(center, kind, keys, fresh=fresh)
        found: dict[str, Doc] = {}
        for key in keys:
            staged = self._staged.get((center, kind, key))
            doc = staged[1] if staged is not None else entries[key][0]
            if doc is not None:
                found[key] = _clone(doc)
        return found

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        self._stage(center, kind, key, "put", _clone(doc))

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        if self._current(center, kind, key) is not None:
            return False
        self._stage(center, kind, key, "insert", _clone(doc))
        return True

    def claim(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        if (center, kind, key) in self._staged or (center, kind, key) in self._state.pending:
            return self.insert(center, kind, key, doc)
        known = self._state.known(center, kind).get(key)
        if known is not None and known[1] and known[0] is not None:
            return False  # the unit holds it
        # Written at once, not with the unit's writes: a claim nobody can see claims nothing.
        return self._state.insert_now(center, kind, key, doc)

    def hold(self, center: str, kind: str, key: str, *, empty: Doc) -> None:
        if self._current(center, kind, key) is not None:
            return
        if (center, kind, key) in self._staged or (center, kind, key) in self._state.pending:
            self._stage(center, kind, key, "insert", _clone(empty))
            return
        # The lock row is written at once, not held back with the unit's writes: a row that is
        # not in the database locks nothing, and two units would both go ahead.
        if not self._state.insert_now(center, kind, key, empty):
            self._current(center, kind, key)  # another transaction made it: wait for its lock

    def delete(self, center: str, kind: str, key: str) -> bool:
        existed = self._current(center, kind, key) is not None
        self._stage(center, kind, key, "delete", None)
        return existed

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList:
        visible = self._visible(center, kind, key_prefix)
        return [_clone(doc) for _key, doc in sorted(visible.items())]

    def keys(self, center: str, kind: str, *, key_prefix: str = "") -> KeyList:
        # The database's keys, corrected by the documents the unit holds or this transaction
        # staged: the documents themselves are not read (a segment's ports may be thousands).
        visible = self._state.stored_keys(center, kind, key_prefix)
        for key, doc in [*self._state.unwritten(center, kind), *self._staged_in(center, kind)]:
            if not key.startswith(key_prefix):
                continue
            if doc is None:
                visible.discard(key)
            else:
                visible.add(key)
        return sorted(visible)

    def find_by(self, center: str, kind: str, *, field: str, value: str) -> Doc | None:
        return next(iter(self.find_all_by(center, kind, where={field: value})), None)

    def find_all_by(
        self, center: str, kind: str, *, where: Mapping[str, str], name_prefixes: Sequence[str] = ()
    ) -> DocList:
        # Only the rows that may match are read, never the whole kind (looking up one server by
        # name, or a volume's snapshots, must not cost more as the center fills up); then what
        # the unit and this transaction still have to write.
        docs = self._state.search(center, kind, where, name_prefixes)
        docs.update(self._staged_in(center, kind))
        return [
            _clone(doc)
            for _key, doc in sorted(docs.items())
            if doc is not None and documents.matches(doc, where, name_prefixes)
        ]

    def _staged_in(self, center: str, kind: str) -> Iterator[tuple[str, Doc | None]]:
        """What this transaction staged in ``(center, kind)``, by key (``None``: deleted)."""
        for (s_center, s_kind, key), (_operation, doc) in self._staged.items():
            if (s_center, s_kind) == (center, kind):
                yield key, doc

    def _visible(self, center: str, kind: str, key_prefix: str) -> dict[str, Doc]:
        """The documents under ``key_prefix`` as this transaction sees them (not copies)."""
        merged = {
            key: doc for key, (doc, _locked) in self._state.load_listing(center, kind, key_prefix).items()
        }
        for (s_center, s_kind, key), (_operation, doc) in self._staged.items():
            if (s_center, s_kind) == (center, kind):
                merged[key] = doc
        return {key: doc for key, doc in merged.items() if doc is not None and key.startswith(key_prefix)}

    def _stage(self, center: str, kind: str, key: str, operation: str, doc: Doc | None) -> None:
        before = self._staged.get((center, kind, key))
        merged = operation if before is None else (_merge(before[0], operation) or "delete")
        self._staged[(center, kind, key)] = (merged, doc)

    def commit(self) -> None:
        self._state.apply(self._staged)
        self._staged = {}


# --- statements -----------------------------------------------------------------------------------


def _values(center: str, kind: str, key: str, doc: Doc, *, at: float) -> dict[str, Any]:
    columns = {field: doc.get(field) for field in COLUMN_FIELDS}
    return {
        "center": center,
        "kind": kind,
        "key": key,
        "doc": doc,
        "updated_at": at,
        **{field: value if isinstance(value, str) else None for field, value in columns.items()},
    }


def _searching(
    center: str, kind: str, where: Mapping[str, str], name_prefixes: Sequence[str], *, dialect: str
) -> tuple[sa.Executable, dict[str, str]]:
    """The rows of ``(center, kind)`` that may match a search (``documents.matches`` decides),
    as a statement and its parameters (a row may come twice)."""
    parameters = {"center": center, "kind": kind}
    parameters.update({f"v{index}": value for index, value in enumerate(where.values())})
    above = [_above(prefix) for prefix in name_prefixes]
    ranges = dialect == "sqlite" and None not in above
    for index, prefix in enumerate(name_prefixes):
        if ranges:
            parameters[f"lo{index}"], parameters[f"hi{index}"] = prefix, str(above[index])
        else:
            parameters[f"lo{index}"] = _escaped(prefix) + "%"
    return _search_statement(tuple(where), len(name_prefixes), ranges=ranges), parameters


@functools.lru_cache(maxsize=64)
def _search_statement(fields: tuple[str, ...], prefixes: int, *, ranges: bool) -> sa.Executable:
    """The ``COLUMN_FIELDS`` through their indexed columns, any other field by comparing the
    JSON of every row; the name's prefixes as ranges of its index (``ranges``, see ``_above``)
    or by LIKE, one ``SELECT`` each under ``UNION ALL`` (SQLite walks the whole kind for three
    ranges ORed in one; a row may come twice). Unordered: with ``ORDER BY key`` SQLite walks the
    primary key's index over the whole kind instead of probing the column's (the caller sorts
    the few rows found)."""
    conditions: list[sa.ColumnElement[bool]] = [
        (_table.c[field] if field in COLUMN_FIELDS else _table.c.doc[field].as_string())
        == sa.bindparam(f"v{index}")
        for index, field in enumerate(fields)
    ]
    name = _table.c.name
    starts = [
        sa.and_(name >= sa.bindparam(f"lo{index}"), name < sa.bindparam(f"hi{index}"))
        if ranges
        else name.like(sa.bindparam(f"lo{index}"), escape="/")
        for index in range(prefixes)
    ]
    rows = sa.select(_table.c.key, _table.c.doc).where(
        _table.c.center == sa.bindparam("center"), _table.c.kind == sa.bindparam("kind"), *conditions
    )
    if not starts:
        return rows
    return sa.union_all(*(rows.where(start) for start in starts))


def _above(prefix: str) -> str | None:
    """The least text above every text that starts with ``prefix``, in the order of code points
    (SQLite's order of text: its bytes); ``None`` if there is none."""
    last = ord(prefix[-1]) if prefix else 0x10FFFF
    return prefix[:-1] + chr(last + 1) if last < 0x10FFFF else None


def _escaped(text: str) -> str:
    """``text`` as literal text in a LIKE pattern with ``ESCAPE '/'``."""
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def _insert_row(connection: sa.Connection, values: dict[str, Any]) -> bool:
    statement = _INSERT_NEW.get(connection.dialect.name)
    if statement is not None:
        # RETURNING, not rowcount: the driver's rowcount is unreliable for ON CONFLICT.
        return connection.execute(statement, values).first() is not None
    address = {name: values[name] for name in ("center", "kind", "key")}
    if connection.execute(_GET, address).first() is not None:
        return False
    connection.execute(sa.insert(_table), values)
    return True


def _under(query: Any, key_prefix: str, dialect: str) -> Any:
    """``query`` narrowed to the keys that may start with ``key_prefix`` (the caller decides
    exactly). On SQLite a range of the primary key (``_above``), which SQLite probes (a ``LIKE``
    of a bound pattern reads every key of the kind). Elsewhere ``LIKE``: under a linguistic
    collation a range is not a prefix."""
    if not key_prefix:
        return query
    above = _above(key_prefix)
    if dialect == "sqlite" and above is not None:
        return query.where(_table.c.key >= key_prefix, _table.c.key < above)
    return query.where(_table.c.key.startswith(key_prefix, autoescape=True))


def _stored_keys(connection: sa.Connection, center: str, kind: str, key_prefix: str) -> set[str]:
    query = _under(_KEYS, key_prefix, connection.dialect.name)
    found = connection.execute(query, {"center": center, "kind": kind}).scalars()
    return {key for key in map(str, found) if key.startswith(key_prefix)}


def _list_rows(connection: sa.Connection, center: str, kind: str, key_prefix: str) -> list[tuple[str, Doc]]:
    query = _under(_LIST, key_prefix, connection.dialect.name)
    return [
        (str(key), _as_doc(value))
        for key, value in connection.execute(query, {"center": center, "kind": kind})
        if str(key).startswith(key_prefix)
    ]


def _clone(doc: Any) -> Any:
    """A deep copy of a JSON value (faster than ``copy.deepcopy`` for plain JSON)."""
    if isinstance(doc, dict):
        return {name: _clone(item) for name, item in doc.items()}
    if isinstance(doc, list):
        return [_clone(item) for item in doc]
    return doc


def _as_doc(value: object) -> Doc:
    if not isinstance(value, dict):
        raise TypeError(f"sim_objects.doc holds {type(value).__name__}, not a JSON object")
    return {str(name): item for name, item in value.items()}
