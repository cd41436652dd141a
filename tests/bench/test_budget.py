"""A benchmark's time budget says so when it interrupts a run, whatever the run made of the alarm."""

from __future__ import annotations

import signal

import pytest

from bench import common


def _wait_for_the_alarm() -> None:
    while True:
        signal.pause()  # returns only through the alarm's exception


def test_an_interruption_the_run_wrapped_is_still_over_the_budget() -> None:
    with pytest.raises(common.BudgetExceeded) as raised, common.time_budget(0.01):
        try:
            _wait_for_the_alarm()
        except common.BudgetExceeded as interrupted:
            raise RuntimeError("a statement failed") from interrupted  # as SQLAlchemy wraps it
    assert isinstance(raised.value.__cause__, RuntimeError)


def test_an_error_before_the_budget_is_spent_is_the_run_s_own() -> None:
    with pytest.raises(ValueError, match="the run's own"), common.time_budget(600):
        raise ValueError("the run's own")
