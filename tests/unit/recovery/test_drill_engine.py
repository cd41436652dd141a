"""The drill engine audited: scripted worlds whose answers are known, and reports that must say exactly that.

A ``ScriptedPlatform`` stands for the services: it acknowledges every write at the time it
is made, keeps the write log, and answers the read-back from a script (which writes a
center holds, which workloads cannot be recovered, how long recovery takes, when copies
across a link catch up). Every figure of the report is then checked against arithmetic
done here by hand.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from rich.console import Console

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.cli import drill_views
from cloudctl.model import drill_formats, drill_report, drills
from cloudctl.model import topology as topo
from cloudctl.recovery.drills import engine, platform, progress
from tests.conftest import TOPOLOGY

START = 1_767_225_600.0
TOPOLOGY_MODEL = topo.parse(TOPOLOGY.read_text(encoding="utf-8"))


class ScriptedPlatform:
    def __init__(self) -> None:
        self.clock = clocks.ManualClock(start=START)
        self.topology = TOPOLOGY_MODEL
        self.log: dict[str, list[platform.Acknowledged]] = {}
        self.homes: dict[str, str] = {}
        self.made: list[platform.CanarySpec] = []
        self.injected: list[str] = []
        self.cleared: list[str] = []
        self.saved: list[dict[str, Any]] = []
        self.holds_until: Callable[[str, str], float] = lambda _center, _workload: float("inf")
        """The write time up to which ``center`` holds the workload's writes."""
        self.stranded: dict[str, str] = {}
        self.recovery_takes_s = 5.0
        self.pending_since: Callable[[str, float], float | None] = lambda _workload, _now: None
        self.deleted: list[str] = []
        self.plans: list[str] = []
        self.targets: dict[str, str | None] = {}
        self.management_rpo_s = 0.0
        """What the promoted management database lacked, as the RPO ``lose_management`` reports."""
        self.passes: list[bool] = []
        """Per replication pass: whether it was asked to take recovery points."""
        self.point_every_s = 30.0
        """A recovery point at the first pass at or after each multiple of this since the start."""
        self.next_point_at = START + self.point_every_s
        self.points: dict[str, list[tuple[int, float]]] = {}
        """Per workload: its recovery points in the DR center (seq, consistent_at), oldest first."""
        self.attacked: list[str] = []
        self.rewound: dict[str, tuple[float, float]] = {}
        """Per workload recovered to a point: (the point's consistent_at, when it served again)."""
        self.damaged_at_point: set[str] = set()
        """Workloads whose data at their point does not read back (a point that does not restore)."""

    def unit(self) -> contextlib.AbstractContextManager[object]:
        return contextlib.nullcontext()

    def save(self, state: object) -> None:
        assert isinstance(state, progress.Progress)
        self.saved.append(state.model_dump(mode="json"))

    def create_canaries(self, specs: Sequence[platform.CanarySpec]) -> list[platform.CanaryMade]:
        made = []
        for spec in specs:
            self.made.append(spec)
            workload_id = f"w-{spec.tier}-{spec.index}"
            self.homes[workload_id] = spec.home
            self.log[workload_id] = []
            made.append(platform.CanaryMade(workload_id, spec.tier, "psb", spec.home))
        return made

    def write(self, writes: Sequence[platform.Write]) -> list[float | None]:
        now = self.clock.now()
        for write in writes:
            sha = hashlib.sha256(write.data).hexdigest()
            self.log[write.workload_id].append(platform.Acknowledged(write.key, sha, now))
        return [now for _ in writes]

    def next_pass_at(self, workload_ids: Sequence[str], *, after: float) -> float | None:
        return None  # its copies are scripted per write, not shipped by interval

    def replicate_due(self, workload_ids: Sequence[str], *, points: bool = False) -> None:
        self.passes.append(points)
        now = self.clock.now()
        if points and now >= self.next_point_at:
            while self.next_point_at <= now:
                self.next_point_at += self.point_every_s
            for workload_id in workload_ids:
                held = [write.at for write in self.log[workload_id] if write.at <= now]
                if held:
                    self.points.setdefault(workload_id, []).append((len(held), max(held)))

    def attack(self, fault: drills.Ransomware, workload_ids: Sequence[str]) -> int:
        hit = 0
        for workload_id in workload_ids:
            keys = [write.key for write in self.log[workload_id]]
            reached = keys[: max(1, int(len(keys) * fault.fraction))] if keys else []
            self.attacked += [f"{workload_id}/{key}" for key in reached]
            hit += len(reached)
        return hit

    def inject(self, fault: drills.AnyScenario) -> list[str]:
        self.injected.append(fault.kind)
        return [f"{fault.kind}:{len(self.injected)}"]

    def clear(self, fault_ids: Sequence[str]) -> None:
        self.cleared += list(fault_ids)

    def lose_management(self, fault: drills.LoseManagementSite) -> drill_report.ManagementResult:
        self.injected.append("management")
        rpo_s = self.management_rpo_s
        return drill_report.ManagementResult(
            promoted="dezhou:5432/cloudctl",
            old_primary_fenced=True,
            acknowledged=120,
            lost=3 if rpo_s else 0,
            lost_keys=["changes:w-gold-0:58", "changes:w-gold-0:59", "changes:w-gold-0:60"] if rpo_s else [],
            rpo_s=rpo_s,
            rpo_target_s=fault.management_rpo_s,
            met=rpo_s <= fault.management_rpo_s,
        )

    def plan_failover(
        self, *, center: str, to_center: str | None, workload_ids: Sequence[str], at: float | None = None
    ) -> platform.FailoverPlanned:
        self.plans.append(center)
        self.targets[center] = to_center
        chosen: dict[str, platform.PointChosen] = {}
        if at is not None:
            for workload_id in workload_ids:
                before = [(seq, t) for seq, t in self.points.get(workload_id, []) if t <= at]
                if before:
                    seq, consistent_at = before[-1]
                    point = f"{to_center}/{workload_id}@{seq}"
                    chosen[workload_id] = platform.PointChosen(point, seq, consistent_at)
                    self.rewound[workload_id] = (consistent_at, at + self.recovery_takes_s)
        return platform.FailoverPlanned(
            run_id=f"run-{center}",
            stranded={w: why for w, why in self.stranded.items() if w in workload_ids},
            points=chosen,
        )

    def execute_failover(self, run_id: str) -> dict[str, platform.Served]:
        self.clock.advance(self.recovery_takes_s)
        center = run_id.removeprefix("run-")
        target = self.targets.get(center) or ("qd-b" if center == "qd-a" else "dz-dr")
        return {
            w: platform.Served(target, self.clock.now())
            for w, home in self.homes.items()
            if home == center and w not in self.stranded
        }

    def start_isolated_copies(
        self, workload_ids: Sequence[str], *, center: str
    ) -> dict[str, platform.Served | str]:
        return {workload_id: platform.Served(center, self.clock.now()) for workload_id in workload_ids}

    def serving_center(self, workload_id: str) -> str | None:
        return self.homes[workload_id]

    def acknowledged_writes(self, workload_id: str) -> list[platform.Acknowledged]:
        return list(self.log[workload_id])

    def holds(self, center: str, workload_id: str, writes: Sequence[platform.Acknowledged]) -> list[bool]:
        if workload_id in self.rewound:  # recovered to a point: what it held then, and writes since
            point_at, served_at = self.rewound[workload_id]
            damaged = workload_id in self.damaged_at_point
            return [(w.at <= point_at and not damaged) or w.at >= served_at for w in writes]
        until = self.holds_until(center, workload_id)
        return [write.at <= until and f"{workload_id}/{write.key}" not in self.attacked for write in writes]

    def oldest_pending_at(self, workload_ids: Sequence[str], *, link: tuple[str, str]) -> dict[str, float]:
        now = self.clock.now()
        found = {w: self.pending_since(w, now) for w in workload_ids}
        return {w: at for w, at in found.items() if at is not None}

    def copies_across(self, workload_ids: Sequence[str], *, link: tuple[str, str]) -> set[str]:
        return {w for w in workload_ids if self.homes[w] in link}

    def checks(self, phase: str) -> list[platform.Check]:
        return []

    def delete_canaries(self, workload_ids: Sequence[str]) -> list[str]:
        self.deleted += list(workload_ids)
        return []


