"""The manual clock: it moves only when told, or with real time inside ``in_real_time``."""

from __future__ import annotations

import pytest

from cloudctl import clock as clocks


class _RealTime:
    """``time.monotonic`` moved by the test, so no test waits for real seconds."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def real_time(monkeypatch: pytest.MonkeyPatch) -> _RealTime:
    fake = _RealTime()
    monkeypatch.setattr(clocks.time, "monotonic", fake)
    return fake


def test_a_manual_clock_ignores_real_time_outside_the_block(real_time: _RealTime) -> None:
    clock = clocks.ManualClock(start=100.0)
    real_time.now_s += 7
    assert clock.now() == 100.0


def test_in_real_time_the_clock_moves_with_real_time_and_keeps_what_it_is_told(
    real_time: _RealTime,
) -> None:
    clock = clocks.ManualClock(start=100.0)
    with clock.in_real_time():
        real_time.now_s += 6  # a real server booting
        clock.advance(2)  # a simulated one
        assert clock.now() == 108.0
    real_time.now_s += 50
    assert clock.now() == 108.0  # told only again from here
    clock.advance(1)
    assert clock.now() == 109.0


def test_in_real_time_is_not_reentrant(real_time: _RealTime) -> None:
    clock = clocks.ManualClock(start=100.0)
    with clock.in_real_time(), pytest.raises(RuntimeError), clock.in_real_time():
        pass
