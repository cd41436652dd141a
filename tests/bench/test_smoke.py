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
from collections.abc import Callable
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


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], dict[str, Any]]:
    """``smoke(name)``: the results document of one smoke run of ``name``, run once a module."""
    documents: dict[str, dict[str, Any]] = {}

    def document_of(name: str) -> dict[str, Any]:
        if name not in documents:
            documents[name] = run_smoke(name, tmp_path_factory.mktemp(name) / "results.json")
        return documents[name]

    return document_of


@pytest.mark.parametrize("name", BENCHMARKS)
def test_smoke_run_writes_well_formed_results(name: str, smoke: Callable[[str], dict[str, Any]]) -> None:
    document = smoke(name)

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


def test_s3_sync_smoke_run_says_it_did_not_use_rclone(smoke: Callable[[str], dict[str, Any]]) -> None:
    document = smoke("s3-sync")

    result = document["benchmarks"]["s3-sync"]
    assert "rclone not used" in result["baseline"]
    assert any("not rclone" in note for note in result["notes"])


def test_admission_smoke_run_says_where_an_admission_goes_on_each_store(
    smoke: Callable[[str], dict[str, Any]],
) -> None:
    result = smoke("admission")["benchmarks"]["admission"]

    for backend in ("sqlite", "postgres"):
        alone = result["details"][backend]["admission_thread"]
        assert alone["batch_size"] == 24
        for label in ("batched", "alone"):
            assert all(ms > 0 for ms in alone[label]["cpu_ms_per_admission"]), alone
            assert all(ms > 0 for ms in alone[label]["wall_ms_per_admission"]), alone
        profile = alone["profile_batched"]
        assert profile["finished"]
        assert any(
            entry["function"].startswith("cloudctl/services/requests.py")
            for entry in profile["top_cumulative_in_cloudctl"]
        ), profile
        assert any(note.startswith(f"{backend}: the admission thread alone") for note in result["notes"])
