"""A drill report as Markdown, a self-contained HTML page and JUnit XML: pure functions.

Invariants:
- every format shows the figures of the report as measured and the objectives it
  missed as the report states them (``drill_report.judge`` decided them once);
  nothing here decides pass or fail;
- JUnit has one test case per objective (RPO, RTO, level, and catch-up where a link
  fault was restored) of every tier and every workload, one more for a stranded workload
  or one that lost every write, and one per pre/post check; a failing case carries the
  measured value and the target. When the report failed and no case did, one ``verdict``
  case fails, so CI never reads green for a drill that exited 1;
- the HTML page loads nothing from anywhere: styles inline, the timeline an inline SVG
  whose horizontal axis gives each phase of the drill its own band, so the faults and
  the recovery stand apart however short they were;
- no I/O: callers write the strings where they want them.
"""

from __future__ import annotations

import dataclasses
import datetime
import html
import xml.etree.ElementTree as ET

from cloudctl.model import drill_report


@dataclasses.dataclass(frozen=True)
class Missed:
    """One objective the report says was missed, with whom it concerns."""

    subject: str
    """``tier gold`` or ``workload w-123``."""
    miss: drill_report.Miss

    def describe(self) -> str:
        return f"{self.subject} {self.miss.objective}: {self.miss.reason}"


# --- figures -------------------------------------------------------------------------------------


def seconds(value: float | None) -> str:
    """``45.0`` → ``45``, ``0.25`` → ``0.25``, ``None`` → ``–``."""
    if value is None:
        return "–"
    return f"{value:.3f}".rstrip("0").rstrip(".")


def level(value: int | None) -> str:
    return "none" if value is None else str(value)


def verdict(passed: bool) -> str:
    return "passed" if passed else "FAILED"


def missed(report: drill_report.DrillReport) -> list[Missed]:
    """Every objective missed, tiers first, then workloads, in report order."""
    found = [Missed(f"tier {tier.tier}", miss) for tier in report.tiers for miss in tier.missed]
    found += [Missed(f"workload {w.workload_id}", miss) for w in report.workloads for miss in w.missed]
    state = report.management
    if state is not None and not state.met:
        reason = f"measured {seconds(state.rpo_s)} s > target {seconds(state.rpo_target_s)} s"
        miss = drill_report.Miss(
            objective="RPO", measured=state.rpo_s, target=state.rpo_target_s, reason=reason
        )
        found.append(Missed("management state", miss))
    if report.ransomware is not None:
        for point in report.ransomware.workloads:
            if point.point is None:
                objective, reason = "recovered", f"not recovered to a point before the attack: {point.reason}"
            elif not point.intact:
                objective, reason = "data", f"the data up to {point.point} does not read back as acknowledged"
            else:
                continue
            miss = drill_report.Miss(objective=objective, measured=None, target=None, reason=reason)
            found.append(Missed(f"workload {point.workload_id}", miss))
    return found


RANSOMWARE_COLUMNS = (
    "workload",
    "tier",
    "point",
    "consistent at",
    "recovered in",
    "data lost s",
    "writes lost",
    "writes to point",
    "intact",
)


def ransomware_summary(state: drill_report.RansomwareResult) -> str:
    """``corrupt at 2026-…Z: 12 keys hit; 2 of 2 canaries back to a point, intact; up to 95 s lost``."""
    back = [w for w in state.workloads if w.point is not None]
    intact = sum(w.intact for w in back)
    worst = max((w.data_lost_s or 0.0 for w in back), default=None)
    return (
        f"{state.mode} at {state.attacked_at}: {state.keys_attacked} keys hit; "
        f"{len(back)} of {len(state.workloads)} canaries back to a point, {intact} intact; "
        f"up to {seconds(worst)} s and {sum(w.writes_lost for w in back)} writes given up"
    )


def ransomware_rows(state: drill_report.RansomwareResult) -> list[list[str]]:
    return [
        [
            w.workload_id,
            w.tier,
            w.point or f"none ({w.reason})",
            w.consistent_at or "–",
            w.recovered_in or "–",
            seconds(w.data_lost_s),
            str(w.writes_lost),
            str(w.writes_to_point),
            "yes" if w.intact else "NO",
        ]
        for w in state.workloads
    ]


