"""Where the simulator keeps its state: a small document store behind a Protocol.

Every piece of simulated state (servers, volumes and their blocks, buckets and
objects, namespaces, DNS records, project quotas, capacity usage, faults) is a
JSON document addressed by ``(center, kind, key)``. The simulator holds nothing
else between calls, so two processes over one backend (``StoreBackedState`` in
``cloudctl.store.simulator_state``) see the same simulated world.

Invariants every backend keeps:

- Documents are JSON objects (str keys; str, int, float, bool, None, lists,
  objects); what ``get`` returns is a copy the caller may change freely.
- ``list`` returns the documents of one ``(center, kind)`` whose key starts with
  ``key_prefix``, sorted by key (code-point order).
- ``find_by`` returns the first of those documents (in key order) whose string
  field ``field`` equals ``value``, or ``None``: a lookup by name that need not
  copy every document of the kind.
- ``keys`` returns the keys ``list`` would, without reading the documents.
- ``get_many`` returns those of the given keys of one ``(center, kind)`` that
  exist, by key, read together (one statement on a database) and never locking a
  row, even inside ``transaction()``: how an operation reads the faults it meets.
- ``reading()`` yields the verbs over one read snapshot (no writes, no row
  locks): the reads of one operation share it instead of each paying for its own.
- ``transaction()`` yields a handle with the same verbs whose writes become
  visible together when the block ends without an error and not at all otherwise;
  transactions of one backend are serialised (or, on PostgreSQL, a ``get`` inside
  one locks the row it reads until the end), so read-check-write is safe.
  Transactions do not nest.
- ``insert`` never replaces: of two concurrent inserts of one address, one
  creates the document and the other returns ``False`` (a lock row can therefore
  be created safely before it is locked).
- ``claim`` is an ``insert`` that reaches the backend at once, even where other writes
  are held back to the end: a document's address is unique, so the document is a claim
  other transactions meet while this one is still open (on PostgreSQL a concurrent
  ``claim`` of the same address waits for this transaction's end, then returns
  ``False`` if it committed). Taking one of many candidates needs no lock row then.

``GLOBAL_CENTER`` is the center key of state that belongs to no single center
(faults, which may name a link between two centers).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from cloudctl.model import documents

GLOBAL_CENTER = "*"
"""Center key of documents that belong to the whole simulated world."""

Doc = dict[str, Any]
DocList = list[Doc]
KeyList = list[str]


class StateTransaction(Protocol):
    """The verbs of the document store; inside a transaction, atomic together."""

    def get(self, center: str, kind: str, key: str) -> Doc | None: ...

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        """Create or replace the document."""
        ...

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        """Create the document unless there is one; whether it did."""
        ...

    def delete(self, center: str, kind: str, key: str) -> bool:
        """Remove the document; whether there was one."""
        ...

    def claim(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        """Create the document now unless there is one (never held back); whether it did."""
        ...

    def hold(self, center: str, kind: str, key: str, *, empty: Doc) -> None:
        """Lock the document until the transaction ends (a lock row: on PostgreSQL the other
        transactions that hold it wait), creating it as ``empty`` first if there is none, at once
        even where other writes are held back to the end."""
        ...

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList: ...

    def find_by(self, center: str, kind: str, *, field: str, value: str) -> Doc | None: ...

    def find_all_by(
        self, center: str, kind: str, *, where: Mapping[str, str], name_prefixes: Sequence[str] = ()
    ) -> DocList:
        """The documents whose fields are as ``where`` says and whose ``name`` starts with one
        of ``name_prefixes`` (if any), in key order: what ``list`` would return, filtered, without copying
        the others (a center's volumes may be thousands)."""
        ...

    def keys(self, center: str, kind: str, *, key_prefix: str = "") -> KeyList:
        """The keys of the documents ``list`` would return, in the same order."""
        ...

    def get_many(self, center: str, kind: str, keys: Sequence[str], *, fresh: bool = False) -> dict[str, Doc]:
        """Those of ``keys`` that exist, by key; never locks a row. ``fresh``: as they are in
        the backend now, even where a transaction that remembers what it read read them before
        (its own writes still show)."""
        ...


class StateBackend(StateTransaction, Protocol):
    """A document store: each verb alone is its own transaction."""

    def transaction(self) -> contextlib.AbstractContextManager[StateTransaction]: ...

    def reading(self) -> contextlib.AbstractContextManager[StateTransaction]:
        """The verbs over one read snapshot; only the reading verbs may be used."""
        ...


_DocTexts = dict[str, str]
"""The documents of one (center, kind), each serialised to JSON text, by key."""


class InMemoryState:
    """A ``StateBackend`` in a dict, for tests and single-process demos; thread-safe.

    Documents are kept as JSON text: that proves they are JSON and makes every
    read a fresh copy, just as a database would.
    """

    def __init__(self) -> None:
        self._texts: dict[tuple[str, str], _DocTexts] = {}
        self._lock = threading.RLock()

    def get(self, center: str, kind: str, key: str) -> Doc | None:
        with self.transaction() as transaction:
            return transaction.get(center, kind, key)

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        with self.transaction() as transaction:
            transaction.put(center, kind, key, doc)

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        with self.transaction() as transaction:
            return transaction.insert(center, kind, key, doc)

    def delete(self, center: str, kind: str, key: str) -> bool:
        with self.transaction() as transaction:
            return transaction.delete(center, kind, key)

    def claim(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        return self.insert(center, kind, key, doc)

    def hold(self, center: str, kind: str, key: str, *, empty: Doc) -> None:
        with self.transaction() as transaction:
            transaction.hold(center, kind, key, empty=empty)

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList:
        with self.transaction() as transaction:
            return transaction.list(center, kind, key_prefix=key_prefix)

    def find_by(self, center: str, kind: str, *, field: str, value: str) -> Doc | None:
        with self.transaction() as transaction:
            return transaction.find_by(center, kind, field=field, value=value)

    def find_all_by(
        self, center: str, kind: str, *, where: Mapping[str, str], name_prefixes: Sequence[str] = ()
    ) -> DocList:
        with self.transaction() as transaction:
            return transaction.find_all_by(center, kind, where=where, name_prefixes=name_prefixes)

    def get_many(self, center: str, kind: str, keys: Sequence[str], *, fresh: bool = False) -> dict[str, Doc]:
        with self.transaction() as transaction:
            return transaction.get_many(center, kind, keys)

    def keys(self, center: str, kind: str, *, key_prefix: str = "") -> KeyList:
        with self.transaction() as transaction:
            return transaction.keys(center, kind, key_prefix=key_prefix)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[_InMemoryTransaction]:
        with self._lock:
            transaction = _InMemoryTransaction(self._texts)
            yield transaction
            transaction.apply()

    @contextlib.contextmanager
    def reading(self) -> Iterator[_InMemoryTransaction]:
        with self._lock:
            yield _InMemoryTransaction(self._texts)


class _InMemoryTransaction:
    """Reads through staged writes; ``apply`` makes them visible all at once."""

    def __init__(self, texts: dict[tuple[str, str], _DocTexts]) -> None:
        self._texts = texts
        self._staged: dict[tuple[str, str], dict[str, str | None]] = {}

    def _current(self, center: str, kind: str, key: str) -> str | None:
        staged = self._staged.get((center, kind), {})
        if key in staged:
            return staged[key]
        return self._texts.get((center, kind), {}).get(key)

    def hold(self, center: str, kind: str, key: str, *, empty: Doc) -> None:
        # The transactions of this backend take turns: creating the document is enough.
        self.insert(center, kind, key, empty)

    def get(self, center: str, kind: str, key: str) -> Doc | None:
        text = self._current(center, kind, key)
        return None if text is None else _load(text)

    def put(self, center: str, kind: str, key: str, doc: Doc) -> None:
        self._staged.setdefault((center, kind), {})[key] = json.dumps(doc, sort_keys=True)

    def insert(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        if self._current(center, kind, key) is not None:
            return False
        self.put(center, kind, key, doc)
        return True

    def claim(self, center: str, kind: str, key: str, doc: Doc) -> bool:
        # The transactions of this backend take turns: nobody can meet the claim before the end.
        return self.insert(center, kind, key, doc)

    def delete(self, center: str, kind: str, key: str) -> bool:
        existed = self._current(center, kind, key) is not None
        self._staged.setdefault((center, kind), {})[key] = None
        return existed

    def list(self, center: str, kind: str, *, key_prefix: str = "") -> DocList:
        merged: dict[str, str | None] = dict(self._texts.get((center, kind), {}))
        merged.update(self._staged.get((center, kind), {}))
        return [
            _load(text)
            for key, text in sorted(merged.items())
            if text is not None and key.startswith(key_prefix)
        ]

    def find_by(self, center: str, kind: str, *, field: str, value: str) -> Doc | None:
        return next(iter(self.find_all_by(center, kind, where={field: value})), None)

    def find_all_by(
        self, center: str, kind: str, *, where: Mapping[str, str], name_prefixes: Sequence[str] = ()
    ) -> DocList:
        return [doc for doc in self.list(center, kind) if documents.matches(doc, where, name_prefixes)]

    def get_many(self, center: str, kind: str, keys: Sequence[str], *, fresh: bool = False) -> dict[str, Doc]:
        found = {key: self.get(center, kind, key) for key in keys}
        return {key: doc for key, doc in found.items() if doc is not None}

    def keys(self, center: str, kind: str, *, key_prefix: str = "") -> KeyList:
        merged: dict[str, str | None] = dict(self._texts.get((center, kind), {}))
        merged.update(self._staged.get((center, kind), {}))
        return [
            key for key, text in sorted(merged.items()) if text is not None and key.startswith(key_prefix)
        ]

    def apply(self) -> None:
        for address, changes in self._staged.items():
            texts = self._texts.setdefault(address, {})
            for key, text in changes.items():
                if text is None:
                    texts.pop(key, None)
                else:
                    texts[key] = text
        self._staged.clear()


def _load(text: str) -> Doc:
    doc = json.loads(text)
    if not isinstance(doc, dict):
        raise TypeError("a state document must be a JSON object")
    return doc
