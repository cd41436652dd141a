"""Drill reports: every format carries the measured figures and the objectives the one rule missed."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from cloudctl.cli import drill_views
from cloudctl.model import drill_formats, drill_report


def objectives(
    *,
    rpo_target: float,
    rto_target: float,
    rpo: float | None,
    rto: float | None,
    acked: int,
    lost: int,
    level_target: int = 5,
    stranded: int = 0,
) -> dict[str, Any]:
    """Figures judged by the drill's one rule, as the engine does."""
    figures = drill_report.Figures(
        rpo_target_s=rpo_target,
        rto_target_s=rto_target,
        rpo_measured_s=rpo,
        rto_measured_s=rto,
        writes_acknowledged=acked,
        writes_lost=lost,
        gbt20988_level_target=level_target,
        stranded=stranded,
    )
    level = None if rpo is None or rto is None else (6 if rpo == 0 else 5)
    missed = drill_report.judge(figures, level_achieved=level, all_writes_lost=False)
    return {**figures.model_dump(), "gbt20988_level_achieved": level, "missed": missed, "passed": not missed}


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
                **objectives(
                    rpo_target=60, rto_target=900, rpo=0, rto=87.5, acked=600, lost=0, level_target=6
                ),
            ),
            drill_report.TierResult(
                tier="silver",
                workloads=2,
                **objectives(
                    rpo_target=900, rto_target=14400, rpo=1234.5, rto=3600, acked=900, lost=37, stranded=1
                ),
            ),
        ],
        workloads=[
            drill_report.WorkloadResult(
                workload_id="w-plat-1",
                department="psb",
                tier="platinum",
                recovered_in="dz-dr",
                **objectives(
                    rpo_target=60, rto_target=900, rpo=0, rto=87.5, acked=600, lost=0, level_target=6
                ),
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
                stranded_reason="no healthy center holds a copy",
                **objectives(
                    rpo_target=900, rto_target=14400, rpo=None, rto=None, acked=450, lost=0, stranded=1
                ),
            ),
        ],
        checks=[
            drill_report.CheckResult(name="status answers", phase="pre", passed=True),
            drill_report.CheckResult(
                name="audit verify", phase="post", passed=False, detail="record 7: hash mismatch"
            ),
        ],
        timeline=[
            drill_report.TimelineStep(
                at="2026-01-01T18:00:00Z", offset_s=0, step="canaries ready", phase="prepare"
            ),
            drill_report.TimelineStep(
                at="2026-01-01T18:15:00Z",
                offset_s=900,
                step="fault injected",
                detail="qd-a, qd-b down",
                phase="faults",
            ),
            drill_report.TimelineStep(
                at="2026-01-01T18:16:27Z", offset_s=987.5, step="recovery finished", phase="faults"
            ),
            drill_report.TimelineStep(
                at="2026-01-01T18:42:30Z", offset_s=2550, step="cleaned up", phase="clean-up"
            ),
        ],
    )


def passed_report() -> drill_report.DrillReport:
    report = failed_report()
    tiers = [report.tiers[0]]
    workloads = [report.workloads[0]]
    return report.model_copy(update={"passed": True, "tiers": tiers, "workloads": workloads, "checks": []})


@pytest.fixture
def written(tmp_path: Path) -> drill_views.ReportFiles:
    return drill_views.write_report(failed_report(), directory=tmp_path / "reports" / "run-1")


def junit_cases(root: ET.Element) -> dict[str, ET.Element]:
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_write_report_leaves_every_format_in_the_directory(written: drill_views.ReportFiles) -> None:
    names = sorted(path.name for path in written.directory.iterdir())
    assert names == ["junit.xml", "report.html", "report.json", "report.md"]


def test_report_json_round_trips(written: drill_views.ReportFiles) -> None:
    text = written.json.read_text(encoding="utf-8")
    assert drill_report.DrillReport.model_validate_json(text) == failed_report()
    assert text.startswith('{\n  "plan": "lose-both-local"')


def test_missed_lists_each_missed_objective_tiers_first() -> None:
    missed = [(item.subject, item.miss.objective) for item in drill_formats.missed(failed_report())]
    assert missed == [
        ("tier silver", "recovered"),
        ("tier silver", "RPO"),
        ("workload w-silver-1", "RPO"),
        ("workload w-silver-2", "recovered"),
        ("workload w-silver-2", "RPO"),
        ("workload w-silver-2", "RTO"),
        ("workload w-silver-2", "level"),
    ]


def test_junit_fails_one_testcase_per_missed_objective_and_per_failed_check(
    written: drill_views.ReportFiles,
) -> None:
    root = ET.parse(written.junit).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    assert suite.attrib["name"] == "drill.lose-both-local"
    cases = junit_cases(root)
    failing = sorted(name for name, case in cases.items() if case.find("failure") is not None)
    assert failing == [
        "post: audit verify",
        "silver RPO",
        "silver recovered",
        "w-silver-1 RPO",
        "w-silver-2 RPO",
        "w-silver-2 RTO",
        "w-silver-2 level",
        "w-silver-2 recovered",
    ]
    # RPO, RTO and level for each of 2 tiers and 3 workloads, 2 "recovered", plus 2 checks
    assert (suite.attrib["tests"], suite.attrib["failures"]) == ("19", "8")
    assert (root.attrib["tests"], root.attrib["failures"]) == ("19", "8")
    assert suite.attrib["time"] == "2550"