def plan(**changes: Any) -> drills.DrillPlan:
    data: dict[str, Any] = {
        "name": "scripted",
        "scenario": {"kind": "lose-local-center", "center": "qd-a"},
        "scope": {"tiers": ["gold"]},
        "canary": {"writes_per_s": 1, "warmup_s": 60},
    }
    data.update(changes)
    result = drills.from_data(data)
    drills.check_against(result, TOPOLOGY_MODEL)
    return result


def run(world: ScriptedPlatform, drill_plan: drills.DrillPlan, **hooks: Any) -> drill_report.DrillReport:
    state = progress.Progress(run_id="drill-1", plan=drill_plan, started_at=START, clock_at=START)
    return engine.run(engine.Drill(world, state, **hooks))


def first_write_at(world: ScriptedPlatform) -> float:
    return min(write.at for writes in world.log.values() for write in writes)


# --- RPO, RTO and the level ------------------------------------------------------------------------


def test_rpo_is_the_fault_time_minus_the_oldest_lost_write() -> None:
    """Gold in qd-a; qd-b holds what was written up to 37 s after the first write; qd-a is lost
    after the 60 s warm-up. Writes before the fault: one a second for 60 s; 37 s of them survive."""
    world = ScriptedPlatform()
    world.holds_until = lambda _center, workload: first_write_at(world) + 37
    report = run(world, plan(targets={"gold": {"rpo_s": 30, "rto_s": 60}}))

    (workload,) = [w for w in report.workloads if w.home_center == "qd-a"]
    writes = world.log[workload.workload_id]
    fault_at = START + next(f.injected_offset_s for f in report.faults if f.injected_offset_s is not None)
    before = [w for w in writes if w.at <= fault_at]
    lost = [w for w in before if w.at > first_write_at(world) + 37]
    assert workload.writes_acknowledged == len(before) == 60
    assert workload.writes_lost == len(lost) == 22  # writes 38..59 s after the first one
    assert workload.rpo_measured_s == pytest.approx(fault_at - min(w.at for w in lost), abs=1e-3)
    assert workload.rto_measured_s == 5.0  # the scripted failover takes 5 s
    assert workload.recovered_in == "qd-b"
    assert workload.gbt20988_level_achieved == 5  # RPO > 0 and RTO within minutes
    assert [m.objective for m in workload.missed] == []
    assert workload.gbt20988_level_target == 5  # derived from the plan's RPO 30 s, RTO 60 s
    assert report.passed


