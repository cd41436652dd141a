"""``drivers.pacing``: the retry loop every real driver shares, on a manual clock."""

from __future__ import annotations

import dataclasses

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import pacing

NOW = 1_790_000_000.0  # 2026-09-21T14:13:20Z


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0.5", 0.5),
        ("-3", 0.0),
        ("Mon, 21 Sep 2026 14:14:00 GMT", 40.0),
        ("Mon, 21 Sep 2026 12:00:00 GMT", 0.0),
        ("soon", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_or_an_http_date(value: str | None, expected: float | None) -> None:
    assert pacing.retry_after_s(value, now=NOW) == expected


class Refused(Exception):
    def __init__(self, asks_s: float | None = None) -> None:
        super().__init__("refused")
        self.asks_s = asks_s


@dataclasses.dataclass(frozen=True)
class Policy:
    attempts: int
    initial_wait_s: float = 0.5
    max_wait_s: float = 4.0
    max_retry_after_s: float = 60.0


def make(clock: clocks.ManualClock, *, attempts: int = 3) -> pacing.Pacing:
    return pacing.Pacing(
        Policy(attempts=attempts),
        clock=clock,
        retryable=lambda error: isinstance(error, Refused),
        server_asks_s=lambda error: error.asks_s if isinstance(error, Refused) else None,
    )


def test_a_server_that_asks_for_a_pause_is_waited_out_at_least_that_long() -> None:
    clock = clocks.ManualClock(start=NOW)
    failures = iter([Refused(asks_s=20.0)])

    def operation() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "done"

    assert make(clock).run(operation) == "done"
    assert 20.0 <= clock.now() - NOW <= 21.0  # the pause asked for, not the 0.5 s backoff


def test_a_pause_longer_than_allowed_ends_the_call_at_once() -> None:
    clock = clocks.ManualClock(start=NOW)
    calls = []

    def operation() -> str:
        calls.append(1)
        raise Refused(asks_s=3600.0)

    with pytest.raises(Refused):
        make(clock).run(operation)
    assert (len(calls), clock.now()) == (1, NOW)
    assert make(clock).asked_too_much(Refused(asks_s=3600.0)) == 3600.0
    assert make(clock).asked_too_much(Refused(asks_s=5.0)) is None


def test_what_is_not_retryable_is_tried_once_and_attempts_bound_the_rest() -> None:
    clock = clocks.ManualClock(start=NOW)
    calls = []

    def not_retryable() -> str:
        calls.append(1)
        raise ValueError("bad request")

    with pytest.raises(ValueError):
        make(clock).run(not_retryable)
    assert calls == [1]

    def always_refused() -> str:
        calls.append(1)
        raise Refused()

    with pytest.raises(Refused):
        make(clock, attempts=3).run(always_refused)
    assert len(calls) == 1 + 3
    with pytest.raises(errors.InvalidInput) as bad:
        make(clock, attempts=0)
    assert bad.value.field == "retry.attempts"
