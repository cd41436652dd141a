"""The drill report: what a drill measured, against which targets — the ``report.json`` contract.

The one rule that decides pass or fail lives here (``judge``): a workload or a tier
passes only when

- it was recovered (a workload nobody could recover is *stranded*),
- it lost fewer than all of its acknowledged writes (a copy that holds none of them
  proves no recovery point, so its RPO is only known to exceed the warm-up),
- measured RPO ≤ RPO target and measured RTO ≤ RTO target,
- the GB/T 20988 level achieved ≥ the level target shown beside it,
- and, after a link fault was restored, its copies caught up within what the tier allows.

Every objective missed is a ``Miss`` in the result; ``passed`` is true exactly when
there is none. A drill passes when it measured at least one tier, every tier and every
workload passed, and every pre/post check passed; a drill that lost the management site
also needs its management state within its RPO, and a ransomware drill every canary back
to a recovery point before the attack with its data there intact (``RansomwareResult``).

Invariants: every figure is measured, never copied from a target;
``gbt20988_level_achieved`` is the highest level whose bounds contain both measured
values, ``None`` when none does or when every write was lost. Field names are a public
contract (DESIGN.md): add fields, never rename them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

OBJECTIVES = ("RPO", "RTO", "level")
"""Objectives judged for every tier and workload; ``catch-up``, ``recovered`` and ``data``
are judged too where they apply."""


class TimelineStep(BaseModel):
    """One step of a drill as it happened: what the engine did, when, and in which phase."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    at: str
    """When the step happened, ISO 8601 UTC to the second, on the drill's clock (simulated or real)."""
    offset_s: float
    """Seconds since the drill started (simulated or real)."""
    step: str
    """What happened, in a few words, e.g. ``fault injected``, ``recovery finished``, ``measured``."""
    detail: str = ""
    """Figures and names behind the step (one line), e.g. ``#0 lose local center qd-a``; empty if none."""
    phase: str = ""
    """The engine phase the step belongs to (prepare, warm-up, faults, recover, measure, clean-up)."""


class Miss(BaseModel):
    """One objective not met, in words and figures."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    objective: str
    """``RPO``, ``RTO``, ``level``, ``catch-up``, ``recovered`` or ``data``."""
    measured: float | None
    """The figure measured (seconds, a level, or a count of workloads or writes); ``None``: not measured."""
    target: float | None
    """The figure it had to meet (seconds, a level or 0 workloads); ``None`` for ``data`` (no target)."""
    reason: str
    """The miss in words, e.g. ``measured 14.2 s > target 0 s``."""


class Figures(BaseModel):
    """What a drill measured for one workload or one tier, beside its targets."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    rpo_target_s: float
    """Recovery point objective in seconds: the tier's, or the plan's ``targets`` override."""
    rto_target_s: float
    """Recovery time objective in seconds: the tier's, or the plan's ``targets`` override."""
    rpo_measured_s: float | None
    """Fault time minus the write time of the oldest acknowledged write lost; 0 when none was;
    ``None`` when nothing was measured (no acknowledged write before the fault)."""
    rto_measured_s: float | None
    """Fault to serving again; ``None`` when the workloads never served again within the drill."""
    writes_acknowledged: int
    """Canary writes acknowledged up to the fault that moved the canary (else the end of the drill);
    a tier's is the sum over its canaries."""
    writes_lost: int
    """Of those, the writes missing or failing their checksum where the canary serves afterwards."""
    gbt20988_level_target: int = 0
    """The GB/T 20988 level (1-6) it must achieve: the tier's, or the level the plan's targets fit."""
    catch_up_s: float | None = None
    """After a link fault was restored: how long until the copies across it held every write
    acknowledged before the restore. ``None``: no link fault touched it, or never caught up."""
    catch_up_allowed_s: float | None = None
    """Set when a restored link fault touched it: the longest catch-up the tier allows."""
    dr_exposure_s: float | None = None
    """Data at risk during a link outage: the age of the oldest write the copy across the link
    lacked just before the link came back."""
    stranded: int = 0
    """Workloads that could not be recovered."""


