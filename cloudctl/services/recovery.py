"""Replication, failover and failback as operators drive them (CLI, API, drills).

Invariants: every mutating run is authorised (``failover.run``) and audited — when it
starts (outcome ``started``) and when it ends (``success``, ``failed``, ``paused`` or
``interrupted``); reads are authorised as ``center.read``. Input is checked before
anything else (unknown centers, the management center, a center still down for a
failback, a hook naming an unknown tier), so bad input changes nothing. A run whose
process died is found when it is read (its owner process is gone, or has given no sign
of life for ``RUN_LEASE_S``), marked ``interrupted`` and audited so. The recovery engines
get their environment (store, topology, drivers, link-aware transport, clock) from
here, so the CLI, the API, ``serve`` and drills all act on the same state the same way.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors, metrics
from cloudctl.model import recovery as recovery_model
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.recovery import failover, restore, traffic
from cloudctl.recovery import replication as repl
from cloudctl.services import audit, drivers, identity
from cloudctl.services import context as ctx_module
from cloudctl.services import status as status_service
from cloudctl.store import orgs, recovery, replication, requests
from cloudctl.store.db import Transaction

RUN_LEASE_S = 900.0
"""A run on another host that has recorded no step for this long is taken as interrupted
(longer than the slowest step: a server boot waits up to ``failover.SERVER_ACTIVE_TIMEOUT_S``)."""
WALL_CLOCK: clocks.Clock = clocks.SystemClock()
"""Liveness of run owners is judged in real time, whatever clock the recovery runs on."""

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
    # Real backends copy through their drivers (the environment's default transport).
    transport = repl.simulator_transport(drivers.simulator(ctx).copy_object) if simulated else None
    return repl.Environment(
        store=ctx.store,
        topology=ctx.topology,
        drivers_for=lambda center: drivers.center_drivers(ctx, center),
        transport=transport,
        clock=ctx.clock,
        steps_per_commit=SIMULATED_STEPS_PER_COMMIT if simulated and manual_clock else 1,
        manifests=None if simulated else repl.file_manifests(ctx.settings.home / "replication" / "manifests"),
        link_condition=None if simulated else drivers.simulator(ctx).link_condition,
    )


def health(ctx: ctx_module.Context) -> failover.Health:
    observer = drivers.observer(ctx)
    return failover.Health(center_up=lambda center: observer.center_health(center) == states.CenterHealth.UP)


# --- replication -------------------------------------------------------------------------------------


WORKLOAD_EXAMPLE_ID = "wl-001a1e8a9bb003f5c21d7"
"""The gold workload of ``hrss-insurance`` the examples of this module follow (served in ``qd-a``)."""
SILVER_EXAMPLE_ID = "wl-001a1e8c1e2f88d04a6b3"
"""A silver workload of ``hrss-insurance`` served in ``qd-a``, copied to ``dz-dr``."""
RUN_EXAMPLE_ID = "failover-001a1ec6f9ca0b41e7d"
STREAM_EXAMPLE: dict[str, Any] = {
    "id": f"{WORKLOAD_EXAMPLE_ID}:qd-a>dz-dr",
    "workload_id": WORKLOAD_EXAMPLE_ID,
    "department": "hrss-insurance",
    "tier": "gold",
    "source": "qd-a",
    "target": "dz-dr",
    "mode": states.StreamMode.ASYNC,
    "state": states.StreamState.HEALTHY,
    "last_consistent_at": "2026-11-18T02:14:31Z",
    "lag_s": 29.0,
    "rpo_target_s": 60.0,
    "over_target": False,
    "bytes_copied": 48318382080,
    "objects_copied": 126200,
    "objects_resent": 3,
    "last_error": "",
}
SYNC_STREAM_EXAMPLE: dict[str, Any] = {
    **STREAM_EXAMPLE,
    "id": f"{WORKLOAD_EXAMPLE_ID}:qd-a>qd-b",
    "target": "qd-b",
    "mode": states.StreamMode.SYNC,
    "last_consistent_at": "2026-11-18T02:15:00Z",
    "lag_s": 0.0,
    "rpo_target_s": 0.0,
    "bytes_copied": 48318382080,
    "objects_copied": 126200,
    "objects_resent": 0,
}


class StreamPublic(BaseModel):
    """One replication stream: a workload's data copied from the center serving it to another center."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [STREAM_EXAMPLE]})

    id: str
    """``<workload id>:<source>><target>``: one stream per workload and pair of centers."""
    workload_id: str
    """The workload whose data the stream copies."""
    department: str
    """The org node (department) that owns the workload."""
    tier: str
    """The workload's tier (``platinum``, ``gold``, ``silver`` or ``bronze``)."""
    source: str
    """The center the data is copied from (where the workload serves)."""
    target: str
    """The center that holds the copy."""
    mode: str
    """``sync`` (every write acknowledged by both centers), ``async`` (shipped every tier interval) or
    ``backup`` (a periodic backup)."""
    state: str
    """``healthy`` (caught up), ``lagging`` (behind, still copying), ``degraded`` (a sync partner or the
    target failed) or ``broken`` (the last pass failed; see ``last_error``)."""
    last_consistent_at: str | None
    """When the copy was last consistent with the source (ISO 8601 UTC); null: never yet."""
    lag_s: float
    """Current RPO: the age of the oldest acknowledged write the target lacks."""
    rpo_target_s: float
    """Seconds the copy may be behind and still be on time: the tier's RPO for sync, else at least the
    tier's copy interval."""
    over_target: bool
    """Whether ``lag_s`` is over ``rpo_target_s`` now."""
    bytes_copied: int
    """Bytes copied to the target since the stream was made."""
    objects_copied: int
    """Objects copied to the target since the stream was made."""
    objects_resent: int
    """Objects sent again because the target's copy was damaged, missing or other bytes."""
    last_error: str
    """Why the last pass failed; empty when it succeeded."""


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
        workloads = [
            w for w in requests.list_workloads(tx, ids=workload_ids) if w.state == states.WorkloadState.READY
        ]
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


