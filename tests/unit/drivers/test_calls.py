"""``drivers.calls.Caller``: the one caller every real driver shares, with rules made up here."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import calls

NOW = 1_790_000_000.0


class BackendError(Exception):
    """What a made-up client raises; ``asks_s`` is its ``Retry-After``."""

    def __init__(self, status: int, asks_s: float | None = None) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.asks_s = asks_s


@dataclasses.dataclass(frozen=True)
class Policy:
    attempts: int = 3
    initial_wait_s: float = 0.5
    max_wait_s: float = 4.0
    max_retry_after_s: float = 60.0


def translate(error: BaseException, failed: calls.Failed) -> errors.CloudctlError:
    assert isinstance(error, BackendError)
    if error.status == 404:
        return failed.not_found()
    if error.status >= 500:
        return errors.BackendUnavailable(f"backend {failed.gave_up('kept failing')}", field="endpoint")
    return errors.InvalidInput(f"{failed.subject}: {error} (project {failed.project})", field=failed.field)


def make_caller(clock: clocks.Clock) -> calls.Caller[Policy]:
    rules = calls.Rules(
        raises=(BackendError,),
        retryable=lambda error: isinstance(error, BackendError) and error.status >= 500,
        retry_after_s=lambda error, *, now: error.asks_s if isinstance(error, BackendError) else None,
        translate=translate,
    )
    return calls.Caller(rules, center="qd-a", clock=clock, retry=Policy())


def raising(*failures: BaseException) -> tuple[list[int], Callable[[], str]]:
    count = [0]

    def operation() -> str:
        count[0] += 1
        if count[0] <= len(failures):
            raise failures[count[0] - 1]
        return "done"

    return count, operation


def test_a_transient_failure_is_retried_on_the_clock_and_the_call_succeeds() -> None:
    clock = clocks.ManualClock(start=NOW)
    count, operation = raising(BackendError(503), BackendError(503))
    assert make_caller(clock).call(operation, what="bucket b") == "done"
    assert count[0] == 3
    assert clock.now() > NOW


def test_a_backend_error_is_translated_by_the_rules_and_chained() -> None:
    count, operation = raising(BackendError(404))
    with pytest.raises(errors.NotFound) as raised:
        make_caller(clocks.ManualClock(start=NOW)).call(operation, what="bucket b")
    assert (raised.value.field, raised.value.reason) == ("bucket", "no bucket b in center qd-a")
    assert isinstance(raised.value.__cause__, BackendError)
    assert count[0] == 1


def test_the_rules_see_the_subject_and_project_of_the_call() -> None:
    _, operation = raising(BackendError(400))
    with pytest.raises(errors.InvalidInput) as raised:
        make_caller(clocks.ManualClock(start=NOW)).call(operation, what="volume v", project="hrss")
    assert raised.value.field == "volume"
    assert raised.value.reason == "volume v in center qd-a: HTTP 400 (project hrss)"


def test_giving_up_says_whether_the_attempts_ran_out_or_the_pause_asked_was_too_long() -> None:
    clock = clocks.ManualClock(start=NOW)
    _, operation = raising(*[BackendError(503)] * 3)
    with pytest.raises(errors.BackendUnavailable) as raised:
        make_caller(clock).call(operation, what="bucket b")
    assert raised.value.reason == "backend kept failing after 3 attempts"

    count, operation = raising(BackendError(503, asks_s=3600.5))
    with pytest.raises(errors.BackendUnavailable) as raised:
        make_caller(clock).call(operation, what="bucket b")
    assert raised.value.reason == "backend asked to retry after 3601 s, more than allowed"
    assert count[0] == 1


def test_what_is_not_the_backends_passes_through_untouched() -> None:
    own = errors.Conflict("the caller's own refusal", field="name")
    count, operation = raising(own)
    with pytest.raises(errors.Conflict) as raised:
        make_caller(clocks.ManualClock(start=NOW)).call(operation, what="bucket b")
    assert raised.value is own
    assert count[0] == 1
