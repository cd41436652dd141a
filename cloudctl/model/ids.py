"""Random parts of ids: request, workload and reservation ids, call ids.

Drawing each from the operating system (``secrets``, ``uuid.uuid4``) costs a system call,
which also releases the interpreter's lock: on the admission thread, a batch of 24 drew about
a hundred, each a chance for another thread to take the lock for up to a switch interval.
This module draws the operating system's random bytes a page at a time and hands them out, so
ids stay as unpredictable as ``secrets`` makes them (one department cannot guess another's
ids from its own) at one system call per few hundred ids. A forked child drops the bytes it
inherited, so two processes never hand out the same ones.

Not for anything that guards access: token secrets and salts come from ``secrets``.
"""

from __future__ import annotations

import os
import threading

POOL_BYTES = 4096


class _Pool:
    """The operating system's random bytes, fetched a page at a time and handed out once."""

    def __init__(self) -> None:
        self.forget()

    def forget(self) -> None:
        """Drop the bytes held (in a forked child: the parent hands them out too)."""
        self.lock = threading.Lock()  # another thread may have held the old one at the fork
        self.bytes = b""
        self.used = 0

    def take(self, size: int) -> bytes:
        with self.lock:
            if self.used + size > len(self.bytes):
                self.bytes, self.used = os.urandom(max(POOL_BYTES, size)), 0
            start = self.used
            self.used += size
            return self.bytes[start : self.used]


_POOL = _Pool()
os.register_at_fork(after_in_child=_POOL.forget)


def random_hex(digits: int) -> str:
    """``digits`` random lower-case hex digits, from the operating system's random bytes."""
    return _POOL.take((digits + 1) // 2).hex()[:digits]
