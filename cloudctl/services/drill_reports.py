"""Drill reports on disk and on the console: JSON, Markdown, self-contained HTML, JUnit XML, rich.

``write_report(report, directory=...)`` leaves ``report.json`` (the contract of
``cloudctl.model.drill_report``), ``report.md``, ``report.html`` and ``junit.xml`` in one
directory; ``write_junit(report, path)`` writes the JUnit XML anywhere CI wants it.

Invariants:
- every format shows the same figures, taken from the report as measured: nothing is
  recomputed except the verdict of each single objective, which is
  ``measured is not None and measured <= target`` (an objective nobody measured is missed);
- JUnit has one test case per objective (RPO, RTO) of every tier and every workload, plus one
  per pre/post check; a failing case carries the measured value and the target. When the
  report failed and no case did, one ``verdict`` case fails, so CI never reads green for a
  drill that exited 1;
- the HTML page loads nothing from anywhere: styles inline, the timeline an inline SVG;
- writing only creates or replaces these files; it never reads the store or the clock.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from cloudctl.model import drill_report

if TYPE_CHECKING:
    from rich.console import RenderableType

OBJECTIVES = ("rpo", "rto")

_AddCase = Callable[[str, str, str | None, str], None]
"""``(classname, name, failure message or None, detail)``."""


@dataclasses.dataclass(frozen=True)
class ReportFiles:
    directory: Path
    json: Path
    markdown: Path
    html: Path
    junit: Path


@dataclasses.dataclass(frozen=True)
class Miss:
    """One objective a drill did not meet."""

    subject: str
    """``tier gold`` or ``workload w-123``."""
    objective: str
    """``RPO`` or ``RTO``."""
    measured_s: float | None
    target_s: float

    def describe(self) -> str:
        measured = "not measured" if self.measured_s is None else f"measured {seconds(self.measured_s)} s"
        return f"{self.subject} {self.objective}: {measured}, target {seconds(self.target_s)} s"


# --- figures -------------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    """``45.0`` → ``45``, ``0.25`` → ``0.25``, ``None`` → ``–``."""
    if value is None:
        return "–"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def objective_met(*, measured_s: float | None, target_s: float) -> bool:
    return measured_s is not None and measured_s <= target_s


def _measured(result: drill_report.Objectives, objective: str) -> tuple[float | None, float]:
    if objective == "rpo":
        return result.rpo_measured_s, result.rpo_target_s
    return result.rto_measured_s, result.rto_target_s


def misses(report: drill_report.DrillReport) -> list[Miss]:
    """Every objective missed, tiers first, then workloads, in report order."""
    subjects: list[tuple[str, drill_report.Objectives]] = [
        *((f"tier {tier.tier}", tier) for tier in report.tiers),
        *((f"workload {workload.workload_id}", workload) for workload in report.workloads),
    ]
    found = []
    for subject, result in subjects:
        for objective in OBJECTIVES:
            measured, target = _measured(result, objective)
            if not objective_met(measured_s=measured, target_s=target):
                found.append(Miss(subject, objective.upper(), measured, target))
    return found


def _level(value: int | None) -> str:
    return "none" if value is None else str(value)


def _verdict(passed: bool) -> str:
    return "passed" if passed else "FAILED"


def _duration_s(report: drill_report.DrillReport) -> float:
    try:
        started = datetime.datetime.fromisoformat(report.started_at)
        finished = datetime.datetime.fromisoformat(report.finished_at)
    except ValueError:
        return 0.0
    return max((finished - started).total_seconds(), 0.0)


def _tier_rows(report: drill_report.DrillReport) -> list[list[str]]:
    return [
        [
            tier.tier,
            str(tier.workloads),
            seconds(tier.rpo_target_s),
            seconds(tier.rpo_measured_s),
            seconds(tier.rto_target_s),
            seconds(tier.rto_measured_s),
            str(tier.writes_acknowledged),
            str(tier.writes_lost),
            _level(tier.gbt20988_level_achieved),
            str(tier.gbt20988_level_target),
            _verdict(tier.passed),
        ]
        for tier in report.tiers
    ]


TIER_COLUMNS = (
    "tier",
    "workloads",
    "RPO target s",
    "RPO measured s",
    "RTO target s",
    "RTO measured s",
    "writes acked",
    "writes lost",
    "level achieved",
    "level target",
    "result",
)

WORKLOAD_COLUMNS = (
    "workload",
    "department",
    "tier",
    "recovered in",
    "RPO target s",
    "RPO measured s",
    "RTO target s",
    "RTO measured s",
    "writes acked",
    "writes lost",
    "level achieved",
    "result",
)


def _workload_row(workload: drill_report.WorkloadResult) -> list[str]:
    return [
        workload.workload_id,
        workload.department,
        workload.tier,
        workload.recovered_in or "–",
        seconds(workload.rpo_target_s),
        seconds(workload.rpo_measured_s),
        seconds(workload.rto_target_s),
        seconds(workload.rto_measured_s),
        str(workload.writes_acknowledged),
        str(workload.writes_lost),
        _level(workload.gbt20988_level_achieved),
        _verdict(workload.passed),
    ]


def _summary_pairs(report: drill_report.DrillReport) -> list[tuple[str, str]]:
    pairs = [
        ("plan", report.plan),
        ("scenario", report.scenario),
        ("started", report.started_at),
        ("finished", report.finished_at),
        ("clock", "simulated" if report.simulated_time else "real time"),
        ("result", _verdict(report.passed)),
    ]
    if report.run_id:
        pairs.insert(0, ("run", report.run_id))
    return pairs


# --- JSON ---------------------------------------------------------------------------------------


def to_json(report: drill_report.DrillReport) -> str:
    return report.model_dump_json(indent=2) + "\n"


# --- Markdown -----------------------------------------------------------------------------------


def _md_cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _md_table(columns: tuple[str, ...] | list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join(" --- " for _ in columns) + "|"]
    lines += ["| " + " | ".join(_md_cell(cell) for cell in row) + " |" for row in rows]
    return lines


def to_markdown(report: drill_report.DrillReport) -> str:
    lines = [f"# Drill `{report.plan}`: {_verdict(report.passed)}", ""]
    if report.description:
        lines += [report.description, ""]
    lines += _md_table(["", ""], [[f"**{key}**", value] for key, value in _summary_pairs(report)])
    missed = misses(report)
    if missed:
        lines += ["", "## Objectives missed", ""]
        lines += [f"- {miss.describe()}" for miss in missed]
    lines += ["", "## Per tier", ""]
    lines += _md_table(TIER_COLUMNS, _tier_rows(report))
    lines += ["", "## Per workload", ""]
    lines += _md_table(WORKLOAD_COLUMNS, [_workload_row(w) for w in report.workloads])
    if report.checks:
        lines += ["", "## Checks", ""]
        lines += _md_table(
            ["phase", "check", "result", "detail"],
            [[c.phase, c.name, _verdict(c.passed), c.detail] for c in report.checks],
        )
    lines += ["", "## Timeline", ""]
    lines += _md_table(
        ["offset s", "at", "step", "detail"],
        [[seconds(s.offset_s), s.at, s.step, s.detail] for s in report.timeline],
    )
    return "\n".join(lines) + "\n"


# --- HTML ---------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f24;max-width:80rem}
h1 .passed{color:#1a7f37} h1 .failed{color:#cf222e}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#ffebe9} .muted{color:#57606a}
svg text{font-size:12px;fill:#1b1f24} svg .axis{stroke:#8c959f} svg .tick{fill:#57606a}
"""

