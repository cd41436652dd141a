"""DR drills as operators and CI run them: plans on disk, authorisation, audit, run and resume.

The drill itself is ``cloudctl.recovery.drills.engine`` (a table of phases); this module
binds it to the services (``_ServicePlatform``: admission, provisioning, replication,
faults, failover), checks a plan before anything starts, and keeps the run's record.

Invariants:
- a plan is refused before any run is recorded when it is invalid, names a department,
  tier or center that does not exist, or (on disk) is named unlike its file: exit 2,
  one line, nothing changed;
- a run is ``running`` only while its process lives: a drill that fails is marked
  ``failed`` (cleaned up), one that is stopped (Ctrl-C) ``interrupted``; one whose
  process was killed is shown ``interrupted`` (its owner is gone) and can be resumed;
- with ``simulated_time`` the drill runs on its own manual clock: waits (server boot,
  link transfers, replication intervals) advance it, so it is deterministic and takes
  seconds; on that clock the engine's units group its store writes into few
  transactions, and a kill loses the unit in flight whole, never half of it;
- on a topology with a real backend, a recovery (failover, isolated copy) moves that
  clock with real time as well, so its RTO counts what the real cloud took; a failover run
  resumed after a kill goes on from its last step done, never from the clock saved before it;
- every run is authorised (``drill.run``) and audited.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import logging
import secrets
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import drill_report, drills, states
from cloudctl.model import topology as topo
from cloudctl.recovery import replication as repl
from cloudctl.recovery import restore
from cloudctl.recovery.drills import checks, engine, platform, progress
from cloudctl.services import (
    audit,
    drivers,
    faults,
    identity,
    mgmt,
    provisioning,
    recovery,
    replication_points,
    status,
    workloads,
)
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import orgs, replication
from cloudctl.store import recovery as recovery_store
from cloudctl.store import requests as requests_store

OnStep = engine.OnStep

log = logging.getLogger("cloudctl.drills")


# --- plans on disk --------------------------------------------------------------------------------


def read_plan(path: Path) -> drills.DrillPlan:
    """Parse one plan file; errors name the path inside the file. Its name must be its file's."""
    text = errors.read_input_file(path, field="plan")
    plan = drills.parse(text)
    if plan.name != path.stem:
        raise errors.InvalidInput(
            f"{plan.name!r} differs from the file name {path.name!r} (a plan is named like its file)",
            field="name",
        )
    return plan


def check_plan(ctx: ctx_module.Context, plan: drills.DrillPlan) -> None:
    """Everything about a plan that can be known before it runs: topology names and, once the
    store is initialised, its departments."""
    drills.check_against(plan, ctx.topology)
    if not plan.scope.departments or not ctx.is_initialised():
        return
    with ctx.read() as tx:
        known = {node.id for node in orgs.list_nodes(tx)}
    for index, department in enumerate(plan.scope.departments):
        if department not in known:
            raise errors.InvalidInput(f"no department {department!r}", field=f"scope.departments[{index}]")


def _checked_file(ctx: ctx_module.Context, path: Path, *, name_file: bool) -> drills.DrillPlan:
    try:
        plan = read_plan(path)
        check_plan(ctx, plan)
    except errors.InvalidInput as error:
        if not name_file:
            raise
        field = f"{path}: {error.field}" if error.field else str(path)
        raise errors.InvalidInput(error.reason, field=field) from None
    return plan


def plan_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise errors.InvalidInput(f"no directory {str(directory)!r}", field="dir")
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_plans(ctx: ctx_module.Context, directory: Path) -> list[tuple[Path, drills.DrillPlan]]:
    """Every plan in ``directory``, checked; the first bad one stops with its file and field."""
    return [(path, _checked_file(ctx, path, name_file=True)) for path in plan_files(directory)]


def _is(path: Path, test: Callable[[Path], bool]) -> bool:
    """``test(path)``, false where the system cannot even look (a name too long for a file)."""
    try:
        return test(path)
    except OSError:
        return False


def resolve_plan(ctx: ctx_module.Context, reference: str, directory: Path) -> tuple[Path, drills.DrillPlan]:
    """A plan by path (``dr/drills/x.yaml``) or by name (``directory/<name>.yaml``), checked."""
    path = Path(reference)
    if path.suffix in {".yaml", ".yml"} or _is(path, Path.exists):
        return path, _checked_file(ctx, path, name_file=False)
    for candidate in (directory / f"{reference}.yaml", directory / f"{reference}.yml"):
        if _is(candidate, Path.is_file):
            return candidate, _checked_file(ctx, candidate, name_file=False)
    known = ", ".join(path.stem for path in plan_files(directory)) if directory.is_dir() else ""
    raise errors.NotFound(
        f"no drill plan {reference!r} in {directory} (known: {known or 'none'})", field="plan"
    )


class DuePlan(BaseModel):
    name: str
    path: str
    schedule: str
    fell_due_at: str
    last_run_at: str | None


def due_plans(ctx: ctx_module.Context, directory: Path, *, at: float, since: float | None) -> list[DuePlan]:
    """Plans whose schedule fired since their last run (and since ``since``)."""
    latest = latest_runs(ctx)
    due = []
    for path, plan in load_plans(ctx, directory):
        run = latest.get(plan.name)
        last_run_at = None if run is None else run.started_at_s
        fired = drills.fell_due_at(plan, at=at, last_run_at=last_run_at, since=since)
        if fired is not None and plan.schedule is not None:
            due.append(
                DuePlan(
                    name=plan.name,
                    path=str(path),
                    schedule=plan.schedule,
                    fell_due_at=clocks.isoformat(fired),
                    last_run_at=None if last_run_at is None else clocks.isoformat(last_run_at),
                )
            )
    return due