def test_a_level_below_the_level_target_fails_even_with_rpo_and_rto_met() -> None:
    """lose-both-local as it was: RPO and RTO within the plan's overrides, level 5 against 6."""
    world = ScriptedPlatform()
    world.holds_until = lambda _center, _workload: first_write_at(world) + 50
    report = run(world, plan(targets={"gold": {"rpo_s": 120, "rto_s": 1800, "level": 6}}))
    (tier,) = report.tiers
    assert tier.rpo_measured_s is not None and tier.rpo_measured_s <= tier.rpo_target_s
    assert tier.rto_measured_s is not None and tier.rto_measured_s <= tier.rto_target_s
    assert (tier.gbt20988_level_achieved, tier.gbt20988_level_target) == (5, 6)
    assert [m.objective for m in tier.missed] == ["level"]
    assert not tier.passed and not report.passed


def test_a_tier_that_lost_every_write_earns_no_level_and_fails() -> None:
    world = ScriptedPlatform()
    world.holds_until = lambda _center, _workload: 0.0  # the copy holds nothing
    report = run(world, plan(targets={"gold": {"rpo_s": 3600, "rto_s": 3600}}))
    (tier,) = report.tiers
    assert tier.writes_lost == tier.writes_acknowledged == 60
    assert tier.all_writes_lost
    assert tier.gbt20988_level_achieved is None
    assert "data" in [m.objective for m in tier.missed]
    # The RPO says what the data shows: at least the whole span of writes, never less.
    fault_at = START + report.faults[0].injected_offset_s  # type: ignore[operator]
    assert tier.rpo_measured_s == pytest.approx(fault_at - first_write_at(world), abs=1e-3)
    assert not report.passed