PROTECTION_EXAMPLE: dict[str, Any] = {
    "workload_id": WORKLOAD_EXAMPLE_ID,
    "department": "hrss-insurance",
    "tier": "gold",
    "serving_in": ["qd-a"],
    "protection": states.Protection.PROTECTED,
    "reason": "",
    "streams": [STREAM_EXAMPLE, SYNC_STREAM_EXAMPLE],
}


class ProtectionPublic(BaseModel):
    """One ready workload and whether its tier's copies are kept from where it serves now."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [PROTECTION_EXAMPLE]}
    )

    workload_id: str
    """The workload (ready ones only)."""
    department: str
    """The org node (department) that owns the workload."""
    tier: str
    """The workload's tier, which says which copies it needs."""
    serving_in: list[str]
    """The centers that serve the workload now (two for an active-active platinum workload)."""
    protection: str
    """``protected``: every copy its tier needs has a healthy stream; ``degraded``: some do;
    ``unprotected``: none does (``reason`` says what is missing or broken)."""
    reason: str
    """What is missing or broken, ``; ``-separated (e.g. ``qd-a>dz-dr broken (dz-dr failed)``); empty
    when protected."""
    streams: list[StreamPublic]
    """The workload's streams, whatever their state."""


PROTECTED, DEGRADED, UNPROTECTED = (
    states.Protection.PROTECTED,
    states.Protection.DEGRADED,
    states.Protection.UNPROTECTED,
)
PROTECTION_STATES = (PROTECTED, DEGRADED, UNPROTECTED)
_STREAM_OK = (states.StreamState.HEALTHY, states.StreamState.LAGGING)


def _judge(
    topology: topo.Topology, workload: requests.WorkloadRecord, streams: list[replication.Stream]
) -> tuple[str, str]:
    """The protection of a workload and why, from the streams it has against those its tier needs."""
    needed = failover.protection_streams(topology, workload)
    if not repl.serving_centers(workload):
        return UNPROTECTED, "served nowhere"
    if not needed:
        return UNPROTECTED, f"tier {workload.tier} keeps no copy where it can be placed now"
    have = {(s.source, s.target): s for s in streams}
    failed = {p.center for p in workload.placements if p.state == states.PlacementState.FAILED}
    problems = []
    for source, target, mode, _interval in needed:
        stream = have.get((source, target))
        if stream is None:
            problems.append(f"no {mode} stream {source}>{target}")
        elif stream.state not in _STREAM_OK:
            why = f"{target} failed" if target in failed else (stream.last_error or "")
            problems.append(f"{source}>{target} {stream.state}" + (f" ({why})" if why else ""))
    if not problems:
        return PROTECTED, ""
    return (DEGRADED if len(problems) < len(needed) else UNPROTECTED), "; ".join(problems)


def _ready_workloads(
    ctx: ctx_module.Context, *, department: str | None, tier: str | None
) -> tuple[list[requests.WorkloadRecord], dict[str, list[replication.Stream]]]:
    with ctx.read() as tx:
        found = requests.list_workloads(
            tx, departments=[department] if department else None, states=[states.WorkloadState.READY]
        )
        streams = replication.list_streams(
            tx, departments=[department] if department else None, tiers=[tier] if tier else None
        )
    by_workload: dict[str, list[replication.Stream]] = {}
    for stream in streams:
        by_workload.setdefault(stream.workload_id, []).append(stream)
    return [w for w in found if tier is None or w.tier == tier], by_workload


def _department_checked(ctx: ctx_module.Context, department: str | None) -> None:
    """A department filter names an org node; a typo is refused, never an empty answer."""
    if department is not None:
        with ctx.read() as tx:
            orgs.get_node(tx, department, field="department")


def protection(
    ctx: ctx_module.Context,
    *,
    department: str | None = None,
    tier: str | None = None,
    unprotected_only: bool = False,
) -> list[ProtectionPublic]:
    """Every ready workload with its protection and streams (``unprotected_only``: those not protected)."""
    _department_checked(ctx, department)
    if tier is not None:
        ctx.topology.tier(tier)
    found, by_workload = _ready_workloads(ctx, department=department, tier=tier)
    public = {s.id: s for s in status(ctx, department=department, tier=tier)}
    result = []
    for workload in found:
        verdict, reason = _judge(ctx.topology, workload, by_workload.get(workload.id, []))
        if unprotected_only and verdict == PROTECTED:
            continue
        result.append(
            ProtectionPublic(
                workload_id=workload.id,
                department=workload.department,
                tier=workload.tier,
                serving_in=repl.serving_centers(workload),
                protection=verdict,
                reason=reason,
                streams=[public[s.id] for s in by_workload.get(workload.id, []) if s.id in public],
            )
        )
    return result


