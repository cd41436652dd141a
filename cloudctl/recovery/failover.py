"""Failover and failback: a recovery plan, ordered like a DR orchestrator's, executed step by step.

A plan lists, per affected workload (lower tier ``priority`` first, then by id):

- ``final-sync`` (planned only): ship the last delta to the target — no data loss;
- ``promote``: the target serves — its held quota becomes usage, its servers start,
  roles swap (the left center's placement becomes ``failed`` when unplanned, or a
  ready standby when planned);
- ``switch-traffic``: the traffic driver points the service's record at the target;
- ``reprotect``: streams are rebuilt from the new serving center.

Invariants:
- One run per center at a time: starting a failover or failback of a center that
  an unfinished run still touches is refused, naming that run.
- The plan is fixed when the run starts and stored with it; each completed step is
  recorded (one row) in its own transaction, so a killed process resumes at the
  first step not done and never repeats one.
- Unplanned failover accepts the loss the tier allows and reports it: the
  acknowledged writes the target never received (``writes_lost``) and the age of
  the oldest of them (``rpo_s``).
- Failback first reprotects (reverse replication from where the workload runs now
  until the returning center is consistent), then runs a planned failover back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Callable, Iterable
from typing import Any

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import topology as topo
from cloudctl.recovery import replication as repl
from cloudctl.recovery import traffic
from cloudctl.store import quotas, recovery, replication, requests

PLANNED, UNPLANNED = "planned", "unplanned"
SERVER_ACTIVE_TIMEOUT_S = 600.0

OnStep = Callable[[dict[str, Any], int, int], None]
"""Called after each step: ``(step, done_count, total)``."""


@dataclasses.dataclass(frozen=True)
class Health:
    center_up: Callable[[str], bool]


def _healthy(health: Health, center: str) -> bool:
    return health.center_up(center)


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
    order = {"active": 0, "standby": 1, "primary": 1, "dr": 2}
    for placement in sorted(candidates, key=lambda p: order.get(p.role, 9)):
        if placement.state == "failed":
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
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ordered steps, and the workloads that cannot be recovered (with the reason)."""
    known: dict[str, bool] = {}
    ask = health.center_up

    def center_up(center: str) -> bool:
        if center not in known:
            known[center] = ask(center)
        return known[center]

    health = Health(center_up=center_up)  # each center is asked once per plan, not once per workload
    leaving = set(from_centers)
    with env.store.read() as tx:
        workloads = requests.list_workloads(tx, departments=departments, states=["ready"])
    if workload_ids is not None:
        workloads = [w for w in workloads if w.id in workload_ids]
    affected = [w for w in workloads if set(repl.serving_centers(w)) & leaving]
    affected.sort(key=lambda w: (env.topology.tier(w.tier).priority, w.id))
    steps: list[dict[str, Any]] = []
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
        base_step = {"workload_id": workload.id, "tier": workload.tier, "target": target, "why": why}
        left = sorted(leaving & set(repl.serving_centers(workload)))
        if mode == PLANNED:
            steps.append({**base_step, "action": "final-sync", "from": left})
        steps.append({**base_step, "action": "promote", "from": left})
        steps.append({**base_step, "action": "switch-traffic", "from": left})
        steps.append({**base_step, "action": "reprotect", "from": left})
    for index, step in enumerate(steps):
        step["id"] = f"{index:04d}:{step['workload_id']}:{step['action']}"
    return steps, stranded


def start(
    env: repl.Environment,
    *,
    kind: str,
    mode: str,
    from_center: str,
    to_center: str | None,
    steps: list[dict[str, Any]],
    stranded: list[dict[str, Any]],
    scope: dict[str, Any],
) -> recovery.RecoveryRun:
    now = env.clock.now()
    run = recovery.RecoveryRun(
        id=f"{kind}-{int(now * 1000):013x}{secrets.token_hex(3)}",
        kind=kind,
        mode=mode,
        from_center=from_center,
        to_center=to_center,
        scope=scope,
        state="running",
        plan=steps,
        progress=[],
        result={"stranded": stranded, "workloads": {}},
        started_at=now,
        finished_at=None,
    )
    with env.store.transaction() as tx:
        for center in sorted({*from_center.split(","), *([to_center] if to_center else [])}):
            recovery.lock_center(tx, center)
            busy = recovery.running_for_center(tx, center)
            if busy:
                raise errors.Conflict(
                    f"{busy[0].kind} {busy[0].id} of {center} is still running; finish it with "
                    f"`cloudctl failover resume {busy[0].id}` first",
                    field="from",
                )
        recovery.insert_run(tx, run)
    return run


