"""Failover and failback: a recovery plan, ordered like a DR orchestrator's, executed step by step.

A failover plan lists, per affected workload (lower tier ``priority`` first, then by id):

- ``final-sync`` (planned only): ship the last delta to the target — no data loss;
- ``promote``: the target serves — its held quota becomes usage, its servers start,
  roles swap (the left center's placement becomes ``failed`` when unplanned, or a
  ready copy when planned);
- ``switch-traffic``: the traffic driver points the service's record at the target;
- ``reprotect``: streams are rebuilt from the new serving center (``protection_streams``).

A failback to center C plans, per workload whose home layout has C serving and that is
not home there: ``resync`` (reverse replication into C until it is consistent),
``final-sync``, ``promote`` C, ``switch-traffic`` to C, then ``restore-home`` (every
placement takes its home role, a stand-in center stops its servers and keeps only its
quota hold, streams follow the home layout). A workload whose home has a copy (standby
or DR) in C and that serves at home again gets ``resync`` and ``restore-home`` only.

Hooks (``model.recovery.Hook``) are steps of the plan like the others.

Servers start by priority group, as a DR orchestrator powers on a recovery group: when a
run reaches the first ``promote`` of a tier, it starts the servers of every workload that
tier promotes next (up to the first hook or the next tier) before waiting for any, and
each ``promote`` then waits for its own servers, which boot meanwhile. A group's promotes
take about the slowest boot of the group, not the sum of its boots (on a simulated clock
the clock advances by the slowest boot); the next tier's servers start only once the
steps of this one are done. A server that cannot start with its group is started, and its
error raised, by its own ``promote``.

Invariants:
- One run per center at a time: starting a failover or failback of a center that
  an unfinished run still touches is refused, naming that run.
- The plan is fixed when the run starts and stored with it; each completed step is
  recorded (one row) in its own transaction, so a killed process resumes at the
  first step not done and never repeats one. Servers are found by name before one is
  created, so a group started before a kill is not started twice on resume.
- The home layout of a workload (the role of each placement) is recorded when a
  failover first moves it and is what failback restores; a failback of a workload
  already home plans nothing, so a second failback plans 0 steps.
- Unplanned failover accepts the loss the tier allows and reports it: the
  acknowledged writes the target never received (``writes_lost``) and the age of
  the oldest of them (``rpo_s``).
- A ``promote`` step that names a recovery point (``PointChoice``, chosen with the plan by
  ``failover --point``/``--at``) starts from it instead of the newest data the target holds:
  its volumes are made from that point's snapshots, the workload's data bucket in the target is
  rewound to the point's ``seq`` (``restore.rewind_objects``), and every write after the point
  counts in ``writes_lost``.
- A ``promote`` step carries the addresses its servers take in the target (``address_plan``:
  from the addresses recorded where they served and the topology's network maps, never read
  from the center being left); they are fixed with the plan, so a resumed run makes the same.
- A hook that fails acts by its policy: ``abort`` ends the run as failed, ``pause``
  stops it as paused until ``resume``, ``continue`` records the failure and goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import recovery as model
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.recovery import hooks as hook_calls
from cloudctl.recovery import materialise, restore, traffic
from cloudctl.recovery import replication as repl
from cloudctl.store import quotas, recovery, replication, requests

PLANNED, UNPLANNED = "planned", "unplanned"
SERVER_ACTIVE_TIMEOUT_S = 600.0
BEAT_EVERY_S = 10.0
"""A run's sign of life is written with a step at most this often: writing it rewrites the run's
row, its whole plan included, so at every step a large run spent half its time on it. A run is
taken as dead only after ``services.recovery.RUN_LEASE_S`` (900 s) without one."""
READY = states.PlacementState.READY
Action = model.StepAction

OnStep = Callable[[model.RecoveryStep, int, int], None]
"""Called after each step: ``(step, done_count, total)``."""

Heartbeat = Callable[[], float]
"""Wall-clock time, recorded with each step as the run's sign of life."""


@dataclasses.dataclass(frozen=True)
class Health:
    center_up: Callable[[str], bool]


def _healthy(health: Health, center: str) -> bool:
    return health.center_up(center)


def _asked_once(health: Health) -> Health:
    """Each center is asked once per plan, not once per workload."""
    known: dict[str, bool] = {}
    ask = health.center_up

    def center_up(center: str) -> bool:
        if center not in known:
            known[center] = ask(center)
        return known[center]

    return Health(center_up=center_up)


