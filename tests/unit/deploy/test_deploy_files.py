"""The shipped systemd units pass ``systemd-analyze verify`` and probe /healthz and /readyz; the
Containerfile has a health check on /healthz and stops with SIGTERM (a graceful shutdown)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
INSTALLED_CLOUDCTL = "/opt/cloudctl/.venv/bin/cloudctl"


def instantiate(tmp_path: Path) -> list[Path]:
    """Each template unit as the instance for port 8080, pointing at an executable that exists here."""
    made = []
    for template in sorted((DEPLOY / "systemd").glob("*@.*")):
        text = template.read_text(encoding="utf-8").replace(INSTALLED_CLOUDCTL, sys.executable)
        instance = tmp_path / template.name.replace("@.", "@8080.")
        instance.write_text(text, encoding="utf-8")
        made.append(instance)
    return made


def test_the_systemd_units_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is part of systemd; install it to check the units"
    units = instantiate(tmp_path)
    assert {unit.name for unit in units} == {
        "cloudctl-serve@8080.service",
        "cloudctl-serve-health@8080.service",
        "cloudctl-serve-health@8080.timer",
    }
    finished = subprocess.run(
        [analyze, "verify", "--man=no", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    problems = [line for line in finished.stderr.splitlines() if "cloudctl" in line]
    assert finished.returncode == 0 and not problems, finished.stderr


def test_the_serve_unit_waits_for_readyz_probes_healthz_and_stops_gracefully() -> None:
    serve = (DEPLOY / "systemd" / "cloudctl-serve@.service").read_text(encoding="utf-8")
    health = (DEPLOY / "systemd" / "cloudctl-serve-health@.service").read_text(encoding="utf-8")
    assert re.search(r"^ExecStartPost=.*/readyz", serve, re.MULTILINE)
    assert re.search(r"^ExecStart=.* serve .*--workers", serve, re.MULTILINE)
    assert re.search(r"^KillSignal=SIGTERM$", serve, re.MULTILINE)
    assert "/healthz" in health


def test_the_containerfile_checks_healthz_and_stops_with_sigterm() -> None:
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", text, re.MULTILINE)
    assert re.search(r"^CMD .*exec cloudctl serve .*--workers", text, re.MULTILINE)
