"""How every real driver calls its backend: one ``Caller``, retried by ``pacing``, mapped by rules.

The OpenStack, S3/Route 53 and Kubernetes drivers call their backends alike; what differs
is which errors are the backend's own, which of them may recover by themselves, where a
refusal says when to come back, and what each means in cloudctl. Each backend says that in
its own ``calls`` module, as the ``Rules`` it gives its ``Caller``; this module holds the rest.

Invariants:

- ``Caller.call`` runs the operation through ``pacing.Pacing``: only what the rules call
  retryable is retried, never sooner than the ``Retry-After`` they read, sleeping through the
  injected clock; a ``Retry-After`` longer than ``max_retry_after_s`` ends the call at once.
- Nothing the rules name as the backend's own (``Rules.raises``) leaves
  ``Caller.call``: the last such error is translated by the rules into a
  ``cloudctl.errors.CloudctlError`` raised from it. Anything else (cloudctl's own errors)
  passes through as it is.
- ``what`` names the subject of the call (``"server 1234"``); its first word
  (``Failed.field``) is the error's field where the rules name no better one.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import pacing

T = TypeVar("T")
PolicyT = TypeVar("PolicyT", bound=pacing.Backoff)


@dataclasses.dataclass(frozen=True)
class Failed:
    """A call that failed for good, as the rules see it when they translate its last error."""

    what: str
    center: str
    attempts: int
    asked_s: float | None
    """How long the last refusal asked to wait when that was more than allowed; else ``None``."""
    project: str | None = None
    """Whose quota a refusal counts against, where the caller said (OpenStack)."""

    @property
    def field(self) -> str:
        """The first word of ``what`` (``server`` of ``"server 1234"``)."""
        return self.what.split(" ", 1)[0]

    @property
    def where(self) -> str:
        return f"in center {self.center}"

    @property
    def subject(self) -> str:
        """What was called on, and where (``server 1234 in center qd-a``)."""
        return f"{self.what} {self.where}"

    def not_found(self) -> errors.NotFound:
        """The subject is not there (every backend says so alike)."""
        return errors.NotFound(f"no {self.subject}", field=self.field)

    def gave_up(self, failing: str) -> str:
        """Why the retries ended: the refusal asked too long a pause, or ``failing`` (``"did not
        answer"``) after the last attempt."""
        if self.asked_s is not None:
            return f"asked to retry after {math.ceil(self.asked_s)} s, more than allowed"
        return f"{failing} after {self.attempts} attempts"


class RetryAfter(Protocol):
    def __call__(self, error: BaseException, *, now: float) -> float | None:
        """How long the refusal asked to wait (``Retry-After``, from ``now``); ``None``: it did not."""
        ...


@dataclasses.dataclass(frozen=True)
class Rules:
    """What one kind of backend tells ``Caller``: its errors, which may recover, what they mean."""

    raises: tuple[type[BaseException], ...]
    """The errors of the backend's client; every one that ends a call is translated."""
    retryable: Callable[[BaseException], bool]
    """Whether an error may go away by itself (unreachable, overloaded, throttled)."""
    retry_after_s: RetryAfter
    translate: Callable[[BaseException, Failed], errors.CloudctlError]
    """What an error, the last one of a call that ``Failed``, means in cloudctl."""


class Caller(Generic[PolicyT]):
    """Runs one backend call with retries and maps whatever the backend raises to ``cloudctl.errors``."""

    def __init__(self, rules: Rules, *, center: str, clock: clocks.Clock, retry: PolicyT) -> None:
        self.rules = rules
        self.center = center
        self.clock = clock
        self.retry = retry
        self._pacing = pacing.Pacing(
            retry,
            clock=clock,
            retryable=rules.retryable,
            server_asks_s=lambda error: rules.retry_after_s(error, now=clock.now()),
        )

    def call(self, operation: Callable[[], T], *, what: str, project: str | None = None) -> T:
        """``operation()``, retried and mapped; ``what`` names its subject, ``project`` the quota
        holder a refusal counts against (where the backend tells)."""
        try:
            return self._pacing.run(operation)
        except self.rules.raises as error:
            raise self.translate(error, what=what, project=project) from error

    def translate(
        self, error: BaseException, *, what: str, project: str | None = None
    ) -> errors.CloudctlError:
        """What ``error``, ending a call on ``what``, means in cloudctl (by the backend's rules)."""
        failed = Failed(
            what=what,
            center=self.center,
            attempts=self.retry.attempts,
            asked_s=self._pacing.asked_too_much(error),
            project=project,
        )
        return self.rules.translate(error, failed)