def management_summary(state: drill_report.ManagementResult) -> str:
    """``127.0.0.1:55442/postgres promoted (old primary fenced); 0 of 912 records lost; RPO 0 s …``."""
    fenced = "old primary fenced" if state.old_primary_fenced else "old primary NOT fenced"
    return (
        f"{state.promoted} promoted ({fenced}); {state.lost} of {state.acknowledged} records lost; "
        f"RPO {seconds(state.rpo_s)} s wall clock (target {seconds(state.rpo_target_s)} s)"
        + (f"; lost: {', '.join(state.lost_keys[:5])}" if state.lost_keys else "")
    )


def catch_up(result: drill_report.Objectives) -> str:
    if result.catch_up_allowed_s is None:
        return "–"
    return f"{seconds(result.catch_up_s)} / {seconds(result.catch_up_allowed_s)}"


def _duration_s(report: drill_report.DrillReport) -> float:
    try:
        started = datetime.datetime.fromisoformat(report.started_at)
        finished = datetime.datetime.fromisoformat(report.finished_at)
    except ValueError:
        return 0.0
    return max((finished - started).total_seconds(), 0.0)


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
    "catch-up s / allowed",
    "at risk s",
    "result",
)

WORKLOAD_COLUMNS = (
    "workload",
    "department",
    "tier",
    "home",
    "recovered in",
    "RPO target s",
    "RPO measured s",
    "RTO target s",
    "RTO measured s",
    "writes acked",
    "writes lost",
    "level achieved",
    "catch-up s / allowed",
    "at risk s",
    "result",
)

FAULT_COLUMNS = (
    "#",
    "fault",
    "injected at s",
    "restored at s",
    "workloads hit",
    "at risk s",
    "catch-up s",
    "write latency s",
)


def tier_rows(report: drill_report.DrillReport) -> list[list[str]]:
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
            level(tier.gbt20988_level_achieved),
            str(tier.gbt20988_level_target),
            catch_up(tier),
            seconds(tier.dr_exposure_s),
            verdict(tier.passed),
        ]
        for tier in report.tiers
    ]


def workload_row(workload: drill_report.WorkloadResult) -> list[str]:
    return [
        workload.workload_id,
        workload.department,
        workload.tier,
        workload.home_center or "–",
        workload.recovered_in or f"stranded: {workload.stranded_reason or '?'}",
        seconds(workload.rpo_target_s),
        seconds(workload.rpo_measured_s),
        seconds(workload.rto_target_s),
        seconds(workload.rto_measured_s),
        str(workload.writes_acknowledged),
        str(workload.writes_lost),
        level(workload.gbt20988_level_achieved),
        catch_up(workload),
        seconds(workload.dr_exposure_s),
        verdict(workload.passed),
    ]


def fault_rows(report: drill_report.DrillReport) -> list[list[str]]:
    return [
        [
            str(fault.index),
            fault.summary,
            seconds(fault.injected_offset_s),
            seconds(fault.restored_offset_s),
            str(fault.workloads_hit),
            seconds(fault.dr_exposure_s),
            seconds(fault.catch_up_s),
            seconds(fault.write_latency_s),
        ]
        for fault in report.faults
    ]


