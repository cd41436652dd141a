"""What the five simulated capabilities of one center share: faults, latency, capacity, state.

``CenterCore`` is one center's part of the simulated world. Every capability of the
center (``compute``, ``block_storage``, ``object_storage``, ``containers``,
``traffic``) is given the same core and reaches the backend, the clock and the
injected faults only through it.

Every operation first meets the injected faults (``operate``: a center that is down
raises ``errors.InjectedFault`` at once), then waits the center's
``simulator.latency_ms`` on the injected clock, then fails with the center's effective
API error rate, and only then reads or changes state, in one backend transaction.
An operation that names itself to ``reading(operation)`` or ``writing(operation)``
meets its faults inside that transaction when the center has no latency (nothing to
wait between the check and the work), so it reads the two faults and its state in one
transaction instead of two; with a latency it meets them first, as ``operate`` does.
Either way the faults are read from the backend by that very operation.

Invariants:

- Capacity (the topology's ``center.capacity``) is never overrun: the usage document
  of the center counts vCPU, RAM, volume GB, instances and stored object bytes, and
  changes (``consume``) in the same transaction as the thing that consumes it; going
  over raises ``errors.Conflict`` naming the center and the resource, and deleting
  frees. What each capability consumes is said in its own module.
- Project quotas, when set, bound the project's servers and volumes in this center
  (``vcpu``, ``ram_gb``, ``instances``, ``volume_gb``; ``charge_project``) and raise
  ``errors.QuotaExceeded``; other resources are stored and reported, not enforced.
- Every mutating transaction (``writing``) reads the usage document first: on
  PostgreSQL that row lock serialises the writers of one center, across all its
  capabilities, so uniqueness and capacity checks hold.
- Stored bytes (objects, volume blocks) keep their sha256 next to them; every read of
  the bytes verifies it (``verified``) and raises ``base.ChecksumMismatchError`` on a
  mismatch. ``corrupt`` breaks the bytes behind the checksum's back, for test hooks.
- Ids are ``uuid4`` hex. The document kinds below are the whole of a center's state.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import math
from collections.abc import Callable, Iterator, Mapping, Sequence

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import faults, state
from cloudctl.model import quotas, topology

BYTES_PER_GB = 1024**3

KIND_USAGE = "usage"
KIND_SERVER = "server"
KIND_PROJECT_QUOTA = "project-quota"
KIND_PROJECT_USAGE = "project-usage"
KIND_VOLUME = "volume"
KIND_VOLUME_BLOCK = "volume-block"
KIND_SNAPSHOT = "snapshot"
KIND_SNAPSHOT_BLOCK = "snapshot-block"
KIND_BUCKET = "bucket"
KIND_OBJECT = "object"
KIND_OBJECT_VERSION = "object-version"
KIND_NAMESPACE = "namespace"
KIND_DNS_RECORD = "dns-record"
KIND_PORT = "port"
KIND_SEGMENT = "segment"
"""One document per L2 segment (``GLOBAL_CENTER``): its ``free_from``, below which every host
is held or given back (written by earlier versions; read when a process first allocates)."""
KIND_FREED_ADDRESS = "freed-address"
"""An address given back on a segment (``GLOBAL_CENTER``, keyed as its port): taken first."""
USAGE_KEY = "center"

ENFORCED_PROJECT_RESOURCES = (
    quotas.Resource.VCPU,
    quotas.Resource.RAM_GB,
    quotas.Resource.INSTANCES,
    quotas.Resource.VOLUME_GB,
)
_USAGE_FIELDS = ("vcpu", "ram_gb", "volume_gb", "instances", "object_bytes")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_gb(object_bytes: int) -> int:
    """Stored object bytes in whole GiB, rounded up."""
    return math.ceil(object_bytes / BYTES_PER_GB)


def encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


class CenterCore:
    """One center's faults, latency, capacity and state, shared by its five capabilities."""

    def __init__(
        self,
        center: topology.Center,
        *,
        backend: state.StateBackend,
        clock: clocks.Clock,
        fault_book: faults.FaultBook,
    ) -> None:
        self.name = center.name
        self.backend = backend
        self.clock = clock
        self._capacity = center.capacity.amounts()
        self._latency_s = center.simulator.latency_ms / 1000
        self._baseline_error_rate = center.simulator.error_rate
        self._faults = fault_book

    @property
    def latency_s(self) -> float:
        """How long each operation on this center waits (``simulator.latency_ms``)."""
        return self._latency_s

    # --- operations and transactions ---------------------------------------------------

    def operate(self, operation: str) -> None:
        """Meet the injected faults and the latency of one API operation."""
        rate = self._faults.check_reachable(self.name, baseline_error_rate=self._baseline_error_rate)
        self.clock.sleep(self._latency_s)
        self._faults.roll(self.name, rate=rate, operation=operation)

    def _meet_first(self, operation: str | None) -> str | None:
        """Meet ``operation``'s faults and latency now if there is latency to wait; else
        the operation left for its transaction to meet (``_meet``)."""
        if operation is not None and self._latency_s > 0:
            self.operate(operation)
            return None
        return operation

    def _meet(self, operation: str | None, transaction: state.StateTransaction) -> None:
        """Meet ``operation``'s faults inside its transaction (no latency to wait)."""
        if operation is None:
            return
        rate = self._faults.check_reachable(
            self.name, baseline_error_rate=self._baseline_error_rate, reader=transaction
        )
        self._faults.roll(self.name, rate=rate, operation=operation)

    @contextlib.contextmanager
    def reading(self, operation: str) -> Iterator[state.StateTransaction]:
        """``operation`` reading state: its faults and latency met, then one read snapshot."""
        left = self._meet_first(operation)
        with self.backend.reading() as transaction:
            self._meet(left, transaction)
            yield transaction

    @contextlib.contextmanager
    def writing(
        self, operation: str | None = None, *, lock_now: bool = True
    ) -> Iterator[state.StateTransaction]:
        """A transaction that holds this center's usage row (its writers' lock) first;
        ``operation``'s faults and latency met before the lock is taken, if named. With
        ``lock_now=False`` the caller takes the lock (``hold_usage``) before it reads or
        writes anything of the center: what it does before may only be a claim (``claim``)
        that needs no lock."""
        left = self._meet_first(operation)
        with self.backend.transaction() as transaction:
            self._meet(left, transaction)
            if lock_now:
                self.hold_usage(transaction)
            yield transaction

    def hold_usage(self, transaction: state.StateTransaction) -> None:
        """Lock the usage row: on PostgreSQL it queues the other writers of this center."""
        transaction.hold(self.name, KIND_USAGE, USAGE_KEY, empty=dict.fromkeys(_USAGE_FIELDS, 0))

    # --- reading documents -------------------------------------------------------------

    def not_found(self, what: str, name: str) -> errors.NotFound:
        return errors.NotFound(f"no {what} {name!r} in center {self.name}", field=what)

    def require(self, doc: state.Doc | None, what: str, name: str) -> state.Doc:
        if doc is None:
            raise self.not_found(what, name)
        return doc

    def required(self, transaction: state.StateTransaction, kind: str, key: str, *, what: str) -> state.Doc:
        """The document ``key`` of ``kind`` in this center; ``NotFound`` naming ``what``."""
        return self.require(transaction.get(self.name, kind, key), what, key)

    def fetch(self, operation: str, kind: str, key: str, *, what: str) -> state.Doc:
        """``operation`` on one document: it must exist (``NotFound`` naming ``what``)."""
        with self.reading(operation) as transaction:
            return self.require(transaction.get(self.name, kind, key), what, key)

    def find_named(self, operation: str, kind: str, name: str) -> state.Doc | None:
        """``operation`` looking up a document of ``kind`` by its ``name`` field."""
        with self.reading(operation) as transaction:
            return transaction.find_by(self.name, kind, field="name", value=name)

    def listed(
        self,
        operation: str,
        kind: str,
        *,
        field: str = "",
        value: str | None = None,
        name_prefixes: Sequence[str] = (),
    ) -> list[state.Doc]:
        """``operation`` listing ``kind`` in key order; those whose ``field`` is ``value`` if given,
        and whose name starts with one of ``name_prefixes`` if any."""
        with self.reading(operation) as transaction:
            if value is None and not name_prefixes:
                return transaction.list(self.name, kind)
            where = {} if value is None else {field: value}
            return transaction.find_all_by(self.name, kind, where=where, name_prefixes=name_prefixes)

    def to_delete(
        self,
        transaction: state.StateTransaction,
        kind: str,
        key: str,
        *,
        what: str,
        ignore_missing: bool,
    ) -> state.Doc | None:
        """The document a delete removes; ``None`` if it is gone and that is fine, else ``NotFound``."""
        doc = transaction.get(self.name, kind, key)
        if doc is None and not ignore_missing:
            raise self.not_found(what, key)
        return doc

    def delete(
        self,
        operation: str,
        kind: str,
        key: str,
        *,
        what: str,
        ignore_missing: bool,
        release: Callable[[state.StateTransaction, state.Doc], None],
    ) -> None:
        """``operation`` deleting one document: ``release`` first frees (or refuses, by
        raising) what it holds, in the same transaction; quiet when it is gone if
        ``ignore_missing``, else ``NotFound`` naming ``what``."""
        with self.writing(operation) as transaction:
            doc = self.to_delete(transaction, kind, key, what=what, ignore_missing=ignore_missing)
            if doc is None:
                return
            release(transaction, doc)
            transaction.delete(self.name, kind, key)

    # --- capacity ----------------------------------------------------------------------

    def capacity_total(self) -> dict[str, int]:
        return quotas.as_names(self._capacity)

    def capacity_used(self) -> dict[str, int]:
        """What is in use, per resource name; not subject to faults (an observer's view)."""
        return _usage_as_amounts(self.backend.get(self.name, KIND_USAGE, USAGE_KEY))

    def consume(self, transaction: state.StateTransaction, **deltas: int) -> None:
        """Change usage by ``deltas`` (negative frees); ``Conflict`` if it would overrun."""
        usage = transaction.get(self.name, KIND_USAGE, USAGE_KEY) or {}
        before = _usage_as_amounts(usage)
        updated = {field: max(usage.get(field, 0) + deltas.get(field, 0), 0) for field in _USAGE_FIELDS}
        after = _usage_as_amounts(updated)
        for resource in quotas.RESOURCES:
            requested = after[resource.value] - before[resource.value]
            total = self._capacity.get(resource, 0)
            if requested > 0 and after[resource.value] > total:
                available = max(total - before[resource.value], 0)
                raise errors.Conflict(
                    f"center {self.name} is out of {resource.value}: requested {requested}, "
                    f"available {available} of {total}",
                    field=f"capacity.{resource.value}",
                )
        transaction.put(self.name, KIND_USAGE, USAGE_KEY, updated)

    # --- project quotas ----------------------------------------------------------------

    def project_used(self, transaction: state.StateTransaction, project: str) -> dict[str, int]:
        """The project's usage of the enforced resources in this center."""
        doc = transaction.get(self.name, KIND_PROJECT_USAGE, project) or {}
        return {resource.value: doc.get(resource.value, 0) for resource in ENFORCED_PROJECT_RESOURCES}

    def charge_project(
        self, transaction: state.StateTransaction, project: str, deltas: Mapping[str, int]
    ) -> None:
        """Change the project's usage; ``QuotaExceeded`` if an increase overruns a limit."""
        quota = transaction.get(self.name, KIND_PROJECT_QUOTA, project)
        limits: dict[str, int] = quota["limits"] if quota else {}
        used = self.project_used(transaction, project)
        shortfalls = [
            errors.Shortfall(
                node=project,
                center=self.name,
                resource=resource.value,
                limit=limits[resource.value],
                in_use=used[resource.value],
                requested=deltas[resource.value],
            )
            for resource in ENFORCED_PROJECT_RESOURCES
            if deltas.get(resource.value, 0) > 0
            and resource.value in limits
            and used[resource.value] + deltas[resource.value] > limits[resource.value]
        ]
        if shortfalls:
            raise errors.QuotaExceeded(shortfalls)
        updated = {field: max(value + deltas.get(field, 0), 0) for field, value in used.items()}
        transaction.put(self.name, KIND_PROJECT_USAGE, project, {"project": project, **updated})

    # --- stored bytes ------------------------------------------------------------------

    def verified(self, doc: state.Doc, *, what: str) -> bytes:
        """The bytes a document stores, checked against its sha256."""
        data = base64.b64decode(doc["data_b64"])
        actual = sha256_hex(data)
        if actual != doc["sha256"]:
            raise base.ChecksumMismatchError(
                center=self.name, what=what, expected_sha256=doc["sha256"], actual_sha256=actual
            )
        return data

    def corrupt(self, kind: str, key: str, what: str) -> None:
        """Test hook: change a document's stored bytes but not its recorded sha256."""
        with self.backend.transaction() as transaction:
            doc = self.required(transaction, kind, key, what=what)
            data = bytearray(base64.b64decode(doc["data_b64"]))
            if data:
                data[len(data) // 2] ^= 0xFF
            else:
                data.append(0)
            doc["data_b64"] = encode(bytes(data))
            transaction.put(self.name, kind, key, doc)


def _usage_as_amounts(usage: state.Doc | None) -> dict[str, int]:
    usage = usage or {}
    return {
        "vcpu": usage.get("vcpu", 0),
        "ram_gb": usage.get("ram_gb", 0),
        "volume_gb": usage.get("volume_gb", 0),
        "object_gb": object_gb(usage.get("object_bytes", 0)),
        "instances": usage.get("instances", 0),
    }