class Objectives(Figures):
    """The figures judged (``judge``): the level they earn, every objective missed, the verdict."""

    gbt20988_level_achieved: int | None
    """The highest GB/T 20988 level whose RPO and RTO bounds contain both measured values;
    ``None`` when none does, nothing was measured or every write was lost."""
    all_writes_lost: bool = False
    """Every acknowledged write was lost: the RPO is only a lower bound and no level is earned."""
    missed: list[Miss] = Field(default_factory=list)
    """Every objective missed; empty when it passed."""
    passed: bool
    """True exactly when ``missed`` is empty."""


class WorkloadResult(Objectives):
    """One canary workload of the drill: where it lived and served, what it lost, whether it passed."""

    workload_id: str
    """The canary workload the drill made (deleted at clean-up), e.g. ``wl-001a1eaaa90283c6e1f7a``."""
    department: str
    """The org node whose quota the canary was admitted under (a department in the plan's scope)."""
    tier: str
    """The canary's protection tier (``platinum``, ``gold``, ``silver`` or ``bronze``)."""
    home_center: str | None = None
    """The center the canary was written in before the faults."""
    recovered_in: str | None
    """The center that served the workload after recovery (or held its isolated test copy)."""
    stranded_reason: str | None = None
    """Why it could not be recovered (e.g. no copy to recover from); ``None`` when it was."""


class TierResult(Objectives):
    """One tier of the drill: the worst figures of its canaries, its level and its verdict."""

    tier: str
    """The tier measured (``platinum``, ``gold``, ``silver`` or ``bronze``)."""
    workloads: int
    """How many canary workloads of the tier the drill measured."""


class NotMeasured(BaseModel):
    """A tier in the plan's scope that the drill left out, and why."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    tier: str
    """The tier left out."""
    reason: str
    """Why, e.g. ``the plan marks it 'measured: false'``."""


class CheckResult(BaseModel):
    """One pre- or post-check of the plan's steps (built-in, HTTP probe or command) and its outcome."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    name: str
    """The check's label: its ``name`` in the plan, else one made from what it checks."""
    phase: str
    """``pre`` (after the warm-up, before the faults) or ``post`` (after recovery)."""
    passed: bool
    """Whether the check passed; a failed check fails the drill."""
    detail: str = ""
    """A short message (one line), never a command's raw output."""


class FaultResult(BaseModel):
    """One fault of the plan and what it did."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    index: int
    """The fault's place in the plan: 0 is the ``scenario``, 1 and on its ``faults`` in order."""
    kind: str
    """``lose-local-center``, ``lose-both-local-centers``, ``lose-management-site``, ``cut-dr-link``,
    ``degrade-link``, ``test-failover`` or ``ransomware``."""
    summary: str
    """The fault in words, e.g. ``lose local center qd-a``."""
    injected_offset_s: float | None
    """Seconds after the drill started that it struck; ``None`` if the drill never got to it."""
    restored_offset_s: float | None = None
    """Seconds after the drill started that a link fault was restored; ``None`` for a loss."""
    workloads_hit: int = 0
    """Canaries that had to be recovered because of it (losses), or whose copies crossed it (links)."""
    dr_exposure_s: float | None = None
    """Link faults: the age in seconds of the oldest write a copy across the link lacked just before
    it came back (data at risk); ``None`` for losses."""
    catch_up_s: float | None = None
    """Link faults: seconds from the restore until every copy across the link caught up; ``None``
    for losses, or when some copy never caught up."""
    write_latency_s: float = 0.0
    """The longest a round of canary writes took to be acknowledged while this fault was active
    (a degraded synchronous link shows here)."""


class ManagementResult(BaseModel):
    """The management state after its site was lost: the DR standby promoted, and what it lacked.

    Measured in wall-clock seconds even in a drill on its own clock: the management database
    streams to its standby in real time, whatever clock the drill runs on.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    promoted: str
    """The standby promoted in the DR site (``host:port/database``); recovery ran from there."""
    old_primary_fenced: bool
    """The lost site's database was fenced: it refuses writes even if it comes back."""
    acknowledged: int
    """Management records the drill saw committed before the fault (canary requests, write log)."""
    lost: int
    """Of those, the records the promoted database lacks."""
    lost_keys: list[str]
    """The first lost records' keys (``table:key``), oldest first; at most 20."""
    rpo_s: float
    """Seconds from the first lost record's acknowledgement to the last acknowledgement (0: none lost)."""
    rpo_target_s: float
    """The plan's target for the management state's RPO (``scenario.management_rpo_s``)."""
    met: bool
    """``rpo_s`` is within ``rpo_target_s``; the drill fails otherwise."""


