"""Recovery runs (failover, failback) and drill runs, persisted step by step; placement homes.

Invariants: a run's ``plan`` is fixed when it starts; each completed step is one
row of ``recovery_steps`` (its outcome and time), written once and never changed,
so a process killed mid-run resumes at the first step without a row, and recording
a step costs the same however long the plan is; a drill run keeps its full report.
A run names who started it and the process running it (``owner``, with the wall-clock
time of its last sign of life in ``heartbeat_at``), so a run whose process died can be
told from one still going. ``placement_homes`` keeps the role each placement of a
workload had before its first failover, written once, so failback knows the way home.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import states
from cloudctl.store import schema

UNFINISHED = [state.value for state in states.UNFINISHED_RUN_STATES]


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
    started_by: str = ""
    owner: str = ""
    """``host:pid`` of the process running the run ("" while none does)."""
    heartbeat_at: float | None = None
    """Wall-clock time of the owner's last sign of life (its start, then with a step at most every
    ``failover.BEAT_EVERY_S``)."""


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
    if steps and row.state != states.RunState.DONE:
        # Unfinished: what the finished steps did, gathered from their own records.
        subjects = {str(step["id"]): str(step.get("workload_id", "")) for step in row.plan}
        workloads: dict[str, Any] = {}
        hooks: list[dict[str, Any]] = []
        for step in steps:
            subject = subjects.get(str(step["id"]), "")
            if subject:
                workloads.setdefault(subject, {}).update(step["outcome"])
            elif "hook" in step["outcome"]:
                hooks.append({"step": step["id"], **step["outcome"]})
        result["workloads"] = workloads
        result["hooks"] = hooks
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
        started_by=row.started_by,
        owner=row.owner,
        heartbeat_at=None if row.heartbeat_at is None else float(row.heartbeat_at),
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


def list_runs(
    tx: sa.Connection, *, states: list[str] | None = None, kind: str | None = None, limit: int = 100
) -> list[RecoveryRun]:
    """Newest first."""
    table = schema.recovery_runs
    query = sa.select(table).order_by(table.c.started_at.desc(), table.c.id.desc()).limit(limit)
    if states is not None:
        query = query.where(table.c.state.in_(states))
    if kind is not None:
        query = query.where(table.c.kind == kind)
    return [_run(row, list_steps(tx, str(row.id))) for row in tx.execute(query)]


def record_step(tx: sa.Connection, *, run_id: str, step_id: str, at: float, outcome: dict[str, Any]) -> None:
    values = {"run_id": run_id, "step_id": step_id, "at": at, "outcome": outcome}
    tx.execute(schema.recovery_steps.insert(), values)


def claim_run(tx: sa.Connection, run_id: str, *, owner: str, alive_at: float) -> None:
    """``owner`` runs the run from now on."""
    table = schema.recovery_runs
    tx.execute(table.update().where(table.c.id == run_id).values(owner=owner, heartbeat_at=alive_at))


def beat(tx: sa.Connection, run_id: str, *, alive_at: float) -> None:
    table = schema.recovery_runs
    tx.execute(table.update().where(table.c.id == run_id).values(heartbeat_at=alive_at))


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


def get_drill_run(tx: sa.Connection, run_id: str, *, for_update: bool = False) -> DrillRun:
    query = sa.select(schema.drill_runs).where(schema.drill_runs.c.id == run_id)
    row = tx.execute(query.with_for_update() if for_update else query).first()
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
    """Unfinished (running, paused, interrupted) failover or failback runs leaving or entering ``center``."""
    return [
        run
        for run in list_runs(tx, states=UNFINISHED, limit=1000)
        if center in run.from_center.split(",") or run.to_center == center
    ]


def record_homes(tx: sa.Connection, homes: dict[str, dict[str, str]]) -> None:
    """Remember ``{workload: {center: role}}`` for the workloads that have no home recorded yet."""
    if not homes:
        return
    table = schema.placement_homes
    known = {
        str(row.workload_id)
        for row in tx.execute(sa.select(table.c.workload_id).where(table.c.workload_id.in_(list(homes))))
    }
    rows = [
        {"workload_id": workload_id, "center": center, "role": role}
        for workload_id, roles in sorted(homes.items())
        if workload_id not in known
        for center, role in sorted(roles.items())
    ]
    if rows:
        tx.execute(table.insert(), rows)


def homes_of(tx: sa.Connection, workload_ids: list[str] | None = None) -> dict[str, dict[str, str]]:
    """``{workload: {center: role}}`` of the workloads with a recorded home (of all, or of these)."""
    table = schema.placement_homes
    query = sa.select(table)
    if workload_ids is not None:
        query = query.where(table.c.workload_id.in_(workload_ids))
    homes: dict[str, dict[str, str]] = {}
    for row in tx.execute(query):
        homes.setdefault(str(row.workload_id), {})[str(row.center)] = str(row.role)
    return homes
