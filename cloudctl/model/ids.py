"""Random parts of ids that only need to differ: request, workload and reservation ids, call ids.

Drawing them from the operating system (``secrets``, ``uuid.uuid4``, ``os.urandom``) costs a
system call each, which also releases the interpreter's lock: on the admission thread, a batch
of 24 drew about a hundred, each a chance for another thread to take the lock for up to a
switch interval. This module's own generator draws them instead, seeded from the operating
system at import and again in every forked child. Its own, not the ``random`` module's: code
that seeds the shared generator (a property-based test, a simulation) cannot make two ids equal.

Not for anything that guards access: token secrets and salts come from ``secrets``.
"""

from __future__ import annotations

import os
import random

_GENERATOR = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _GENERATOR.seed(os.urandom(32)))


def random_hex(digits: int) -> str:
    """``digits`` random lower-case hex digits."""
    return f"{_GENERATOR.getrandbits(digits * 4):0{digits}x}"