def execute(env: repl.Environment, run_id: str, *, on_step: OnStep | None = None) -> recovery.RecoveryRun:
    """Run (or resume) the steps not yet done; each step commits with its record (alone, or
    ``env.steps_per_commit`` at a time: see ``Environment``)."""
    with env.store.read() as tx:
        run = recovery.get_run(tx, run_id)
    done = {entry["id"] for entry in run.progress}
    # A running run's result holds what its finished steps did, workload by workload.
    results: dict[str, Any] = {key: dict(value) for key, value in run.result.get("workloads", {}).items()}
    todo = [step for step in run.plan if step["id"] not in done]
    size = max(env.steps_per_commit, 1)
    for start in range(0, len(todo), size):
        finished = []
        with env.store.unit_of_work() if size > 1 else contextlib.nullcontext():
            for step in todo[start : start + size]:
                outcome = _do(env, run, step)
                results.setdefault(step["workload_id"], {}).update(outcome)
                with env.store.transaction() as tx:
                    at = env.clock.now()
                    recovery.record_step(tx, run_id=run_id, step_id=step["id"], at=at, outcome=outcome)
                finished.append(step)
        for step in finished:
            done.add(step["id"])
            if on_step is not None:
                on_step(step, len(done), len(run.plan))
    with env.store.transaction() as tx:
        return recovery.update_run(
            tx,
            run_id,
            state="done",
            finished_at=env.clock.now(),
            result={**run.result, "workloads": results},
        )


def _do(env: repl.Environment, run: recovery.RecoveryRun, step: dict[str, Any]) -> dict[str, Any]:
    action = step["action"]
    workload_id, target = step["workload_id"], step["target"]
    if action == "final-sync":
        return _final_sync(env, workload_id, target=target)
    if action == "promote":
        return _promote(env, workload_id, target=target, left=step["from"], mode=run.mode)
    if action == "switch-traffic":
        return _switch_traffic(env, workload_id, target=target, left=step["from"])
    if action == "reprotect":
        return _reprotect(env, workload_id)
    raise errors.OperationFailed(f"unknown recovery step {action!r}", field="plan")


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
    env: repl.Environment, workload_id: str, *, target: str, left: list[str], mode: str
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
        lost = replication.changes_after(tx, workload_id=workload_id, seq=at_target)
    by_center = {p.center: p for p in workload.placements}
    placement = by_center[target]
    offering = env.topology.offering(workload.offering)
    made = list(placement.resources)
    if placement.role not in repl.SERVING_ROLES or placement.state != "ready":
        made = _start_servers(env.drivers_for(target), workload, offering, existing=made)
    with env.store.transaction() as tx:
        current = requests.get_workload(tx, workload_id, for_update=True)
        quotas.commit_reservations(tx, [by_center[target].reservation_id], now=now)
        new_role = "active" if placement.role == "active" else "primary"
        requests.update_placement(
            tx,
            workload_id=workload_id,
            center=target,
            values={"role": new_role, "state": "ready", "resources": made},
        )
        dr_centers = {c.name for c in env.topology.centers_with_role(topo.CenterRole.DR)}
        for center in left:
            old = by_center[center]
            demoted_role = "active" if old.role == "active" else ("dr" if center in dr_centers else "standby")
            demoted_state = "failed"
            if mode == PLANNED:
                demoted_state = "drained" if old.role == "active" else "ready"
            requests.update_placement(
                tx,
                workload_id=workload_id,
                center=center,
                values={"role": demoted_role, "state": demoted_state},
            )
        requests.update_workload(tx, current, now=now)
    served_at = env.clock.now()
    rpo_s = max(now - min(change.at for change in lost), 0.0) if lost else 0.0
    return {"served_in": target, "served_at": served_at, "writes_lost": len(lost), "rpo_s": rpo_s}