def protection_counts(ctx: ctx_module.Context) -> dict[tuple[str, str], int]:
    """``{(tier, protection): ready workloads}`` for every tier and protection state (zeros included)."""
    counts: dict[tuple[str, str], int] = {
        (t.name, verdict): 0 for t in ctx.topology.tiers for verdict in PROTECTION_STATES
    }
    found, by_workload = _ready_workloads(ctx, department=None, tier=None)
    for workload in found:
        verdict, _reason = _judge(ctx.topology, workload, by_workload.get(workload.id, []))
        counts[(workload.tier, verdict)] = counts.get((workload.tier, verdict), 0) + 1
    return counts


# --- failover and failback ---------------------------------------------------------------------------


NOTIFY_HOOK_EXAMPLE: dict[str, Any] = {
    "name": "notify-duty",
    "when": "pre",
    "group": None,
    "tier": None,
    "command": None,
    "http": {"url": "https://ops.cloud.qingdao.gov.cn/hooks/failover", "method": "POST"},
    "timeout_s": 30.0,
    "on_failure": "continue",
}
CHECK_HOOK_EXAMPLE: dict[str, Any] = {
    "name": "check-db",
    "when": "post",
    "group": "promote",
    "tier": "gold",
    "command": {"argv": ["/opt/cloudctl/hooks/check-db.sh", "--center", "qd-b"]},
    "http": None,
    "timeout_s": 300.0,
    "on_failure": "pause",
}
_WORKLOAD_STEP: dict[str, Any] = {
    "workload_id": WORKLOAD_EXAMPLE_ID,
    "tier": "gold",
    "target": "qd-b",
    "why": "standby copy",
    "from_centers": ["qd-a"],
    "hook": None,
}
_HOOK_STEP: dict[str, Any] = {"action": "hook", "workload_id": "", "target": "", "from_centers": []}
STEPS_EXAMPLE: list[dict[str, Any]] = [
    {**_HOOK_STEP, "id": "0000:hook-pre:hook", "tier": "", "why": "run", "hook": NOTIFY_HOOK_EXAMPLE},
    {**_WORKLOAD_STEP, "id": f"0001:{WORKLOAD_EXAMPLE_ID}:final-sync", "action": "final-sync"},
    {**_WORKLOAD_STEP, "id": f"0002:{WORKLOAD_EXAMPLE_ID}:promote", "action": "promote"},
    {
        **_HOOK_STEP,
        "id": "0003:hook-post:hook",
        "tier": "gold",
        "why": "gold promote",
        "hook": CHECK_HOOK_EXAMPLE,
    },
    {**_WORKLOAD_STEP, "id": f"0004:{WORKLOAD_EXAMPLE_ID}:switch-traffic", "action": "switch-traffic"},
    {**_WORKLOAD_STEP, "id": f"0005:{WORKLOAD_EXAMPLE_ID}:reprotect", "action": "reprotect"},
]
PLAN_EXAMPLE: dict[str, Any] = {
    "run_id": RUN_EXAMPLE_ID,
    "kind": "failover",
    "mode": "planned",
    "from_center": "qd-a",
    "from_centers": ["qd-a"],
    "to_center": None,
    "steps": STEPS_EXAMPLE,
    "stranded": [],
}