class PointRecovery(BaseModel):
    """One canary after a ransomware attack: the recovery point it went back to and what that lost."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    workload_id: str
    """The canary workload."""
    tier: str
    """Its tier."""
    point: str | None
    """The recovery point chosen (``<center>/<workload>@<seq>``): the newest consistent at or before
    the attack; ``None`` when the canary had none (or could not be recovered)."""
    point_seq: int | None = None
    """The point's change-log ``seq``."""
    consistent_at: str | None = None
    """The point's consistency time (the write time of the newest change it holds), ISO 8601 UTC."""
    recovered_in: str | None = None
    """The center the canary serves from after the recovery."""
    data_lost_s: float | None = None
    """The attack's time minus the point's consistency time: the seconds of writes given up."""
    writes_lost: int = 0
    """Acknowledged writes after the point and at or before the attack (given up with it)."""
    writes_to_point: int = 0
    """Acknowledged writes at or before the point: the data the recovery must hold."""
    intact: bool = False
    """Every write up to the point reads back where the canary serves, bytes as acknowledged."""
    reason: str | None = None
    """Why the canary was not recovered to a point, one line; ``None`` when it was."""


class RansomwareResult(BaseModel):
    """A ransomware drill: the attack, and each canary's recovery to the point before it.

    On the drill's clock. Passed when every canary went back to a point and reads back intact;
    the seconds and writes given up are reported, judged by the tiers' RPO like any loss.
    """

    model_config = ConfigDict(use_attribute_docstrings=True)

    attacked_at: str
    """When the attack struck (ISO 8601 UTC): the time recovery went back before."""
    mode: str
    """``corrupt`` (keys overwritten) or ``delete`` (keys deleted)."""
    keys_attacked: int
    """Canary keys overwritten or deleted, over every canary."""
    workloads: list[PointRecovery]
    """One per canary."""
    passed: bool
    """Every canary went back to a point and its data up to the point reads back intact."""


_PLATINUM: dict[str, Any] = {
    "rpo_target_s": 0.0,
    "rto_target_s": 120.0,
    "rpo_measured_s": 0.0,
    "writes_lost": 0,
    "gbt20988_level_target": 6,
    "catch_up_s": None,
    "catch_up_allowed_s": None,
    "dr_exposure_s": None,
    "stranded": 0,
    "gbt20988_level_achieved": 6,
    "all_writes_lost": False,
    "missed": [],
    "passed": True,
    "tier": "platinum",
}
_GOLD: dict[str, Any] = {**_PLATINUM, "rto_target_s": 900.0, "tier": "gold"}
_CANARY: dict[str, Any] = {"writes_acknowledged": 600, "department": "approval", "stranded_reason": None}

