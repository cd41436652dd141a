"""Checks a plan can name that need nothing but the network or a process: an HTTP probe, a command.

Invariants: a check answers with one short line (``HTTP 200``, ``exit 1: <first line of
its error output>``), never with a command's raw output; a command is judged by its exit
code only.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

from cloudctl.model import drills
from cloudctl.recovery.drills import platform

DETAIL_CHARS = 120


def short(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= DETAIL_CHARS else line[: DETAIL_CHARS - 1] + "…"


@dataclasses.dataclass(frozen=True)
class HttpProbe:
    name: str
    spec: drills.HttpCheck

    def run(self) -> platform.CheckOutcome:
        import httpx

        try:
            response = httpx.get(self.spec.url, timeout=self.spec.timeout_s)
        except httpx.HTTPError as error:
            return platform.CheckOutcome(False, short(f"{type(error).__name__}: {error}"))
        status = response.status_code
        return platform.CheckOutcome(
            status == self.spec.expect_status, f"HTTP {status} (expected {self.spec.expect_status})"
        )


@dataclasses.dataclass(frozen=True)
class CommandProbe:
    name: str
    spec: drills.CommandCheck
    environment: dict[str, str]
    """Added to this process's environment (e.g. the same CLOUDCTL_HOME as the drill)."""

    def run(self) -> platform.CheckOutcome:
        argv = list(self.spec.argv)
        if argv[0] == "cloudctl":
            argv = [sys.executable, "-m", "cloudctl", *argv[1:]]
        try:
            finished = subprocess.run(
                argv,
                env={**os.environ, **self.environment},
                capture_output=True,
                text=True,
                timeout=self.spec.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return platform.CheckOutcome(False, f"timed out after {self.spec.timeout_s:g} s")
        except OSError as error:
            return platform.CheckOutcome(False, short(str(error)))
        code = finished.returncode
        passed = code == self.spec.expect_exit
        detail = f"exit {code}" if passed else f"exit {code} (expected {self.spec.expect_exit})"
        if not passed and finished.stderr.strip():
            detail += f": {short(finished.stderr)}"
        return platform.CheckOutcome(passed, detail)
