"""What the ``drill`` commands print as JSON: plans, runs and their figures (pydantic models).

Kept apart from the commands so that ``cloudctl --help`` does not build them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class TierFigures(BaseModel):
    tier: str
    rpo_target_s: float | None
    rpo_measured_s: float | None
    rto_target_s: float | None
    rto_measured_s: float | None
    gbt20988_level_achieved: int | None
    passed: bool | None


class RunPublic(BaseModel):
    id: str
    plan: str
    scenario: str
    state: str
    passed: bool | None
    started_at: str
    finished_at: str | None
    tiers: list[TierFigures]


class PlanPublic(BaseModel):
    name: str
    path: str
    description: str
    scenario: dict[str, Any]
    scope: dict[str, Any]
    schedule: str | None
    next_run_at: str | None
    last_run: RunPublic | None


class TargetPublic(BaseModel):
    tier: str
    rpo_target_s: float
    rto_target_s: float
    gbt20988_level_target: int
    overridden: bool


class PlanDetail(BaseModel):
    path: str
    plan: dict[str, Any]
    effective_targets: list[TargetPublic]


class DuePlan(BaseModel):
    name: str
    path: str
    schedule: str
    fell_due_at: str
    last_run_at: str | None
