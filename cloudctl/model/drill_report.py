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
workload passed, and every pre/post check passed.

Invariants: every figure is measured, never copied from a target;
``gbt20988_level_achieved`` is the highest level whose bounds contain both measured
values, ``None`` when none does or when every write was lost. Field names are a public
contract (DESIGN.md): add fields, never rename them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, Field

OBJECTIVES = ("RPO", "RTO", "level")
"""Objectives judged for every tier and workload; ``catch-up``, ``recovered`` and ``data``
are judged too where they apply."""


class TimelineStep(BaseModel):
    at: str
    """ISO 8601, UTC."""
    offset_s: float
    """Seconds since the drill started (simulated or real)."""
    step: str
    detail: str = ""
    phase: str = ""
    """The engine phase the step belongs to (prepare, warm-up, faults, recover, measure, clean-up)."""


class Miss(BaseModel):
    """One objective not met, in words and figures."""

    objective: str
    """``RPO``, ``RTO``, ``level``, ``catch-up``, ``recovered`` or ``data``."""
    measured: float | None
    target: float | None
    reason: str


class Figures(BaseModel):
    """What a drill measured for one workload or one tier, beside its targets."""

    rpo_target_s: float
    rto_target_s: float
    rpo_measured_s: float | None
    """Fault time minus the write time of the oldest acknowledged write lost; 0 when none was;
    ``None`` when nothing was measured (no acknowledged write before the fault)."""
    rto_measured_s: float | None
    """Fault to serving again; ``None`` when the workloads never served again within the drill."""
    writes_acknowledged: int
    writes_lost: int
    gbt20988_level_target: int = 0
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
    gbt20988_level_achieved: int | None
    all_writes_lost: bool = False
    missed: list[Miss] = Field(default_factory=list)
    passed: bool


class WorkloadResult(Objectives):
    workload_id: str
    department: str
    tier: str
    home_center: str | None = None
    """The center the canary was written in before the faults."""
    recovered_in: str | None
    """The center that served the workload after recovery (or held its isolated test copy)."""
    stranded_reason: str | None = None


class TierResult(Objectives):
    tier: str
    workloads: int


class NotMeasured(BaseModel):
    tier: str
    reason: str


class CheckResult(BaseModel):
    name: str
    phase: str
    """``pre`` or ``post``."""
    passed: bool
    detail: str = ""
    """A short message (one line), never a command's raw output."""


class FaultResult(BaseModel):
    """One fault of the plan and what it did."""

    index: int
    kind: str
    summary: str
    injected_offset_s: float | None
    restored_offset_s: float | None = None
    workloads_hit: int = 0
    """Canaries that had to be recovered because of it (losses), or whose copies crossed it (links)."""
    dr_exposure_s: float | None = None
    catch_up_s: float | None = None
    write_latency_s: float = 0.0
    """The longest a round of canary writes took to be acknowledged while this fault was active
    (a degraded synchronous link shows here)."""


class DrillReport(BaseModel):
    plan: str
    description: str = ""
    scenario: str
    started_at: str
    finished_at: str
    simulated_time: bool
    passed: bool
    tiers: list[TierResult]
    workloads: list[WorkloadResult]
    checks: list[CheckResult] = Field(default_factory=list)
    timeline: list[TimelineStep]
    run_id: str = ""
    faults: list[FaultResult] = Field(default_factory=list)
    tiers_not_measured: list[NotMeasured] = Field(default_factory=list)
    seed: int = 0


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
