"""CLI start: ``cloudctl --help`` and ``cloudctl status`` wall time against ``python -c pass``.

Each run is a fresh subprocess of the venv's interpreter (``cloudctl`` is its console script).
``failover list`` runs remote (a cheap answer: the client's own start), and ``status`` two
ways, on a home initialised beforehand from the shipped topology (SQLite, simulator):
remote, as an operator does (``CLOUDCTL_API``/``CLOUDCTL_TOKEN`` of a sysadmin token, against
a ``cloudctl serve`` started for the bench on a free loopback port; the figure includes the
server's answer), and break-glass (``--as sysadmin --reason``: the store and the API in the
command's process). Runs are interleaved (``python -c pass``, ``--help``, the two
``status``; repeated ``size`` times) and summarised by medians; the ratio says how many
interpreter starts a command costs.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import common

NAME = "cli"
DEFAULT_SIZE = 10
SMOKE_SIZE = 2
COMMAND_TIMEOUT_S = 120
SERVE_READY_S = 120
REASON = "bench: cli start"


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


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(url: str, server: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + SERVE_READY_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"cloudctl serve exited {server.returncode} before answering")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)  # waiting for another process's socket: nothing to wait on
    raise RuntimeError(f"cloudctl serve did not answer {url}/healthz within {SERVE_READY_S} s")


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    runs = size or rounds or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    result = common.BenchResult(
        name=NAME, size=runs, smoke=smoke, baseline=f"{Path(sys.executable).name} -c pass (same interpreter)"
    )
    cloudctl = cloudctl_command()
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-cli-") as directory:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("CLOUDCTL_")} | {
            "CLOUDCTL_HOME": str(Path(directory) / "home"),
            "XDG_CONFIG_HOME": str(Path(directory) / "config"),
        }
        wall_s([*cloudctl, "init"], environment=environment)
        issued = subprocess.run(
            [
                *cloudctl,
                "--as",
                "secadmin",
                "--reason",
                REASON,
                "token",
                "create",
                "--role",
                "sysadmin",
                "-o",
                "json",
            ],
            env=environment,
            cwd=common.ROOT,
            capture_output=True,
            timeout=COMMAND_TIMEOUT_S,
            check=True,
        )
        url = f"http://127.0.0.1:{_free_port()}"
        server = subprocess.Popen(
            [*cloudctl, "serve", "--port", url.rsplit(":", 1)[1]],
            env=environment,
            cwd=common.ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(url, server)
            remote = environment | {
                "CLOUDCTL_API": url,
                "CLOUDCTL_TOKEN": json.loads(issued.stdout)["secret"],
            }
            commands = {
                "python -c pass": ([sys.executable, "-c", "pass"], environment),
                "cloudctl --help": ([*cloudctl, "--help"], environment),
                "cloudctl failover list (remote)": ([*cloudctl, "failover", "list"], remote),
                "cloudctl status (remote)": ([*cloudctl, "status"], remote),
                "cloudctl status (break-glass)": (
                    [*cloudctl, "--as", "sysadmin", "--reason", REASON, "status"],
                    environment,
                ),
            }
            timings: dict[str, list[float]] = {label: [] for label in commands}
            for _run in range(runs):
                for label, (argv, env) in commands.items():
                    timings[label].append(wall_s(argv, environment=env))
        finally:
            server.terminate()
            server.wait(60)
    result.details["runs_s"] = {label: [round(v, 4) for v in values] for label, values in timings.items()}
    result.notes.append(
        f"{runs} interleaved runs each, medians; initialised SQLite home; remote `status` against a "
        "`cloudctl serve` on loopback (its answer included), break-glass `status` in process"
    )
    baseline = common.median(timings["python -c pass"])
    for label in list(commands)[1:]:
        result.add(
            label,
            unit="s",
            subject=common.median(timings[label]),
            baseline=baseline,
            meaning="interpreter starts' worth",
        )
    return result