_NUMERIC = {c for c in (*TIER_COLUMNS, *WORKLOAD_COLUMNS) if c.endswith((" s", "acked", "lost", "workloads"))}


def _html_table(columns: tuple[str, ...] | list[str], rows: list[list[str]], failed: list[bool]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = []
    for row, row_failed in zip(rows, failed, strict=True):
        cells = "".join(
            f'<td class="num">{html.escape(cell)}</td>'
            if column in _NUMERIC
            else f"<td>{html.escape(cell)}</td>"
            for column, cell in zip(columns, row, strict=True)
        )
        body.append(f'<tr class="failed">{cells}</tr>' if row_failed else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def timeline_svg(report: drill_report.DrillReport, *, width: int = 900) -> str:
    """The timeline drawn: one row per step, a dot at its offset on a shared time axis."""
    steps = report.timeline
    row_height, label_width, top = 22, 330, 28
    track = width - label_width - 30
    span = max((step.offset_s for step in steps), default=0.0) or 1.0
    height = top + row_height * max(len(steps), 1) + 10

    def x_of(offset_s: float) -> float:
        return label_width + track * offset_s / span

    parts = [
        f'<svg role="img" aria-label="drill timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">',
        f'<line class="axis" x1="{label_width}" y1="{top - 8}" x2="{label_width + track}" y2="{top - 8}"/>',
    ]
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = label_width + track * fraction
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{top - 14}" text-anchor="middle">'
            f"{html.escape(seconds(span * fraction))} s</text>"
        )
    previous: tuple[float, float] | None = None
    for index, step in enumerate(steps):
        y = top + row_height * index + row_height / 2
        x = x_of(step.offset_s)
        label = step.step if len(step.step) <= 44 else step.step[:43] + "…"
        parts.append(f'<text x="4" y="{y + 4:.1f}">{html.escape(label)}</text>')
        parts.append(
            f'<line class="axis" x1="{label_width}" y1="{y:.1f}" x2="{label_width + track}" '
            f'y2="{y:.1f}" stroke-dasharray="2 4" stroke-opacity="0.4"/>'
        )
        if previous is not None:
            parts.append(
                f'<line x1="{previous[0]:.1f}" y1="{previous[1]:.1f}" x2="{x:.1f}" y2="{y:.1f}" '
                'stroke="#0969da" stroke-width="1.5"/>'
            )
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="#0969da">'
            f"<title>{html.escape(f'{seconds(step.offset_s)} s — {step.step} {step.detail}'.strip())}"
            "</title></circle>"
        )
        previous = (x, y)
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: drill_report.DrillReport) -> str:
    verdict_class = "passed" if report.passed else "failed"
    missed = misses(report)
    sections = [
        f"<h1>Drill <code>{html.escape(report.plan)}</code>: "
        f'<span class="{verdict_class}">{_verdict(report.passed)}</span></h1>',
    ]
    if report.description:
        sections.append(f"<p>{html.escape(report.description)}</p>")
    sections.append(
        "<table><tbody>"
        + "".join(
            f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>"
            for key, value in _summary_pairs(report)
        )
        + "</tbody></table>"
    )
    if missed:
        sections.append(
            "<h2>Objectives missed</h2><ul>"
            + "".join(f"<li>{html.escape(miss.describe())}</li>" for miss in missed)
            + "</ul>"
        )
    sections.append("<h2>Per tier</h2>")
    sections.append(_html_table(TIER_COLUMNS, _tier_rows(report), [not t.passed for t in report.tiers]))
    sections.append("<h2>Per workload</h2>")
    sections.append(
        _html_table(
            WORKLOAD_COLUMNS,
            [_workload_row(w) for w in report.workloads],
            [not w.passed for w in report.workloads],
        )
    )
    if report.checks:
        sections.append("<h2>Checks</h2>")
        sections.append(
            _html_table(
                ["phase", "check", "result", "detail"],
                [[c.phase, c.name, _verdict(c.passed), c.detail] for c in report.checks],
                [not c.passed for c in report.checks],
            )
        )
    sections.append("<h2>Timeline</h2>")
    sections.append(timeline_svg(report))
    sections.append(
        _html_table(
            ["offset s", "at", "step", "detail"],
            [[seconds(s.offset_s), s.at, s.step, s.detail] for s in report.timeline],
            [False] * len(report.timeline),
        )
    )
    title = html.escape(f"Drill {report.plan}: {_verdict(report.passed)}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + '\n<p class="muted">Measured by a cloudctl drill: canary writes acknowledged before the fault '
        "and found (or not) in the recovered copy give the RPO; fault injected to serving again "
        "gives the RTO.</p>\n</body></html>\n"
    )


