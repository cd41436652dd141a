"""Smoke run of ``python -m bench portal``: it still works and reports every main page.

No timing is asserted (a seconds-long run on a shared machine); the 200 ms budget is read
from a full run, in ``bench/results.json``.
"""

from __future__ import annotations

from pathlib import Path

from tests.bench.test_smoke import run_smoke

PAGES = ("catalog", "order", "requests", "request", "workloads", "workload", "quota")
OPERATOR_PAGES = ("approvals", "centers", "runs", "audit")


def test_the_portal_benchmark_times_every_main_page_against_its_api_answer(tmp_path: Path) -> None:
    document = run_smoke("portal", tmp_path / "results.json")

    result = document["benchmarks"]["portal"]
    assert result["smoke"] is True
    named = {figure["name"].split(" vs ")[0] for figure in result["figures"]}
    assert named == {f"/ui {page}" for page in (*PAGES, *OPERATOR_PAGES)}
    for figure in result["figures"]:
        assert figure["subject"] > 0 and figure["baseline"] > 0
        assert figure["name"].split(" vs ")[1].startswith("/v1/")
    assert result["details"]["slowest_p95_ms"]["budget_ms"] == 200.0
