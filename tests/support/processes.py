"""Running a command the tests wait for, bounded, without leaving its children behind.

``subprocess.run(timeout=...)`` kills only the process it started: a benchmark that was running
``scripts/openstack/stack.py start`` for its own clouds would leave that script restarting the
stack under the tests that come after. ``run_bounded`` starts the command in a session of its
own and, when the time is up, kills the whole session before it reports the timeout. (Services
the stack script launches run in sessions of their own and are not touched.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class Timeout(Exception):
    """The command did not finish in time; ``output`` is what it printed until it was killed."""

    def __init__(self, argv: Sequence[str], timeout_s: float, output: str) -> None:
        super().__init__(f"{' '.join(argv)} did not finish within {timeout_s:g} s and was killed")
        self.output = output


def run_bounded(
    argv: Sequence[str], *, timeout_s: float, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` to its end (stdout and stderr captured as text), or kill its session and
    raise ``Timeout`` after ``timeout_s``."""
    with subprocess.Popen(
        list(argv),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
            raise Timeout(argv, timeout_s, f"{stdout}{stderr}") from None
    return subprocess.CompletedProcess(list(argv), process.returncode, stdout, stderr)