@pytest.mark.parametrize(("lost_s", "passed"), [(0.0, True), (2.0, True), (7.5, False)])
def test_losing_the_management_site_promotes_first_recovers_in_dr_and_judges_its_rpo(
    lost_s: float, passed: bool
) -> None:
    world = ScriptedPlatform()
    world.management_rpo_s = lost_s
    scenario = {"kind": "lose-management-site", "recover_in": "dz-dr", "management_rpo_s": 5}
    report = run(world, plan(scenario=scenario, targets={"gold": {"rpo_s": 3600, "rto_s": 3600, "level": 1}}))
    assert world.injected == ["management", "lose-management-site"]  # the database moves first
    assert sorted(world.plans) == ["qd-a", "qd-b"]
    assert {w.recovered_in for w in report.workloads} == {"dz-dr"}
    assert report.management is not None
    assert (report.management.rpo_s, report.management.met) == (lost_s, passed)
    assert report.passed is passed
    assert "management center lost" in [step.step for step in report.timeline]
    missed = [m.subject for m in drill_formats.missed(report)]
    assert ("management state" in missed) is not passed


def test_a_stranded_workload_is_listed_with_its_reason_and_fails_the_drill() -> None:
    world = ScriptedPlatform()
    world.stranded = {"w-gold-0": "no healthy center holds a copy"}
    report = run(world, plan())
    (workload,) = report.workloads
    assert workload.stranded_reason == "no healthy center holds a copy"
    assert workload.recovered_in is None and workload.rto_measured_s is None
    assert report.tiers[0].missed[0].objective == "recovered"
    assert report.tiers[0].stranded == 1
    assert not report.passed


# --- canaries ------------------------------------------------------------------------------------


def test_active_active_canaries_alternate_between_the_local_centers() -> None:
    world = ScriptedPlatform()
    run(world, plan(scope={"tiers": ["platinum", "gold"]}, canary={"warmup_s": 60, "workloads_per_tier": 2}))
    assert [(spec.tier, spec.home) for spec in world.made] == [
        ("platinum", "qd-a"),
        ("platinum", "qd-b"),
        ("gold", "qd-a"),
        ("gold", "qd-a"),
    ]


def test_writes_per_s_is_per_workload() -> None:
    world = ScriptedPlatform()
    report = run(world, plan(canary={"writes_per_s": 4, "warmup_s": 60, "workloads_per_tier": 3}))
    assert [w.writes_acknowledged for w in report.workloads] == [240, 240, 240]


def test_the_same_seed_gives_the_same_report_and_another_seed_moves_the_writes() -> None:
    def figures(seed: int) -> tuple[Any, ...]:
        world = ScriptedPlatform()
        world.holds_until = lambda _center, _workload: START + 40
        report = run(world, plan(canary={"writes_per_s": 0.5, "warmup_s": 60, "seed": seed}))
        return tuple(
            (w.writes_acknowledged, w.writes_lost, w.rpo_measured_s, w.rto_measured_s)
            for w in report.workloads
        ), first_write_at(world)

    assert figures(7) == figures(7)
    assert figures(7)[1] != figures(8)[1]


# --- faults ----------------------------------------------------------------------------------------


def test_compound_faults_strike_at_their_offsets_after_the_warm_up() -> None:
    world = ScriptedPlatform()
    report = run(
        world,
        plan(
            scenario={"kind": "lose-local-center", "center": "qd-a", "at_s": 120},
            faults=[
                {"kind": "degrade-link", "between": ["qd-a", "qd-b"], "factor": 10, "at_s": 60},
                {"kind": "cut-dr-link", "center": "qd-b", "at_s": 180, "restore_after_s": 100},
            ],
        ),
    )
    assert world.injected == ["degrade-link", "lose-local-center", "cut-dr-link"]
    offsets = {f.kind: (f.injected_offset_s, f.restored_offset_s) for f in report.faults}
    warmed = 60.0
    assert offsets["degrade-link"][0] == pytest.approx(warmed + 60, abs=1e-3)
    assert offsets["lose-local-center"][0] == pytest.approx(warmed + 120, abs=1e-3)
    assert offsets["cut-dr-link"] == pytest.approx((warmed + 180, warmed + 280), abs=1e-3)
    assert sorted(world.cleared) == ["cut-dr-link:3", "degrade-link:1", "lose-local-center:2"]


