"""``base.ServerWaits``: the one server wait every compute backend mixes in."""

from __future__ import annotations

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base


class Booting(base.ServerWaits):
    """A server that is building for ``polls`` reads, then has ``then``."""

    def __init__(self, clock: clocks.ManualClock, *, polls: int, then: base.ServerStatus) -> None:
        self.clock, self.polls, self.then, self.reads = clock, polls, then, 0

    def get_server(self, server_id: str) -> base.Server:
        self.reads += 1
        status = base.ServerStatus.BUILD if self.reads <= self.polls else self.then
        return base.Server(
            id=server_id,
            name=server_id,
            project="psb",
            center="qd-a",
            vcpu=2,
            ram_gb=4,
            disk_gb=40,
            status=status,
            created_at=0.0,
        )

    def _waits_on(self) -> clocks.Clock:
        return self.clock


def test_a_compute_class_without_its_clock_cannot_be_made() -> None:
    class NoClock(base.ServerWaits):
        def get_server(self, server_id: str) -> base.Server:
            raise AssertionError("never asked")

    with pytest.raises(TypeError, match="_waits_on"):
        NoClock()  # type: ignore[abstract]


def test_the_wait_polls_on_the_injected_clock_until_the_status() -> None:
    clock = clocks.ManualClock(start=1000.0)
    compute = Booting(clock, polls=3, then=base.ServerStatus.ACTIVE)
    server = compute.wait_for_status(
        "srv-1", status=base.ServerStatus.ACTIVE, timeout_s=60, poll_interval_s=2
    )
    assert server.status is base.ServerStatus.ACTIVE
    assert (compute.reads, clock.now()) == (4, 1006.0)


def test_the_wait_ends_at_its_deadline_and_on_error_in_one_line() -> None:
    clock = clocks.ManualClock(start=0.0)
    slow = Booting(clock, polls=100, then=base.ServerStatus.ACTIVE)
    with pytest.raises(errors.OperationFailed, match=r"server srv-2 still build after 5 s"):
        slow.wait_for_status("srv-2", status=base.ServerStatus.ACTIVE, timeout_s=5, poll_interval_s=2)
    assert clock.now() == 5.0
    broken = Booting(clocks.ManualClock(), polls=1, then=base.ServerStatus.ERROR)
    with pytest.raises(errors.OperationFailed, match="went to error"):
        broken.wait_for_status("srv-3", status=base.ServerStatus.ACTIVE, timeout_s=60)
