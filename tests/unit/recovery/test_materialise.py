"""A failover makes the workload whole in its recovery center (simulator): its volumes are made
there from the replica that center holds, named after the replication point they come from,
of the same size, attached to the recovered server whose disk they are."""

from __future__ import annotations

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, faults, identity, recovery, replication_points, workloads
from tests.unit.recovery.test_replication_points import HRSS, ready_workload, ship

OPS = identity.local_operator("sysadmin")


def placement(ctx: ctx_module.Context, workload_id: str, center: str) -> list[dict[str, object]]:
    workload = workloads.get(ctx, principal=HRSS, workload_id=workload_id)
    return next(p for p in workload.placements if p.center == center).resources


def test_an_unplanned_failover_to_dr_recovers_each_volume_from_its_newest_point(
    ctx: ctx_module.Context,
) -> None:
    workload = ready_workload(ctx, tier="silver", count=2)
    replication_points.take_points(ctx, ship(ctx, workload, "case/1"))
    replication_points.take_points(ctx, ship(ctx, workload, "case/2"))
    faults.inject(ctx, kind="center-down", center="qd-a")
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    recovery.execute(ctx, plan.run_id or "")

    dr = drivers.simulator(ctx).drivers("dz-dr").block_storage
    recovered = [item for item in placement(ctx, workload, "dz-dr") if "of" in item]
    assert [(item["name"], item["of"]) for item in recovered] == [
        (f"rp-{workload}-0-2", f"{workload}-0"),
        (f"rp-{workload}-1-2", f"{workload}-1"),
    ]
    points = {p.id: p for p in replication_points.list_points(ctx, workload_id=workload)}
    for item in recovered:
        volume = dr.get_volume(str(item["id"]))
        point = points[str(item["point"])]
        assert (volume.size_gb, volume.source_snapshot_id) == (100, point.snapshot_id)
        assert (point.center, point.seq) == ("dz-dr", 2)


def test_a_failover_to_the_sync_standby_attaches_a_volume_from_the_replica_to_the_server(
    ctx: ctx_module.Context,
) -> None:
    workload = ready_workload(ctx, tier="gold", offering="vm.small")
    replication_points.take_points(ctx, ship(ctx, workload, "case/1"))
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    recovery.execute(ctx, plan.run_id or "")

    standby = drivers.simulator(ctx).drivers("qd-b")
    resources = placement(ctx, workload, "qd-b")
    (server,) = [item for item in resources if item["kind"] == "server"]
    (volume,) = [item for item in resources if "of" in item]
    assert (volume["name"], volume["of"]) == (f"rp-{workload}-0-1", f"{workload}-0")
    assert standby.compute.attached_volumes(str(server["id"])) == [volume["id"]]
    made = standby.block_storage.get_volume(str(volume["id"]))
    assert made.size_gb == 40 and made.source_snapshot_id is not None
    (point,) = [p for p in replication_points.list_points(ctx, workload_id=workload) if p.center == "qd-b"]
    assert (point.id, point.state, point.seq) == (volume["point"], "ready", 1)


def test_running_the_recovery_twice_makes_nothing_twice(ctx: ctx_module.Context) -> None:
    from cloudctl.recovery import materialise
    from cloudctl.services import recovery as recovery_service
    from cloudctl.store import requests

    workload_id = ready_workload(ctx, tier="gold", offering="vm.small")
    replication_points.take_points(ctx, ship(ctx, workload_id, "case/1"))
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    recovery.execute(ctx, plan.run_id or "")
    env = recovery_service.environment(ctx)
    with ctx.read() as tx:
        workload = requests.get_workload(tx, workload_id)
    before = placement(ctx, workload_id, "qd-b")
    again = materialise.recover_volumes(
        env, workload, target="qd-b", left=["qd-a"], seq=1, resources=list(before)
    )
    assert again == before
    storage = drivers.simulator(ctx).drivers("qd-b").block_storage
    assert sorted(v.name for v in storage.list_volumes()) == [
        f"replica-{workload_id}-0",
        f"rp-{workload_id}-0-1",
    ]
    assert isinstance(ctx.clock, clocks.ManualClock)