def choose_target(
    topology: topo.Topology,
    workload: requests.WorkloadRecord,
    *,
    from_center: str,
    to_center: str | None,
    health: Health,
) -> tuple[str | None, str]:
    """Where the workload should run after ``from_center`` is left, and why (or why nowhere)."""
    by_center = {p.center: p for p in workload.placements}
    if to_center is not None:
        if to_center not in by_center:
            return None, f"no placement in {to_center} (tier {workload.tier} keeps no copy there)"
        if not _healthy(health, to_center):
            return None, f"{to_center} is down"
        return to_center, "requested"
    candidates = [p for p in workload.placements if p.center != from_center]
    order = {
        states.PlacementRole.ACTIVE: 0,
        states.PlacementRole.STANDBY: 1,
        states.PlacementRole.PRIMARY: 1,
        states.PlacementRole.DR: 2,
    }
    for placement in sorted(candidates, key=lambda p: order.get(states.PlacementRole(p.role), 9)):
        if placement.state == states.PlacementState.FAILED:
            continue
        if _healthy(health, placement.center):
            return placement.center, f"{placement.role} copy"
    return None, "no healthy center holds a copy"


def plan(
    env: repl.Environment,
    *,
    from_centers: Iterable[str],
    to_center: str | None,
    mode: str,
    departments: list[str] | None,
    workload_ids: list[str] | None,
    health: Health,
) -> tuple[list[model.RecoveryStep], list[dict[str, Any]]]:
    """The ordered steps, and the workloads that cannot be recovered (with the reason)."""
    health = _asked_once(health)
    leaving = set(from_centers)
    with env.store.read() as tx:
        workloads = requests.list_workloads(tx, departments=departments, states=[states.WorkloadState.READY])
    if workload_ids is not None:
        workloads = [w for w in workloads if w.id in workload_ids]
    affected = [w for w in workloads if set(repl.serving_centers(w)) & leaving]
    affected.sort(key=lambda w: (env.topology.tier(w.tier).priority, w.id))
    steps: list[model.RecoveryStep] = []
    stranded: list[dict[str, Any]] = []
    for workload in affected:
        still_serving = [
            c for c in repl.serving_centers(workload) if c not in leaving and _healthy(health, c)
        ]
        if still_serving and to_center is None:
            target, why = still_serving[0], "active-active partner"
        else:
            target, why = None, ""
            for center in sorted(leaving & set(repl.serving_centers(workload))):
                target, why = choose_target(
                    env.topology, workload, from_center=center, to_center=to_center, health=health
                )
                if target is not None and target in leaving:
                    target, why = None, f"{target} is being left too"
        if target is None:
            stranded.append({"workload_id": workload.id, "tier": workload.tier, "reason": why})
            continue
        left = sorted(leaving & set(repl.serving_centers(workload)))
        actions = [Action.PROMOTE, Action.SWITCH_TRAFFIC, Action.REPROTECT]
        if mode == PLANNED:
            actions.insert(0, Action.FINAL_SYNC)
        moves = address_plan(env.topology, workload, target=target, left=left)
        steps += [
            model.RecoveryStep(
                action=action,
                workload_id=workload.id,
                tier=workload.tier,
                target=target,
                why=why,
                from_centers=left,
                addresses=moves if action is Action.PROMOTE else None,
            )
            for action in actions
        ]
    return model.number(steps), stranded


def address_plan(
    topology: topo.Topology, workload: requests.WorkloadRecord, *, target: str, left: list[str]
) -> list[model.AddressMapping] | None:
    """The addresses the workload's servers take in ``target``, from those recorded where they
    served (in ``left``) and the topology's network maps; ``None`` when no server is made there
    (it serves there already) or no map carries an address over."""
    by_center = {p.center: p for p in workload.placements}
    here = by_center.get(target)
    if here is None or states.serves(here.role, here.state):
        return None
    made_there = {item["name"] for item in here.resources}
    moves: dict[str, model.AddressMapping] = {}
    for center in left:
        for item in by_center[center].resources if center in by_center else []:
            name = item["name"]
            if item["kind"] != "server" or name in made_there or name in moves:
                continue
            if not item.get("network") or not item.get("address"):
                continue
            move = topology.move_address(
                center=center, network=item["network"], address=item["address"], to_center=target
            )
            if move is not None:
                moves[name] = model.AddressMapping(
                    server=name,
                    from_center=center,
                    network=move.network,
                    to_network=move.to_network,
                    old_address=move.old,
                    new_address=move.new,
                    kept=move.kept,
                )
    return list(moves.values()) or None


# --- the home layout and failback ---------------------------------------------------------------------


def derive_home(topology: topo.Topology, workload: requests.WorkloadRecord) -> dict[str, str]:
    """The home roles of a workload with none recorded: from its tier and where it serves (or
    the local center it left)."""
    tier = topology.tier(workload.tier)
    local = {c.name for c in topology.centers_with_role(topo.CenterRole.LOCAL)}
    ours = [p for p in workload.placements if p.center in local]
    serving_center = None
    if tier.local is not topo.LocalPlacement.ACTIVE_ACTIVE and ours:
        left = [
            p.center for p in ours if p.state in (states.PlacementState.FAILED, states.PlacementState.DRAINED)
        ]
        serving = [p.center for p in ours if p.role in states.SERVING_ROLES]
        serving_center = (left or serving or [ours[0].center])[0]
    roles = states.home_roles(
        topology, tier=tier, centers=[p.center for p in workload.placements], serving_center=serving_center
    )
    return {center: role.value for center, role in roles.items()}