def test_a_junit_failure_carries_the_measured_value_and_the_target(
    written: drill_views.ReportFiles,
) -> None:
    cases = junit_cases(ET.parse(written.junit).getroot())
    failure = cases["silver RPO"].find("failure")
    assert failure is not None
    assert failure.attrib["message"] == "RPO measured 1234.5 s > target 900 s"
    assert "lost 37" in (failure.text or "")
    never_served = cases["w-silver-2 RTO"].find("failure")
    assert never_served is not None
    assert "not measured" in never_served.attrib["message"]


def test_junit_of_a_passing_drill_has_no_failure(tmp_path: Path) -> None:
    path = drill_views.write_junit(passed_report(), tmp_path / "junit" / "drill.xml")
    root = ET.parse(path).getroot()
    assert root.attrib["failures"] == "0"
    assert all(case.find("failure") is None for case in root.iter("testcase"))


def test_a_failed_drill_with_every_objective_met_still_fails_in_junit(tmp_path: Path) -> None:
    report = passed_report().model_copy(update={"passed": False})
    root = ET.parse(drill_views.write_junit(report, tmp_path / "junit.xml")).getroot()
    failing = [case.attrib["name"] for case in root.iter("testcase") if case.find("failure") is not None]
    assert failing == ["verdict"]


def test_markdown_shows_targets_measured_levels_and_the_timeline(written: drill_views.ReportFiles) -> None:
    text = written.markdown.read_text(encoding="utf-8")
    assert text.startswith("# Drill `lose-both-local`: FAILED")
    silver_row = next(line for line in text.splitlines() if line.startswith("| silver |"))
    for figure in ("900", "1234.5", "14400", "3600", "37", "| 5 |"):
        assert figure in silver_row
    assert "| w-silver-2 | shinan-health | silver | – | stranded: no healthy center holds a copy |" in text
    assert "tier silver RPO: measured 1234.5 s > target 900 s" in text
    assert "| 987.5 | faults | recovery finished |" in text
    assert "post-check audit verify: record 7: hash mismatch" in text


def test_html_is_self_contained_and_shows_the_same_figures(written: drill_views.ReportFiles) -> None:
    page = written.html.read_text(encoding="utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for external in ("<script", "<link", "src=", "href=", "@import", "url(", "http://", "https://"):
        assert external not in page
    for figure in ("1234.5", "14400", "987.5", "w-silver-1", "cleaned up"):
        assert figure in page
    assert "&lt;at once&gt;" in page  # text is escaped
    assert page.count("<circle") == len(failed_report().timeline)


def test_the_html_timeline_gives_each_phase_its_own_band() -> None:
    """The fault (at 900 s) and the recovery (987.5 s) are not squeezed against the end (2550 s)."""
    svg = drill_formats.timeline_svg(failed_report(), width=1000)
    bands = svg.count('<rect class="band')
    assert bands == 3  # prepare, faults, clean-up
    xs = [float(part.split('"')[0]) for part in svg.split('<circle cx="')[1:]]
    fault, recovered, cleaned = xs[1], xs[2], xs[3]
    assert recovered - fault > 100  # both in the faults band, spread across it
    assert cleaned - recovered > 50


def test_console_rendering_shows_the_verdict_and_the_figures() -> None:
    console = Console(file=io.StringIO(), width=80, record=True)
    for renderable in drill_views.render_console(failed_report()):
        console.print(renderable)
    text = " ".join(console.export_text().split())
    assert "FAILED" in text
    assert "1234/900" in text
    assert "missed: workload …silver-2 RTO: not measured" in text
    assert "failed: post-check audit verify: record 7: hash mismatch" in text


def test_console_rendering_shows_a_check_named_with_brackets_as_named() -> None:
    # a check's name is the plan's free text: "[/]" in it ended the report in a traceback
    report = failed_report()
    report.checks[0].name = "probe [/] [red]x"
    console = Console(file=io.StringIO(), width=200, record=True)
    for renderable in drill_views.render_console(report):
        console.print(renderable)
    assert "probe [/] [red]x" in console.export_text()


def test_console_tables_fit_80_columns_with_one_row_per_workload() -> None:
    long_ids = failed_report()
    for workload in long_ids.workloads:
        workload.workload_id = "wl-0019b76daa80021b55d78" + workload.workload_id[-1]
    console = Console(file=io.StringIO(), width=80, record=True)
    for renderable in drill_views.render_console(long_ids):
        console.print(renderable)
    lines = console.export_text().splitlines()
    table_lines = [line for line in lines if "│" in line]
    assert table_lines and all(len(line) <= 80 for line in table_lines)
    assert sum(1 for line in lines if "…" in line and "silver" in line) == 2  # one row each


def test_console_rendering_limits_the_workloads_and_shows_failed_ones_first() -> None:
    console = Console(file=io.StringIO(), width=80, record=True)
    for renderable in drill_views.render_console(failed_report(), max_workloads=1):
        console.print(renderable)
    text = console.export_text()
    assert "1 of 3" in text
    assert "w-plat-1" not in text.split("per workload")[1]
