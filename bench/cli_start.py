"""CLI start: ``cloudctl --help`` and ``cloudctl status`` wall time against ``python -c pass``.

Each run is a fresh subprocess of the venv's interpreter (``cloudctl`` is its console script);
``status`` reads a home initialised beforehand from the shipped topology (SQLite, simulator).
Runs are interleaved (``python -c pass``, ``--help``, ``status``; repeated ``size`` times) and
summarised by medians; the ratio says how many interpreter starts a command costs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import common

NAME = "cli"
DEFAULT_SIZE = 10
SMOKE_SIZE = 2
COMMAND_TIMEOUT_S = 120


def cloudctl_command() -> list[str]:
    script = Path(sys.executable).with_name("cloudctl")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cloudctl"]


def wall_s(argv: list[str], *, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    finished = subprocess.run(
        argv, env=environment, cwd=common.ROOT, capture_output=True, timeout=COMMAND_TIMEOUT_S, check=False
    )
    elapsed_s = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited {finished.returncode}: {finished.stderr.decode()[-300:]}"
        )
    return elapsed_s


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    runs = size or rounds or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    result = common.BenchResult(
        name=NAME, size=runs, smoke=smoke, baseline=f"{Path(sys.executable).name} -c pass (same interpreter)"
    )
    cloudctl = cloudctl_command()
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-cli-") as directory:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDCTL_")} | {
            "CLOUDCTL_HOME": str(Path(directory) / "home")
        }
        wall_s([*cloudctl, "init"], environment=environment)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "cloudctl --help": [*cloudctl, "--help"],
            "cloudctl status": [*cloudctl, "status"],
        }
        timings: dict[str, list[float]] = {label: [] for label in commands}
        for _run in range(runs):
            for label, argv in commands.items():
                timings[label].append(wall_s(argv, environment=environment))
    result.details["runs_s"] = {label: [round(v, 4) for v in values] for label, values in timings.items()}
    result.notes.append(f"{runs} interleaved runs each, medians; `status` on an initialised SQLite home")
    baseline = common.median(timings["python -c pass"])
    for label in ("cloudctl --help", "cloudctl status"):
        result.add(
            label,
            unit="s",
            subject=common.median(timings[label]),
            baseline=baseline,
            meaning="interpreter starts' worth",
        )
    return result