def home_of(
    topology: topo.Topology, workload: requests.WorkloadRecord, recorded: dict[str, dict[str, str]]
) -> dict[str, str]:
    return recorded.get(workload.id) or derive_home(topology, workload)


def plan_failback(
    env: repl.Environment, *, to_center: str, health: Health
) -> tuple[list[model.RecoveryStep], list[dict[str, Any]]]:
    """The steps that bring home every workload whose home layout uses ``to_center`` and that is
    not home there; the workloads that cannot go home now (with the reason)."""
    health = _asked_once(health)
    with env.store.read() as tx:
        workloads = requests.list_workloads(tx, states=[states.WorkloadState.READY])
        recorded = recovery.homes_of(tx)
        unhealthy_into = {
            s.workload_id
            for s in replication.list_streams(tx)
            if s.target == to_center and s.state != states.StreamState.HEALTHY
        }
    workloads.sort(key=lambda w: (env.topology.tier(w.tier).priority, w.id))
    steps: list[model.RecoveryStep] = []
    stranded: list[dict[str, Any]] = []
    for workload in workloads:
        home = home_of(env.topology, workload, recorded)
        if to_center not in home:
            continue
        by_center = {p.center: p for p in workload.placements}
        here = by_center[to_center]
        home_serving = [c for c, role in home.items() if role in states.SERVING_ROLES]
        serving_now = repl.serving_centers(workload)
        stand_ins = [c for c in serving_now if c not in home_serving]
        base_step = {"workload_id": workload.id, "tier": workload.tier, "target": to_center}
        if to_center in home_serving:
            home_here = here.role == home[to_center] and here.state == READY
            if home_here and not stand_ins:
                continue
            why = f"home: {home[to_center]} in {to_center}"
            if home_here:
                actions = [Action.RESTORE_HOME]
            elif not serving_now:
                stranded.append({**base_step, "reason": "served nowhere: nothing to copy home from"})
                continue
            elif not all(_healthy(health, c) for c in serving_now):
                stranded.append({**base_step, "reason": f"{', '.join(serving_now)} is down"})
                continue
            else:
                actions = [
                    Action.RESYNC,
                    Action.FINAL_SYNC,
                    Action.PROMOTE,
                    Action.SWITCH_TRAFFIC,
                    Action.RESTORE_HOME,
                ]
        else:
            if stand_ins or not serving_now:
                continue  # its serving home is elsewhere and not back yet: that center's failback
            home_here = (
                here.role == home[to_center]
                and here.state
                not in (
                    states.PlacementState.FAILED,
                    states.PlacementState.DRAINED,
                )
                and not states.serves(here.role, here.state)
            )
            why = f"home: {home[to_center]} copy in {to_center}"
            actions = [Action.RESYNC, Action.RESTORE_HOME]
            if home_here:
                if workload.id not in unhealthy_into:
                    continue
                actions = [Action.RESYNC]
        moves = address_plan(env.topology, workload, target=to_center, left=stand_ins)
        steps += [
            model.RecoveryStep(
                action=action,
                why=why,
                from_centers=stand_ins,
                addresses=moves if action is Action.PROMOTE else None,
                **base_step,
            )
            for action in actions
        ]
    return model.number(steps), stranded


# --- running a plan -------------------------------------------------------------------------------------


def start(
    env: repl.Environment,
    *,
    kind: str,
    mode: str,
    from_centers: list[str],
    to_center: str | None,
    steps: list[model.RecoveryStep],
    stranded: list[dict[str, Any]],
    scope: dict[str, Any],
    started_by: str = "",
    owner: str = "",
    alive_at: float | None = None,
) -> recovery.RecoveryRun:
    """Store the run (refused while another unfinished run touches one of its centers); a failover
    also records the home layout of the workloads it moves, unless one is recorded already."""
    now = env.clock.now()
    run = recovery.RecoveryRun(
        id=f"{kind}-{int(now * 1000):013x}{secrets.token_hex(3)}",
        kind=kind,
        mode=mode,
        from_center=",".join(from_centers) or "-",
        to_center=to_center,
        scope=scope,
        state=states.RunState.RUNNING,
        plan=[step.document() for step in steps],
        progress=[],
        result={"stranded": stranded, "workloads": {}, "hooks": []},
        started_at=now,
        finished_at=None,
        started_by=started_by,
        owner=owner,
        heartbeat_at=alive_at,
    )
    moved = sorted({step.workload_id for step in steps if step.workload_id})
    with env.store.transaction() as tx:
        for center in sorted({*from_centers, *([to_center] if to_center else [])}):
            recovery.lock_center(tx, center)
            busy = recovery.running_for_center(tx, center)
            if busy:
                raise errors.Conflict(
                    f"{busy[0].kind} {busy[0].id} of {center} is {busy[0].state}; finish it with "
                    f"`cloudctl failover resume {busy[0].id}` first",
                    field="from",
                )
        if kind == "failover" and moved:
            workloads = requests.list_workloads(tx, ids=moved)
            recovery.record_homes(tx, {w.id: derive_home(env.topology, w) for w in workloads})
        recovery.insert_run(tx, run)
    return run