# --- runs as the CLI and API show them ---------------------------------------------------------------


class TierFigures(BaseModel):
    """One tier of a finished run in brief: RPO and RTO measured beside their targets, level, verdict."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    tier: str
    """The tier measured (``platinum``, ``gold``, ``silver`` or ``bronze``)."""
    rpo_target_s: float | None
    """Recovery point objective the tier was held to, in seconds."""
    rpo_measured_s: float | None
    """Recovery point measured, in seconds (0: no acknowledged write lost); ``None``: not measured."""
    rto_target_s: float | None
    """Recovery time objective the tier was held to, in seconds."""
    rto_measured_s: float | None
    """Fault to serving again, in seconds (the worst canary's); ``None``: never served again."""
    gbt20988_level_achieved: int | None
    """The GB/T 20988 level (1-6) the measured figures earn; ``None`` when they earn none."""
    gbt20988_level_target: int | None = None
    """The GB/T 20988 level the tier had to achieve."""
    passed: bool | None
    """Whether the tier met every objective (the report's ``missed`` lists what it did not)."""


RUN_EXAMPLE: dict[str, Any] = {
    "id": "drill-001a1eaaa7dde4c91b0",
    "plan": "lose-qd-a",
    "scenario": "lose-local-center",
    "state": states.DrillRunState.DONE,
    "passed": True,
    "started_at": "2026-11-17T18:00:04Z",
    "started_at_s": 1794938404.318,
    "finished_at": "2026-11-17T18:00:09Z",
    "error": None,
    "tiers": [
        {
            "tier": "platinum",
            "rpo_target_s": 0.0,
            "rpo_measured_s": 0.0,
            "rto_target_s": 120.0,
            "rto_measured_s": 0.008,
            "gbt20988_level_achieved": 6,
            "gbt20988_level_target": 6,
            "passed": True,
        },
        {
            "tier": "gold",
            "rpo_target_s": 0.0,
            "rpo_measured_s": 0.0,
            "rto_target_s": 900.0,
            "rto_measured_s": 2.131,
            "gbt20988_level_achieved": 6,
            "gbt20988_level_target": 6,
            "passed": True,
        },
    ],
}
"""The nightly ``lose-qd-a`` drill, done and passed (on the simulated clock: 149 s of drill in 5 s)."""


class DrillRunPublic(BaseModel):
    """One drill run: its plan, state and verdict, and per tier the RPO/RTO measured against the targets."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [RUN_EXAMPLE]})

    id: str
    """The run's id, ``drill-`` and the start time in hex milliseconds, then random hex."""
    plan: str
    """The plan's name, e.g. ``lose-qd-a``."""
    scenario: str
    """The plan's ``scenario.kind`` (e.g. ``lose-local-center``), or ``compound`` with more ``faults``."""
    state: str
    """``running``, ``done``, ``failed`` or ``interrupted``."""
    passed: bool | None
    """The verdict once ``done``; ``false`` when ``failed``; ``null`` while running or interrupted."""
    started_at: str
    """When the run started, ISO 8601 UTC."""
    started_at_s: float
    """The same instant in Unix seconds."""
    finished_at: str | None
    """When the run ended (done or failed), ISO 8601 UTC by the control plane's clock; ``null`` while
    running or interrupted. With ``simulated_time`` it is earlier than the report's ``finished_at``."""
    error: str | None = None
    """Why a ``failed`` run stopped (one line); ``null`` otherwise."""
    tiers: list[TierFigures]
    """Per tier measured; empty until the run is ``done``."""


def _state(run: recovery_store.DrillRun) -> str:
    if run.state == states.DrillRunState.RUNNING:
        owner = str((run.report.get("progress") or {}).get("owner") or "")
        if owner and recovery.owner_alive(owner) is False:  # another machine's run: taken as alive
            return states.DrillRunState.INTERRUPTED
    return run.state


def _public(run: recovery_store.DrillRun) -> DrillRunPublic:
    tiers = [
        TierFigures.model_validate({key: tier.get(key) for key in TierFigures.model_fields})
        for tier in run.report.get("tiers") or []
        if isinstance(tier, dict) and "tier" in tier
    ]
    return DrillRunPublic(
        id=run.id,
        plan=run.plan,
        scenario=run.scenario,
        state=_state(run),
        passed=run.passed,
        started_at=clocks.isoformat(run.started_at),
        started_at_s=run.started_at,
        finished_at=None if run.finished_at is None else clocks.isoformat(run.finished_at),
        error=run.report.get("error"),
        tiers=tiers,
    )


def list_runs(ctx: ctx_module.Context, *, plan: str | None = None, limit: int = 20) -> list[DrillRunPublic]:
    """Drill runs, newest first."""
    with ctx.read() as tx:
        return [_public(run) for run in recovery_store.list_drill_runs(tx, plan=plan, limit=limit)]


def latest_runs(ctx: ctx_module.Context) -> dict[str, DrillRunPublic]:
    """The newest finished run of each plan; none before ``cloudctl init``."""
    if not ctx.is_initialised():
        return {}
    with ctx.read() as tx:
        return {run.plan: _public(run) for run in recovery_store.latest_drill_runs(tx)}


DETAIL_EXAMPLE: dict[str, Any] = {**RUN_EXAMPLE, "timeline": drill_report.REPORT_EXAMPLE["timeline"]}
"""The same run, finished, with its whole timeline."""

STARTED_EXAMPLE: dict[str, Any] = {
    **RUN_EXAMPLE,
    "id": "drill-001a1ec6f9cc3e08b51",
    "state": states.DrillRunState.RUNNING,
    "passed": None,
    "started_at": "2026-11-18T02:15:00Z",
    "started_at_s": 1794968100.035,
    "finished_at": None,
    "tiers": [],
    "timeline": [
        {
            "at": "2026-11-18T02:15:00Z",
            "offset_s": 0.0,
            "step": "drill started",
            "detail": "lose local center qd-a; scope tiers platinum, gold",
            "phase": "prepare",
        }
    ],
}
"""What ``POST /v1/drills/runs`` answers: the run just recorded, its first step noted."""


class DrillRunDetail(DrillRunPublic):
    """One drill run with its timeline so far: what a client polls to follow a drill's progress."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [DETAIL_EXAMPLE, STARTED_EXAMPLE]}
    )

    timeline: list[drill_report.TimelineStep]
    """The steps so far (all of them once the run finished)."""


def read_runs(
    ctx: ctx_module.Context, *, principal: identity.Principal, plan: str | None = None, limit: int = 20
) -> list[DrillRunPublic]:
    """``list_runs`` for a principal who may run drills (the history is the sysadmin's)."""
    _authorize(ctx, principal)
    return list_runs(ctx, plan=plan, limit=limit)


def read_run(ctx: ctx_module.Context, *, principal: identity.Principal, run_id: str) -> DrillRunDetail:
    """One run with its timeline so far: what a client polls to show a drill's progress."""
    _authorize(ctx, principal)
    with ctx.read() as tx:
        run = recovery_store.get_drill_run(tx, run_id)
    saved = run.report.get("timeline") or (run.report.get("progress") or {}).get("timeline") or []
    timeline = [drill_report.TimelineStep.model_validate(step) for step in saved]
    return DrillRunDetail(**_public(run).model_dump(), timeline=timeline)


def read_report(
    ctx: ctx_module.Context, *, principal: identity.Principal, run_id: str
) -> drill_report.DrillReport:
    """The report of a finished run (a run still going, or that failed to run, has none)."""
    _authorize(ctx, principal)
    with ctx.read() as tx:
        run = recovery_store.get_drill_run(tx, run_id)
    if run.state != states.DrillRunState.DONE:
        raise errors.Conflict(f"drill run {run_id} is {_state(run)}; it has no report yet", field="run")
    return drill_report.DrillReport.model_validate(run.report)


@audit.audits_refusals(action="drill.run", target_type="Drill")
def authorize_start(ctx: ctx_module.Context, *, principal: identity.Principal) -> None:
    """May ``principal`` start a drill? Asked before a plan sent over HTTP is checked: checking it
    reads the store (its departments), which a caller who may not run drills learns nothing of."""
    _authorize(ctx, principal)


def plan_from_text(ctx: ctx_module.Context, text: str, *, file_name: str | None = None) -> drills.DrillPlan:
    """A plan sent as its YAML (by a remote client), checked as ``read_plan`` and ``check_plan`` do."""
    plan = drills.parse(text)
    stem = Path(file_name).stem if file_name else None
    if stem is not None and plan.name != stem:
        raise errors.InvalidInput(
            f"{plan.name!r} differs from the file name {file_name!r} (a plan is named like its file)",
            field="name",
        )
    check_plan(ctx, plan)
    return plan


# --- running --------------------------------------------------------------------------------------


@audit.audits_refusals(action="drill.run", target_type="Drill")
def run_drill(
    ctx: ctx_module.Context,
    *,
    plan: drills.DrillPlan,
    on_step: OnStep | None = None,
    principal: identity.Principal | None = None,
) -> drill_report.DrillReport:
    """Check the plan, record a run, run the drill end to end; the report says whether it passed."""
    return start_drill(ctx, plan=plan, on_step=on_step, principal=principal).finish()


@dataclasses.dataclass(frozen=True)
class StartedDrill:
    """A drill recorded as running and audited as started; ``finish`` runs it to its report."""

    ctx: ctx_module.Context
    run_id: str
    drill: engine.Drill
    operator: identity.Principal

    def finish(self) -> drill_report.DrillReport:
        return _run(self.ctx, self.drill, self.operator)


@audit.audits_refusals(action="drill.run", target_type="Drill")
def start_drill(
    ctx: ctx_module.Context,
    *,
    plan: drills.DrillPlan,
    on_step: OnStep | None = None,
    principal: identity.Principal | None = None,
) -> StartedDrill:
    """Check the plan, authorise, record the run and its start; the drill itself runs in ``finish``
    (the API answers with the run id in between)."""
    ctx.require_initialised()
    operator = principal or identity.local_operator("sysadmin")
    _authorize(ctx, operator)  # before the plan's departments and the standby are read
    check_plan(ctx, plan)
    for index, fault in enumerate(plan.all_faults):  # what only this management center can tell
        if isinstance(fault, drills.LoseManagementSite):
            mgmt.check_standby(ctx, field="scenario.kind" if index == 0 else f"faults[{index - 1}].kind")
    started = ctx.clock.now()
    run_id = f"drill-{int(started * 1000):013x}{secrets.token_hex(3)}"
    with ctx.transaction() as tx:
        recovery_store.insert_drill_run(
            tx,
            recovery_store.DrillRun(
                id=run_id,
                plan=plan.name,
                scenario=_scenario(plan),
                state=states.DrillRunState.RUNNING,
                passed=None,
                report={},
                started_at=started,
                finished_at=None,
            ),
        )
    state = progress.Progress(
        run_id=run_id, plan=plan, owner=recovery.owner(), started_at=started, clock_at=started
    )
    drill = engine.Drill(_ServicePlatform(ctx, run_id, plan, at=started), state, on_step)
    drill.note("drill started", f"{_summary(plan)}; scope {plan.scope.summary}")
    drill.save()
    # Recorded at the start too, so that a drill killed part-way is in the log.
    _audit(ctx, operator, run_id, plan, outcome="started", passed=None)
    return StartedDrill(ctx=ctx, run_id=run_id, drill=drill, operator=operator)


@audit.audits_refusals(action="drill.resume", target_type="DrillRun")
def resume_drill(
    ctx: ctx_module.Context,
    run_id: str,
    *,
    on_step: OnStep | None = None,
    principal: identity.Principal | None = None,
) -> drill_report.DrillReport:
    """Finish a drill that was interrupted or killed, from what it last saved.

    Canaries are not made again, no fault is injected twice, and a failover run it started
    resumes step by step.
    """
    return start_resume(ctx, run_id=run_id, on_step=on_step, principal=principal).finish()


@audit.audits_refusals(action="drill.resume", target_type="DrillRun", target="run_id")
def start_resume(
    ctx: ctx_module.Context,
    *,
    run_id: str,
    on_step: OnStep | None = None,
    principal: identity.Principal | None = None,
) -> StartedDrill:
    """Check that a drill can resume and mark it running again; ``finish`` goes on with it."""
    operator = principal or identity.local_operator("sysadmin")
    _authorize(ctx, operator)
    # Checked and claimed in one locked transaction: a second resume at the same time finds
    # the drill running in this process and is refused.
    with ctx.transaction() as tx:
        run = recovery_store.get_drill_run(tx, run_id, for_update=True)
        state = _state(run)
        if state != states.DrillRunState.INTERRUPTED:
            raise errors.Conflict(
                f"drill run {run_id} is {state}; only an interrupted drill can be resumed", field="run"
            )
        saved = run.report.get("progress")
        if not saved:
            raise errors.Conflict(f"drill run {run_id} saved no progress to resume from", field="run")
        restored = progress.Progress.model_validate(saved).model_copy(update={"owner": recovery.owner()})
        recovery_store.update_drill_run(
            tx,
            run_id,
            state=states.DrillRunState.RUNNING,
            report={"progress": restored.model_dump(mode="json")},
        )
    platform_ = _ServicePlatform(ctx, run_id, restored.plan, at=restored.clock_at)
    drill = engine.Drill(platform_, restored, on_step)
    drill.note("drill resumed", f"after {restored.phase or 'its start'}")
    drill.save()
    return StartedDrill(ctx=ctx, run_id=run_id, drill=drill, operator=operator)


def _run(
    ctx: ctx_module.Context, drill: engine.Drill, operator: identity.Principal
) -> drill_report.DrillReport:
    run_id, plan = drill.progress.run_id, drill.plan
    try:
        report = engine.run(drill)
    except Exception as error:
        reason = (
            error.one_line()
            if isinstance(error, errors.CloudctlError)
            else f"{type(error).__name__}: {error}"
        )
        _finish(
            ctx,
            run_id,
            state=states.DrillRunState.FAILED,
            passed=False,
            report={"progress": _dump(drill), "error": reason},
        )
        _audit(ctx, operator, run_id, plan, outcome="failed", passed=False)
        raise
    except BaseException:
        with contextlib.suppress(Exception):
            _finish(
                ctx,
                run_id,
                state=states.DrillRunState.INTERRUPTED,
                passed=None,
                report={"progress": _dump(drill)},
                done=False,
            )
        raise
    _finish(
        ctx,
        run_id,
        state=states.DrillRunState.DONE,
        passed=report.passed,
        report=report.model_dump(mode="json"),
    )
    _audit(
        ctx, operator, run_id, plan, outcome="success" if report.passed else "failed", passed=report.passed
    )
    return report


def _dump(drill: engine.Drill) -> object:
    return drill.progress.model_dump(mode="json")


def _finish(
    ctx: ctx_module.Context,
    run_id: str,
    *,
    state: str,
    passed: bool | None,
    report: dict[str, object],
    done: bool = True,
) -> None:
    with ctx.transaction() as tx:
        recovery_store.update_drill_run(
            tx,
            run_id,
            state=state,
            passed=passed,
            report=report,
            finished_at=ctx.clock.now() if done else None,
        )


def _authorize(ctx: ctx_module.Context, principal: identity.Principal) -> None:
    center = ctx.topology.centers_with_role(topo.CenterRole.MANAGEMENT)[0]
    identity.authorize(
        ctx,
        principal=principal,
        action="drill.run",
        resource_type="Center",
        resource_id=center.name,
        attributes={"name": center.name, "role": center.role.value, "site": center.site},
    )


def _audit(
    ctx: ctx_module.Context,
    operator: identity.Principal,
    run_id: str,
    plan: drills.DrillPlan,
    *,
    outcome: str,
    passed: bool | None,
) -> None:
    audit.record(
        ctx,
        principal=operator,
        action="drill.run",
        target_type="Drill",
        target_id=run_id,
        outcome=outcome,
        detail={"plan": plan.name, "scenario": _scenario(plan), "passed": passed},
    )


def _scenario(plan: drills.DrillPlan) -> str:
    return plan.scenario.kind if not plan.faults else "compound"


def _summary(plan: drills.DrillPlan) -> str:
    return "; then ".join(
        f"{fault.summary} at +{fault.at_s:g} s" if fault.at_s else fault.summary for fault in plan.all_faults
    )


# --- the platform the engine acts through --------------------------------------------------------------


class _ServicePlatform:
    """The drill engine's ``Platform`` over the services, on the drill's own clock or in real time."""

    def __init__(self, ctx: ctx_module.Context, run_id: str, plan: drills.DrillPlan, *, at: float) -> None:
        clock: clocks.Clock = clocks.ManualClock(start=at) if plan.simulated_time else ctx.clock
        self.ctx = ctx_module.Context(settings=ctx.settings, clock=clock, _store=ctx.store)
        self.caller = ctx
        """The context the drill was started in: it follows a promotion of the management standby."""
        self.run_id = run_id
        self.plan = plan
        self.sysadmin = identity.local_operator("sysadmin")
        self._owners: dict[str, identity.Principal] = {}
        self._acknowledged: dict[str, dict[str, float]] = {"requests": {}, "changes": {}}
        """Management records this drill saw committed, by table and key: when (wall clock)."""

    @property
    def clock(self) -> clocks.Clock:
        return self.ctx.clock

    @property
    def topology(self) -> topo.Topology:
        return self.ctx.topology

    @property
    def own_clock(self) -> bool:
        return isinstance(self.clock, clocks.ManualClock)

    def unit(self) -> contextlib.AbstractContextManager[object]:
        # Only on the drill's own clock, where waits take no time and the transaction stays short.
        return self.ctx.store.unit_of_work() if self.own_clock else contextlib.nullcontext()

    def save(self, state: object) -> None:
        assert isinstance(state, progress.Progress)
        with self.ctx.transaction() as tx:
            recovery_store.update_drill_run(
                tx, self.run_id, report={"progress": state.model_dump(mode="json")}
            )

    def _env(self) -> repl.Environment:
        return recovery.environment(self.ctx)

    # --- canaries ---

    def _principal(self, department: str) -> identity.Principal:
        if department not in self._owners:
            with self.ctx.read() as tx:
                path = tuple(orgs.get_node(tx, department).ancestor_ids)
            self._owners[department] = identity.Principal(
                id=f"drill:{self.run_id}", role="dept-admin", department=department, department_path=path
            )
        return self._owners[department]

    def _departments(self, plan: drills.DrillPlan) -> list[str]:
        """Departments that may own canaries: the plan's, else every org node (leaves first)."""
        if plan.scope.departments:
            return list(plan.scope.departments)
        with self.ctx.read() as tx:
            nodes = orgs.list_nodes(tx)
        parents = {node.parent_id for node in nodes}
        return [n.id for n in nodes if n.id not in parents] + [n.id for n in nodes if n.id in parents]

    def create_canaries(self, specs: Sequence[platform.CanarySpec]) -> list[platform.CanaryMade]:
        plan = self.plan
        offering = min(
            (o for o in self.topology.catalog if o.kind is topo.OfferingKind.VM),
            key=lambda o: (o.vcpu, o.ram_gb),
        )
        tag = hashlib.sha256(self.run_id.encode()).hexdigest()[:4]
        bodies = [
            requests_service.RequestCreate(
                offering=offering.name,
                count=1,
                tier=spec.tier,
                name=f"drill-{spec.tier}-{spec.index}-{tag}",
                preferred_center=spec.home,
            )
            for spec in specs
        ]
        made = []
        for request in self._admit_all(self._departments(plan), bodies):
            self._acknowledged["requests"][request.id] = recovery.WALL_CLOCK.now()
            if request.state == states.WorkloadState.PENDING_APPROVAL:
                requests_service.approve(self.ctx, principal=self.sysadmin, request_id=request.id)
            result = provisioning.reconcile(self.ctx, kind="request", object_id=request.id)
            if not result.done:
                raise errors.OperationFailed(f"canary {request.name} was not provisioned: {result.message}")
            workload_id = request.workload_id or ""
            with self.ctx.read() as tx:
                workload = requests_store.get_workload(tx, workload_id)
            serving = repl.serving_centers(workload)
            made.append(
                platform.CanaryMade(
                    workload_id=workload_id,
                    tier=request.tier,
                    department=request.department,
                    home=request.preferred_center or (serving[0] if serving else ""),
                )
            )
        return made

    def _admit_all(
        self, owners: list[str], bodies: list[requests_service.RequestCreate]
    ) -> list[requests_service.RequestPublic]:
        """Admit the canaries together for the first department with quota for all of them,
        else one by one, each for the first department with quota for it."""
        for department in owners:
            try:
                return requests_service.submit_many(
                    self.ctx, principal=self._principal(department), bodies=bodies
                )
            except errors.QuotaExceeded:
                continue
        return [self._admit(owners, body) for body in bodies]

    def _admit(
        self, owners: list[str], body: requests_service.RequestCreate
    ) -> requests_service.RequestPublic:
        refusals = []
        for department in owners:
            try:
                request, _ = requests_service.submit(
                    self.ctx, principal=self._principal(department), body=body
                )
            except errors.QuotaExceeded as refused:
                refusals.append(refused.one_line())
                continue
            return request
        first = refusals[0] if refusals else "no department in scope"
        raise errors.OperationFailed(
            f"no department in scope has quota for a {body.tier} canary: {first}", field="scope"
        )

    def delete_canaries(self, workload_ids: Sequence[str]) -> list[str]:
        problems = []
        with self.ctx.read() as tx:
            records = {w.id: w for w in requests_store.list_workloads(tx, ids=list(workload_ids))}
        for workload_id in workload_ids:
            record = records.get(workload_id)
            if record is None or record.state in (
                states.WorkloadState.DELETING,
                states.WorkloadState.DELETED,
            ):
                continue
            try:
                workloads.delete(
                    self.ctx, principal=self._principal(record.department), workload_id=workload_id
                )
            except errors.CloudctlError as error:
                problems.append(f"{workload_id}: {error.one_line()}")
        results = provisioning.run_pending(self.ctx)
        problems += [f"{object_id}: {r.message}" for object_id, r in results.items() if not r.done]
        return problems

    # --- writes and copies ---

    def write(self, writes: Sequence[platform.Write]) -> list[float | None]:
        outcomes = repl.write_many(
            self._env(), [repl.Write(w.workload_id, w.key, w.data, w.center) for w in writes]
        )
        now = recovery.WALL_CLOCK.now()
        for write, outcome in zip(writes, outcomes, strict=True):
            if isinstance(outcome, repl.Ack):  # the write log is management state too
                self._acknowledged["changes"][f"{write.workload_id}:{outcome.seq}"] = now
        return [outcome.at if isinstance(outcome, repl.Ack) else None for outcome in outcomes]

    def replicate_due(self, workload_ids: Sequence[str], *, points: bool = False) -> None:
        # On the drill's own clock, ``engine.BATCH`` passes to a unit of work (waits take no
        # time there); one unit for a whole round would cost the square of the canaries.
        per_unit = engine.BATCH if self.own_clock else None
        results = repl.run_due(self._env(), workload_ids=list(workload_ids), per_unit=per_unit)
        if points:
            replication_points.take_points(self.ctx, results)

    def next_pass_at(self, workload_ids: Sequence[str], *, after: float) -> float | None:
        with self.ctx.read() as tx:
            return replication.next_pass_at(tx, after=after, workload_ids=workload_ids)

    def acknowledged_writes(self, workload_id: str) -> list[platform.Acknowledged]:
        with self.ctx.read() as tx:
            changes = replication.changes_after(tx, workload_id=workload_id, seq=0)
        return [platform.Acknowledged(key=c.key, sha256=c.sha256, at=c.at) for c in changes]

    def holds(self, center: str, workload_id: str, writes: Sequence[platform.Acknowledged]) -> list[bool]:
        storage = self._env().drivers_for(center).object_storage
        bucket = repl.data_bucket(workload_id)
        held = []
        for write in writes:
            try:
                data, _info = storage.get_object(bucket, key=write.key)
                held.append(hashlib.sha256(data).hexdigest() == write.sha256)
            except (
                errors.NotFound,
                errors.OperationFailed,
                errors.BackendUnavailable,
                base.ChecksumMismatchError,
            ):
                held.append(False)
        return held

    def serving_center(self, workload_id: str) -> str | None:
        with self.ctx.read() as tx:
            centers = repl.serving_centers(requests_store.get_workload(tx, workload_id))
        return centers[0] if centers else None

    def _streams_across(self, workload_ids: Sequence[str], link: tuple[str, str]) -> list[replication.Stream]:
        with self.ctx.read() as tx:
            streams = replication.list_streams(tx, workload_ids=list(workload_ids))
        return [s for s in streams if {s.source, s.target} == set(link)]

    def copies_across(self, workload_ids: Sequence[str], *, link: tuple[str, str]) -> set[str]:
        return {stream.workload_id for stream in self._streams_across(workload_ids, link)}

    def oldest_pending_at(self, workload_ids: Sequence[str], *, link: tuple[str, str]) -> dict[str, float]:
        oldest: dict[str, float] = {}
        with self.ctx.read() as tx:
            for stream in self._streams_across(workload_ids, link):
                at = replication.first_pending_at(tx, workload_id=stream.workload_id, seq=stream.last_seq)
                if at is not None:
                    oldest[stream.workload_id] = min(at, oldest.get(stream.workload_id, at))
        return oldest

    # --- faults and recovery ---

    def inject(self, fault: drills.AnyScenario) -> list[str]:
        topology = self.topology
        local = [c.name for c in topology.centers_with_role(topo.CenterRole.LOCAL)]
        dr = [c.name for c in topology.centers_with_role(topo.CenterRole.DR)]
        made: list[str] = []
        if isinstance(fault, drills.LoseLocalCenter):
            made.append(faults.inject(self.ctx, kind="center-down", center=fault.center).id)
        elif isinstance(fault, drills.EVERY_LOCAL_LOST):
            made += [faults.inject(self.ctx, kind="center-down", center=center).id for center in local]
        elif isinstance(fault, drills.CutDrLink):
            for center in [fault.center] if fault.center else local:
                for target in dr:
                    if topology.link(center, target) is not None:
                        made.append(faults.inject(self.ctx, kind="link-cut", center=center, peer=target).id)
        elif isinstance(fault, drills.DegradeLink):
            a, b = fault.between
            made.append(
                faults.inject(self.ctx, kind="link-degraded", center=a, peer=b, factor=fault.factor).id
            )
        return made

    def lose_management(self, fault: drills.LoseManagementSite) -> drill_report.ManagementResult:
        old = self.ctx.settings.database_url or ""
        standby = mgmt.check_standby(self.ctx, field="scenario.kind")
        promotion = mgmt.promote(
            self.ctx,
            standby=standby,
            old_primary=old,
            operator=f"drill:{self.run_id}",
            why=f"drill {self.run_id}: {fault.summary}",
            site_lost=True,
        )
        # The management center in the DR site carries on: the same drill, and whoever started it
        # (the API serving it included), on the promoted database.
        self.caller.move_to(standby)
        self.ctx = ctx_module.Context(
            settings=self.caller.settings, clock=self.ctx.clock, _store=self.caller.store
        )
        acknowledged, lost, rpo_s = mgmt.loss_across(promoted=standby, acknowledged=self._acknowledged)
        return drill_report.ManagementResult(
            promoted=promotion.promoted,
            old_primary_fenced=promotion.old_primary_fenced,
            acknowledged=acknowledged,
            lost=len(lost),
            lost_keys=lost[:20],
            rpo_s=rpo_s,
            rpo_target_s=fault.management_rpo_s,
            met=rpo_s <= fault.management_rpo_s,
        )

    def attack(self, fault: drills.Ransomware, workload_ids: Sequence[str]) -> int:
        """Overwrite or delete the oldest keys of each canary's write log in its data bucket where it
        serves, straight through the storage (an attacker writes no change log), and in each of its
        copies, as replication ships an overwrite within one interval: the recovery has to rewind
        the DR copy by its kept versions, not merely find it untouched."""
        env = self._env()
        hit = 0
        with self.ctx.read() as tx:
            streams = replication.list_streams(tx, workload_ids=list(workload_ids))
        copies: dict[str, set[str]] = {}
        for stream in streams:
            copies.setdefault(stream.workload_id, set()).add(stream.target)
        for workload_id in workload_ids:
            center = self.serving_center(workload_id)
            if center is None:
                continue
            with self.ctx.read() as tx:
                changes = replication.changes_after(tx, workload_id=workload_id, seq=0)
            keys = list(dict.fromkeys(change.key for change in changes))
            reached = keys[: max(1, int(len(keys) * fault.fraction))] if keys else []
            bucket = repl.data_bucket(workload_id)
            for where in [center, *sorted(copies.get(workload_id, set()) - {center})]:
                storage = env.drivers_for(where).object_storage
                for key in reached:
                    if fault.mode == "delete":
                        storage.delete_object(bucket, key=key, ignore_missing=True)
                    else:
                        storage.put_object(bucket, key=key, data=b"encrypted by the drill " + key.encode())
            hit += len(reached)
        return hit

    def clear(self, fault_ids: Sequence[str]) -> None:
        known = {fault.id for fault in faults.list_faults(self.ctx)}
        for fault_id in fault_ids:
            if fault_id in known:
                faults.clear(self.ctx, fault_id=fault_id)

    def plan_failover(
        self, *, center: str, to_center: str | None, workload_ids: Sequence[str], at: float | None = None
    ) -> platform.FailoverPlanned:
        plan = recovery.plan_failover(
            self.ctx,
            principal=self.sysadmin,
            from_center=center,
            to_center=to_center,
            planned=False,
            workload_ids=list(workload_ids),
            at=None if at is None else _exact_time(at),
        )
        stranded = {
            item["workload_id"]: str(item.get("reason") or "no copy to recover from")
            for item in plan.stranded
        }
        chosen: dict[str, platform.PointChosen] = {}
        env = self._env()
        for step in plan.steps:
            if step.point is None:
                continue
            with self.ctx.read() as tx:
                workload = requests_store.get_workload(tx, step.workload_id)
            found = restore.find_point(env, workload, step.point.id)  # its exact consistency time
            chosen[step.workload_id] = platform.PointChosen(found.id, found.seq, found.consistent_at)
        return platform.FailoverPlanned(run_id=plan.run_id or "", stranded=stranded, points=chosen)

    def _in_recovery_time(self) -> contextlib.AbstractContextManager[object]:
        """On its own clock a drill would see a real cloud recover in no time: there, the clock
        also moves with real time while the recovery runs (a simulated center still advances it
        by its simulated waits)."""
        real = any(
            name != drivers.SIMULATOR for center in self.topology.centers for name in center.drivers.values()
        )
        if real and isinstance(self.clock, clocks.ManualClock):
            return self.clock.in_real_time()
        return contextlib.nullcontext()

    def execute_failover(self, run_id: str) -> dict[str, platform.Served]:
        with self.ctx.read() as tx:
            steps_done = recovery_store.get_run(tx, run_id).progress
        last_step_at = max((float(step["at"]) for step in steps_done), default=None)
        if isinstance(self.clock, clocks.ManualClock) and last_step_at is not None:
            # Resumed after a kill: the drill saved its clock before the run, and what the run did
            # since is on the run's own steps; what is left of it cannot have come before them.
            self.clock.advance(max(last_step_at - self.clock.now(), 0.0))
        with self._in_recovery_time():
            run = recovery.execute(self.ctx, run_id)
        served = {}
        for workload_id, outcome in run.workloads.items():
            if "served_at" in outcome:
                center = outcome.get("served_in") or outcome.get("traffic_to")
                served[workload_id] = platform.Served(center=str(center), at=float(outcome["served_at"]))
        return served

    def start_isolated_copies(
        self, workload_ids: Sequence[str], *, center: str
    ) -> dict[str, platform.Served | str]:
        """Servers up in ``center`` from their copies, marked isolated, then deleted: production
        untouched. Every server is asked for before any is waited for."""
        compute = self._env().drivers_for(center).compute
        outcome: dict[str, platform.Served | str] = {}
        made: dict[str, str] = {}
        with self._in_recovery_time():
            for workload_id in workload_ids:
                try:
                    with self.ctx.read() as tx:
                        workload = requests_store.get_workload(tx, workload_id)
                    offering = self.topology.offering(workload.offering)
                    made[workload_id] = compute.create_server(
                        name=f"test-{workload_id}",
                        project=workload.department,
                        vcpu=offering.vcpu,
                        ram_gb=offering.ram_gb,
                        disk_gb=offering.volume_gb,
                        metadata={"drill": self.run_id, "isolated": "true"},
                    ).id
                except errors.CloudctlError as error:
                    outcome[workload_id] = error.one_line()
            for workload_id, server_id in made.items():
                try:
                    compute.wait_for_status(server_id, status=base.ServerStatus.ACTIVE, timeout_s=600)
                except errors.CloudctlError as error:
                    outcome[workload_id] = error.one_line()
                else:
                    outcome[workload_id] = platform.Served(center=center, at=self.clock.now())
        for server_id in made.values():
            try:
                compute.delete_server(server_id, ignore_missing=True)
            except errors.CloudctlError as error:  # it served: a copy left running is said, not hidden
                log.warning("isolated copy %s not deleted: %s", server_id, error.one_line())
        return outcome

    # --- checks ---

    def checks(self, phase: str) -> list[platform.Check]:
        found: list[platform.Check] = []
        for step in self.plan.steps:
            for check in step.pre if phase == "pre" else step.post:
                found.append(self._check(check))
        return found

    def _check(self, check: drills.Check) -> platform.Check:
        if check.builtin is not None:
            return _BuiltinCheck(name=check.label, kind=check.builtin, ctx=self.ctx)
        if check.http is not None:
            return checks.HttpProbe(name=check.label, spec=check.http)
        assert check.command is not None
        settings = self.ctx.settings
        environment = {
            "CLOUDCTL_HOME": str(settings.home),
            "CLOUDCTL_TOPOLOGY": str(settings.topology),
            "CLOUDCTL_POLICIES": str(settings.policies),
        }
        if settings.database_url:
            environment["CLOUDCTL_DATABASE_URL"] = settings.database_url
        return checks.CommandProbe(name=check.label, spec=check.command, environment=environment)


def _exact_time(at: float) -> str:
    """``at`` as ISO 8601 UTC to the microsecond (a drill's instants fall between seconds)."""
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).isoformat()


class _BuiltinCheck:
    """``centers-up``: every center of the topology reports up; ``audit-intact``: the chain verifies."""

    def __init__(self, *, name: str, kind: str, ctx: ctx_module.Context) -> None:
        self.name = name
        self.kind = kind
        self.ctx = ctx

    def run(self) -> platform.CheckOutcome:
        try:
            if self.kind == "centers-up":
                down = [
                    c.name for c in status.overview(self.ctx).centers if c.health != states.CenterHealth.UP
                ]
                if down:
                    return platform.CheckOutcome(False, f"down: {', '.join(down)}")
                return platform.CheckOutcome(True, f"all {len(self.ctx.topology.centers)} centers up")
            verified = audit.verify(self.ctx, principal=identity.local_operator("auditor"))
        except errors.CloudctlError as error:
            return platform.CheckOutcome(False, checks.short(error.one_line()))
        if verified.ok:
            return platform.CheckOutcome(True, f"{verified.records} records verified")
        return platform.CheckOutcome(
            False, checks.short(f"record {verified.first_bad_seq}: {verified.problem}")
        )


# --- reading drill runs (operators' supervision pages) -------------------------------------------


class DrillRunSummary(BaseModel):
    """One drill run as operators follow it: its phase while it runs, its verdict once done."""

    id: str
    plan: str
    scenario: str
    state: str
    passed: bool | None
    phase: str
    """The last finished engine phase (``progress.PHASE_NAMES``), empty before the first."""
    phases_done: int
    phases_total: int
    last_step: str
    """The newest step of the run's timeline, e.g. ``fault injected``."""
    started_at: str
    finished_at: str | None


def _run_summary(run: recovery_store.DrillRun) -> DrillRunSummary:
    saved = run.report.get("progress") or {}
    phase = (
        progress.PHASE_NAMES[-1] if run.state == states.DrillRunState.DONE else str(saved.get("phase") or "")
    )
    timeline = run.report.get("timeline") or saved.get("timeline") or []
    return DrillRunSummary(
        id=run.id,
        plan=run.plan,
        scenario=run.scenario,
        state=_state(run),
        passed=run.passed,
        phase=phase,
        phases_done=progress.PHASE_NAMES.index(phase) + 1 if phase in progress.PHASE_NAMES else 0,
        phases_total=len(progress.PHASE_NAMES),
        last_step=str(timeline[-1].get("step", "")) if timeline else "",
        started_at=clocks.isoformat(run.started_at),
        finished_at=None if run.finished_at is None else clocks.isoformat(run.finished_at),
    )


def recent_drill_runs(
    ctx: ctx_module.Context, *, principal: identity.Principal, limit: int = 20
) -> list[DrillRunSummary]:
    """The newest drill runs, running or done (policy ``center.read``, as the centers' status)."""
    status.authorize_supervision(ctx, principal=principal)
    with ctx.read() as tx:
        return [_run_summary(run) for run in recovery_store.list_drill_runs(tx, limit=limit)]


def drill_run_report(
    ctx: ctx_module.Context, *, principal: identity.Principal, run_id: str
) -> drill_report.DrillReport:
    """The stored report of a finished drill run (policy ``center.read``)."""
    status.authorize_supervision(ctx, principal=principal)
    with ctx.read() as tx:
        try:
            run = recovery_store.get_drill_run(tx, run_id)
        except errors.NotFound:
            run = None
    if run is None or run.state != states.DrillRunState.DONE or not run.report.get("plan"):
        raise errors.NotFound(f"no finished drill run {run_id!r}", field="run")
    return drill_report.DrillReport.model_validate(run.report)
