"""A failover starts the servers of a priority group (a tier) together: the group's promotes take
about one boot, not one per workload, and the next tier starts only after it.

Known answers on a manual clock: servers boot in ``BOOT_S``; ``GOLD`` gold and ``SILVER`` silver
workloads serve in qd-a when qd-a goes down. Gold (priority 20) recovers in qd-b, silver (30) in
dz-dr. One after another, gold's last workload would serve ``GOLD × BOOT_S`` after the fault;
started together, every gold workload serves about ``BOOT_S`` after it, and every silver one
about ``2 × BOOT_S`` (gold's group, then its own). "About" is the other steps' API latency and
the wait's poll interval, a few seconds here against boots of 100.
"""

from __future__ import annotations

from typing import Any

import pytest

from cloudctl.drivers import simulator as sim
from cloudctl.model import recovery as model
from cloudctl.recovery import failover
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, faults, identity, recovery
from cloudctl.store import requests, simulator_state
from tests.unit.recovery.test_recovery_runs import ready_workload

OPS = identity.local_operator("sysadmin")
BOOT_S = 100.0
GOLD, SILVER = 5, 3
SLACK_S = 10.0
"""The other steps' latency (a few ms per API call) and the 2 s poll of each wait, bounded."""


@pytest.fixture
def slow_boots(ctx: ctx_module.Context) -> sim.Simulator:
    """The context's simulator, with servers that take ``BOOT_S`` to become active."""
    simulator = sim.Simulator(
        ctx.topology,
        backend=simulator_state.StoreBackedState(ctx.store, clock=ctx.clock),
        clock=ctx.clock,
        server_boot_s=BOOT_S,
    )
    ctx.cache[drivers._CACHE_KEY] = simulator
    return simulator


def servers_named(simulator: sim.Simulator, center: str, workload_ids: list[str]) -> dict[str, list[Any]]:
    servers = simulator.drivers(center).compute.list_servers()
    return {w: [s for s in servers if s.name == f"{w}-0"] for w in workload_ids}


def test_a_tier_recovers_in_about_one_boot_and_the_next_tier_after_it(
    ctx: ctx_module.Context, slow_boots: sim.Simulator
) -> None:
    gold = [ready_workload(ctx, "gold") for _ in range(GOLD)]
    silver = [ready_workload(ctx, "silver") for _ in range(SILVER)]
    faults.inject(ctx, kind="center-down", center="qd-a")
    fault_at = ctx.clock.now()

    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    run = recovery.execute(ctx, plan.run_id or "")

    assert run.state == "done"
    rto = {w: run.workloads[w]["served_at"] - fault_at for w in gold + silver}
    assert {run.workloads[w]["traffic_to"] for w in gold} == {"qd-b"}
    assert {run.workloads[w]["traffic_to"] for w in silver} == {"dz-dr"}
    for workload_id in gold:
        assert BOOT_S <= rto[workload_id] <= BOOT_S + SLACK_S, rto
    for workload_id in silver:
        assert 2 * BOOT_S <= rto[workload_id] <= 2 * BOOT_S + SLACK_S, rto
    assert max(rto.values()) < GOLD * BOOT_S  # not the sum of gold's boots

    gold_servers = servers_named(slow_boots, "qd-b", gold)
    silver_servers = servers_named(slow_boots, "dz-dr", silver)
    assert all(len(found) == 1 for found in [*gold_servers.values(), *silver_servers.values()])
    gold_served = [fault_at + rto[w] for w in gold]
    # Gold's servers all started before the first gold workload served; silver's only after the last.
    assert max(found[0].created_at for found in gold_servers.values()) < min(gold_served)
    assert min(found[0].created_at for found in silver_servers.values()) >= max(gold_served)


def test_a_hook_between_steps_of_a_tier_ends_its_group(
    ctx: ctx_module.Context, slow_boots: sim.Simulator
) -> None:
    gold = [ready_workload(ctx, "gold") for _ in range(2)]
    faults.inject(ctx, kind="center-down", center="qd-a")
    fault_at = ctx.clock.now()
    hook = {"when": "pre", "group": "switch-traffic", "tier": "gold", "command": {"argv": ["true"]}}
    plan = recovery.plan_failover(
        ctx,
        principal=OPS,
        from_center="qd-a",
        planned=False,
        hooks=model.hooks_from_data({"hooks": [hook]}),
    )
    # The hook sits between the first workload's promote and everything after it.
    assert [s.action for s in plan.steps][:3] == ["promote", "hook", "switch-traffic"]

    run = recovery.execute(ctx, plan.run_id or "")

    assert run.state == "done"
    first, second = (run.workloads[w]["served_at"] - fault_at for w in gold)
    assert BOOT_S <= first <= BOOT_S + SLACK_S
    assert 2 * BOOT_S <= second <= 2 * BOOT_S + SLACK_S  # its servers started after the hook


@pytest.mark.parametrize("steps_per_commit", [1, 50])
def test_a_run_killed_after_its_group_started_resumes_without_starting_a_server_twice(
    ctx: ctx_module.Context,
    slow_boots: sim.Simulator,
    monkeypatch: pytest.MonkeyPatch,
    steps_per_commit: int,
) -> None:
    monkeypatch.setattr(recovery, "SIMULATED_STEPS_PER_COMMIT", steps_per_commit)
    gold = [ready_workload(ctx, "gold") for _ in range(3)]
    faults.inject(ctx, kind="center-down", center="qd-a")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    real_do = failover._do

    def killed_at_the_first_switch(env: Any, run: Any, step: model.RecoveryStep, **kw: Any) -> dict[str, Any]:
        if step.action is model.StepAction.SWITCH_TRAFFIC:
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after it runs
        return real_do(env, run, step, **kw)

    monkeypatch.setattr(failover, "_do", killed_at_the_first_switch)
    with pytest.raises(KeyboardInterrupt):
        recovery.execute(ctx, plan.run_id or "")
    monkeypatch.setattr(failover, "_do", real_do)

    shown = recovery.get_run(ctx, plan.run_id or "", principal=OPS)
    started = servers_named(slow_boots, "qd-b", gold)
    if steps_per_commit == 1:
        # The first promote is recorded; the whole group's servers were started before it.
        assert shown.steps_done == 1
        assert all(len(found) == 1 for found in started.values())
    else:
        # The unit in flight is lost whole: no step recorded, no server kept.
        assert shown.steps_done == 0
        assert all(not found for found in started.values())

    done = recovery.resume(ctx, plan.run_id or "", principal=OPS)

    assert (done.state, done.steps_done) == ("done", len(plan.steps))
    finished = servers_named(slow_boots, "qd-b", gold)
    assert all(len(found) == 1 for found in finished.values())  # found by name, not made again
    with ctx.read() as tx:
        recovered = {w: requests.get_workload(tx, w) for w in gold}
    for workload_id, workload in recovered.items():
        (here,) = [p for p in workload.placements if p.center == "qd-b"]
        assert (here.role, here.state) == ("primary", "ready")
        assert [r["id"] for r in here.resources if r["kind"] == "server"] == [finished[workload_id][0].id]