def steps_of(run: recovery.RecoveryRun) -> list[model.RecoveryStep]:
    return [model.RecoveryStep.model_validate(step) for step in run.plan]


def execute(
    env: repl.Environment,
    run_id: str,
    *,
    on_step: OnStep | None = None,
    owner: str = "",
    alive_at: Heartbeat | None = None,
) -> recovery.RecoveryRun:
    """Run (or resume) the steps not yet done; each step commits with its record (alone, or
    ``env.steps_per_commit`` at a time: see ``Environment``).

    Ends ``done``; ``paused`` or ``failed`` when a hook says so; ``interrupted`` when a step
    raises (or the process is interrupted), the error kept in the result, and re-raised.
    """
    beat = alive_at or env.clock.now
    with env.store.transaction() as tx:
        run = recovery.get_run(tx, run_id, for_update=True)
        states.check_transition(
            states.RUN_TRANSITIONS, states.RunState(run.state), states.RunState.RUNNING, field="run"
        )
        recovery.update_run(tx, run_id, state=states.RunState.RUNNING)
        last_beat = beat()
        recovery.claim_run(tx, run_id, owner=owner, alive_at=last_beat)
    done = {entry["id"] for entry in run.progress}
    # A run's result holds what its finished steps did, workload by workload.
    results: dict[str, Any] = {key: dict(value) for key, value in run.result.get("workloads", {}).items()}
    hook_outcomes: list[dict[str, Any]] = list(run.result.get("hooks", []))
    plan_steps = steps_of(run)
    todo = [step for step in plan_steps if step.id not in done]
    size = max(env.steps_per_commit, 1)
    stop: str | None = None
    launched: Launched = {}
    try:
        for first in range(0, len(todo), size):
            finished = []
            with env.store.unit_of_work() if size > 1 else contextlib.nullcontext():
                for position, step in enumerate(todo[first : first + size], start=first):
                    if step.action is Action.PROMOTE and (step.target, step.workload_id) not in launched:
                        _start_group(env, promote_group(todo, position), launched)
                    outcome = _do(env, run, step, launched=launched)
                    if step.hook is not None:
                        hook_outcomes.append({"step": step.id, **outcome})
                        if not outcome["ok"]:
                            stop = _stop_for(step.hook.on_failure)
                    else:
                        results.setdefault(step.workload_id, {}).update(outcome)
                    ran = step
                    if "addresses" in outcome:  # as served, which may differ from the plan
                        served = [model.AddressMapping(**each) for each in outcome["addresses"]]
                        ran = step.model_copy(update={"addresses": served})
                    with env.store.transaction() as tx:
                        at = env.clock.now()
                        recovery.record_step(tx, run_id=run_id, step_id=step.id, at=at, outcome=outcome)
                        alive = beat()
                        if alive - last_beat >= BEAT_EVERY_S:
                            recovery.beat(tx, run_id, alive_at=alive)
                            last_beat = alive
                    finished.append(ran)
                    if stop is not None:
                        break
            for step in finished:
                done.add(step.id)
                if on_step is not None:
                    on_step(step, len(done), len(plan_steps))
            if stop is not None:
                break
    except BaseException as interruption:
        with env.store.transaction() as tx:
            recovery.update_run(
                tx,
                run_id,
                state=states.RunState.INTERRUPTED,
                owner="",
                result={**run.result, "error": _describe(interruption)},
            )
        raise
    result = {**run.result, "workloads": results, "hooks": hook_outcomes}
    result.pop("error", None)
    with env.store.transaction() as tx:
        if stop == states.RunState.PAUSED:
            return recovery.update_run(tx, run_id, state=stop, owner="", result=result)
        return recovery.update_run(
            tx,
            run_id,
            state=stop or states.RunState.DONE,
            owner="",
            finished_at=env.clock.now(),
            result=result,
        )


def _stop_for(policy: model.FailurePolicy) -> str | None:
    if policy is model.FailurePolicy.ABORT:
        return states.RunState.FAILED
    if policy is model.FailurePolicy.PAUSE:
        return states.RunState.PAUSED
    return None


def _describe(interruption: BaseException) -> str:
    if isinstance(interruption, errors.CloudctlError):
        return interruption.one_line()
    if isinstance(interruption, KeyboardInterrupt):
        return "interrupted by the operator"
    return f"{type(interruption).__name__}: {interruption}"


