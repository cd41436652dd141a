"""Injected faults: what they are, where they are kept, and how an operation meets them.

Five kinds: a center down (every operation on it raises ``errors.InjectedFault``),
a link cut (transfers between its two centers raise ``InjectedFault``), a link
degraded by a factor (transfers take ``factor`` times the round trip and get
``1/factor`` of the bandwidth), an API error rate (each operation on the center
fails with that probability), and a corrupt replica (one stored object's bytes
damaged at rest, behind its checksum: a one-off event, recorded so that it is listed;
clearing the record does not undo the damage, a scrub repairs it).

Invariants:

- Faults live only in the state backend (``GLOBAL_CENTER``, kind ``fault``), so a
  fault injected by one process stops the operations of every other process: an
  operation reads the faults it meets when it runs, never from a copy kept between
  operations, so the very next operation after an injection (or a clear) sees it.
- Meeting an operation reads exactly the two faults it depends on (the center's
  ``center-down`` and ``api-error-rate``) by id, together and without locking them
  (``get_many``), in the operation's own transaction when it has one (``reader``), and
  afresh even when that transaction is part of a longer unit that read them before.
- A fault's id is derived from what it names (``center-down:qd-a``,
  ``link-cut:qd-a~qd-b``, ``link-degraded:...``, ``api-error-rate:dz-dr``; link ends
  sorted), so injecting the same fault twice replaces it instead of stacking.
- A center's effective error rate is its ``api-error-rate`` fault if there is one,
  else the topology's ``simulator.error_rate``. Draws come from one
  ``random.Random`` whose seed the caller chooses, and are taken only when the rate
  is above zero, so a seeded run fails the same operations every time.
"""

from __future__ import annotations

import dataclasses
import enum
import random

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers.simulator import state
from cloudctl.model.states import CenterHealth, LinkState

KIND = "fault"


class FaultKind(enum.StrEnum):
    CENTER_DOWN = "center-down"
    LINK_CUT = "link-cut"
    LINK_DEGRADED = "link-degraded"
    API_ERROR_RATE = "api-error-rate"
    CORRUPT_REPLICA = "corrupt-replica"


@dataclasses.dataclass(frozen=True)
class Fault:
    """One injected fault; ``center`` or ``link`` says what it hits, by kind."""

    id: str
    kind: FaultKind
    injected_at: float
    center: str | None = None
    link: tuple[str, str] | None = None
    factor: float | None = None
    """How many times slower a degraded link is."""
    rate: float | None = None
    """Probability that one API operation fails."""
    target: str | None = None
    """``bucket/key`` of the object a corrupt-replica fault damaged."""

    def to_doc(self) -> state.Doc:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "injected_at": self.injected_at,
            "center": self.center,
            "link": list(self.link) if self.link else None,
            "factor": self.factor,
            "rate": self.rate,
            "target": self.target,
        }

    @classmethod
    def from_doc(cls, doc: state.Doc) -> Fault:
        link = doc.get("link")
        return cls(
            id=doc["id"],
            kind=FaultKind(doc["kind"]),
            injected_at=doc["injected_at"],
            center=doc.get("center"),
            link=(link[0], link[1]) if link else None,
            factor=doc.get("factor"),
            rate=doc.get("rate"),
            target=doc.get("target"),
        )


def link_ends(a: str, b: str) -> tuple[str, str]:
    """A link's ends in canonical (sorted) order."""
    first, second = sorted((a, b))
    return first, second


def center_fault_id(kind: FaultKind, center: str) -> str:
    return f"{kind.value}:{center}"


def link_fault_id(kind: FaultKind, a: str, b: str) -> str:
    first, second = link_ends(a, b)
    return f"{kind.value}:{first}~{second}"


