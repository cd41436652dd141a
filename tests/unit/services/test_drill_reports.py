"""Drill reports: every format carries the measured figures; JUnit fails once per missed objective."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cloudctl.model import drill_report
from cloudctl.services import drill_reports


def objectives(
    *, rpo_target: float, rto_target: float, rpo: float | None, rto: float | None, acked: int, lost: int
) -> dict[str, Any]:
    met = rpo is not None and rto is not None and rpo <= rpo_target and rto <= rto_target
    return {
        "rpo_target_s": rpo_target,
        "rto_target_s": rto_target,
        "rpo_measured_s": rpo,
        "rto_measured_s": rto,
        "writes_acknowledged": acked,
        "writes_lost": lost,
        "gbt20988_level_achieved": 6 if rpo == 0 else 5,
        "passed": met,
    }


def failed_report() -> drill_report.DrillReport:
    """Platinum holds; silver misses its RPO (tier and one workload) and one workload never served."""
    return drill_report.DrillReport(
        plan="lose-both-local",
        description="Lose qd-a and qd-b together <at once>.",
        scenario="lose-both-local-centers",
        started_at="2026-01-01T18:00:00Z",
        finished_at="2026-01-01T18:42:30Z",
        simulated_time=True,
        passed=False,
        run_id="drill-0001",
        tiers=[
            drill_report.TierResult(
                tier="platinum",
                workloads=1,
                gbt20988_level_target=6,
                **objectives(rpo_target=60, rto_target=900, rpo=0, rto=87.5, acked=600, lost=0),
            ),
            drill_report.TierResult(
                tier="silver",
                workloads=2,
                gbt20988_level_target=5,
                **objectives(rpo_target=900, rto_target=14400, rpo=1234.5, rto=3600, acked=900, lost=37),
            ),
        ],
        workloads=[
            drill_report.WorkloadResult(
                workload_id="w-plat-1",
                department="psb",
                tier="platinum",
                recovered_in="dz-dr",
                **objectives(rpo_target=60, rto_target=900, rpo=0, rto=87.5, acked=600, lost=0),
            ),
            drill_report.WorkloadResult(
                workload_id="w-silver-1",
                department="hrss",
                tier="silver",
                recovered_in="dz-dr",
                **objectives(rpo_target=900, rto_target=14400, rpo=1234.5, rto=3600, acked=450, lost=37),
            ),
            drill_report.WorkloadResult(
                workload_id="w-silver-2",
                department="shinan-health",
                tier="silver",
                recovered_in=None,
                **objectives(rpo_target=900, rto_target=14400, rpo=12, rto=None, acked=450, lost=0),
            ),
        ],
        checks=[
            drill_report.CheckResult(name="status answers", phase="pre", passed=True),
            drill_report.CheckResult(
                name="audit verify", phase="post", passed=False, detail="exit 1, expected 0"
            ),
        ],
        timeline=[
            drill_report.TimelineStep(at="2026-01-01T18:00:00Z", offset_s=0, step="canary writes started"),
            drill_report.TimelineStep(
                at="2026-01-01T18:15:00Z", offset_s=900, step="fault injected", detail="qd-a, qd-b down"
            ),
            drill_report.TimelineStep(at="2026-01-01T18:16:27Z", offset_s=987.5, step="platinum serving"),
            drill_report.TimelineStep(at="2026-01-01T18:42:30Z", offset_s=2550, step="drill finished"),
        ],
    )


def passed_report() -> drill_report.DrillReport:
    report = failed_report()
    tiers = [report.tiers[0]]
    workloads = [report.workloads[0]]
    return report.model_copy(update={"passed": True, "tiers": tiers, "workloads": workloads, "checks": []})


@pytest.fixture
def written(tmp_path: Path) -> drill_reports.ReportFiles:
    return drill_reports.write_report(failed_report(), directory=tmp_path / "reports" / "run-1")


def junit_cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_write_report_leaves_every_format_in_the_directory(written: drill_reports.ReportFiles) -> None:
    names = sorted(path.name for path in written.directory.iterdir())
    assert names == ["junit.xml", "report.html", "report.json", "report.md"]


def test_report_json_round_trips(written: drill_reports.ReportFiles) -> None:
    text = written.json.read_text(encoding="utf-8")
    assert drill_report.DrillReport.model_validate_json(text) == failed_report()
    assert text.startswith('{\n  "plan": "lose-both-local"')


def test_misses_lists_each_missed_objective_tiers_first() -> None:
    missed = [(miss.subject, miss.objective) for miss in drill_reports.misses(failed_report())]
    assert missed == [("tier silver", "RPO"), ("workload w-silver-1", "RPO"), ("workload w-silver-2", "RTO")]


def test_junit_fails_one_testcase_per_missed_objective_and_per_failed_check(
    written: drill_reports.ReportFiles,
) -> None:
    root = ET.parse(written.junit).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.attrib["name"] == "drill.lose-both-local"
    cases = junit_cases(root)
    failing = sorted(name for name, case in cases.items() if case.find("failure") is not None)
    assert failing == ["post: audit verify", "silver RPO", "w-silver-1 RPO", "w-silver-2 RTO"]
    # two objectives for each of 2 tiers and 3 workloads, plus 2 checks
    assert (suite.attrib["tests"], suite.attrib["failures"]) == ("12", "4")
    assert (root.attrib["tests"], root.attrib["failures"]) == ("12", "4")
    assert suite.attrib["time"] == "2550"


def test_a_junit_failure_carries_the_measured_value_and_the_target(
    written: drill_reports.ReportFiles,
) -> None:
    cases = junit_cases(ET.parse(written.junit).getroot())
    failure = cases["silver RPO"].find("failure")
    assert failure is not None
    assert failure.attrib["message"] == "RPO measured 1234.5 s, target 900 s"
    assert "lost 37" in (failure.text or "")
    never_served = cases["w-silver-2 RTO"].find("failure")
    assert never_served is not None
    assert "not measured" in never_served.attrib["message"]


def test_junit_of_a_passing_drill_has_no_failure(tmp_path: Path) -> None:
    path = drill_reports.write_junit(passed_report(), tmp_path / "junit" / "drill.xml")
    root = ET.parse(path).getroot()
    assert root.attrib["failures"] == "0"
    assert all(case.find("failure") is None for case in root.iter("testcase"))


def test_a_failed_drill_with_every_objective_met_still_fails_in_junit(tmp_path: Path) -> None:
    report = passed_report().model_copy(update={"passed": False})
    root = ET.parse(drill_reports.write_junit(report, tmp_path / "junit.xml")).getroot()
    failing = [case.attrib["name"] for case in root.iter("testcase") if case.find("failure") is not None]
    assert failing == ["verdict"]


def test_markdown_shows_targets_measured_levels_and_the_timeline(written: drill_reports.ReportFiles) -> None:
    text = written.markdown.read_text(encoding="utf-8")
    assert text.startswith("# Drill `lose-both-local`: FAILED")
    silver_row = next(line for line in text.splitlines() if line.startswith("| silver |"))
    for figure in ("900", "1234.5", "14400", "3600", "37", "| 5 |"):
        assert figure in silver_row
    assert "| w-silver-2 | shinan-health | silver | – |" in text
    assert "tier silver RPO: measured 1234.5 s, target 900 s" in text
    assert "| 987.5 | 2026-01-01T18:16:27Z | platinum serving |" in text
    assert "audit verify" in text


def test_html_is_self_contained_and_shows_the_same_figures(written: drill_reports.ReportFiles) -> None:
    page = written.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for external in ("<script", "<link", "src=", "href=", "@import", "url(", "http://", "https://"):
        assert external not in page
    for figure in ("1234.5", "14400", "987.5", "w-silver-1", "drill finished"):
        assert figure in page
    assert "&lt;at once&gt;" in page  # text is escaped
    assert page.count("<circle") == len(failed_report().timeline)


def test_console_rendering_shows_the_verdict_and_the_figures() -> None:
    console = Console(file=io.StringIO(), width=240, record=True)
    for renderable in drill_reports.render_console(failed_report()):
        console.print(renderable)
    text = console.export_text()
    assert "FAILED" in text
    assert "1234.5" in text
    assert "missed: workload w-silver-2 RTO: not measured, target 14400 s" in text


def test_console_rendering_limits_the_workloads_and_shows_failed_ones_first() -> None:
    console = Console(file=io.StringIO(), width=240, record=True)
    for renderable in drill_reports.render_console(failed_report(), max_workloads=1):
        console.print(renderable)
    text = console.export_text()
    assert "1 of 3" in text
    assert "w-plat-1" not in text.split("per workload")[1]