def _do(
    env: repl.Environment,
    run: recovery.RecoveryRun,
    step: model.RecoveryStep,
    *,
    launched: Launched | None = None,
) -> dict[str, Any]:
    workload_id, target, left = step.workload_id, step.target, step.from_centers
    match step.action:
        case Action.FINAL_SYNC:
            return _final_sync(env, workload_id, target=target)
        case Action.PROMOTE:
            return _promote(
                env,
                workload_id,
                target=target,
                left=left,
                mode=run.mode,
                launched=launched or {},
                addresses=step.addresses or [],
                point=step.point,
            )
        case Action.SWITCH_TRAFFIC:
            return _switch_traffic(env, workload_id, target=target, left=left)
        case Action.REPROTECT:
            return _reprotect(env, workload_id)
        case Action.RESYNC:
            return _resync(env, workload_id, center=target)
        case Action.RESTORE_HOME:
            return _restore_home(env, workload_id, center=target)
        case Action.HOOK:
            assert step.hook is not None
            return hook_calls.call(
                step.hook,
                about={"run": run.id, "kind": run.kind, "mode": run.mode, "step": step.id, "scope": step.why},
            )
    raise errors.OperationFailed(f"unknown recovery step {step.action!r}", field="plan")


def _streams_to(env: repl.Environment, workload_id: str, target: str) -> list[replication.Stream]:
    with env.store.read() as tx:
        return [
            s
            for s in replication.list_streams(tx, workload_ids=[workload_id])
            if target in (s.target, s.source)
        ]


def _final_sync(env: repl.Environment, workload_id: str, *, target: str) -> dict[str, Any]:
    """Planned: ship everything the target lacks, until nothing is pending."""
    shipped = 0
    for stream in _streams_to(env, workload_id, target):
        if stream.target != target:
            continue
        result = repl.replicate(env, stream.id)
        if result.error:
            raise errors.BackendUnavailable(f"final sync to {target} failed: {result.error}", field="stream")
        shipped += result.copied
    return {"final_sync_objects": shipped, "writes_lost": 0}


def _promote(
    env: repl.Environment,
    workload_id: str,
    *,
    target: str,
    left: list[str],
    mode: str,
    launched: Launched,
    addresses: list[model.AddressMapping],
    point: model.PointChoice | None = None,
) -> dict[str, Any]:
    now = env.clock.now()
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
        latest = replication.last_seq(tx, workload_id=workload_id)
        streams = replication.list_streams(tx, workload_ids=[workload_id])
        at_target = max(
            [s.last_seq for s in streams if s.target == target]
            + [latest if target in repl.serving_centers(workload) else 0]
        )
        if point is not None:
            at_target = point.seq  # a failover to a chosen point: what came after it is given up
        lost = replication.changes_after(tx, workload_id=workload_id, seq=at_target)
    by_center = {p.center: p for p in workload.placements}
    placement = by_center[target]
    offering = env.topology.offering(workload.offering)
    made = list(placement.resources)
    if not states.serves(placement.role, placement.state):
        made = _start_servers(
            env.drivers_for(target),
            workload,
            offering,
            existing=made,
            launched=launched,
            ports=_ports(env.topology, target, addresses),
        )
        made = materialise.recover_volumes(
            env, workload, target=target, left=left, seq=at_target, resources=made
        )
    rewound: tuple[str, ...] = ()
    if point is not None:
        rewound, _removed, _missing = restore.rewind_objects(env, workload_id, center=target, seq=point.seq)
    with env.store.transaction() as tx:
        current = requests.get_workload(tx, workload_id, for_update=True)
        quotas.commit_reservations(tx, [by_center[target].reservation_id], now=now)
        requests.update_placement(
            tx,
            workload_id=workload_id,
            center=target,
            values={"role": states.promoted_role(placement.role), "state": READY, "resources": made},
        )
        dr_centers = {c.name for c in env.topology.centers_with_role(topo.CenterRole.DR)}
        for center in left:
            old = by_center[center]
            requests.update_placement(
                tx,
                workload_id=workload_id,
                center=center,
                values={
                    "role": states.demoted_role(old.role, center_is_dr=center in dr_centers),
                    "state": states.left_state(old.role, planned=mode == PLANNED),
                },
            )
        requests.update_workload(tx, current, now=now)
    served_at = env.clock.now()
    rpo_s = max(now - min(change.at for change in lost), 0.0) if lost else 0.0
    outcome: dict[str, Any] = {
        "served_in": target,
        "served_at": served_at,
        "writes_lost": len(lost),
        "rpo_s": rpo_s,
    }
    if addresses:
        served, held = _served_addresses(addresses, made)
        outcome["addresses"] = [mapping.model_dump(mode="json") for mapping in served]
        if held:
            outcome["addresses_held_there"] = held
    if point is not None:
        outcome["point"] = point.id
        outcome["objects_rewound"] = len(rewound)
    return outcome


def _served_addresses(
    planned: list[model.AddressMapping], made: list[dict[str, Any]]
) -> tuple[list[model.AddressMapping], list[dict[str, str]]]:
    """The address each mapped server got in the recovery center, and the planned addresses
    another server there held (the server then took one the backend picked)."""
    got = {item["name"]: item.get("address") for item in made if item.get("kind") == "server"}
    served: list[model.AddressMapping] = []
    held: list[dict[str, str]] = []
    for mapping in planned:
        address = got.get(mapping.server)
        if not address or address == mapping.new_address:
            served.append(mapping)
            continue
        held.append({"server": mapping.server, "planned": mapping.new_address, "got": address})
        served.append(
            mapping.model_copy(update={"new_address": address, "kept": address == mapping.old_address})
        )
    return served, held