# --- JUnit --------------------------------------------------------------------------------------


def to_junit(report: drill_report.DrillReport) -> ET.Element:
    """``<testsuites>`` with one ``<testsuite>`` for the drill; see the module docstring."""
    suite = ET.Element(
        "testsuite",
        name=f"drill.{report.plan}",
        timestamp=report.started_at,
        time=seconds(_duration_s(report)),
        errors="0",
        skipped="0",
    )
    properties = ET.SubElement(suite, "properties")
    for key, value in (
        ("scenario", report.scenario),
        ("simulated_time", str(report.simulated_time).lower()),
        ("run_id", report.run_id),
        ("passed", str(report.passed).lower()),
    ):
        ET.SubElement(properties, "property", name=key, value=value)
    cases = 0
    failures = 0

    def add_case(classname: str, name: str, failure: str | None, detail: str) -> None:
        nonlocal cases, failures
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
        cases += 1
        if failure is not None:
            failures += 1
            element = ET.SubElement(case, "failure", message=failure, type="ObjectiveMissed")
            element.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail

    for tier in report.tiers:
        _objective_cases(add_case, f"drill.{report.plan}.tiers", tier.tier, tier)
    for workload in report.workloads:
        _objective_cases(
            add_case, f"drill.{report.plan}.workloads.{workload.tier}", workload.workload_id, workload
        )
    for check in report.checks:
        add_case(
            f"drill.{report.plan}.checks",
            f"{check.phase}: {check.name}",
            None if check.passed else f"{check.phase} check failed: {check.detail or check.name}",
            check.detail,
        )
    if not report.passed and failures == 0:
        add_case(
            f"drill.{report.plan}",
            "verdict",
            "the drill reported passed: false",
            "no single objective failed; see report.json for the engine's reason",
        )
    suite.set("tests", str(cases))
    suite.set("failures", str(failures))
    root = ET.Element("testsuites", name="cloudctl drills", tests=str(cases), failures=str(failures))
    root.append(suite)
    ET.indent(root)
    return root


