"""How every real driver retries: tenacity, exponential backoff with jitter, the server's pace.

The OpenStack, S3/Route 53 and Kubernetes drivers differ in what they call and what
they map errors to; they retry alike, through the ``Pacing`` of the shared
``drivers.calls.Caller``:

- Waits grow exponentially with jitter (``initial_wait_s`` up to ``max_wait_s``) and
  sleep through the injected clock, so tests never sleep and see every wait.
- A refusal that says when to come back (``Retry-After``: delta-seconds or an HTTP
  date) is waited out at least that long; one that asks for more than
  ``max_retry_after_s`` ends the call at once instead of holding it.
- ``attempts`` bounds the tries, the first included.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable
from typing import Protocol, TypeVar

import tenacity

from cloudctl import clock as clocks
from cloudctl import errors

T = TypeVar("T")


def retry_after_s(value: str | None, *, now: float) -> float | None:
    """A ``Retry-After`` header value in seconds from ``now``; ``None`` if absent or unreadable."""
    if value is None:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(moment.timestamp() - now, 0.0)


class Backoff(Protocol):
    """What a driver's retry policy says of retrying (each driver adds its own timeouts)."""

    @property
    def attempts(self) -> int: ...

    @property
    def initial_wait_s(self) -> float: ...

    @property
    def max_wait_s(self) -> float: ...

    @property
    def max_retry_after_s(self) -> float: ...


class Pacing:
    """The retry loop of one backend's calls."""

    def __init__(
        self,
        policy: Backoff,
        *,
        clock: clocks.Clock,
        retryable: Callable[[BaseException], bool],
        server_asks_s: Callable[[BaseException], float | None],
    ) -> None:
        """``server_asks_s(error)`` is how long the refusal asked to wait (``None``: it did not)."""
        if policy.attempts < 1:
            raise errors.InvalidInput(f"must be at least 1, not {policy.attempts}", field="retry.attempts")
        self.attempts = policy.attempts
        self.max_retry_after_s = policy.max_retry_after_s
        self._clock = clock
        self._retryable = retryable
        self._server_asks_s = server_asks_s
        self._backoff = tenacity.wait_exponential_jitter(
            multiplier=policy.initial_wait_s, jitter=policy.initial_wait_s, max=policy.max_wait_s
        )

    def run(self, operation: Callable[..., T], *args: object) -> T:
        """``operation(*args)``, retried while it fails retryably; the last error is re-raised."""
        retrying = tenacity.Retrying(
            stop=self._stop,
            wait=self._wait,
            retry=tenacity.retry_if_exception(self._retryable),
            sleep=self._clock.sleep,
            reraise=True,
        )
        return retrying(operation, *args)

    def asked_too_much(self, error: BaseException) -> float | None:
        """How long the refusal asked to wait, if that is more than this pacing allows."""
        asked = self._server_asks_s(error)
        return asked if asked is not None and asked > self.max_retry_after_s else None

    def _asked(self, retry_state: tenacity.RetryCallState) -> float | None:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        return None if error is None else self._server_asks_s(error)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        backoff_s = self._backoff(retry_state)
        server_s = self._asked(retry_state)
        return backoff_s if server_s is None else max(backoff_s, server_s)

    def _stop(self, retry_state: tenacity.RetryCallState) -> bool:
        """After the last attempt, or when the server asks for a longer pause than allowed."""
        if retry_state.attempt_number >= self.attempts:
            return True
        server_s = self._asked(retry_state)
        return server_s is not None and server_s > self.max_retry_after_s
