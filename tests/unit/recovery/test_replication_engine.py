"""Replication, failover and failback on the simulator centers, with a manual clock."""

from __future__ import annotations

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import recovery as model
from cloudctl.recovery import failover
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, faults, identity, provisioning, recovery, workloads
from cloudctl.services import quotas as quotas_service
from cloudctl.services import requests as requests_service

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)
OPS = identity.local_operator("sysadmin")


def ready_workload(ctx: ctx_module.Context, tier: str, **fields: object) -> str:
    body = requests_service.RequestCreate(offering="vm.small", tier=tier, preferred_center="qd-a", **fields)  # type: ignore[arg-type]
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def streams(ctx: ctx_module.Context, workload_id: str) -> dict[str, recovery.StreamPublic]:
    return {f"{s.source}>{s.target}": s for s in recovery.status(ctx) if s.workload_id == workload_id}


def advance(ctx: ctx_module.Context, seconds: float) -> None:
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(seconds)


def test_streams_follow_the_tier(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    silver = ready_workload(ctx, "silver")
    bronze = ready_workload(ctx, "bronze")
    assert {k: s.mode for k, s in streams(ctx, gold).items()} == {"qd-a>qd-b": "sync", "qd-a>dz-dr": "async"}
    assert {k: s.mode for k, s in streams(ctx, silver).items()} == {"qd-a>dz-dr": "async"}
    assert {k: s.mode for k, s in streams(ctx, bronze).items()} == {"qd-a>dz-dr": "backup"}


def test_a_sync_write_is_held_by_both_local_centers_and_async_follows_at_its_interval(
    ctx: ctx_module.Context,
) -> None:
    gold = ready_workload(ctx, "gold")
    ack = recovery.write(ctx, gold, key="case/1", data=b"social insurance record 1")
    assert (ack.center, ack.copies, ack.degraded) == ("qd-a", ("qd-a", "qd-b"), ())
    advance(ctx, 20)
    now = streams(ctx, gold)
    assert now["qd-a>qd-b"].lag_s == 0
    assert now["qd-a>dz-dr"].lag_s == pytest.approx(20, abs=1)
    assert recovery.run_due(ctx) == []  # gold ships to DR every 60 s
    advance(ctx, 45)
    results = recovery.run_due(ctx)
    assert [(r.copied, r.resent) for r in results] == [(1, 0)]
    after = streams(ctx, gold)["qd-a>dz-dr"]
    assert (after.lag_s, after.objects_copied, after.state) == (0, 1, "healthy")
    advance(ctx, 61)
    assert [r.copied for r in recovery.run_due(ctx)] == [0]  # unchanged data costs nothing


def test_an_unreachable_partner_degrades_the_sync_stream_until_it_catches_up(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    faults.inject(ctx, kind="link-cut", center="qd-a", peer="qd-b")
    ack = recovery.write(ctx, gold, key="case/2", data=b"written while the link is cut")
    assert ack.degraded == ("qd-b",)
    assert streams(ctx, gold)["qd-a>qd-b"].state == "degraded"
    faults.clear(ctx)
    recovery.run_due(ctx)
    healed = streams(ctx, gold)["qd-a>qd-b"]
    assert (healed.state, healed.lag_s, healed.objects_copied) == ("healthy", 0, 1)


def test_a_corrupted_copy_is_detected_and_re_sent(ctx: ctx_module.Context) -> None:
    from cloudctl.recovery import replication as repl

    silver = ready_workload(ctx, "silver")
    recovery.write(ctx, silver, key="case/3", data=b"approved licence 3")
    advance(ctx, 301)
    recovery.run_due(ctx)
    drivers.simulator(ctx).corrupt_object("dz-dr", bucket=repl.data_bucket(silver), key="case/3")
    stream = streams(ctx, silver)["qd-a>dz-dr"]
    repaired = repl.scrub(recovery.environment(ctx), stream.id)
    assert repaired.resent == 1
    assert streams(ctx, silver)["qd-a>dz-dr"].objects_resent == 1
    assert repl.scrub(recovery.environment(ctx), stream.id).resent == 0


def test_a_planned_failover_ships_the_last_delta_and_loses_nothing(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    for n in range(3):
        recovery.write(ctx, gold, key=f"case/{n}", data=f"record {n}".encode())
    dry = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True, dry_run=True)
    assert dry.run_id is None
    assert [s.action for s in dry.steps] == ["final-sync", "promote", "switch-traffic", "reprotect"]
    assert dry.steps[0].target == "qd-b"
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    run = recovery.execute(ctx, plan.run_id or "")
    assert (run.state, run.steps_done) == ("done", 4)
    assert run.workloads[gold]["writes_lost"] == 0
    moved = workloads.get(ctx, principal=HRSS, workload_id=gold)
    roles = {p.center: (p.role, p.state) for p in moved.placements}
    assert roles == {"qd-b": ("primary", "ready"), "qd-a": ("standby", "ready"), "dz-dr": ("dr", "reserved")}
    record = (
        drivers.simulator(ctx)
        .drivers("mgmt")
        .traffic.get_record(ctx.topology.zone, name=f"{moved.name}.{moved.department}", target_center="qd-b")
    )
    assert record.weight == 100
    assert set(streams(ctx, gold)) == {"qd-b>qd-a", "qd-b>dz-dr"}


def test_an_unplanned_failover_accepts_the_loss_the_tier_allows_and_reports_it(
    ctx: ctx_module.Context,
) -> None:
    silver = ready_workload(ctx, "silver")
    recovery.write(ctx, silver, key="case/a", data=b"shipped")
    advance(ctx, 301)
    recovery.run_due(ctx)
    advance(ctx, 100)
    recovery.write(ctx, silver, key="case/b", data=b"not yet shipped")
    advance(ctx, 50)
    faults.inject(ctx, kind="center-down", center="qd-a")
    with pytest.raises(errors.InvalidInput) as caught:
        recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    assert caught.value.field == "mode"
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    assert plan.steps[0].target == "dz-dr"
    run = recovery.execute(ctx, plan.run_id or "")
    outcome = run.workloads[silver]
    assert (outcome["served_in"], outcome["writes_lost"]) == ("dz-dr", 1)
    assert outcome["rpo_s"] == pytest.approx(50, abs=1)
    view = quotas_service.show_quota(ctx, "hrss", center="dz-dr")
    vcpu = next(item for item in view.centers[0].resources if item.resource == "vcpu")
    assert (vcpu.used, vcpu.reserved) == (2, 0)  # the DR headroom became usage


@pytest.mark.parametrize("steps_per_commit", [1, 50])
def test_a_failover_killed_midway_resumes_without_repeating_a_step(
    ctx: ctx_module.Context, monkeypatch: pytest.MonkeyPatch, steps_per_commit: int
) -> None:
    """Killed during its fourth step: with one step per commit the first three stay done;
    with 50 (every center simulated) the whole chunk rolls back, simulator state included,
    so the resumed run does them again from a clean slate. Either way nothing is done twice."""
    monkeypatch.setattr(recovery, "SIMULATED_STEPS_PER_COMMIT", steps_per_commit)
    gold = ready_workload(ctx, "gold")
    silver = ready_workload(ctx, "silver")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    assert [s.workload_id for s in plan.steps][::4] == [gold, silver]  # by tier priority
    real_do = failover._do
    calls: list[str] = []

    def killed_in_the_fourth(
        env: object, run: object, step: model.RecoveryStep, **kw: object
    ) -> dict[str, object]:
        calls.append(step.id)
        if len(calls) == 4:
            raise KeyboardInterrupt  # stands for SIGKILL: nothing after it runs
        return real_do(env, run, step, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(failover, "_do", killed_in_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        recovery.execute(ctx, plan.run_id or "")
    monkeypatch.setattr(failover, "_do", real_do)
    assert [r.id for r in recovery.unfinished_runs(ctx)] == [plan.run_id]
    kept = 3 if steps_per_commit == 1 else 0
    seen: list[str] = []
    finished = recovery.execute(
        ctx, plan.run_id or "", on_step=lambda step, done, total: seen.append(step.id)
    )
    assert finished.state == "done"
    assert seen == [step.id for step in plan.steps][kept:]
    assert recovery.unfinished_runs(ctx) == []
    servers = drivers.simulator(ctx).drivers("qd-b").compute.list_servers()
    names = [server.name for server in servers if server.name.startswith(gold)]
    assert len(names) == len(set(names))  # the promoted standby was not started twice


def test_failback_reprotects_then_returns_and_the_stand_in_hands_back(ctx: ctx_module.Context) -> None:
    silver = ready_workload(ctx, "silver")
    recovery.write(ctx, silver, key="case/1", data=b"before the outage")
    advance(ctx, 301)
    recovery.run_due(ctx)
    lost = recovery.write(ctx, silver, key="case/0", data=b"acknowledged in qd-a, never shipped")
    faults.inject(ctx, kind="center-down", center="qd-a")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    assert recovery.execute(ctx, plan.run_id or "").workloads[silver]["writes_lost"] == 1
    recovery.write(ctx, silver, key="case/2", data=b"written in Dezhou")
    with pytest.raises(errors.InvalidInput):
        recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    faults.clear(ctx)
    from cloudctl.recovery import replication as repl

    drivers.simulator(ctx).corrupt_object("qd-a", bucket=repl.data_bucket(silver), key="case/1")
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    run = recovery.execute(ctx, back.run_id or "")
    outcome = run.workloads[silver]
    assert (outcome["resynced_objects"], outcome["repaired_objects"]) == (2, 1)  # case/2, and case/1 repaired
    # The lost write left qd-a's current objects but not its bucket; the damaged copy repaired
    # with the same bytes supersedes nothing.
    storage = drivers.simulator(ctx).drivers("qd-a").object_storage
    (kept,) = outcome["superseded"]
    assert (kept["key"], outcome["superseded_count"]) == ("case/0", 1)
    versions = storage.list_object_versions(repl.data_bucket(silver), prefix="case/0")
    assert [(v.version_id, v.is_latest, v.deleted) for v in versions if not v.deleted] == [
        (kept["version_id"], False, False)
    ]
    assert lost.center == "qd-a"
    home = workloads.get(ctx, principal=HRSS, workload_id=silver)
    roles = {p.center: (p.role, p.state) for p in home.placements}
    assert roles["qd-a"] == ("primary", "ready")
    assert roles["dz-dr"][0] == "dr"
    dr = next(p for p in home.placements if p.center == "dz-dr")
    assert not [r for r in dr.resources if r["kind"] == "server"]
    view = quotas_service.show_quota(ctx, "hrss", center="dz-dr")
    vcpu = next(item for item in view.centers[0].resources if item.resource == "vcpu")
    assert (vcpu.used, vcpu.reserved) == (0, 2)


def test_only_one_failover_per_center_at_a_time(ctx: ctx_module.Context) -> None:
    ready_workload(ctx, "gold")
    first = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    with pytest.raises(errors.Conflict) as caught:
        recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    assert first.run_id in caught.value.reason
    assert "failover resume" in caught.value.reason
    recovery.execute(ctx, first.run_id or "")
    again = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True, dry_run=True)
    assert again.run_id is None


def test_a_department_cannot_run_a_failover(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.PolicyDenied) as caught:
        recovery.plan_failover(ctx, principal=HRSS, from_center="qd-a", planned=True, dry_run=True)
    assert caught.value.policy_ids
