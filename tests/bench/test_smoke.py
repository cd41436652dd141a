"""Smoke runs of the benchmarks: each entry point still works at its smallest size.

Each test runs ``python -m bench NAME --smoke`` in a subprocess (the way people run it) with
``--output`` in a temporary directory, then checks the results file is well formed: the
benchmark is there, marked as a smoke run, with figures that carry a subject, a baseline and
their ratio. No timing is asserted: these are seconds-long runs on a shared machine. The
``s3-sync`` smoke run starts its own moto servers and compares against the built-in copy
loop, so it needs neither rclone nor a network; ``admission`` and ``quota`` also run on the
PostgreSQL server ``scripts/ensure-postgres.sh`` makes answer, and fail loudly without it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import processes

ROOT = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT_S = 300
BENCHMARKS = (
    "admission",
    "quota",
    "s3-sync",
    "scale",
    "recovery",
    "provisioning",
    "provisioning-openstack",
    "cli",
)


def run_smoke(name: str, output: Path) -> dict[str, Any]:
    finished = processes.run_bounded(
        [sys.executable, "-m", "bench", name, "--smoke", "--output", str(output)],
        cwd=ROOT,
        timeout_s=SMOKE_TIMEOUT_S,
    )
    assert finished.returncode == 0, (
        f"python -m bench {name} --smoke failed:\n{finished.stdout}\n{finished.stderr}"
    )
    document = json.loads(output.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.mark.parametrize("name", BENCHMARKS)
def test_smoke_run_writes_well_formed_results(name: str, tmp_path: Path) -> None:
    document = run_smoke(name, tmp_path / "results.json")

    assert set(document) >= {"generated_at", "command", "machine", "benchmarks"}
    assert document["machine"]["python"]
    result = document["benchmarks"][name]
    assert result["name"] == name
    assert result["smoke"] is True
    assert result["baseline"]
    assert result["figures"], result["notes"]
    for figure in result["figures"]:
        assert set(figure) == {"name", "unit", "subject", "baseline", "ratio", "ratio_meaning"}
        if figure["subject"] is not None and figure["baseline"]:
            assert figure["ratio"] == pytest.approx(figure["subject"] / figure["baseline"], rel=1e-2)


def test_s3_sync_smoke_run_says_it_did_not_use_rclone(tmp_path: Path) -> None:
    document = run_smoke("s3-sync", tmp_path / "results.json")

    result = document["benchmarks"]["s3-sync"]
    assert "rclone not used" in result["baseline"]
    assert any("not rclone" in note for note in result["notes"])