REPORT_EXAMPLE: dict[str, Any] = {
    "plan": "lose-qd-a",
    "description": "Lose local center qd-a; platinum and gold serve from qd-b with zero data loss.",
    "scenario": "lose-local-center",
    "started_at": "2026-11-17T18:00:04Z",
    "finished_at": "2026-11-17T18:02:33Z",
    "simulated_time": True,
    "passed": True,
    "tiers": [
        {**_PLATINUM, "rto_measured_s": 0.008, "writes_acknowledged": 1200, "workloads": 2},
        {**_GOLD, "rto_measured_s": 2.131, "writes_acknowledged": 1200, "workloads": 2},
    ],
    "workloads": [
        {
            **_PLATINUM,
            **_CANARY,
            "rto_measured_s": 0.008,
            "workload_id": "wl-001a1eaaa90283c6e1f7a",
            "home_center": "qd-a",
            "recovered_in": "qd-b",
        },
        {
            **_PLATINUM,
            **_CANARY,
            "rto_measured_s": 0.004,
            "workload_id": "wl-001a1eaaa9028d04b9e21",
            "home_center": "qd-b",
            "recovered_in": "qd-b",
        },
        {
            **_GOLD,
            **_CANARY,
            "rto_measured_s": 2.131,
            "workload_id": "wl-001a1eaaa9029a7f3c58d",
            "home_center": "qd-a",
            "recovered_in": "qd-b",
        },
        {
            **_GOLD,
            **_CANARY,
            "rto_measured_s": 2.082,
            "workload_id": "wl-001a1eaaa90295e20b6c4",
            "home_center": "qd-a",
            "recovered_in": "qd-b",
        },
    ],
    "checks": [
        {
            "name": "all four centers report up before the fault",
            "phase": "pre",
            "passed": True,
            "detail": "all 4 centers up",
        },
        {
            "name": "the audit chain is intact after the failover",
            "phase": "post",
            "passed": True,
            "detail": "9 records verified",
        },
    ],
    "timeline": [
        {
            "at": "2026-11-17T18:00:04Z",
            "offset_s": 0.0,
            "step": "drill started",
            "detail": "lose local center qd-a; scope tiers platinum, gold",
            "phase": "prepare",
        },
        {
            "at": "2026-11-17T18:00:16Z",
            "offset_s": 12.344,
            "step": "canaries ready",
            "detail": "4 canaries (1 platinum in qd-a, 1 platinum in qd-b, 2 gold in qd-a), 5 writes/s each",
            "phase": "prepare",
        },
        {
            "at": "2026-11-17T18:02:19Z",
            "offset_s": 134.96,
            "step": "warm-up done",
            "detail": "2400 writes issued to 4 canaries",
            "phase": "warm-up",
        },
        {
            "at": "2026-11-17T18:02:19Z",
            "offset_s": 134.96,
            "step": "pre-check passed",
            "detail": "all four centers report up before the fault: all 4 centers up",
            "phase": "warm-up",
        },
        {
            "at": "2026-11-17T18:02:19Z",
            "offset_s": 134.96,
            "step": "fault injected",
            "detail": "#0 lose local center qd-a",
            "phase": "faults",
        },
        {
            "at": "2026-11-17T18:02:19Z",
            "offset_s": 134.96,
            "step": "recovery of qd-a planned",
            "detail": "0 stranded",
            "phase": "faults",
        },
        {
            "at": "2026-11-17T18:02:21Z",
            "offset_s": 137.091,
            "step": "recovery finished",
            "detail": "4 recovered",
            "phase": "faults",
        },
        {
            "at": "2026-11-17T18:02:33Z",
            "offset_s": 149.091,
            "step": "measured",
            "detail": "0 of 2400 acknowledged writes lost",
            "phase": "measure",
        },
        {
            "at": "2026-11-17T18:02:33Z",
            "offset_s": 149.091,
            "step": "post-check passed",
            "detail": "the audit chain is intact after the failover: 9 records verified",
            "phase": "measure",
        },
        {
            "at": "2026-11-17T18:02:33Z",
            "offset_s": 149.151,
            "step": "cleaned up",
            "detail": "faults cleared, canary workloads deleted",
            "phase": "clean-up",
        },
    ],
    "run_id": "drill-001a1eaaa7dde4c91b0",
    "faults": [
        {
            "index": 0,
            "kind": "lose-local-center",
            "summary": "lose local center qd-a",
            "injected_offset_s": 134.96,
            "restored_offset_s": None,
            "workloads_hit": 4,
            "dr_exposure_s": None,
            "catch_up_s": None,
            "write_latency_s": 0.0,
        }
    ],
    "tiers_not_measured": [],
    "seed": 0,
}
"""A nightly ``lose-qd-a`` drill on the simulated clock that passed: no write lost, both tiers
served again from qd-b well within their RTO."""