Ports = Callable[[str], base.PortRequest | None]
"""The port of a server made in the recovery center, by the server's name."""


def _ports(topology: topo.Topology, target: str, addresses: list[model.AddressMapping]) -> Ports:
    """Servers get their port on ``target``'s workload network (when the topology declares one),
    at the address the plan mapped for them, or at one the backend picks."""
    network = topology.workload_network(target)
    by_server = {mapping.server: mapping for mapping in addresses}

    def port(server: str) -> base.PortRequest | None:
        mapping = by_server.get(server)
        if network is None and mapping is None:
            return None
        name = mapping.to_network if mapping else network.name if network else ""
        declared = topology.network(target, name)
        if declared is None:
            return None
        return base.PortRequest(
            network=name,
            subnet=str(declared.subnet),
            address=mapping.new_address if mapping else None,
            segment=topology.segment(target, name),
            pool=topology.allocation_pool(target, name),
        )

    return port


Launched = dict[tuple[str, str], list[base.Server]]
"""The servers a run has started, by ``(center, workload id)``: found or created, not waited for."""


def promote_group(todo: list[model.RecoveryStep], position: int) -> list[model.RecoveryStep]:
    """The ``promote`` steps of the priority group whose first step not done is ``todo[position]``:
    the tier's steps from there up to the first hook or the next tier."""
    tier = todo[position].tier
    group = []
    for step in todo[position:]:
        if step.action is Action.HOOK or step.tier != tier:
            break
        if step.action is Action.PROMOTE:
            group.append(step)
    return group


def _start_group(env: repl.Environment, group: list[model.RecoveryStep], launched: Launched) -> None:
    """Start the servers of every workload of ``group`` in its target center, waiting for none.

    Stops at the first error: the workloads not started here start (and raise) in their own step.
    """
    with env.store.read() as tx:
        workloads = {w.id: w for w in requests.list_workloads(tx, ids=[s.workload_id for s in group])}
    for step in group:
        workload = workloads.get(step.workload_id)
        if workload is None:
            continue  # its own step says why
        placement = next((p for p in workload.placements if p.center == step.target), None)
        servers: list[base.Server] = []
        if placement is not None and not states.serves(placement.role, placement.state):
            try:
                servers = _launch_servers(
                    env.drivers_for(step.target),
                    workload,
                    env.topology.offering(workload.offering),
                    existing=placement.resources,
                    ports=_ports(env.topology, step.target, step.addresses or []),
                )
            except errors.CloudctlError:
                return
        launched[(step.target, workload.id)] = servers


def _launch_servers(
    drivers: base.CenterDrivers,
    workload: requests.WorkloadRecord,
    offering: topo.Offering,
    *,
    existing: list[dict[str, Any]],
    ports: Ports,
) -> list[base.Server]:
    """The workload's servers not among ``existing``, found by name or created; not waited for."""
    if offering.kind is not topo.OfferingKind.VM:
        return []
    names = {item["name"] for item in existing}
    servers = []
    for index in range(workload.count):
        name = f"{workload.id}-{index}"
        if name in names:
            continue
        servers.append(
            drivers.compute.find_server(name)
            or _create_server(drivers, workload, offering, name=name, port=ports(name))
        )
    return servers


def _create_server(
    drivers: base.CenterDrivers,
    workload: requests.WorkloadRecord,
    offering: topo.Offering,
    *,
    name: str,
    port: base.PortRequest | None,
) -> base.Server:
    """One recovered server, at the address the plan mapped for it; where another server of the
    recovery center holds that address, at one the backend picks: the workload is served all
    the same, and the step's outcome says which address it got (``_served_addresses``)."""

    def create(asked: base.PortRequest | None) -> base.Server:
        return drivers.compute.create_server(
            name=name,
            project=workload.department,
            vcpu=offering.vcpu,
            ram_gb=offering.ram_gb,
            disk_gb=offering.volume_gb,
            metadata={"workload": workload.id, "tier": workload.tier, "recovered": "true"},
            port=asked,
        )

    try:
        return create(port)
    except errors.Conflict as held:
        if port is None or port.address is None or held.field != "address":
            raise
        return create(dataclasses.replace(port, address=None))


def _start_servers(
    drivers: base.CenterDrivers,
    workload: requests.WorkloadRecord,
    offering: topo.Offering,
    *,
    existing: list[dict[str, Any]],
    launched: Launched,
    ports: Ports,
) -> list[dict[str, Any]]:
    """Bring the workload's compute up in the recovery center (idempotent by name): the servers
    its group started already, else started now; then wait until each is active. A server made
    with a port is recorded with its network and address, which a later failover carries on."""
    servers = launched.pop((drivers.center, workload.id), None)
    if servers is None:
        servers = _launch_servers(drivers, workload, offering, existing=existing, ports=ports)
    made = list(existing)
    for server in servers:
        active = drivers.compute.wait_for_status(
            server.id, status=base.ServerStatus.ACTIVE, timeout_s=SERVER_ACTIVE_TIMEOUT_S
        )
        item: dict[str, Any] = {"kind": "server", "name": server.name, "id": server.id}
        port = ports(server.name)
        if port is not None:
            item["network"] = port.network
            if active.addresses:
                item["address"] = active.addresses[0]
        made.append(item)
    return made


