"""Drill figures audited against scripted worlds whose answers are worked out here by hand.

The world is ``test_drill_engine.ScriptedPlatform`` on its manual clock: every write is
acknowledged when made, the plan's seed 0 puts the first write 0.844 s after the warm-up
starts (``random.Random(0).random()``, rounded to the millisecond), and with one write a
second and a 60 s warm-up the writes before a fault at the warm-up's end are at
0.844, 1.844, … 59.844 s: 60 of them. Each case states what the report must say; the
report files and the console must say the same.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import pytest
from rich.console import Console

from cloudctl.cli import drill_views
from cloudctl.model import drill_formats, drill_report, drills
from tests.unit.recovery.test_drill_engine import START, TOPOLOGY_MODEL, ScriptedPlatform, plan, run

FIRST_S = 0.844
"""Seed 0: the first write, seconds after the warm-up starts."""


def console_text(report: drill_report.DrillReport) -> str:
    console = Console(width=80, record=True)
    for renderable in drill_views.render_console(report):
        console.print(renderable)
    return console.export_text()


def junit_cases(report: drill_report.DrillReport) -> dict[str, str | None]:
    """JUnit test case name → its failure message (``None``: the case passed)."""
    root = ET.fromstring(drill_formats.junit_xml(report))
    found: dict[str, str | None] = {}
    for case in root.iter("testcase"):
        failure = case.find("failure")
        found[case.attrib["name"]] = None if failure is None else failure.attrib["message"]
    return found


# --- RTO ---------------------------------------------------------------------------------------------


def test_a_recovery_slower_than_the_rto_target_fails_with_the_exact_rto_in_every_format(
    tmp_path: Path,
) -> None:
    """Gold (RTO 900 s, level 6) in qd-a; the failover takes 1000 s and loses nothing.

    RTO 1000 s misses 900 s by 100 s; RPO 0 and RTO 1000 s ≤ 3600 s still earn level 6, so
    the RTO is the one objective missed, for the tier and its workload, and the drill fails."""
    world = ScriptedPlatform()
    world.recovery_takes_s = 1000.0
    report = run(world, plan())

    (tier,) = report.tiers
    (workload,) = report.workloads
    for result in (tier, workload):
        assert (result.rpo_measured_s, result.rto_measured_s) == (0.0, 1000.0)
        assert (result.writes_acknowledged, result.writes_lost) == (60, 0)
        assert (result.gbt20988_level_achieved, result.gbt20988_level_target) == (6, 6)
        assert [(m.objective, m.measured, m.target) for m in result.missed] == [("RTO", 1000.0, 900.0)]
        assert result.missed[0].reason == "measured 1000 s > target 900 s"
        assert not result.passed
    assert not report.passed

    files = drill_views.write_report(report, directory=tmp_path / "report")
    written = json.loads(files.json.read_text(encoding="utf-8"))
    assert drill_report.DrillReport.model_validate(written) == report
    assert written["passed"] is False
    assert written["tiers"][0]["rto_measured_s"] == 1000.0
    cases = junit_cases(report)
    assert cases["gold RTO"] == cases["w-gold-0 RTO"] == "RTO measured 1000 s > target 900 s"
    assert cases["gold RPO"] is None and cases["gold level"] is None
    assert files.junit.read_bytes() == drill_formats.junit_xml(report)
    shown = console_text(report)
    assert "FAILED" in shown
    assert "1000/900" in shown
    assert "missed: tier gold RTO: measured 1000 s > target 900 s" in shown


def test_a_canary_its_failover_never_served_again_is_not_reported_served_throughout() -> None:
    """The failover run for qd-a ends without serving the gold canary anywhere (a hook stopped
    it, a step failed) and without calling it stranded: the canary was not recovered. It has no
    RTO and no center it was recovered in; the drill fails on it."""
    world = ScriptedPlatform()

    def serves_nobody(_run_id: str) -> dict[str, object]:
        world.clock.advance(5.0)
        return {}

    world.execute_failover = serves_nobody  # type: ignore[assignment,method-assign]
    report = run(world, plan())

    (workload,) = report.workloads
    assert workload.rto_measured_s is None
    assert workload.recovered_in is None
    assert workload.stranded_reason == "the failover did not serve it"
    assert [m.objective for m in workload.missed] == ["recovered", "RPO", "RTO", "level"]
    (tier,) = report.tiers
    assert (tier.stranded, tier.rto_measured_s, tier.passed) == (1, None, False)
    assert not report.passed
    finished = next(step for step in report.timeline if step.step == "recovery finished")
    assert finished.detail == "0 recovered, 1 could not be recovered"


# --- the GB/T 20988 level --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recovery_s", "held_s", "rpo_s", "level"),
    [
        (5.0, None, 0.0, 6),  # nothing lost, minutes: zero data loss
        (5.0, 37.0, 21.156, 5),  # writes from 38.844 s on lost: 60 − 38.844
        (4000.0, None, 0.0, 5),  # RPO 0 but an RTO over the hour level 6 allows
        (180_000.0, None, 0.0, 3),  # over the two days levels 4 and 5 allow: level 3 has no RTO bound
    ],
)
def test_the_level_follows_from_the_measured_figures_by_the_topologys_table(
    recovery_s: float, held_s: float | None, rpo_s: float, level: int
) -> None:
    """Targets loose enough to pass everything, held to level 1: the level achieved is what the
    measured RPO and RTO earn in the topology's table, never the target's."""
    world = ScriptedPlatform()
    world.recovery_takes_s = recovery_s
    if held_s is not None:
        world.holds_until = lambda _center, _workload: START + FIRST_S + held_s
    report = run(world, plan(targets={"gold": {"rpo_s": 3600, "rto_s": 200_000, "level": 1}}))

    (tier,) = report.tiers
    assert (tier.rpo_measured_s, tier.rto_measured_s) == (rpo_s, recovery_s)
    assert tier.gbt20988_level_target == 1
    assert tier.gbt20988_level_achieved == level
    assert TOPOLOGY_MODEL.level_achieved(rto_s=recovery_s, rpo_s=rpo_s) == level
    assert tier.passed and report.passed


def test_the_level_is_the_one_the_reported_figures_earn() -> None:
    """A failover of 3600.0004 s is reported as RTO 3600 s (to the millisecond), within the plan's
    3600 s; the table gives 3600 s level 6, so the report says level 6 and passes, not level 5
    against a figure that shows 3600."""
    world = ScriptedPlatform()
    world.recovery_takes_s = 3600.0004
    report = run(world, plan(targets={"gold": {"rpo_s": 0, "rto_s": 3600, "level": 6}}))

    for result in (*report.tiers, *report.workloads):
        assert result.rto_measured_s == 3600.0
        assert TOPOLOGY_MODEL.level_achieved(rto_s=3600.0, rpo_s=0.0) == 6
        assert result.gbt20988_level_achieved == 6
        assert result.missed == []
    assert report.passed


# --- what was not measured ----------------------------------------------------------------------------


def test_a_canary_with_no_write_before_the_fault_measures_nothing_and_the_tier_does_not_pass() -> None:
    """One write every 1000 s: seed 0 puts the first at 844 s, long after the fault at 60 s.
    Nothing was acknowledged before the fault, so there is no RPO and no level to claim."""
    world = ScriptedPlatform()
    report = run(world, plan(canary={"writes_per_s": 0.001, "warmup_s": 60}))

    (tier,) = report.tiers
    assert (tier.writes_acknowledged, tier.writes_lost) == (0, 0)
    assert tier.rpo_measured_s is None
    assert tier.gbt20988_level_achieved is None
    assert {m.objective for m in tier.missed} == {"RPO", "level"}
    assert next(m for m in tier.missed if m.objective == "RPO").reason == "not measured"
    assert not tier.passed and not report.passed
    assert junit_cases(report)["gold RPO"] == "RPO not measured"


# --- a DR line cut: at risk and catch-up -------------------------------------------------------------


def test_a_cut_dr_line_reports_its_data_at_risk_and_catch_up_per_workload_tier_and_fault() -> None:
    """Two gold canaries in qd-a; qd-a's DR line is cut at the warm-up's end (60 s) for 100 s.

    w-gold-0's copy last shipped 20 s before the cut, w-gold-1's at the cut: just before the line
    comes back (160 s) they lack writes from 120 s and 100 s back. w-gold-0 catches up 30 s after
    the restore, w-gold-1 45 s after it; the engine sees it at its next tick (a write every second
    at x.844 s): 30.844 s and 45.844 s. The fault's and the tier's figures are the worst of them."""
    world = ScriptedPlatform()
    moments: dict[str, float] = {}
    since = {"w-gold-0": -20.0, "w-gold-1": 0.0}
    takes = {"w-gold-0": 30.0, "w-gold-1": 45.0}

    def inject(fault: drills.AnyScenario) -> list[str]:
        moments["cut"] = world.clock.now()
        moments["restored"] = moments["cut"] + 100
        return ["link-cut:1"]

    def pending_since(workload: str, now: float) -> float | None:
        if now >= moments["restored"] + takes[workload]:
            return None
        return moments["cut"] + since[workload]

    world.inject = inject  # type: ignore[method-assign]
    world.pending_since = pending_since
    report = run(
        world,
        plan(
            scenario={"kind": "cut-dr-link", "center": "qd-a", "restore_after_s": 100},
            canary={"writes_per_s": 1, "warmup_s": 60, "workloads_per_tier": 2},
        ),
    )

    assert moments["cut"] == START + 60
    figures = {w.workload_id: (w.dr_exposure_s, w.catch_up_s, w.catch_up_allowed_s) for w in report.workloads}
    assert figures == {"w-gold-0": (120.0, 30.844, 120.0), "w-gold-1": (100.0, 45.844, 120.0)}
    (tier,) = report.tiers
    assert (tier.dr_exposure_s, tier.catch_up_s, tier.catch_up_allowed_s) == (120.0, 45.844, 120.0)
    assert (tier.writes_lost, tier.rpo_measured_s, tier.rto_measured_s) == (0, 0.0, 0.0)
    (cut,) = report.faults
    assert (cut.injected_offset_s, cut.restored_offset_s) == (60.0, 160.0)
    assert (cut.workloads_hit, cut.dr_exposure_s, cut.catch_up_s) == (2, 120.0, 45.844)
    assert report.passed

    rows = {row[0]: row for row in drill_formats.fault_rows(report)}
    assert rows["0"][2:7] == ["60", "160", "2", "120", "45.844"]
    shown = console_text(report)
    (row,) = [line for line in shown.splitlines() if "│ cut-dr-link │" in line]
    assert [cell.strip() for cell in row.strip("│").split("│")] == [
        "0",
        "cut-dr-link",
        "60",
        "160",
        "2",
        "120",
        "45.8",
    ]


def test_an_rto_missed_by_less_than_a_second_does_not_read_as_met_on_the_console() -> None:
    """A failover of 900.4 s against gold's 900 s fails; the console's cell must not read
    ``900/900`` beside FAILED, but what report.json holds."""
    world = ScriptedPlatform()
    world.recovery_takes_s = 900.4
    report = run(world, plan())

    (tier,) = report.tiers
    assert (tier.rto_measured_s, tier.rto_target_s) == (900.4, 900.0)
    assert [m.objective for m in tier.missed] == ["RTO"]
    assert not report.passed
    shown = console_text(report)
    assert "900/900" not in shown
    assert shown.count("900.4/900") == 2  # the tier and its workload
    assert drill_views.pair(120.0, 120.0) == "120/120"
    assert drill_views.pair(899.6, 900.0) == "899.6/900"  # a figure apart from its target looks apart
    assert drill_views.pair(1000.0, 900.0) == "1000/900"


def test_a_link_fault_that_struck_with_a_loss_hits_only_the_copies_crossing_it() -> None:
    """The management link to qd-a is degraded at the warm-up's end, and qd-a is lost at the same
    instant. No canary's copy crosses a control link: the degrade hit none; the loss hit the
    gold canary."""
    world = ScriptedPlatform()
    copies = world.copies_across

    def copies_across(ids: Sequence[str], *, link: tuple[str, str]) -> set[str]:
        return set() if "mgmt" in link else copies(ids, link=link)

    world.copies_across = copies_across  # type: ignore[method-assign]
    report = run(
        world,
        plan(
            scenario={
                "kind": "degrade-link",
                "between": ["mgmt", "qd-a"],
                "factor": 10,
                "restore_after_s": 60,
            },
            faults=[{"kind": "lose-local-center", "center": "qd-a"}],
        ),
    )

    hits = {f.kind: (f.injected_offset_s, f.workloads_hit) for f in report.faults}
    assert hits == {"degrade-link": (60.0, 0), "lose-local-center": (60.0, 1)}
    assert drill_formats.fault_rows(report)[0][4] == "0"