def summary_pairs(report: drill_report.DrillReport) -> list[tuple[str, str]]:
    pairs = [
        ("plan", report.plan),
        ("scenario", report.scenario),
        ("started", report.started_at),
        ("finished", report.finished_at),
        ("clock", "simulated" if report.simulated_time else "real time"),
        ("seed", str(report.seed)),
        ("result", verdict(report.passed)),
    ]
    if report.run_id:
        pairs.insert(0, ("run", report.run_id))
    if report.management is not None:
        pairs.append(("management state", management_summary(report.management)))
    if report.ransomware is not None:
        pairs.append(("ransomware", ransomware_summary(report.ransomware)))
    if report.tiers_not_measured:
        pairs.append(
            (
                "not measured",
                "; ".join(f"{item.tier} ({item.reason})" for item in report.tiers_not_measured),
            )
        )
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
    lines = [f"# Drill `{report.plan}`: {verdict(report.passed)}", ""]
    if report.description:
        lines += [report.description, ""]
    lines += _md_table(["", ""], [[f"**{key}**", value] for key, value in summary_pairs(report)])
    found = missed(report)
    failed_checks = [c for c in report.checks if not c.passed]
    if found or failed_checks:
        lines += ["", "## Objectives missed", ""]
        lines += [f"- {item.describe()}" for item in found]
        lines += [f"- {c.phase}-check {c.name}: {c.detail}" for c in failed_checks]
    lines += ["", "## Per tier", ""]
    lines += _md_table(TIER_COLUMNS, tier_rows(report))
    if report.faults:
        lines += ["", "## Faults", ""]
        lines += _md_table(FAULT_COLUMNS, fault_rows(report))
    if report.ransomware is not None:
        lines += ["", "## Recovery points", ""]
        lines += _md_table(RANSOMWARE_COLUMNS, ransomware_rows(report.ransomware))
    lines += ["", "## Per workload", ""]
    lines += _md_table(WORKLOAD_COLUMNS, [workload_row(w) for w in report.workloads])
    if report.checks:
        lines += ["", "## Checks", ""]
        lines += _md_table(
            ["phase", "check", "result", "detail"],
            [[c.phase, c.name, verdict(c.passed), c.detail] for c in report.checks],
        )
    lines += ["", "## Timeline", ""]
    lines += _md_table(
        ["offset s", "phase", "step", "detail"],
        [[seconds(s.offset_s), s.phase, s.step, s.detail] for s in report.timeline],
    )
    return "\n".join(lines) + "\n"