def traffic_center(topology: topo.Topology) -> str:
    """The traffic (GSLB) driver lives with the management center."""
    return topology.centers_with_role(topo.CenterRole.MANAGEMENT)[0].name


def _switch_traffic(
    env: repl.Environment, workload_id: str, *, target: str, left: list[str]
) -> dict[str, Any]:
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
    driver = env.drivers_for(traffic.traffic_center(env.topology)).traffic
    address = traffic.served_address(workload, center=target)
    traffic.switch(driver, env.topology, workload, target=target, left=left, address=address)
    outcome: dict[str, Any] = {"traffic_to": target, "served_at": env.clock.now()}
    if address is not None:
        outcome["traffic_address"] = address
    return outcome


def protection_streams(
    topology: topo.Topology, workload: requests.WorkloadRecord
) -> list[tuple[str, str, str, float | None]]:
    """``(source, target, mode, interval_s)`` of the streams that protect the workload from where
    it serves now: to every other center holding a placement of it.

    At home this is what the tier declares (``repl.streams_for``). Away from home the copies
    follow the serving center: a local center copies synchronously to the other local one and
    to DR as the tier says; a workload served from the DR center copies back asynchronously to
    its local centers, so failback has the data at hand.
    """
    serving = repl.serving_centers(workload)
    if not serving:
        return []
    tier = topology.tier(workload.tier)
    source = serving[0]
    dr_centers = {c.name for c in topology.centers_with_role(topo.CenterRole.DR)}
    interval_s = float(tier.dr_interval_s or 0)
    planned: list[tuple[str, str, str, float | None]] = []
    for placement in workload.placements:
        target = placement.center
        if target == source:
            continue
        if target in dr_centers:
            if tier.dr_copy is topo.DrCopy.NONE:
                continue
            mode = repl.ASYNC if tier.dr_copy is topo.DrCopy.ASYNC else repl.BACKUP
            planned.append((source, target, mode, interval_s))
        elif source in dr_centers:
            planned.append((source, target, repl.ASYNC, interval_s or None))
        elif tier.local is not topo.LocalPlacement.SINGLE:
            planned.append((source, target, repl.SYNC, None))
    return planned


def _reprotect(env: repl.Environment, workload_id: str) -> dict[str, Any]:
    """Rebuild the streams from where the workload is served now; keep what each copy already holds."""
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
        old = replication.list_streams(tx, workload_ids=[workload_id])
        latest = replication.last_seq(tx, workload_id=workload_id)
    known: dict[str, tuple[int, float | None]] = {}
    for stream in old:
        if stream.last_seq >= known.get(stream.target, (-1, None))[0]:
            known[stream.target] = (stream.last_seq, stream.last_consistent_at)
    for stream in old:
        known.setdefault(stream.source, (latest, env.clock.now()))
    now = env.clock.now()
    planned = protection_streams(env.topology, workload)
    failed = {p.center for p in workload.placements if p.state == states.PlacementState.FAILED}
    with env.store.transaction() as tx:
        replication.delete_streams(tx, workload_id=workload_id)
        for source, target, mode, interval_s in planned:
            seq, consistent_at = known.get(target, (0, None))
            if target in failed:
                state = states.StreamState.DEGRADED
            else:
                state = states.StreamState.HEALTHY if seq >= latest else states.StreamState.LAGGING
            replication.upsert_stream(
                tx,
                replication.new_stream(
                    workload_id=workload_id,
                    department=workload.department,
                    tier=workload.tier,
                    source=source,
                    target=target,
                    mode=mode,
                    interval_s=interval_s,
                    state=state,
                    last_seq=min(seq, latest),
                    last_consistent_at=consistent_at,
                    last_pass_at=None,
                    now=now,
                ),
            )
    return {"streams": [f"{s}>{t} {m}" for s, t, m, _i in planned]}


