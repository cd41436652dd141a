"""Recovery runs (failover, failback) and drill runs, persisted step by step.

Invariants: a run's ``plan`` is fixed when it starts; each completed step is one
row of ``recovery_steps`` (its outcome and time), written once and never changed,
so a process killed mid-run resumes at the first step without a row, and recording
a step costs the same however long the plan is; a drill run keeps its full report.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.store import schema


@dataclasses.dataclass(frozen=True)
class RecoveryRun:
    id: str
    kind: str
    mode: str
    from_center: str
    to_center: str | None
    scope: dict[str, Any]
    state: str
    plan: list[dict[str, Any]]
    progress: list[dict[str, Any]]
    result: dict[str, Any]
    started_at: float
    finished_at: float | None


@dataclasses.dataclass(frozen=True)
class DrillRun:
    id: str
    plan: str
    scenario: str
    state: str
    passed: bool | None
    report: dict[str, Any]
    started_at: float
    finished_at: float | None


def _run(row: Any, steps: list[dict[str, Any]]) -> RecoveryRun:
    result = dict(row.result)
    if steps and row.state == "running":
        workloads: dict[str, Any] = {}
        for step in steps:
            workloads.setdefault(str(step["id"]).split(":")[1], {}).update(step["outcome"])
        result["workloads"] = workloads
    return RecoveryRun(
        id=row.id,
        kind=row.kind,
        mode=row.mode,
        from_center=row.from_center,
        to_center=row.to_center,
        scope=dict(row.scope),
        state=row.state,
        plan=list(row.plan),
        progress=[{"id": step["id"], "at": step["at"]} for step in steps],
        result=result,
        started_at=float(row.started_at),
        finished_at=None if row.finished_at is None else float(row.finished_at),
    )


def insert_run(tx: sa.Connection, run: RecoveryRun) -> RecoveryRun:
    tx.execute(schema.recovery_runs.insert().values(**dataclasses.asdict(run)))
    return run


def get_run(tx: sa.Connection, run_id: str, *, for_update: bool = False) -> RecoveryRun:
    query = sa.select(schema.recovery_runs).where(schema.recovery_runs.c.id == run_id)
    if for_update:
        query = query.with_for_update()
    row = tx.execute(query).first()
    if row is None:
        raise errors.NotFound(f"no recovery run {run_id!r}", field="run")
    return _run(row, list_steps(tx, run_id))


def list_runs(tx: sa.Connection, *, states: list[str] | None = None, limit: int = 100) -> list[RecoveryRun]:
    query = sa.select(schema.recovery_runs).order_by(schema.recovery_runs.c.started_at.desc()).limit(limit)
    if states is not None:
        query = query.where(schema.recovery_runs.c.state.in_(states))
    return [_run(row, list_steps(tx, str(row.id))) for row in tx.execute(query)]


def record_step(tx: sa.Connection, *, run_id: str, step_id: str, at: float, outcome: dict[str, Any]) -> None:
    values = {"run_id": run_id, "step_id": step_id, "at": at, "outcome": outcome}
    tx.execute(schema.recovery_steps.insert(), values)


def list_steps(tx: sa.Connection, run_id: str) -> list[dict[str, Any]]:
    """Completed steps of a run, in the order they completed: ``{id, at, outcome}``."""
    rows = tx.execute(
        sa.select(schema.recovery_steps)
        .where(schema.recovery_steps.c.run_id == run_id)
        .order_by(schema.recovery_steps.c.at, schema.recovery_steps.c.step_id)
    )
    return [{"id": row.step_id, "at": float(row.at), "outcome": dict(row.outcome)} for row in rows]


def update_run(tx: sa.Connection, run_id: str, **values: Any) -> RecoveryRun:
    tx.execute(schema.recovery_runs.update().where(schema.recovery_runs.c.id == run_id).values(**values))
    return get_run(tx, run_id)


def _drill(row: Any) -> DrillRun:
    return DrillRun(
        id=row.id,
        plan=row.plan,
        scenario=row.scenario,
        state=row.state,
        passed=None if row.passed is None else bool(row.passed),
        report=dict(row.report),
        started_at=float(row.started_at),
        finished_at=None if row.finished_at is None else float(row.finished_at),
    )


def insert_drill_run(tx: sa.Connection, run: DrillRun) -> DrillRun:
    tx.execute(schema.drill_runs.insert().values(**dataclasses.asdict(run)))
    return run


def get_drill_run(tx: sa.Connection, run_id: str) -> DrillRun:
    row = tx.execute(sa.select(schema.drill_runs).where(schema.drill_runs.c.id == run_id)).first()
    if row is None:
        raise errors.NotFound(f"no drill run {run_id!r}", field="run")
    return _drill(row)


def update_drill_run(tx: sa.Connection, run_id: str, **values: Any) -> DrillRun:
    tx.execute(schema.drill_runs.update().where(schema.drill_runs.c.id == run_id).values(**values))
    row = tx.execute(sa.select(schema.drill_runs).where(schema.drill_runs.c.id == run_id)).first()
    if row is None:
        raise errors.NotFound(f"no drill run {run_id!r}", field="run")
    return _drill(row)


def list_drill_runs(tx: sa.Connection, *, plan: str | None = None, limit: int = 100) -> list[DrillRun]:
    query = sa.select(schema.drill_runs).order_by(schema.drill_runs.c.started_at.desc()).limit(limit)
    if plan is not None:
        query = query.where(schema.drill_runs.c.plan == plan)
    return [_drill(row) for row in tx.execute(query)]


def latest_drill_runs(tx: sa.Connection) -> list[DrillRun]:
    """The newest finished run of each plan."""
    runs = list_drill_runs(tx, limit=1000)
    latest: dict[str, DrillRun] = {}
    for run in runs:
        if run.finished_at is not None and run.plan not in latest:
            latest[run.plan] = run
    return list(latest.values())


def lock_center(tx: sa.Connection, center: str) -> None:
    """Serialise recovery decisions about one center (the row of the center, locked for update)."""
    tx.execute(
        sa.select(schema.centers.c.name).where(schema.centers.c.name == center).with_for_update()
    ).first()


def running_for_center(tx: sa.Connection, center: str) -> list[RecoveryRun]:
    """Unfinished failover or failback runs that leave or enter ``center``."""
    return [
        run
        for run in list_runs(tx, states=["running"], limit=1000)
        if center in run.from_center.split(",") or run.to_center == center
    ]