class PlanPublic(BaseModel):
    """A failover or failback plan: its ordered steps and what cannot be recovered (202: the run goes
    on after the answer; ``run_id`` null: a dry run, or nothing to bring home)."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [PLAN_EXAMPLE]})

    run_id: str | None
    """The run started (``failover-…`` or ``failback-…``); null for a dry run or an empty failback."""
    kind: str
    """``failover`` or ``failback``."""
    mode: str
    """``planned`` (ships the last delta first: nothing lost) or ``unplanned`` (accepts the tier's
    loss); a failback is always ``planned``."""
    from_center: str
    """The centers left, comma-separated (``-`` when none); the same as ``from_centers``."""
    from_centers: list[str]
    """The centers left (a failback: the centers workloads come home from)."""
    to_center: str | None
    """The center asked for (a failback's: the center returning); null: each workload goes to its best
    healthy copy (its steps' ``target``)."""
    steps: list[recovery_model.RecoveryStep]
    """The ordered steps, hooks placed among them."""
    stranded: list[dict[str, Any]]
    """Workloads that cannot be recovered: ``workload_id``, ``tier`` and ``reason`` (a failback's also
    ``target``)."""


RUN_EXAMPLE: dict[str, Any] = {
    "id": RUN_EXAMPLE_ID,
    "kind": "failover",
    "mode": "planned",
    "from_center": "qd-a",
    "from_centers": ["qd-a"],
    "to_center": None,
    "state": states.RunState.DONE,
    "steps_total": 6,
    "steps_done": 6,
    "next_step": None,
    "workloads": {
        WORKLOAD_EXAMPLE_ID: {
            "final_sync_objects": 12,
            "writes_lost": 0,
            "served_in": "qd-b",
            "served_at": 1794968139.712,
            "rpo_s": 0.0,
            "traffic_to": "qd-b",
            "streams": ["qd-b>dz-dr async", "qd-b>qd-a sync"],
        }
    },
    "hooks": [
        {
            "step": "0000:hook-pre:hook",
            "hook": "notify-duty",
            "when": "pre",
            "scope": "run",
            "on_failure": "continue",
            "elapsed_s": 0.412,
            "ok": True,
            "status": 200,
        },
        {
            "step": "0003:hook-post:hook",
            "hook": "check-db",
            "when": "post",
            "scope": "gold promote",
            "on_failure": "pause",
            "elapsed_s": 8.306,
            "ok": True,
            "exit_code": 0,
            "output": "hrss-insurance: replica in qd-b consistent at seq 48213\n",
        },
    ],
    "stranded": [],
    "started_by": "token:8d0e6b2f4a1c9375",
    "started_at": "2026-11-18T02:15:00Z",
    "finished_at": "2026-11-18T02:15:40Z",
    "error": "",
    "resume": None,
}


class RunPublic(BaseModel):
    """A failover or failback run as recorded: its state, how far it got and what it did."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [RUN_EXAMPLE]})

    id: str
    """``failover-…`` or ``failback-…``: the kind, then 13 hex digits of the start time in ms and 6 random."""
    kind: str
    """``failover`` or ``failback``."""
    mode: str
    """``planned`` or ``unplanned`` (a failback is always ``planned``)."""
    from_center: str
    """The centers left, comma-separated (``-`` when none); the same as ``from_centers``."""
    from_centers: list[str]
    """The centers left."""
    to_center: str | None
    """The center asked for (a failback's home center); null: each workload's best healthy copy."""
    state: str
    """``running``, ``paused`` (a hook failed with ``pause``), ``interrupted`` (its process died),
    ``done`` or ``failed``."""
    steps_total: int
    """Steps in the plan, hook steps included."""
    steps_done: int
    """Steps finished so far."""
    next_step: str | None
    """The first step not done yet (where ``resume`` goes on)."""
    workloads: dict[str, Any]
    """Workload id → what its finished steps did (``served_in``, ``served_at`` in Unix seconds,
    ``writes_lost``, ``rpo_s``, ``addresses`` (each server's address as served there: kept or
    re-mapped), ``addresses_held_there`` (planned addresses another server held, and what each
    server got instead), ``traffic_to``, ``traffic_address`` (the address the traffic record
    points at), ``streams``, ...)."""
    hooks: list[dict[str, Any]]
    """Outcome of each hook step run: ``step``, ``hook``, ``when``, ``scope``, ``on_failure``, ``elapsed_s``,
    ``ok`` and ``status`` (HTTP) or ``exit_code`` and ``output`` (command), ``error`` when not ok."""
    stranded: list[dict[str, Any]]
    """Workloads the plan could not recover: ``workload_id``, ``tier``, ``reason``."""
    started_by: str
    """The principal that started the run (``token:<token id>``, or ``local:<user>`` from the CLI)."""
    started_at: str
    """When the run started (ISO 8601 UTC)."""
    finished_at: str | None
    """When it ended ``done`` or ``failed`` (ISO 8601 UTC); null while unfinished."""
    error: str
    """Why an interrupted run stopped; empty otherwise (a failed hook's error is in ``hooks``)."""
    resume: str | None
    """The command that finishes the run, while it is unfinished."""


RUN_DETAIL_EXAMPLE: dict[str, Any] = {
    **RUN_EXAMPLE,
    "steps": STEPS_EXAMPLE,
    "progress": [
        {"id": "0000:hook-pre:hook", "at": 1794968100.412},
        {"id": f"0001:{WORKLOAD_EXAMPLE_ID}:final-sync", "at": 1794968101.87},
        {"id": f"0002:{WORKLOAD_EXAMPLE_ID}:promote", "at": 1794968131.254},
        {"id": "0003:hook-post:hook", "at": 1794968139.56},
        {"id": f"0004:{WORKLOAD_EXAMPLE_ID}:switch-traffic", "at": 1794968139.712},
        {"id": f"0005:{WORKLOAD_EXAMPLE_ID}:reprotect", "at": 1794968140.031},
    ],
}


class RunDetailPublic(RunPublic):
    """One run with its plan and the steps done (the answer of a resume shows the run as it starts again)."""

    model_config = ConfigDict(json_schema_extra={"examples": [RUN_DETAIL_EXAMPLE]})

    steps: list[recovery_model.RecoveryStep]
    """The plan: every step in order, hooks included."""
    progress: list[dict[str, Any]]
    """The steps done, in order: ``id`` and ``at`` (Unix seconds)."""


def _centers_of(run: recovery.RecoveryRun) -> list[str]:
    return [] if run.from_center == "-" else run.from_center.split(",")


def _public_run(run: recovery.RecoveryRun) -> RunPublic:
    done = {entry["id"] for entry in run.progress}
    unfinished = run.state in states.UNFINISHED_RUN_STATES
    return RunPublic(
        id=run.id,
        kind=run.kind,
        mode=run.mode,
        from_center=run.from_center,
        from_centers=_centers_of(run),
        to_center=run.to_center,
        state=run.state,
        steps_total=len(run.plan),
        steps_done=len(run.progress),
        next_step=next((str(step["id"]) for step in run.plan if step["id"] not in done), None),
        workloads=dict(run.result.get("workloads", {})),
        hooks=list(run.result.get("hooks", [])),
        stranded=list(run.result.get("stranded", [])),
        started_by=run.started_by,
        started_at=clocks.isoformat(run.started_at),
        finished_at=None if run.finished_at is None else clocks.isoformat(run.finished_at),
        error=str(run.result.get("error", "")),
        resume=f"cloudctl failover resume {run.id}" if unfinished else None,
    )


def _detail(run: recovery.RecoveryRun) -> RunDetailPublic:
    return RunDetailPublic(
        **_public_run(run).model_dump(),
        steps=failover.steps_of(run),
        progress=list(run.progress),
    )


def authorize_center(
    ctx: ctx_module.Context, principal: identity.Principal, center: str, *, action: str
) -> None:
    """May ``principal`` run recovery operations (``action``) on ``center``? ``PolicyDenied`` if not."""
    topology_center = ctx.topology.center(center)
    identity.authorize(
        ctx,
        principal=principal,
        action=action,
        resource_type="Center",
        resource_id=center,
        attributes={"name": center, "role": topology_center.role.value, "site": topology_center.site},
    )


def authorize_operations(ctx: ctx_module.Context, principal: identity.Principal, *, action: str) -> None:
    """May ``principal`` run ``action`` on the city's recovery as a whole? It is asked of the
    management center, where the traffic steering lives; ``PolicyDenied`` if not."""
    authorize_center(ctx, principal, traffic.traffic_center(ctx.topology), action=action)


def _workload_center(ctx: ctx_module.Context, name: str, *, field: str) -> topo.Center:
    """A center that can run workloads, named by the operator in ``field``."""
    try:
        center = ctx.topology.center(name)
    except errors.NotFound as unknown:
        raise errors.InvalidInput(unknown.reason, field=field) from None
    if center.role is topo.CenterRole.MANAGEMENT:
        raise errors.InvalidInput(f"{name} is the management center: it runs no workloads", field=field)
    return center


def owner() -> str:
    """This process, as a run's owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool | None:
    """Whether the process ``owner`` (``host:pid``, see ``owner``) still runs; ``None`` when it is
    another machine's (it cannot be told from here)."""
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return None
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _owner_alive(run: recovery.RecoveryRun) -> bool:
    if not run.owner:
        return False
    alive = owner_alive(run.owner)
    if alive is not None:
        return alive
    return run.heartbeat_at is not None and WALL_CLOCK.now() - run.heartbeat_at < RUN_LEASE_S


def _observed(
    ctx: ctx_module.Context, run: recovery.RecoveryRun, principal: identity.Principal
) -> recovery.RecoveryRun:
    """The run as it is: a running run whose process died is marked interrupted (and audited so)."""
    if run.state != states.RunState.RUNNING or _owner_alive(run):
        return run
    with ctx.transaction() as tx:
        current = recovery.get_run(tx, run.id, for_update=True)
        if current.state != states.RunState.RUNNING or current.owner != run.owner:
            return current
        reason = f"its process ({run.owner or 'none'}) is gone"
        marked = recovery.update_run(
            tx,
            run.id,
            state=states.RunState.INTERRUPTED,
            owner="",
            result={**current.result, "error": reason},
        )
        _audit_end(ctx, principal, marked, tx=tx)
    return marked


AUDITED_MAPPINGS = 50
"""Address mappings and chosen points named one by one in a failover's audit record; beyond
that the record counts them (the run itself keeps every one)."""


def _carried_over(steps: list[recovery_model.RecoveryStep]) -> dict[str, Any]:
    """What the audit record of a started failover says of addresses and recovery points."""
    mappings = [m for step in steps for m in step.addresses or []]
    points = [step.point for step in steps if step.point is not None]
    return {
        "addresses_kept": sum(1 for m in mappings if m.kept),
        "addresses_remapped": sum(1 for m in mappings if not m.kept),
        "addresses": [
            f"{m.server}: {m.old_address} ({m.from_center}/{m.network}) -> {m.new_address} ({m.to_network})"
            for m in mappings[:AUDITED_MAPPINGS]
        ],
        "points": [point.id for point in points[:AUDITED_MAPPINGS]],
    }


def _audit_end(
    ctx: ctx_module.Context,
    principal: identity.Principal,
    run: recovery.RecoveryRun,
    *,
    tx: Transaction | None = None,
) -> None:
    outcome = {
        states.RunState.DONE: "success",
        states.RunState.FAILED: "failed",
        states.RunState.PAUSED: "paused",
        states.RunState.INTERRUPTED: "interrupted",
    }.get(states.RunState(run.state), run.state)
    audit.record(
        ctx,
        principal=principal,
        action=f"{run.kind}.run",
        target_type="Center",
        target_id=run.to_center if run.kind == "failback" and run.to_center else run.from_center,
        outcome=outcome,
        detail={
            "run": run.id,
            "steps_done": len(run.progress),
            "steps": len(run.plan),
            "error": str(run.result.get("error", "")),
        },
        tx=tx,
    )


def _hooks_checked(
    ctx: ctx_module.Context, hooks: tuple[recovery_model.Hook, ...]
) -> tuple[recovery_model.Hook, ...]:
    recovery_model.check_hooks(hooks, ctx.topology)
    return hooks


@audit.audits_refusals(action="failover.run", target_type="Center", target="from_center")
def plan_failover(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    from_center: str | None = None,
    from_centers: list[str] | None = None,
    to_center: str | None = None,
    planned: bool | None,
    department: str | None = None,
    workload_ids: list[str] | None = None,
    dry_run: bool = False,
    hooks: tuple[recovery_model.Hook, ...] = (),
    point: str | None = None,
    at: str | None = None,
) -> PlanPublic:
    """The recovery plan for leaving ``from_centers`` (or ``from_center``); stored as a run unless
    ``dry_run``. Center names are checked first, then the caller is authorised, then the names the
    store holds and the mode.

    ``point`` (a recovery point id) or ``at`` (an ISO 8601 time) recover to a chosen point
    instead of the newest data the target holds: ``point`` recovers its own workload only (in
    the center holding it), ``at`` each workload to its newest point at or before the time in
    the center it goes to; each ``promote`` step names its point (``PointChoice``)."""
    leaving = list(dict.fromkeys([*([from_center] if from_center else []), *(from_centers or [])]))
    if not leaving:
        raise errors.InvalidInput("name the center to leave", field="from")
    for center in leaving:
        _workload_center(ctx, center, field="from")
    if to_center is not None:
        _workload_center(ctx, to_center, field="to")
        if to_center in leaving:
            raise errors.InvalidInput("cannot fail over a center to itself", field="to")
    # Asked before the store is read: a caller who may not fail over learns nothing of the
    # departments, workloads or points its input names.
    for center in leaving:
        authorize_center(ctx, principal, center, action="failover.run")
    _department_checked(ctx, department)
    _hooks_checked(ctx, hooks)
    env = environment(ctx)
    chosen, moment = _point_asked(env, point=point, at=at, department=department, workload_ids=workload_ids)
    if chosen is not None:
        workload_ids = [chosen.workload_id]
    if planned is None:
        raise errors.InvalidInput("say --planned or --unplanned", field="mode")
    mode = failover.PLANNED if planned else failover.UNPLANNED
    centers_health = health(ctx)
    down = [center for center in leaving if not centers_health.center_up(center)]
    if planned and down:
        raise errors.InvalidInput(
            f"{', '.join(down)} is down: a planned failover needs it up; use --unplanned", field="mode"
        )
    steps, stranded = failover.plan(
        env,
        from_centers=leaving,
        to_center=to_center,
        mode=mode,
        departments=[department] if department else None,
        workload_ids=workload_ids,
        health=centers_health,
    )
    if chosen is not None or moment is not None:
        steps = _to_points(env, steps, chosen=chosen, at=moment, leaving=leaving)
    steps = recovery_model.place_hooks(steps, hooks)
    run_id = None
    if not dry_run:
        run = failover.start(
            env,
            kind="failover",
            mode=mode,
            from_centers=leaving,
            to_center=to_center,
            steps=steps,
            stranded=stranded,
            scope={"department": department, "workloads": workload_ids},
            started_by=principal.id,
            owner=owner(),
            alive_at=WALL_CLOCK.now(),
        )
        run_id = run.id
        audit.record(
            ctx,
            principal=principal,
            action="failover.run",
            target_type="Center",
            target_id=run.from_center,
            outcome="started",
            detail={
                "run": run.id,
                "mode": mode,
                "to": to_center or "",
                "steps": len(steps),
                **_carried_over(steps),
            },
        )
    return PlanPublic(
        run_id=run_id,
        kind="failover",
        mode=mode,
        from_center=",".join(leaving),
        from_centers=leaving,
        to_center=to_center,
        steps=steps,
        stranded=stranded,
    )


def _point_asked(
    env: repl.Environment,
    *,
    point: str | None,
    at: str | None,
    department: str | None,
    workload_ids: list[str] | None,
) -> tuple[restore.RecoveryPoint | None, float | None]:
    """The recovery point named (``point``) or the time (``at``) a failover recovers to, checked."""
    if point is not None and at is not None:
        raise errors.InvalidInput("give a point or a time, not both", field="point")
    if at is not None:
        moment = restore.parse_time(at)
        if moment > env.clock.now():
            raise errors.InvalidInput(
                f"{clocks.isoformat(moment)} is in the future (now {clocks.isoformat(env.clock.now())})",
                field="at",
            )
        return None, moment
    if point is None:
        return None, None
    _center, workload_id, _seq = restore.parse_point_id(point)
    with env.store.read() as tx:
        owner = requests.find_workload(tx, workload_id)
    if owner is None:
        raise errors.NotFound(f"no recovery point {point!r}: no workload {workload_id!r}", field="point")
    if workload_ids is not None and workload_id not in workload_ids:
        raise errors.InvalidInput(
            f"{point} is a point of workload {workload_id}, not of {', '.join(workload_ids)}", field="point"
        )
    if department is not None and owner.department != department:
        raise errors.InvalidInput(
            f"{point} is a point of a workload of {owner.department}, not of {department}", field="point"
        )
    return restore.find_point(env, owner, point), None


def _to_points(
    env: repl.Environment,
    steps: list[recovery_model.RecoveryStep],
    *,
    chosen: restore.RecoveryPoint | None,
    at: float | None,
    leaving: list[str],
) -> list[recovery_model.RecoveryStep]:
    """``steps`` with each ``promote`` naming the recovery point it starts from."""
    promotes = [s for s in steps if s.action is recovery_model.StepAction.PROMOTE]
    if chosen is not None and not any(s.workload_id == chosen.workload_id for s in promotes):
        raise errors.InvalidInput(
            f"workload {chosen.workload_id} of point {chosen.id} does not serve in {', '.join(leaving)}",
            field="point",
        )
    result = []
    for planned_step in steps:
        step = planned_step
        if step.action is recovery_model.StepAction.PROMOTE:
            with env.store.read() as tx:
                workload = requests.get_workload(tx, step.workload_id)
            if chosen is not None:
                if step.target != chosen.center:
                    raise errors.InvalidInput(
                        f"{chosen.id} is in {chosen.center}; the failover takes {step.workload_id} to "
                        f"{step.target} (say --to {chosen.center})",
                        field="point",
                    )
                found = chosen
            else:
                assert at is not None
                found = restore.choose_point(env, workload, at=at, center=step.target)
            step = step.model_copy(
                update={
                    "point": recovery_model.PointChoice(
                        id=found.id, seq=found.seq, consistent_at=clocks.isoformat(found.consistent_at)
                    )
                }
            )
        result.append(step)
    return result


def execute(
    ctx: ctx_module.Context,
    run_id: str,
    *,
    on_step: failover.OnStep | None = None,
    principal: identity.Principal | None = None,
) -> RunPublic:
    """Run the run's steps not done yet, in this process; audited when it ends, however it ends."""
    actor = principal or identity.local_operator("sysadmin")

    def counted(step: recovery_model.RecoveryStep, done: int, total: int) -> None:
        count_addresses(step)
        if on_step is not None:
            on_step(step, done, total)

    try:
        run = failover.execute(
            environment(ctx), run_id, on_step=counted, owner=owner(), alive_at=WALL_CLOCK.now
        )
    except BaseException:
        with ctx.read() as tx:
            stopped = recovery.get_run(tx, run_id)
        if stopped.state == states.RunState.INTERRUPTED:
            _audit_end(ctx, actor, stopped)
        raise
    _audit_end(ctx, actor, run)
    return _public_run(run)


def count_addresses(step: recovery_model.RecoveryStep) -> None:
    """A finished ``promote`` step carried its servers' addresses to its target: count them."""
    if step.action is not recovery_model.StepAction.PROMOTE:
        return
    for mapping in step.addresses or []:
        metrics.FAILOVER_ADDRESSES.labels(
            from_center=mapping.from_center,
            to_center=step.target,
            outcome="kept" if mapping.kept else "remapped",
        ).inc()


@audit.audits_refusals(action="failover.resume", target_type="RecoveryRun", target="run_id")
def check_resumable(
    ctx: ctx_module.Context, *, run_id: str, principal: identity.Principal
) -> recovery.RecoveryRun:
    """The run, if ``principal`` may resume it and it is paused or interrupted; ``Conflict`` if not."""
    # Operators only, whatever the run: refused before it is read, so a caller who may not
    # resume learns nothing of the runs and marks none interrupted.
    authorize_operations(ctx, principal, action="failover.run")
    current = _observed(ctx, _get(ctx, run_id), principal)
    centers = _centers_of(current) or [current.to_center or ""]
    authorize_center(ctx, principal, centers[0], action="failover.run")
    if current.state == states.RunState.RUNNING:
        raise errors.Conflict(
            f"run {run_id} is still running (in {current.owner}); wait for it or stop that process",
            field="run",
        )
    if current.state not in states.UNFINISHED_RUN_STATES:
        raise errors.Conflict(f"run {run_id} is {current.state}; nothing to resume", field="run")
    return current


def claim_for_resume(ctx: ctx_module.Context, *, run_id: str, principal: identity.Principal) -> RunPublic:
    """Check the run may be resumed and make this process its owner, in one transaction.

    Run before its steps go on in the background: whoever reads the run from now on sees it
    running (not still ``interrupted``), and a second resume at the same time is refused.
    """
    check_resumable(ctx, run_id=run_id, principal=principal)
    with ctx.transaction() as tx:
        current = recovery.get_run(tx, run_id, for_update=True)
        if current.state == states.RunState.RUNNING and _owner_alive(current):
            raise errors.Conflict(
                f"run {run_id} is still running (in {current.owner}); wait for it or stop that process",
                field="run",
            )
        states.check_transition(
            states.RUN_TRANSITIONS, states.RunState(current.state), states.RunState.RUNNING, field="run"
        )
        recovery.update_run(tx, run_id, state=states.RunState.RUNNING)
        recovery.claim_run(tx, run_id, owner=owner(), alive_at=WALL_CLOCK.now())
        claimed = recovery.get_run(tx, run_id)
    return _public_run(claimed)


def resume(
    ctx: ctx_module.Context,
    run_id: str,
    *,
    principal: identity.Principal,
    on_step: failover.OnStep | None = None,
) -> RunPublic:
    """Finish a paused or interrupted run from its first step not done."""
    check_resumable(ctx, run_id=run_id, principal=principal)
    return execute(ctx, run_id, on_step=on_step, principal=principal)


def _get(ctx: ctx_module.Context, run_id: str) -> recovery.RecoveryRun:
    with ctx.read() as tx:
        return recovery.get_run(tx, run_id)


def unfinished_runs(ctx: ctx_module.Context) -> list[RunPublic]:
    with ctx.read() as tx:
        return [_public_run(run) for run in recovery.list_runs(tx, states=recovery.UNFINISHED)]


def list_runs(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 50,
) -> list[RunPublic]:
    """Failover and failback runs, newest first; runs whose process died show as interrupted."""
    status_service.authorize_supervision(ctx, principal=principal)
    if state is not None and state not in {s.value for s in states.RunState}:
        known = ", ".join(s.value for s in states.RunState)
        raise errors.InvalidInput(f"no run state {state!r} (known: {known})", field="state")
    if kind is not None and kind not in ("failover", "failback"):
        raise errors.InvalidInput(f"no run kind {kind!r} (known: failover, failback)", field="kind")
    # Filtered in the query, before the limit (a page holds up to ``limit`` matching runs); a run
    # stored running whose process died is observed interrupted, so it is read for both.
    stored = None
    if state is not None:
        stored = [state, states.RunState.RUNNING] if state == states.RunState.INTERRUPTED else [state]
    with ctx.read() as tx:
        runs = recovery.list_runs(tx, kind=kind, limit=limit, states=stored)
    observed = [_observed(ctx, run, principal) for run in runs]
    return [_public_run(run) for run in observed if state is None or run.state == state]


def get_run(
    ctx: ctx_module.Context, run_id: str, *, principal: identity.Principal | None = None
) -> RunDetailPublic:
    """One run with its plan and the steps done."""
    actor = principal or identity.local_operator("sysadmin")
    status_service.authorize_supervision(ctx, principal=actor)
    return _detail(_observed(ctx, _get(ctx, run_id), actor))


@audit.audits_refusals(action="failback.run", target_type="Center", target="to_center")
def plan_failback(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    to_center: str,
    dry_run: bool = False,
    hooks: tuple[recovery_model.Hook, ...] = (),
) -> PlanPublic:
    """The way home to ``to_center``: resync, switch back and restore the home layout of every
    workload whose home uses it (see ``failover.plan_failback``); a run unless ``dry_run`` or
    there is nothing to bring home."""
    _workload_center(ctx, to_center, field="to")
    _hooks_checked(ctx, hooks)
    authorize_center(ctx, principal, to_center, action="failover.run")
    centers_health = health(ctx)
    if not centers_health.center_up(to_center):
        raise errors.InvalidInput(f"{to_center} is still down; bring it back first", field="to")
    env = environment(ctx)
    steps, stranded = failover.plan_failback(env, to_center=to_center, health=centers_health)
    steps = recovery_model.place_hooks(steps, hooks) if steps else steps
    leaving = sorted({center for step in steps for center in step.from_centers})
    run_id = None
    if not dry_run and steps:
        run = failover.start(
            env,
            kind="failback",
            mode=failover.PLANNED,
            from_centers=leaving,
            to_center=to_center,
            steps=steps,
            stranded=stranded,
            scope={"workloads": sorted({step.workload_id for step in steps if step.workload_id})},
            started_by=principal.id,
            owner=owner(),
            alive_at=WALL_CLOCK.now(),
        )
        run_id = run.id
        audit.record(
            ctx,
            principal=principal,
            action="failback.run",
            target_type="Center",
            target_id=to_center,
            outcome="started",
            detail={"run": run.id, "steps": len(steps), "workloads": len(run.scope["workloads"])},
        )
    return PlanPublic(
        run_id=run_id,
        kind="failback",
        mode=failover.PLANNED,
        from_center=",".join(leaving) or "-",
        from_centers=leaving,
        to_center=to_center,
        steps=steps,
        stranded=stranded,
    )


def read_hooks(path: Path) -> tuple[recovery_model.Hook, ...]:
    """The hooks of a YAML file; ``InvalidInput`` naming the file's path of what is wrong."""
    return recovery_model.parse_hooks(errors.read_input_file(path, field="hooks"))


# --- current RPO of given workloads (the portal's workload pages) -------------------------------------


class CurrentRpoPublic(BaseModel):
    """One copy of a workload and how far behind it is now."""

    workload_id: str
    source: str
    target: str
    mode: str
    state: str
    lag_s: float
    """Current RPO: the age of the oldest acknowledged write the target lacks."""
    rpo_target_s: float
    over_target: bool


def current_rpo(ctx: ctx_module.Context, *, workload_ids: list[str]) -> dict[str, list[CurrentRpoPublic]]:
    """The copies of these workloads (only these) with their current RPO, read in one transaction.

    Copies that hold every write cost no query of their own: the newest write of each
    workload is read once for all of them.

    The caller has already been allowed to read the workloads; ``status`` covers every stream.
    """
    if not workload_ids:
        return {}
    now = ctx.clock.now()
    result: dict[str, list[CurrentRpoPublic]] = {}
    with ctx.read() as tx:
        streams = replication.list_streams(tx, workload_ids=workload_ids)
        written = replication.last_seqs(tx, workload_ids={stream.workload_id for stream in streams})
        for stream in streams:
            oldest = None
            if stream.last_seq < written[stream.workload_id]:  # only a copy that lacks writes has a lag
                oldest = replication.first_pending_at(tx, workload_id=stream.workload_id, seq=stream.last_seq)
            lag_s = 0.0 if oldest is None else max(now - oldest, 0.0)
            target_s = repl.lag_target_s(
                stream, rpo_target_s=float(ctx.topology.tier(stream.tier).rpo_target_s)
            )
            result.setdefault(stream.workload_id, []).append(
                CurrentRpoPublic(
                    workload_id=stream.workload_id,
                    source=stream.source,
                    target=stream.target,
                    mode=stream.mode,
                    state=stream.state,
                    lag_s=round(lag_s, 3),
                    rpo_target_s=target_s,
                    over_target=lag_s > target_s,
                )
            )
    return result