def _resync(env: repl.Environment, workload_id: str, *, center: str) -> dict[str, Any]:
    """Reverse replication into the returning ``center`` until it holds every acknowledged write,
    each object it should hold read back and repaired if it differs.

    The outcome names (``superseded``, at most ``SUPERSEDED_LISTED``; ``superseded_count`` all)
    each object the returning center held whose bytes the resync replaced or removed, with the
    version id its bucket keeps it under (``None`` where the bucket kept none): the writes a
    failover counted as lost are not destroyed by coming home. The returning bucket gets the
    tier's retention first (``set_retention``), as a DR copy has it, so it keeps them that long."""
    with env.store.transaction() as tx:
        workload = requests.get_workload(tx, workload_id, for_update=True)
        here = next(p for p in workload.placements if p.center == center)
        if here.state in (states.PlacementState.FAILED, states.PlacementState.DRAINED):
            # Back, and receiving: it holds the quota and takes the copy, it does not serve yet.
            requests.update_placement(
                tx,
                workload_id=workload_id,
                center=center,
                values={"state": states.PlacementState.RESERVED},
            )
    storage = env.drivers_for(center).object_storage
    bucket = repl.data_bucket(workload_id)
    try:
        storage.get_bucket(bucket)
    except errors.NotFound:
        storage.create_bucket(bucket, versioning=True)
    # What the resync replaces here is kept as the DR copy keeps what its source overwrites.
    storage.set_retention(bucket, days=env.topology.tier(workload.tier).deleted_retention_days)
    held = _current_versions(storage.list_object_versions(bucket))
    _reprotect(env, workload_id)
    shipped = repaired = 0
    for stream in _streams_to(env, workload_id, center):
        if stream.target != center:
            continue
        while True:
            result = repl.replicate(env, stream.id)
            if result.error:
                raise errors.BackendUnavailable(f"resync of {center} failed: {result.error}", field="stream")
            shipped += result.copied
            with env.store.read() as tx:
                if replication.get_stream(tx, stream.id).state == states.StreamState.HEALTHY:
                    break
        # What the center held before it was left is not trusted: re-read it all, repair what differs.
        repaired += repl.scrub(env, stream.id).resent
    # What the resync replaced with other bytes or removed: a versioned bucket keeps each as a
    # noncurrent version (the writes a failover counted as lost among them), named here.
    versions = storage.list_object_versions(bucket)
    now_held = _current_versions(versions)
    kept = {(item.key, item.version_id) for item in versions if not item.deleted}
    superseded = [
        {
            "key": key,
            "version_id": version if (key, version) in kept and version != base.UNVERSIONED else None,
        }
        for key, (version, etag) in sorted(held.items())
        if now_held.get(key, ("", ""))[1] != etag
    ]
    return {
        "resynced_to": center,
        "resynced_objects": shipped + repaired,
        "repaired_objects": repaired,
        "superseded_count": len(superseded),
        "superseded": superseded[:SUPERSEDED_LISTED],
    }


SUPERSEDED_LISTED = 1000
"""How many superseded versions a resync step names (it counts them all)."""


def _current_versions(versions: Iterable[base.ObjectVersion]) -> dict[str, tuple[str, str]]:
    """The current version (its id and etag) of each object of a bucket's version listing."""
    return {
        item.key: (item.version_id, item.etag) for item in versions if item.is_latest and not item.deleted
    }


def _restore_home(env: repl.Environment, workload_id: str, *, center: str) -> dict[str, Any]:
    """Every placement takes its home role; centers that stood in hand back; streams of the home layout.

    A home copy in ``center`` is ``reserved`` again (it was resynced); one in another center that
    is still failed stays failed until that center's own failback.
    """
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
        home = home_of(env.topology, workload, recovery.homes_of(tx, [workload_id]))
    handing_back = []
    with env.store.transaction() as tx:
        for placement in workload.placements:
            role = home.get(placement.center, placement.role)
            values: dict[str, Any] = {"role": role}
            reachable = placement.center == center or placement.state != states.PlacementState.FAILED
            if role not in states.SERVING_ROLES and reachable:
                values["state"] = states.PlacementState.RESERVED
                handing_back.append(placement.center)
            requests.update_placement(tx, workload_id=workload_id, center=placement.center, values=values)
    for stand_in in handing_back:
        hand_back(env, workload_id, center=stand_in)
    streams = _reprotect(env, workload_id)
    return {"home": home, "handed_back": handing_back, **streams}


def hand_back(env: repl.Environment, workload_id: str, *, center: str) -> None:
    """After failback: the center that stood in stops its servers, removes the disks they ran on
    (volumes made from a replication point, whose data went home with the resync), and keeps
    its replicas and the quota hold. Safe to repeat after a crash part-way."""
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
    placement = next(p for p in workload.placements if p.center == center)
    if placement.role not in {states.PlacementRole.STANDBY, states.PlacementRole.DR}:
        return
    drivers = env.drivers_for(center)
    stood_in = [r for r in placement.resources if r["kind"] == "server" or "point" in r]
    for item in stood_in:  # servers first: deleting one frees the disks attached to it
        if item["kind"] == "server":
            drivers.compute.delete_server(item["id"], ignore_missing=True)
    for item in stood_in:
        if item["kind"] == "volume":
            drivers.block_storage.delete_volume(item["id"], ignore_missing=True)
    with env.store.transaction() as tx:
        quotas.hold_reservations(tx, [placement.reservation_id], now=env.clock.now())
        requests.update_placement(
            tx,
            workload_id=workload_id,
            center=center,
            values={"resources": [r for r in placement.resources if r not in stood_in]},
        )