class FaultBook:
    """Reads and writes faults in the state backend and applies them to operations."""

    def __init__(self, *, backend: state.StateBackend, clock: clocks.Clock, rng: random.Random) -> None:
        self._backend = backend
        self._clock = clock
        self._rng = rng

    # --- injecting and clearing --------------------------------------------------------

    def center_down(self, center: str) -> Fault:
        return self._inject(
            FaultKind.CENTER_DOWN, center_fault_id(FaultKind.CENTER_DOWN, center), center=center
        )

    def link_cut(self, a: str, b: str) -> Fault:
        fault_id = link_fault_id(FaultKind.LINK_CUT, a, b)
        return self._inject(FaultKind.LINK_CUT, fault_id, link=link_ends(a, b))

    def link_degraded(self, a: str, b: str, *, factor: float) -> Fault:
        if not factor >= 1:
            raise errors.InvalidInput(f"must be at least 1, not {factor}", field="factor")
        fault_id = link_fault_id(FaultKind.LINK_DEGRADED, a, b)
        return self._inject(FaultKind.LINK_DEGRADED, fault_id, link=link_ends(a, b), factor=factor)

    def api_error_rate(self, center: str, *, rate: float) -> Fault:
        if not 0 <= rate <= 1:
            raise errors.InvalidInput(f"must be between 0 and 1, not {rate}", field="rate")
        fault_id = center_fault_id(FaultKind.API_ERROR_RATE, center)
        return self._inject(FaultKind.API_ERROR_RATE, fault_id, center=center, rate=rate)

    def corrupt_replica(self, center: str, *, bucket: str, key: str) -> Fault:
        """Record that ``bucket/key`` in ``center`` was damaged at rest (the damage itself is the
        center's ``SimulatedObjectStorage.corrupt_object``); clearing the record does not repair
        the object."""
        target = f"{bucket}/{key}"
        fault_id = f"{FaultKind.CORRUPT_REPLICA.value}:{center}/{target}"
        return self._inject(FaultKind.CORRUPT_REPLICA, fault_id, center=center, target=target)

    def _inject(
        self,
        kind: FaultKind,
        fault_id: str,
        *,
        center: str | None = None,
        link: tuple[str, str] | None = None,
        factor: float | None = None,
        rate: float | None = None,
        target: str | None = None,
    ) -> Fault:
        fault = Fault(
            id=fault_id,
            kind=kind,
            injected_at=self._clock.now(),
            center=center,
            link=link,
            factor=factor,
            rate=rate,
            target=target,
        )
        self._backend.put(state.GLOBAL_CENTER, KIND, fault.id, fault.to_doc())
        return fault

    def clear(self, fault_id: str, *, ignore_missing: bool = True) -> None:
        if not self._backend.delete(state.GLOBAL_CENTER, KIND, fault_id) and not ignore_missing:
            raise errors.NotFound(f"no injected fault {fault_id!r}", field="fault")

    def clear_all(self) -> int:
        """Clear every fault; how many there were."""
        with self._backend.transaction() as transaction:
            docs = transaction.list(state.GLOBAL_CENTER, KIND)
            for doc in docs:
                transaction.delete(state.GLOBAL_CENTER, KIND, doc["id"])
        return len(docs)

    def list_faults(self) -> list[Fault]:
        """Every injected fault, sorted by id."""
        return [Fault.from_doc(doc) for doc in self._backend.list(state.GLOBAL_CENTER, KIND)]

    # --- reading the world's health ----------------------------------------------------

    def center_health(self, center: str) -> CenterHealth:
        fault_id = center_fault_id(FaultKind.CENTER_DOWN, center)
        return (
            CenterHealth.DOWN if self._backend.get(state.GLOBAL_CENTER, KIND, fault_id) else CenterHealth.UP
        )

    def link_condition(self, a: str, b: str) -> tuple[LinkState, float]:
        """The link's state and the factor it is slowed by (1 unless degraded)."""
        cut_id = link_fault_id(FaultKind.LINK_CUT, a, b)
        degraded_id = link_fault_id(FaultKind.LINK_DEGRADED, a, b)
        found = self._backend.get_many(state.GLOBAL_CENTER, KIND, [cut_id, degraded_id])
        if cut_id in found:
            return LinkState.CUT, 1.0
        degraded = found.get(degraded_id)
        if degraded:
            return LinkState.DEGRADED, float(degraded["factor"])
        return LinkState.UP, 1.0

    # --- meeting an operation ----------------------------------------------------------

    def check_reachable(
        self,
        center: str,
        *,
        baseline_error_rate: float,
        reader: state.StateTransaction | None = None,
    ) -> float:
        """Raise ``InjectedFault`` if the center is down; else its effective error rate.

        The two faults are read through ``reader`` (the operation's transaction) if
        given, else in a snapshot of their own.
        """
        down_id = center_fault_id(FaultKind.CENTER_DOWN, center)
        rate_id = center_fault_id(FaultKind.API_ERROR_RATE, center)
        by_id = (reader if reader is not None else self._backend).get_many(
            state.GLOBAL_CENTER, KIND, [down_id, rate_id], fresh=True
        )
        down = by_id.get(down_id)
        if down:
            raise errors.InjectedFault(
                f"center {center} is down (injected fault {down['id']})", field="center"
            )
        rate_fault = by_id.get(rate_id)
        return float(rate_fault["rate"]) if rate_fault else baseline_error_rate

    def roll(self, center: str, *, rate: float, operation: str) -> None:
        """Fail the operation with probability ``rate``."""
        if rate > 0 and self._rng.random() < rate:
            raise errors.InjectedFault(
                f"center {center} failed {operation} (injected API error rate {rate:g})",
                field="center",
            )
