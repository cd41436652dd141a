"""Time, injectable: every component that waits or timestamps takes a ``Clock``.

``SystemClock`` is real time; ``ManualClock`` only moves when told to, so tests
and deterministic drills never sleep, except inside its ``in_real_time`` block, where it
also moves as real time does (what a real backend takes then counts). Standard library
only: every layer may use it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class ManualClock:
    """A clock that advances only when ``advance`` or ``sleep`` is called, or with real time
    inside ``in_real_time``; thread-safe."""

    def __init__(self, start: float = 1_767_225_600.0) -> None:  # 2026-01-01T00:00:00Z
        self._now = start
        self._real_since: float | None = None
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            if self._real_since is None:
                return self._now
            return self._now + time.monotonic() - self._real_since

    @contextlib.contextmanager
    def in_real_time(self) -> Iterator[None]:
        """Inside the block the clock also moves as real time does: work that takes real time
        (a real cloud booting a server) is not over in no time. Not reentrant."""
        with self._lock:
            if self._real_since is not None:
                raise RuntimeError("already in real time")
            self._real_since = time.monotonic()
        try:
            yield
        finally:
            with self._lock:
                assert self._real_since is not None
                self._now += time.monotonic() - self._real_since
                self._real_since = None

    def sleep(self, seconds: float) -> None:
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        with self._lock:
            self._now += seconds


def isoformat(timestamp: float) -> str:
    """An epoch timestamp as ISO 8601 in UTC, to the second."""
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