class DrillReport(BaseModel):
    """What a drill measured against which targets, per tier and per canary workload, and its verdict:
    the ``report.json`` of a finished run (the HTML, Markdown and JUnit reports are made from it)."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [REPORT_EXAMPLE]})

    plan: str
    """The plan's name (its file's stem in ``dr/drills``), e.g. ``lose-qd-a``."""
    description: str = ""
    """The plan's description, as written in it; empty if it has none."""
    scenario: str
    """The plan's ``scenario.kind``, or ``compound`` when the plan lists more ``faults``."""
    started_at: str
    """When the drill started, ISO 8601 UTC, on the drill's clock."""
    finished_at: str
    """When the drill finished (after clean-up), ISO 8601 UTC, on the drill's clock: with
    ``simulated_time`` it is the simulated time, later than the wall clock shows."""
    simulated_time: bool
    """The drill ran on its own simulated clock (deterministic, seconds of wall time), not in real time."""
    passed: bool
    """At least one tier was measured, every tier and workload passed and every check passed."""
    tiers: list[TierResult]
    """One result per tier measured, in failover order (the tiers' ``priority``)."""
    workloads: list[WorkloadResult]
    """One result per canary workload."""
    checks: list[CheckResult] = Field(default_factory=list)
    """The plan's pre- and post-checks in the order they ran; empty when the plan has none."""
    timeline: list[TimelineStep]
    """Every step of the drill, in order."""
    run_id: str = ""
    """The drill run this report belongs to, e.g. ``drill-001a1eaaa7dde4c91b0``."""
    faults: list[FaultResult] = Field(default_factory=list)
    """Every fault of the plan: the scenario (index 0), then its ``faults`` in the plan's order."""
    tiers_not_measured: list[NotMeasured] = Field(default_factory=list)
    """Tiers in the plan's scope left out of the drill, with the reason; empty when none was."""
    seed: int = 0
    """The plan's ``canary.seed``: where in the write interval the canary writes fell."""
    management: ManagementResult | None = None
    """Drills that lose the management center's site: its state's RPO; ``None`` for the others."""
    ransomware: RansomwareResult | None = None
    """Ransomware drills: the point each canary went back to and the data that lost; ``None`` for
    the others."""


# --- the rule ----------------------------------------------------------------------------------


def judge(figures: Figures, *, level_achieved: int | None, all_writes_lost: bool) -> list[Miss]:
    """Every objective ``figures`` miss; none means passed. The only pass/fail rule."""
    missed: list[Miss] = []
    if figures.stranded:
        missed.append(
            Miss(
                objective="recovered",
                measured=float(figures.stranded),
                target=0,
                reason=f"{figures.stranded} workload(s) could not be recovered",
            )
        )
    if all_writes_lost:
        missed.append(
            Miss(
                objective="data",
                measured=float(figures.writes_lost),
                target=None,
                reason=f"lost every one of {figures.writes_acknowledged} acknowledged writes: "
                f"RPO is at least {_s(figures.rpo_measured_s)} s and no level is proven",
            )
        )
    for objective, measured, target in (
        ("RPO", figures.rpo_measured_s, figures.rpo_target_s),
        ("RTO", figures.rto_measured_s, figures.rto_target_s),
    ):
        if measured is None:
            missed.append(Miss(objective=objective, measured=None, target=target, reason="not measured"))
        elif measured > target:
            missed.append(
                Miss(
                    objective=objective,
                    measured=measured,
                    target=target,
                    reason=f"measured {_s(measured)} s > target {_s(target)} s",
                )
            )
    if level_achieved is None or level_achieved < figures.gbt20988_level_target:
        achieved = "none" if level_achieved is None else str(level_achieved)
        missed.append(
            Miss(
                objective="level",
                measured=None if level_achieved is None else float(level_achieved),
                target=float(figures.gbt20988_level_target),
                reason=f"GB/T 20988 level achieved {achieved} < target {figures.gbt20988_level_target}",
            )
        )
    if figures.catch_up_allowed_s is not None:
        allowed = figures.catch_up_allowed_s
        if figures.catch_up_s is None:
            missed.append(
                Miss(
                    objective="catch-up",
                    measured=None,
                    target=allowed,
                    reason=f"copies did not catch up after the link came back (allowed {_s(allowed)} s)",
                )
            )
        elif figures.catch_up_s > allowed:
            missed.append(
                Miss(
                    objective="catch-up",
                    measured=figures.catch_up_s,
                    target=allowed,
                    reason=f"caught up in {_s(figures.catch_up_s)} s > allowed {_s(allowed)} s",
                )
            )
    return missed


def drill_passed(
    tiers: Sequence[Objectives], workloads: Sequence[Objectives], checks: Sequence[CheckResult]
) -> bool:
    return bool(tiers) and all(t.passed for t in (*tiers, *workloads)) and all(c.passed for c in checks)


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")