def _objective_cases(
    add_case: _AddCase, classname: str, subject: str, result: drill_report.Objectives
) -> None:
    level = _level(result.gbt20988_level_achieved)
    figures = (
        f"writes acknowledged {result.writes_acknowledged}, lost {result.writes_lost}; "
        f"GB/T 20988 level achieved {level}"
    )
    for objective in OBJECTIVES:
        measured, target = _measured(result, objective)
        name = f"{subject} {objective.upper()}"
        if objective_met(measured_s=measured, target_s=target):
            add_case(
                classname,
                name,
                None,
                f"measured {seconds(measured)} s <= target {seconds(target)} s; {figures}",
            )
        else:
            what = "not measured" if measured is None else f"measured {seconds(measured)} s"
            add_case(
                classname,
                name,
                f"{objective.upper()} {what}, target {seconds(target)} s",
                f"{objective.upper()} {what} exceeds the target {seconds(target)} s; {figures}",
            )


def write_junit(report: drill_report.DrillReport, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(to_junit(report)).write(path, encoding="utf-8", xml_declaration=True)
    return path


# --- files --------------------------------------------------------------------------------------


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
    files.json.write_text(to_json(report), encoding="utf-8")
    files.markdown.write_text(to_markdown(report), encoding="utf-8")
    files.html.write_text(to_html(report), encoding="utf-8")
    write_junit(report, files.junit)
    return files


# --- console ------------------------------------------------------------------------------------

_CONSOLE_COLUMNS = (
    "tier",
    "workloads",
    "RPO s measured / target",
    "RTO s measured / target",
    "writes lost / acked",
    "level achieved / target",
    "result",
)


def render_console(report: drill_report.DrillReport, *, max_workloads: int = 20) -> list[RenderableType]:
    """Rich renderables for a terminal: headline, per-tier table, the workloads (failed first), checks."""
    from rich.table import Table
    from rich.text import Text

    style = "bold green" if report.passed else "bold red"
    headline = Text.assemble(
        ("drill ", "bold"),
        (report.plan, "bold"),
        f" ({report.scenario}): ",
        (_verdict(report.passed), style),
        f"  {report.started_at} → {report.finished_at}",
        " (simulated clock)" if report.simulated_time else "",
    )
    renderables: list[RenderableType] = [headline]

    def table(
        title: str, columns: tuple[str, ...] | list[str], rows: list[list[str]], failed: list[bool]
    ) -> Table:
        result = Table(title=title, title_justify="left", header_style="bold")
        for index, column in enumerate(columns):
            numeric = column in _NUMERIC or "/" in column
            result.add_column(
                column, justify="right" if numeric else "left", overflow="fold" if index == 0 else "ellipsis"
            )
        for row, row_failed in zip(rows, failed, strict=True):
            result.add_row(*row, style="red" if row_failed else None)
        return result

    def pair(measured: float | None, target: float) -> str:
        return f"{seconds(measured)} / {seconds(target)}"

    renderables.append(
        table(
            "per tier",
            _CONSOLE_COLUMNS,
            [
                [
                    t.tier,
                    str(t.workloads),
                    pair(t.rpo_measured_s, t.rpo_target_s),
                    pair(t.rto_measured_s, t.rto_target_s),
                    f"{t.writes_lost} / {t.writes_acknowledged}",
                    f"{_level(t.gbt20988_level_achieved)} / {t.gbt20988_level_target}",
                    _verdict(t.passed),
                ]
                for t in report.tiers
            ],
            [not t.passed for t in report.tiers],
        )
    )
    ordered = sorted(report.workloads, key=lambda w: w.passed)
    shown = ordered[:max_workloads]
    title = "per workload"
    if len(ordered) > len(shown):
        title += f" ({len(shown)} of {len(ordered)}, failed first; all in report.json)"
    renderables.append(
        table(
            title,
            ("workload", "department", "tier", "recovered in", *_CONSOLE_COLUMNS[2:5], "level", "result"),
            [
                [
                    w.workload_id,
                    w.department,
                    w.tier,
                    w.recovered_in or "–",
                    pair(w.rpo_measured_s, w.rpo_target_s),
                    pair(w.rto_measured_s, w.rto_target_s),
                    f"{w.writes_lost} / {w.writes_acknowledged}",
                    _level(w.gbt20988_level_achieved),
                    _verdict(w.passed),
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
                ["phase", "check", "result", "detail"],
                [
                    [c.phase, c.name, _verdict(c.passed), c.detail.strip().split("\n", 1)[0]]
                    for c in report.checks
                ],
                [not c.passed for c in report.checks],
            )
        )
    for miss in misses(report):
        renderables.append(Text(f"missed: {miss.describe()}", style="red"))
    return renderables