def test_a_restored_link_measures_catch_up_and_the_data_at_risk() -> None:
    """qd-a's DR line is cut for 100 s; the copy lacks everything from the cut on until 30 s
    after the link is back."""
    world = ScriptedPlatform()
    cut: dict[str, float] = {}

    def pending_since(_workload: str, now: float) -> float | None:
        restored = cut.get("restored")
        if restored is not None and now >= restored + 30:
            return None
        return cut["at"]

    world.pending_since = pending_since

    def on_step(step: drill_report.TimelineStep) -> None:
        if step.step == "fault injected":
            cut["at"] = world.clock.now()
        if step.step == "link restored":
            cut["restored"] = world.clock.now()

    world.inject = lambda fault: (cut.setdefault("at", world.clock.now()), ["link-cut:x"])[1]  # type: ignore[method-assign]
    report = run(
        world,
        plan(
            scenario={"kind": "cut-dr-link", "center": "qd-a", "restore_after_s": 100},
            scope={"tiers": ["gold"]},
        ),
        on_step=on_step,
    )
    (tier,) = report.tiers
    assert tier.dr_exposure_s == pytest.approx(100, abs=1e-3)  # the oldest write missing is from the cut
    assert tier.catch_up_s == pytest.approx(30, abs=1.0)  # the next tick after 30 s
    assert tier.catch_up_allowed_s == 120  # gold: one 60 s interval to start, one to ship
    assert (tier.writes_lost, tier.rto_measured_s) == (0, 0.0)  # production kept serving
    assert report.passed


def test_catch_up_slower_than_the_tier_allows_fails() -> None:
    world = ScriptedPlatform()
    world.pending_since = lambda _workload, _now: START  # never catches up
    report = run(world, plan(scenario={"kind": "cut-dr-link", "center": "qd-a", "restore_after_s": 60}))
    (tier,) = report.tiers
    assert tier.catch_up_s is None
    assert [m.objective for m in tier.missed] == ["catch-up"]
    assert not report.passed


# --- resume ----------------------------------------------------------------------------------------


def test_a_drill_stopped_after_its_fault_resumes_from_its_save_without_repeating_anything() -> None:
    class Stopped(BaseException):
        pass

    world = ScriptedPlatform()

    def stop_after_fault(step: drill_report.TimelineStep) -> None:
        if step.step == "fault injected":
            raise Stopped

    with pytest.raises(Stopped):
        run(world, plan(), on_step=stop_after_fault)
    saved = progress.Progress.model_validate(world.saved[-1])
    assert saved.faults[0].injected_at is not None
    assert world.deleted == []  # a stopped drill is not cleaned up: it resumes

    world.clock = clocks.ManualClock(start=saved.clock_at)
    report = engine.run(engine.Drill(world, saved))
    assert world.injected == ["lose-local-center"]  # not injected again
    assert [spec.index for spec in world.made] == [0]  # no second canary
    assert world.plans == ["qd-a"]  # one failover run
    assert report.workloads[0].recovered_in == "qd-b"
    assert world.deleted == ["w-gold-0"]


