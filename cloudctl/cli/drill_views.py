"""What the ``drill`` commands print and write: JSON models, rich tables, report files.

Invariants:
- console tables fit 80 columns (CI logs): ids shortened to their distinct tail, a
  figure and its target in one cell; every detail is in the report files;
- the report files are the pure formats of ``model.drill_formats`` written into one
  directory: ``report.json``, ``report.md``, ``report.html``, ``junit.xml``;
- kept apart from the commands so that ``cloudctl --help`` builds none of this.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from cloudctl.model import drill_formats, drill_report

if TYPE_CHECKING:
    from rich.console import RenderableType

SHORT_ID = 8


class PlanPublic(BaseModel):
    name: str
    path: str
    description: str
    scenario: dict[str, Any]
    scope: dict[str, Any]
    schedule: str | None
    next_run_at: str | None
    last_run: dict[str, Any] | None
    """The newest finished run (``DrillRunPublic`` as JSON), if any."""


class TargetPublic(BaseModel):
    tier: str
    rpo_target_s: float
    rto_target_s: float
    gbt20988_level_target: int
    overridden: bool
    catch_up_allowed_s: float


class PlanDetail(BaseModel):
    path: str
    plan: dict[str, Any]
    effective_targets: list[TargetPublic]


# --- figures for people ----------------------------------------------------------------------------


def short_id(value: str) -> str:
    """The distinct tail of an id (``w-019b…3f2a`` → ``…3f2a``), whole when already short."""
    return value if len(value) <= SHORT_ID + 1 else "…" + value[-SHORT_ID:]


def figure(value: float | None) -> str:
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}".rstrip("0").rstrip(".")


def pair(measured: float | None, target: float | None) -> str:
    shown = figure(measured)
    if measured is not None and target is not None and measured != target and shown == figure(target):
        # A figure apart from its target that would read the same (900.4 s against 900 s, a miss)
        # is shown to the millisecond, as the report has it.
        shown = drill_formats.seconds(measured)
    return f"{shown}/{figure(target)}"


# --- files -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    directory: Path
    json: Path
    markdown: Path
    html: Path
    junit: Path


def write_junit(report: drill_report.DrillReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(drill_formats.junit_xml(report))
    return path


def write_report(report: drill_report.DrillReport, *, directory: Path) -> ReportFiles:
    """Write every format into ``directory`` (created if missing); replace what was there."""
    directory.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(
        directory=directory,
        json=directory / "report.json",
        markdown=directory / "report.md",
        html=directory / "report.html",
        junit=directory / "junit.xml",
    )
    files.json.write_text(drill_formats.to_json(report), encoding="utf-8")
    files.markdown.write_text(drill_formats.to_markdown(report), encoding="utf-8")
    files.html.write_text(drill_formats.to_html(report), encoding="utf-8")
    write_junit(report, files.junit)
    return files


# --- the console -----------------------------------------------------------------------------------


def render_console(report: drill_report.DrillReport, *, max_workloads: int = 20) -> list[RenderableType]:
    """Rich renderables for a terminal or a CI log (80 columns): headline, tiers, faults,
    the workloads (failed first), checks, and every objective missed."""
    from rich.table import Table
    from rich.text import Text

    verdict = drill_formats.verdict(report.passed)
    headline = Text.assemble(
        ("drill ", "bold"),
        (report.plan, "bold"),
        f" ({report.scenario}): ",
        (verdict, "bold green" if report.passed else "bold red"),
        f"\n{report.started_at} → {report.finished_at}",
        " (simulated clock)" if report.simulated_time else "",
    )
    renderables: list[RenderableType] = [headline]

    def table(title: str, columns: list[str], rows: list[list[str]], failed: list[bool]) -> Table:
        result = Table(title=title, title_justify="left", header_style="bold", pad_edge=False)
        for column in columns:
            numeric = "/" in column or column.endswith(" s")
            result.add_column(column, justify="right" if numeric else "left", no_wrap=True)
        for row, row_failed in zip(rows, failed, strict=True):
            result.add_row(*map(Text, row), style="red" if row_failed else None)  # text, not markup
        return result

    def level(result: drill_report.Objectives) -> str:
        return f"{drill_formats.level(result.gbt20988_level_achieved)}/{result.gbt20988_level_target}"

    renderables.append(
        table(
            "per tier (measured/target)",
            ["tier", "n", "RPO s", "RTO s", "lost/acked", "level", "result"],
            [
                [
                    t.tier,
                    str(t.workloads),
                    pair(t.rpo_measured_s, t.rpo_target_s),
                    pair(t.rto_measured_s, t.rto_target_s),
                    f"{t.writes_lost}/{t.writes_acknowledged}",
                    level(t),
                    drill_formats.verdict(t.passed),
                ]
                for t in report.tiers
            ],
            [not t.passed for t in report.tiers],
        )
    )
    if report.faults:
        renderables.append(
            table(
                "faults (offsets in s)",
                ["#", "fault", "at", "back", "hit", "at risk s", "catch-up s"],
                [
                    [
                        str(f.index),
                        f.kind,
                        figure(f.injected_offset_s),
                        figure(f.restored_offset_s),
                        str(f.workloads_hit),
                        figure(f.dr_exposure_s),
                        figure(f.catch_up_s),
                    ]
                    for f in report.faults
                ],
                [False] * len(report.faults),
            )
        )
    ordered = sorted(report.workloads, key=lambda w: w.passed)
    shown = ordered[:max_workloads]
    title = "per workload"
    if len(ordered) > len(shown):
        title += f" ({len(shown)} of {len(ordered)}, failed first)"
    renderables.append(
        table(
            title,
            ["workload", "tier", "in", "RPO s", "RTO s", "lost/acked", "result"],
            [
                [
                    short_id(w.workload_id),
                    w.tier,
                    w.recovered_in or "stranded",
                    pair(w.rpo_measured_s, w.rpo_target_s),
                    pair(w.rto_measured_s, w.rto_target_s),
                    f"{w.writes_lost}/{w.writes_acknowledged}",
                    drill_formats.verdict(w.passed),
                ]
                for w in shown
            ],
            [not w.passed for w in shown],
        )
    )
    if report.checks:
        renderables.append(
            table(
                "checks",
                ["phase", "check", "result"],
                [[c.phase, c.name[:50], drill_formats.verdict(c.passed)] for c in report.checks],
                [not c.passed for c in report.checks],
            )
        )
    if report.management is not None:
        style = "green" if report.management.met else "red"
        line = drill_formats.management_summary(report.management)
        renderables.append(Text(f"management state: {line}", style=style))
    if report.ransomware is not None:
        attack = report.ransomware
        renderables.append(
            table(
                "recovery points (ransomware)",
                ["workload", "tier", "point", "lost s", "lost writes", "intact"],
                [
                    [
                        short_id(w.workload_id),
                        w.tier,
                        w.point or f"none: {w.reason}",
                        drill_formats.seconds(w.data_lost_s),
                        str(w.writes_lost),
                        "yes" if w.intact else "NO",
                    ]
                    for w in attack.workloads[:max_workloads]
                ],
                [w.point is None or not w.intact for w in attack.workloads[:max_workloads]],
            )
        )
        style = "green" if attack.passed else "red"
        renderables.append(Text(f"ransomware: {drill_formats.ransomware_summary(attack)}", style=style))
    for item in report.tiers_not_measured:
        renderables.append(Text(f"not measured: {item.tier} ({item.reason})", style="yellow"))
    for missed in drill_formats.missed(report):
        subject = missed.subject
        if subject.startswith("workload "):
            subject = "workload " + short_id(subject.removeprefix("workload "))
        renderables.append(
            Text(f"missed: {subject} {missed.miss.objective}: {missed.miss.reason}", style="red")
        )
    for check in report.checks:
        if not check.passed:
            renderables.append(Text(f"failed: {check.phase}-check {check.name}: {check.detail}", style="red"))
    return renderables