def _start_servers(
    drivers: base.CenterDrivers,
    workload: requests.WorkloadRecord,
    offering: topo.Offering,
    *,
    existing: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Bring the workload's compute up in the recovery center (idempotent by name)."""
    if offering.kind is not topo.OfferingKind.VM:
        return existing
    made = list(existing)
    names = {item["name"] for item in made}
    for index in range(workload.count):
        name = f"{workload.id}-{index}"
        if name in names:
            continue
        server = drivers.compute.find_server(name) or drivers.compute.create_server(
            name=name,
            project=workload.department,
            vcpu=offering.vcpu,
            ram_gb=offering.ram_gb,
            disk_gb=offering.volume_gb,
            metadata={"workload": workload.id, "tier": workload.tier, "recovered": "true"},
        )
        drivers.compute.wait_for_status(
            server.id, status=base.ServerStatus.ACTIVE, timeout_s=SERVER_ACTIVE_TIMEOUT_S
        )
        made.append({"kind": "server", "name": name, "id": server.id})
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
    traffic.switch(driver, env.topology, workload, target=target, left=left)
    return {"traffic_to": target, "served_at": env.clock.now()}


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
    planned = repl.streams_for(env.topology, workload)
    with env.store.transaction() as tx:
        replication.delete_streams(tx, workload_id=workload_id)
        for source, target, mode, interval_s in planned:
            seq, consistent_at = known.get(target, (0, None))
            down = any(p.center == target and p.state == "failed" for p in workload.placements)
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
                    state="degraded" if down else ("healthy" if seq >= latest else "lagging"),
                    last_seq=min(seq, latest),
                    last_consistent_at=consistent_at,
                    last_pass_at=None,
                    now=now,
                ),
            )
    return {"streams": [f"{s}>{t} {m}" for s, t, m, _i in planned]}


def failback_candidates(env: repl.Environment, *, to_center: str) -> list[str]:
    """Workloads that once ran in ``to_center`` (their placement there is ``failed`` or ``drained``)."""
    with env.store.read() as tx:
        workloads = requests.list_workloads(tx, states=["ready"])
    return [
        w.id
        for w in workloads
        if any(p.center == to_center and p.state in ("failed", "drained") for p in w.placements)
    ]


def reprotect_for_failback(env: repl.Environment, workload_ids: list[str], *, to_center: str) -> int:
    """Reverse replication into the returning center until it is consistent; how many objects were shipped."""
    shipped = 0
    for workload_id in workload_ids:
        with env.store.transaction() as tx:
            requests.update_placement(
                tx, workload_id=workload_id, center=to_center, values={"state": "ready"}
            )
        _reprotect(env, workload_id)
        if not any(stream.target == to_center for stream in _streams_to(env, workload_id, to_center)):
            _reverse_stream(env, workload_id, to_center=to_center)
        for stream in _streams_to(env, workload_id, to_center):
            if stream.target != to_center:
                continue
            result = repl.replicate(env, stream.id)
            if result.error:
                raise errors.BackendUnavailable(
                    f"reprotect to {to_center} failed: {result.error}", field="stream"
                )
            shipped += result.copied
    return shipped


def _reverse_stream(env: repl.Environment, workload_id: str, *, to_center: str) -> None:
    """A stream back into the returning center when the tier keeps none from where it runs now."""
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
        known = [s for s in replication.list_streams(tx, workload_ids=[workload_id]) if s.target == to_center]
    source = repl.serving_centers(workload)[0]
    tier = env.topology.tier(workload.tier)
    now = env.clock.now()
    with env.store.transaction() as tx:
        replication.upsert_stream(
            tx,
            replication.new_stream(
                workload_id=workload_id,
                department=workload.department,
                tier=workload.tier,
                source=source,
                target=to_center,
                mode=repl.ASYNC,
                interval_s=float(tier.dr_interval_s or 0) or None,
                state="lagging",
                last_seq=known[0].last_seq if known else 0,
                last_consistent_at=known[0].last_consistent_at if known else None,
                last_pass_at=None,
                now=now,
            ),
        )


def hand_back(env: repl.Environment, workload_id: str, *, center: str) -> None:
    """After failback: the center that stood in stops its servers and keeps only the quota hold."""
    with env.store.read() as tx:
        workload = requests.get_workload(tx, workload_id)
    placement = next(p for p in workload.placements if p.center == center)
    if placement.role not in {"standby", "dr"}:
        return
    drivers = env.drivers_for(center)
    for item in placement.resources:
        if item["kind"] == "server":
            drivers.compute.delete_server(item["id"], ignore_missing=True)
    with env.store.transaction() as tx:
        quotas.hold_reservations(tx, [placement.reservation_id], now=env.clock.now())
        requests.update_placement(
            tx,
            workload_id=workload_id,
            center=center,
            values={"resources": [r for r in placement.resources if r["kind"] != "server"]},
        )
