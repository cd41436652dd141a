"""Replication, failover and failback as operators drive them (CLI, API, drills).

Invariants: every mutating run is authorised (``failover.run``) and audited; the
recovery engines get their environment (store, topology, drivers, link-aware
transport, clock) from here, so the CLI, the API, ``serve`` and drills all act on
the same state the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import topology as topo
from cloudctl.recovery import failover
from cloudctl.recovery import replication as repl
from cloudctl.services import audit, drivers, identity
from cloudctl.services import context as ctx_module
from cloudctl.store import recovery, replication, requests

SIMULATED_STEPS_PER_COMMIT = 50
"""Recovery steps per store transaction when every center is simulated on a manual clock
(a drill's, or ``--simulated-time``; see ``repl.Environment``)."""


def environment(ctx: ctx_module.Context) -> repl.Environment:
    ctx.require_initialised()
    simulated = all(
        name == drivers.SIMULATOR for center in ctx.topology.centers for name in center.drivers.values()
    )
    # Steps commit together only where waits take no time: a transaction held across real
    # server boots would keep every other writer of the store waiting.
    manual_clock = isinstance(ctx.clock, clocks.ManualClock)
    if simulated:
        transport = repl.simulator_transport(drivers.simulator(ctx).copy_object)
    else:
        transport = repl.driver_transport(lambda center: drivers.center_drivers(ctx, center))
    return repl.Environment(
        store=ctx.store,
        topology=ctx.topology,
        drivers_for=lambda center: drivers.center_drivers(ctx, center),
        transport=transport,
        clock=ctx.clock,
        steps_per_commit=SIMULATED_STEPS_PER_COMMIT if simulated and manual_clock else 1,
        manifests=None if simulated else repl.file_manifests(ctx.settings.home / "replication" / "manifests"),
    )


def health(ctx: ctx_module.Context) -> failover.Health:
    observer = drivers.observer(ctx)
    return failover.Health(center_up=lambda center: observer.center_health(center) == "up")


# --- replication -------------------------------------------------------------------------------------


class StreamPublic(BaseModel):
    id: str
    workload_id: str
    department: str
    tier: str
    source: str
    target: str
    mode: str
    state: str
    last_consistent_at: str | None
    lag_s: float
    """Current RPO: the age of the oldest acknowledged write the target lacks."""
    rpo_target_s: float
    over_target: bool
    bytes_copied: int
    objects_copied: int
    objects_resent: int
    last_error: str


def protect_ready_workloads(ctx: ctx_module.Context) -> int:
    """Create the streams of every ready workload that has none yet; how many workloads got them.

    Costs one query when every ready workload is already protected (the steady state).
    """
    with ctx.read() as tx:
        candidates = replication.unprotected_ready_workloads(tx)
    return protect_workloads(ctx, candidates)


def protect_workloads(ctx: ctx_module.Context, workload_ids: list[str]) -> int:
    """Create the streams of these workloads (ready ones; idempotent); how many have streams now."""
    env = environment(ctx)
    with ctx.read() as tx:
        workloads = [w for w in requests.list_workloads(tx, ids=workload_ids) if w.state == "ready"]
    made = 0
    for workload in workloads:
        if repl.streams_for(ctx.topology, workload):
            repl.ensure_streams(env, workload.id)
            made += 1
    return made


def run_due(ctx: ctx_module.Context) -> list[repl.PassResult]:
    protect_ready_workloads(ctx)
    return repl.run_due(environment(ctx))


def write(ctx: ctx_module.Context, workload_id: str, *, key: str, data: bytes) -> repl.Ack:
    return repl.write(environment(ctx), workload_id, key=key, data=data)


def status(
    ctx: ctx_module.Context, *, department: str | None = None, tier: str | None = None
) -> list[StreamPublic]:
    env = environment(ctx)
    with ctx.read() as tx:
        streams = replication.list_streams(
            tx, departments=[department] if department else None, tiers=[tier] if tier else None
        )
    result = []
    for stream in streams:
        lag_s = repl.current_rpo_s(env, stream)
        target_s = repl.lag_target_s(stream, rpo_target_s=float(ctx.topology.tier(stream.tier).rpo_target_s))
        result.append(
            StreamPublic(
                id=stream.id,
                workload_id=stream.workload_id,
                department=stream.department,
                tier=stream.tier,
                source=stream.source,
                target=stream.target,
                mode=stream.mode,
                state=stream.state,
                last_consistent_at=None
                if stream.last_consistent_at is None
                else clocks.isoformat(stream.last_consistent_at),
                lag_s=round(lag_s, 3),
                rpo_target_s=target_s,
                over_target=lag_s > target_s,
                bytes_copied=stream.bytes_copied,
                objects_copied=stream.objects_copied,
                objects_resent=stream.objects_resent,
                last_error=stream.last_error,
            )
        )
    return result


# --- failover and failback ---------------------------------------------------------------------------


class PlanPublic(BaseModel):
    run_id: str | None
    kind: str
    mode: str
    from_center: str
    to_center: str | None
    steps: list[dict[str, Any]]
    stranded: list[dict[str, Any]]


class RunPublic(BaseModel):
    id: str
    kind: str
    mode: str
    from_center: str
    to_center: str | None
    state: str
    steps_total: int
    steps_done: int
    workloads: dict[str, Any]
    stranded: list[dict[str, Any]]
    started_at: str
    finished_at: str | None


def _public_run(run: recovery.RecoveryRun) -> RunPublic:
    return RunPublic(
        id=run.id,
        kind=run.kind,
        mode=run.mode,
        from_center=run.from_center,
        to_center=run.to_center,
        state=run.state,
        steps_total=len(run.plan),
        steps_done=len(run.progress),
        workloads=dict(run.result.get("workloads", {})),
        stranded=list(run.result.get("stranded", [])),
        started_at=clocks.isoformat(run.started_at),
        finished_at=None if run.finished_at is None else clocks.isoformat(run.finished_at),
    )


def _authorize(ctx: ctx_module.Context, principal: identity.Principal, center: str) -> None:
    topology_center = ctx.topology.center(center)
    identity.authorize(
        ctx,
        principal=principal,
        action="failover.run",
        resource_type="Center",
        resource_id=center,
        attributes={"name": center, "role": topology_center.role.value, "site": topology_center.site},
    )


def plan_failover(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    from_center: str,
    to_center: str | None = None,
    planned: bool,
    department: str | None = None,
    workload_ids: list[str] | None = None,
    dry_run: bool = False,
) -> PlanPublic:
    """The recovery plan for leaving ``from_center``; stored as a run unless ``dry_run``."""
    _authorize(ctx, principal, from_center)
    source = ctx.topology.center(from_center)
    if source.role is topo.CenterRole.MANAGEMENT:
        raise errors.InvalidInput("the management center runs no workloads", field="from")
    if to_center is not None:
        ctx.topology.center(to_center)
        if to_center == from_center:
            raise errors.InvalidInput("cannot fail over a center to itself", field="to")
    mode = failover.PLANNED if planned else failover.UNPLANNED
    env = environment(ctx)
    centers_health = health(ctx)
    if planned and not centers_health.center_up(from_center):
        raise errors.InvalidInput(
            f"{from_center} is down: a planned failover needs it up; use --unplanned", field="mode"
        )
    steps, stranded = failover.plan(
        env,
        from_centers=[from_center],
        to_center=to_center,
        mode=mode,
        departments=[department] if department else None,
        workload_ids=workload_ids,
        health=centers_health,
    )
    run_id = None
    if not dry_run:
        run = failover.start(
            env,
            kind="failover",
            mode=mode,
            from_center=from_center,
            to_center=to_center,
            steps=steps,
            stranded=stranded,
            scope={"department": department, "workloads": workload_ids},
        )
        run_id = run.id
        audit.record(
            ctx,
            principal=principal,
            action="failover.run",
            target_type="Center",
            target_id=from_center,
            outcome="success",
            detail={"run": run.id, "mode": mode, "to": to_center or "", "steps": len(steps)},
        )
    return PlanPublic(
        run_id=run_id,
        kind="failover",
        mode=mode,
        from_center=from_center,
        to_center=to_center,
        steps=steps,
        stranded=stranded,
    )


def execute(ctx: ctx_module.Context, run_id: str, *, on_step: failover.OnStep | None = None) -> RunPublic:
    return _public_run(failover.execute(environment(ctx), run_id, on_step=on_step))


def unfinished_runs(ctx: ctx_module.Context) -> list[RunPublic]:
    with ctx.read() as tx:
        return [_public_run(run) for run in recovery.list_runs(tx, states=["running"])]


def get_run(ctx: ctx_module.Context, run_id: str) -> RunPublic:
    with ctx.read() as tx:
        return _public_run(recovery.get_run(tx, run_id))


def plan_failback(
    ctx: ctx_module.Context, *, principal: identity.Principal, to_center: str, dry_run: bool = False
) -> tuple[PlanPublic, int]:
    """Reprotect into ``to_center`` (reverse replication until consistent), then plan the way back.

    Returns the planned failover back and how many objects reprotection shipped.
    """
    _authorize(ctx, principal, to_center)
    centers_health = health(ctx)
    if not centers_health.center_up(to_center):
        raise errors.InvalidInput(f"{to_center} is still down; bring it back first", field="to")
    env = environment(ctx)
    workload_ids = failover.failback_candidates(env, to_center=to_center)
    shipped = 0 if dry_run else failover.reprotect_for_failback(env, workload_ids, to_center=to_center)
    with ctx.read() as tx:
        serving = {
            center
            for workload_id in workload_ids
            for center in repl.serving_centers(requests.get_workload(tx, workload_id))
            if center != to_center
        }
    steps: list[dict[str, Any]] = []
    stranded: list[dict[str, Any]] = []
    for center in sorted(serving):
        more_steps, more_stranded = failover.plan(
            env,
            from_centers=[center],
            to_center=to_center,
            mode=failover.PLANNED,
            departments=None,
            workload_ids=workload_ids,
            health=centers_health,
        )
        steps += more_steps
        stranded += more_stranded
    for index, step in enumerate(steps):
        step["id"] = f"{index:04d}:{step['workload_id']}:{step['action']}"
    run_id = None
    if not dry_run:
        run = failover.start(
            env,
            kind="failback",
            mode=failover.PLANNED,
            from_center=",".join(sorted(serving)) or "-",
            to_center=to_center,
            steps=steps,
            stranded=stranded,
            scope={"workloads": workload_ids},
        )
        run_id = run.id
        audit.record(
            ctx,
            principal=principal,
            action="failback.run",
            target_type="Center",
            target_id=to_center,
            outcome="success",
            detail={"run": run.id, "workloads": len(workload_ids), "reprotected_objects": shipped},
        )
    plan = PlanPublic(
        run_id=run_id,
        kind="failback",
        mode=failover.PLANNED,
        from_center=",".join(sorted(serving)) or "-",
        to_center=to_center,
        steps=steps,
        stranded=stranded,
    )
    return plan, shipped


def finish_failback(ctx: ctx_module.Context, run_id: str) -> None:
    """After the way back ran: the centers that stood in stop their servers and keep their hold."""
    env = environment(ctx)
    with ctx.read() as tx:
        run = recovery.get_run(tx, run_id)
    for step in run.plan:
        if step["action"] == "promote":
            for center in step["from"]:
                failover.hand_back(env, step["workload_id"], center=center)