# --- HTML ---------------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem;color:#1b1f24;max-width:90rem}
h1 .passed{color:#1a7f37} h1 .failed{color:#cf222e}
table{border-collapse:collapse;margin:.5rem 0 1.5rem;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left}
th{background:#f6f8fa} td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.failed td{background:#ffebe9} .muted{color:#57606a}
svg text{font-size:12px;fill:#1b1f24} svg .axis{stroke:#8c959f} svg .tick{fill:#57606a}
svg .band{fill:#f6f8fa} svg .band.faults{fill:#fff1e5} svg .band.recover{fill:#eef6ff}
"""

NUMERIC = {
    c
    for c in (*TIER_COLUMNS, *WORKLOAD_COLUMNS, *FAULT_COLUMNS, *RANSOMWARE_COLUMNS)
    if c.endswith((" s", "acked", "lost", "workloads", "hit", "allowed")) or c == "#"
}


def _html_table(columns: tuple[str, ...] | list[str], rows: list[list[str]], failed: list[bool]) -> str:
    head = "".join(f"<th>{html.escape(column)}</th>" for column in columns)
    body = []
    for row, row_failed in zip(rows, failed, strict=True):
        cells = "".join(
            f'<td class="num">{html.escape(cell)}</td>'
            if column in NUMERIC
            else f"<td>{html.escape(cell)}</td>"
            for column, cell in zip(columns, row, strict=True)
        )
        body.append(f'<tr class="failed">{cells}</tr>' if row_failed else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def timeline_svg(report: drill_report.DrillReport, *, width: int = 960) -> str:
    """The timeline drawn: one row per step; each phase of the drill gets its own band of the
    horizontal axis (as wide as its share of steps, never narrower than a tenth), and a step
    sits in its phase's band at its offset within that phase."""
    steps = report.timeline
    row_height, label_width, top = 22, 300, 46
    track = width - label_width - 20
    phases: list[str] = []
    for step in steps:
        if step.phase not in phases:
            phases.append(step.phase)
    weights = {phase: max(sum(1 for s in steps if s.phase == phase), 1) for phase in phases}
    total = sum(weights.values()) or 1
    floor = track / max(len(phases), 1) / 2 if len(phases) > 5 else track / 10
    widths = {phase: max(track * weights[phase] / total, floor) for phase in phases}
    scale = track / (sum(widths.values()) or 1)
    bands: dict[str, tuple[float, float, float, float]] = {}
    x = float(label_width)
    for phase in phases:
        band_width = widths[phase] * scale
        offsets = [s.offset_s for s in steps if s.phase == phase]
        bands[phase] = (x, band_width, min(offsets), max(offsets))
        x += band_width
    height = top + row_height * max(len(steps), 1) + 10

    def x_of(step: drill_report.TimelineStep) -> float:
        left, band_width, first, last = bands[step.phase]
        inner = band_width - 16
        fraction = 0.5 if last == first else (step.offset_s - first) / (last - first)
        return left + 8 + inner * fraction

    parts = [
        f'<svg role="img" aria-label="drill timeline" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}">'
    ]
    for phase, (left, band_width, first, last) in bands.items():
        css = f"band {html.escape(phase)}"
        parts.append(
            f'<rect class="{css}" x="{left:.1f}" y="{top - 30}" width="{band_width:.1f}" '
            f'height="{height - top + 20}"/>'
        )
        name = phase or "drill"
        middle = left + band_width / 2
        parts.append(f'<text x="{middle:.1f}" y="{top - 18}" text-anchor="middle">{html.escape(name)}</text>')
        parts.append(
            f'<text class="tick" x="{left + band_width / 2:.1f}" y="{top - 5}" text-anchor="middle">'
            f"{html.escape(seconds(first))}–{html.escape(seconds(last))} s</text>"
        )
    previous: tuple[float, float] | None = None
    for index, step in enumerate(steps):
        y = top + row_height * index + row_height / 2
        x_step = x_of(step)
        label = step.step if len(step.step) <= 40 else step.step[:39] + "…"
        parts.append(f'<text x="4" y="{y + 4:.1f}">{html.escape(label)}</text>')
        if previous is not None:
            parts.append(
                f'<line x1="{previous[0]:.1f}" y1="{previous[1]:.1f}" x2="{x_step:.1f}" y2="{y:.1f}" '
                'stroke="#0969da" stroke-width="1.5"/>'
            )
        colour = "#cf222e" if step.step in ("fault injected", "link restored") else "#0969da"
        parts.append(
            f'<circle cx="{x_step:.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
            f"<title>{html.escape(f'{seconds(step.offset_s)} s — {step.step} {step.detail}'.strip())}"
            "</title></circle>"
        )
        previous = (x_step, y)
    parts.append("</svg>")
    return "".join(parts)


def to_html(report: drill_report.DrillReport) -> str:
    verdict_class = "passed" if report.passed else "failed"
    found = missed(report)
    failed_checks = [c for c in report.checks if not c.passed]
    sections = [
        f"<h1>Drill <code>{html.escape(report.plan)}</code>: "
        f'<span class="{verdict_class}">{verdict(report.passed)}</span></h1>',
    ]
    if report.description:
        sections.append(f"<p>{html.escape(report.description)}</p>")
    sections.append(
        "<table><tbody>"
        + "".join(
            f"<tr><th>{html.escape(key)}</th><td>{html.escape(value)}</td></tr>"
            for key, value in summary_pairs(report)
        )
        + "</tbody></table>"
    )
    if found or failed_checks:
        sections.append(
            "<h2>Objectives missed</h2><ul>"
            + "".join(f"<li>{html.escape(item.describe())}</li>" for item in found)
            + "".join(
                f"<li>{html.escape(f'{c.phase}-check {c.name}: {c.detail}')}</li>" for c in failed_checks
            )
            + "</ul>"
        )
    sections.append("<h2>Per tier</h2>")
    sections.append(_html_table(TIER_COLUMNS, tier_rows(report), [not t.passed for t in report.tiers]))
    if report.faults:
        sections.append("<h2>Faults</h2>")
        sections.append(_html_table(FAULT_COLUMNS, fault_rows(report), [False] * len(report.faults)))
    if report.ransomware is not None:
        sections.append("<h2>Recovery points</h2>")
        sections.append(
            _html_table(
                RANSOMWARE_COLUMNS,
                ransomware_rows(report.ransomware),
                [w.point is None or not w.intact for w in report.ransomware.workloads],
            )
        )
    sections.append("<h2>Per workload</h2>")
    sections.append(
        _html_table(
            WORKLOAD_COLUMNS,
            [workload_row(w) for w in report.workloads],
            [not w.passed for w in report.workloads],
        )
    )
    if report.checks:
        sections.append("<h2>Checks</h2>")
        sections.append(
            _html_table(
                ["phase", "check", "result", "detail"],
                [[c.phase, c.name, verdict(c.passed), c.detail] for c in report.checks],
                [not c.passed for c in report.checks],
            )
        )
    sections.append("<h2>Timeline</h2>")
    sections.append(timeline_svg(report))
    sections.append(
        _html_table(
            ["offset s", "phase", "at", "step", "detail"],
            [[seconds(s.offset_s), s.phase, s.at, s.step, s.detail] for s in report.timeline],
            [False] * len(report.timeline),
        )
    )
    title = html.escape(f"Drill {report.plan}: {verdict(report.passed)}")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>{_STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + '\n<p class="muted">Measured by a cloudctl drill: canary writes acknowledged before the fault '
        "and found (or not) where the workload serves afterwards give the RPO (fault time minus the "
        "oldest lost write); fault injected to serving again gives the RTO.</p>\n</body></html>\n"
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
        ("seed", str(report.seed)),
        ("passed", str(report.passed).lower()),
    ):
        ET.SubElement(properties, "property", name=key, value=value)
    counts = {"tests": 0, "failures": 0}

    def add_case(classname: str, name: str, failure: str | None, detail: str) -> None:
        case = ET.SubElement(suite, "testcase", classname=classname, name=name, time="0")
        counts["tests"] += 1
        if failure is not None:
            counts["failures"] += 1
            element = ET.SubElement(case, "failure", message=failure, type="ObjectiveMissed")
            element.text = detail
        else:
            ET.SubElement(case, "system-out").text = detail

    subjects: list[tuple[str, str, drill_report.Objectives]] = [
        (f"drill.{report.plan}.tiers", tier.tier, tier) for tier in report.tiers
    ]
    subjects += [(f"drill.{report.plan}.workloads.{w.tier}", w.workload_id, w) for w in report.workloads]
    for classname, subject, result in subjects:
        figures = (
            f"RPO {seconds(result.rpo_measured_s)} s (target {seconds(result.rpo_target_s)} s), "
            f"RTO {seconds(result.rto_measured_s)} s (target {seconds(result.rto_target_s)} s), "
            f"writes acknowledged {result.writes_acknowledged}, lost {result.writes_lost}; "
            f"GB/T 20988 level achieved {level(result.gbt20988_level_achieved)}, "
            f"target {result.gbt20988_level_target}"
        )
        objectives = list(drill_report.OBJECTIVES)
        if result.catch_up_allowed_s is not None:
            objectives.append("catch-up")
        objectives += [m.objective for m in result.missed if m.objective not in objectives]
        for objective in objectives:
            miss = next((m for m in result.missed if m.objective == objective), None)
            add_case(
                classname,
                f"{subject} {objective}",
                None if miss is None else f"{objective} {miss.reason}",
                figures,
            )
    state = report.management
    if state is not None:
        add_case(
            f"drill.{report.plan}.management",
            "management state RPO",
            None if state.met else f"RPO {seconds(state.rpo_s)} s > target {seconds(state.rpo_target_s)} s",
            management_summary(state),
        )
    if report.ransomware is not None:
        for point in report.ransomware.workloads:
            failure = None
            if point.point is None:
                failure = f"not recovered to a point: {point.reason}"
            elif not point.intact:
                failure = f"the data up to {point.point} does not read back as acknowledged"
            add_case(
                f"drill.{report.plan}.ransomware",
                f"workload {point.workload_id} recovery point",
                failure,
                f"point {point.point}, consistent at {point.consistent_at}, "
                f"{seconds(point.data_lost_s)} s and {point.writes_lost} writes given up",
            )
    for check in report.checks:
        add_case(
            f"drill.{report.plan}.checks",
            f"{check.phase}: {check.name}",
            None if check.passed else f"{check.phase} check failed: {check.detail or check.name}",
            check.detail,
        )
    if not report.passed and counts["failures"] == 0:
        add_case(
            f"drill.{report.plan}",
            "verdict",
            "the drill reported passed: false",
            "no single objective failed; see report.json",
        )
    suite.set("tests", str(counts["tests"]))
    suite.set("failures", str(counts["failures"]))
    root = ET.Element(
        "testsuites", name="cloudctl drills", tests=str(counts["tests"]), failures=str(counts["failures"])
    )
    root.append(suite)
    ET.indent(root)
    return root


def junit_xml(report: drill_report.DrillReport) -> bytes:
    text: bytes = ET.tostring(to_junit(report), encoding="utf-8", xml_declaration=True)
    return text