def test_a_drill_stopped_in_the_middle_of_its_warm_up_writes_resumes_them_on_schedule(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopped at its first save inside the warm-up's writes, the resumed drill makes the rest:
    the same writes at the same times as a drill never stopped, none twice, none skipped."""

    class Stopped(BaseException):
        pass

    monkeypatch.setattr(engine, "WRITES_PER_UNIT", 10)  # a save every 10 ticks of the warm-up
    two_canaries = plan(canary={"writes_per_s": 1, "warmup_s": 60, "workloads_per_tier": 2})
    whole = ScriptedPlatform()
    run(whole, two_canaries)

    world = ScriptedPlatform()

    def stop_inside_the_warm_up(state: object) -> None:
        ScriptedPlatform.save(world, state)
        if world.saved[-1]["phase"] == "prepare" and world.saved[-1]["sequence"] > 0:
            raise Stopped

    world.save = stop_inside_the_warm_up  # type: ignore[method-assign]
    with pytest.raises(Stopped):
        run(world, two_canaries)
    saved = progress.Progress.model_validate(world.saved[-1])
    assert 0 < saved.sequence < 120  # part of the warm-up's writes made

    world.save = lambda state: ScriptedPlatform.save(world, state)  # type: ignore[method-assign]
    world.clock = clocks.ManualClock(start=saved.clock_at)
    report = engine.run(engine.Drill(world, saved))
    assert world.log == whole.log
    assert [w.writes_acknowledged for w in report.workloads] == [60, 60]
    assert [spec.index for spec in world.made] == [0, 1]  # no second set of canaries


def test_a_drill_that_fails_cleans_up_and_raises() -> None:
    world = ScriptedPlatform()

    def broken(**_kwargs: Any) -> platform.FailoverPlanned:
        raise RuntimeError("failover service down")

    world.plan_failover = broken  # type: ignore[assignment,method-assign]
    with pytest.raises(RuntimeError):
        run(world, plan())
    assert world.deleted == ["w-gold-0"]
    assert world.cleared == ["lose-local-center:1"]


# --- ransomware ------------------------------------------------------------------------------------


def ransomware_plan(**scenario: Any) -> drills.DrillPlan:
    """Gold in qd-a, a write every 5 s, a 60 s warm-up, the attack 45 s later (105 s after the start)."""
    return plan(
        name="ransomware",
        scenario={"kind": "ransomware", "at_s": 45, **scenario},
        canary={"writes_per_s": 0.2, "warmup_s": 60},
        targets={"gold": {"rpo_s": 60, "rto_s": 60}},
    )


def test_ransomware_recovers_to_the_newest_point_before_the_attack_and_says_what_that_lost() -> None:
    """The plan's seed puts the first write 4.222 s after the start: writes at 4.222, 9.222, …
    (start-relative). Passes run at each write and at the warm-up's end (60); a point is taken
    at the first pass at or after every 30 s: at 34.222 (7th write), at 60 (holding the 12th,
    written at 59.222) and at 94.222 (19th); the attack strikes at 105. Before the attack 21
    writes were acknowledged (up to 104.222); the point at 94.222 holds 19 of them: 2 writes
    given up, and 105 − 94.222 = 10.778 s."""
    world = ScriptedPlatform()
    report = run(world, ransomware_plan())

    first = first_write_at(world)
    assert first - START == pytest.approx(4.222, abs=1e-6)
    attacked_at = START + 105
    assert report.scenario == "ransomware"
    assert report.faults[0].injected_offset_s == 105
    assert world.plans == ["qd-a"] and world.targets == {"qd-a": "dz-dr"}
    assert world.points["w-gold-0"] == [(7, first + 30), (12, first + 55), (19, first + 90)]
    assert len(world.attacked) == 21  # every key acknowledged before the attack

    assert report.ransomware is not None
    assert report.ransomware.mode == "corrupt"
    assert report.ransomware.keys_attacked == 21
    assert report.ransomware.attacked_at == clocks.isoformat(attacked_at)
    (point,) = report.ransomware.workloads
    assert point.point == "dz-dr/w-gold-0@19"
    assert point.point_seq == 19
    assert point.consistent_at == clocks.isoformat(first + 90)
    assert point.data_lost_s == 10.778
    assert (point.writes_to_point, point.writes_lost) == (19, 2)
    assert point.intact and point.recovered_in == "dz-dr"
    assert report.ransomware.passed

    # The usual figures agree: the two writes after the point are lost where it serves now.
    (workload,) = report.workloads
    assert (workload.writes_acknowledged, workload.writes_lost) == (21, 2)
    assert workload.rpo_measured_s == 5.778  # 105 − 99.222: the oldest write given up
    assert workload.rto_measured_s == 5.0
    assert report.passed
    assert "data attacked" in [step.step for step in report.timeline]
    # Every pass of a ransomware drill takes points.
    assert world.passes and all(world.passes)

    markdown = drill_formats.to_markdown(report)
    assert "## Recovery points" in markdown and "dz-dr/w-gold-0@19" in markdown
    assert "dz-dr/w-gold-0@19" in drill_formats.to_html(report)
    assert b"recovery point" in drill_formats.junit_xml(report)
    console = Console(width=120, record=True)
    for renderable in drill_views.render_console(report):
        console.print(renderable)
    shown = console.export_text()
    assert "dz-dr/w-gold-0@19" in shown and "ransomware: corrupt at" in shown


def test_ransomware_deleting_a_fraction_hits_the_oldest_keys() -> None:
    world = ScriptedPlatform()
    report = run(world, ransomware_plan(mode="delete", fraction=0.5))
    assert report.ransomware is not None
    assert report.ransomware.mode == "delete"
    assert report.ransomware.keys_attacked == 10  # half of 21, the oldest
    assert world.attacked == [f"w-gold-0/canary/{n:08d}" for n in range(1, 11)]
    assert report.ransomware.workloads[0].point == "dz-dr/w-gold-0@19"


def test_a_point_that_does_not_read_back_fails_the_ransomware_drill() -> None:
    world = ScriptedPlatform()
    world.damaged_at_point.add("w-gold-0")
    report = run(world, ransomware_plan())
    assert report.ransomware is not None
    (point,) = report.ransomware.workloads
    assert point.point == "dz-dr/w-gold-0@19" and not point.intact
    assert not report.ransomware.passed and not report.passed
    assert "workload w-gold-0" in [m.subject for m in drill_formats.missed(report)]


def test_ransomware_before_any_point_fails_the_drill() -> None:
    """Points every 200 s: none before the attack at 105 s, so nothing to go back to."""
    world = ScriptedPlatform()
    world.point_every_s = 200.0
    world.next_point_at = START + 200.0
    report = run(world, ransomware_plan())
    assert report.ransomware is not None
    (point,) = report.ransomware.workloads
    assert point.point is None and point.reason
    assert not report.passed


def test_a_drill_without_ransomware_takes_no_points() -> None:
    world = ScriptedPlatform()
    report = run(world, plan())
    assert world.passes and not any(world.passes)
    assert report.ransomware is None and world.points == {}


def test_ransomware_is_a_plans_only_fault() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        plan(
            scenario={"kind": "ransomware"},
            faults=[{"kind": "cut-dr-link", "at_s": 10}],
        )
    assert caught.value.field == "faults[0].kind"
    with pytest.raises(errors.InvalidInput) as caught:
        plan(scenario={"kind": "ransomware", "fraction": 0})
    assert caught.value.field == "scenario.fraction"


@pytest.mark.parametrize("stop_at", ["fault injected", "data attacked", "recovery of qd-a to "])
def test_a_ransomware_drill_stopped_mid_recovery_resumes_without_a_second_attack_or_plan(
    stop_at: str,
) -> None:
    class Stopped(BaseException):
        pass

    world = ScriptedPlatform()

    def stop(step: drill_report.TimelineStep) -> None:
        if step.step.startswith(stop_at):
            raise Stopped

    with pytest.raises(Stopped):
        run(world, ransomware_plan(), on_step=stop)
    saved = progress.Progress.model_validate(world.saved[-1])
    world.clock = clocks.ManualClock(start=saved.clock_at)
    report = engine.run(engine.Drill(world, saved))

    assert len(world.attacked) == 21  # attacked once
    assert world.plans == ["qd-a"]  # one failover run
    assert report.ransomware is not None
    (point,) = report.ransomware.workloads
    assert (point.point, point.data_lost_s, point.writes_lost) == ("dz-dr/w-gold-0@19", 10.778, 2)
    assert report.passed
