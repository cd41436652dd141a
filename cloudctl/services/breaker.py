"""A circuit breaker per center: a center that keeps failing is left alone for a while.

Every driver call of a center goes through ``guard``; a call that ends in
``BackendUnavailable`` counts as a failure, any other outcome as a success.

Invariants:
- ``failures_to_open`` consecutive failures (default ``FAILURES_TO_OPEN``; the setting
  ``breaker_failures_to_open``) open the circuit: for ``cooldown_s`` (default ``COOLDOWN_S``;
  the setting ``breaker_cooldown_s``), on the context's clock, every call to that center fails
  at once with ``BackendUnavailable`` naming the open circuit, so reconcilers stop hammering it.
- After the cooldown one call is let through (half-open): a success closes the circuit,
  a failure opens it for another cooldown.
- Opening and closing are written to the store (``centers.state`` = ``unhealthy`` / ``up``),
  so ``cloudctl status`` in any process shows a center whose circuit is open.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from typing import Any

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import states

FAILURES_TO_OPEN = 5
COOLDOWN_S = 60.0


@dataclasses.dataclass
class _Circuit:
    failures: int = 0
    open_until: float | None = None


class Breakers:
    """The circuits of every center, for one process."""

    def __init__(
        self,
        *,
        clock: clocks.Clock,
        on_change: Callable[[str, str], None],
        failures_to_open: int = FAILURES_TO_OPEN,
        cooldown_s: float = COOLDOWN_S,
    ) -> None:
        if failures_to_open < 1:
            raise errors.InvalidInput(
                f"must be at least 1, not {failures_to_open}", field="breaker_failures_to_open"
            )
        if not cooldown_s > 0:
            raise errors.InvalidInput(f"must be more than 0, not {cooldown_s}", field="breaker_cooldown_s")
        self.failures_to_open = failures_to_open
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._on_change = on_change
        self._circuits: dict[str, _Circuit] = {}
        self._lock = threading.Lock()

    def is_open(self, center: str) -> bool:
        with self._lock:
            circuit = self._circuits.get(center)
            return (
                circuit is not None
                and circuit.open_until is not None
                and self._clock.now() < circuit.open_until
            )

    def before_call(self, center: str) -> None:
        if self.is_open(center):
            raise errors.BackendUnavailable(
                f"center {center} failed {self.failures_to_open} times in a row; its circuit is open, "
                f"calls resume after a {self.cooldown_s:g} s cooldown",
                field="center",
            )

    def failed(self, center: str) -> None:
        with self._lock:
            circuit = self._circuits.setdefault(center, _Circuit())
            circuit.failures += 1
            opening = circuit.failures >= self.failures_to_open
            if opening:
                circuit.open_until = self._clock.now() + self.cooldown_s
        if opening:
            self._on_change(center, states.CenterHealth.UNHEALTHY)

    def succeeded(self, center: str) -> None:
        with self._lock:
            circuit = self._circuits.pop(center, None)
        if circuit is not None and circuit.open_until is not None:
            self._on_change(center, states.CenterHealth.UP)


class Guarded:
    """A driver whose every method call is counted by the center's circuit.

    ``gate``, when given, runs before each call and may refuse it (an injected fault on a
    real backend); a refusal is counted like the backend's own.
    """

    def __init__(
        self, inner: Any, *, center: str, breakers: Breakers, gate: Callable[[], None] | None = None
    ) -> None:
        self._inner = inner
        self._center = center
        self._breakers = breakers
        self._gate = gate

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._inner, name)
        if not callable(attribute):
            return attribute

        def call(*args: Any, **kwargs: Any) -> Any:
            self._breakers.before_call(self._center)
            try:
                if self._gate is not None:
                    self._gate()
                result = attribute(*args, **kwargs)
            except errors.BackendUnavailable:
                self._breakers.failed(self._center)
                raise
            self._breakers.succeeded(self._center)
            return result

        return call
