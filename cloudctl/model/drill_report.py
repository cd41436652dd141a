"""The drill report: what a drill measured, against which targets — the ``report.json`` contract.

Invariants: every figure is measured, never copied from a target; ``passed`` is
true only when every workload's and every tier's measured RPO and RTO are within
their targets (and the pre/post checks passed); ``gbt20988_level_achieved`` is the
highest level whose bounds contain both measured values (``None``: none does).
Field names are a public contract (DESIGN.md): add fields, never rename them.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class TimelineStep(BaseModel):
    at: str
    """ISO 8601, UTC."""
    offset_s: float
    """Seconds since the drill started (simulated or real)."""
    step: str
    detail: str = ""


class Objectives(BaseModel):
    rpo_target_s: float
    rto_target_s: float
    rpo_measured_s: float | None
    """``None`` when nothing was measured (no acknowledged write before the fault)."""
    rto_measured_s: float | None
    """``None`` when the workloads never served again within the drill."""
    writes_acknowledged: int
    writes_lost: int
    gbt20988_level_achieved: int | None
    passed: bool


class WorkloadResult(Objectives):
    workload_id: str
    department: str
    tier: str
    recovered_in: str | None
    """The center that served the workload after recovery."""


class TierResult(Objectives):
    tier: str
    workloads: int
    gbt20988_level_target: int


class CheckResult(BaseModel):
    name: str
    phase: str
    """``pre`` or ``post``."""
    passed: bool
    detail: str = ""


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
