"""Replication points on the simulator centers: a snapshot of each protected volume's replica in
the center that holds the DR copy whenever the copy reaches a new consistent point, with a
manual clock."""

from __future__ import annotations

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.model import names
from cloudctl.recovery import replication as repl
from cloudctl.services import context as ctx_module
from cloudctl.services import (
    drivers,
    faults,
    housekeeping,
    identity,
    provisioning,
    recovery,
    replication_points,
    workloads,
)
from cloudctl.services import requests as requests_service

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)


def ready_workload(
    ctx: ctx_module.Context, *, tier: str = "silver", offering: str = "volume.100g", count: int = 1
) -> str:
    body = requests_service.RequestCreate(offering=offering, tier=tier, preferred_center="qd-a", count=count)
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def next_interval(ctx: ctx_module.Context, workload_id: str) -> None:
    """Move the clock past the DR interval of the workload's tier: its DR stream is due."""
    assert isinstance(ctx.clock, clocks.ManualClock)
    tier = workloads.get(ctx, principal=HRSS, workload_id=workload_id).tier
    ctx.clock.advance(float(ctx.topology.tier(tier).dr_interval_s or 0) + 1)


def ship(ctx: ctx_module.Context, workload_id: str, key: str) -> list[repl.PassResult]:
    """Write one object, then run the DR pass that ships it."""
    recovery.write(ctx, workload_id, key=key, data=f"record {key}".encode())
    next_interval(ctx, workload_id)
    results = recovery.run_due(ctx)
    assert [(r.copied, r.error) for r in results] == [(1, "")]
    return results


def storage(ctx: ctx_module.Context, center: str = "qd-a") -> base.BlockStorage:
    return drivers.simulator(ctx).drivers(center).block_storage


def volume_ids(ctx: ctx_module.Context, workload_id: str) -> list[str]:
    workload = workloads.get(ctx, principal=HRSS, workload_id=workload_id)
    primary = next(p for p in workload.placements if p.role == "primary")
    return [item["id"] for item in primary.resources if item["kind"] == "volume"]


def snapshot_names(ctx: ctx_module.Context, center: str = "dz-dr") -> list[str]:
    return sorted(s.name for s in storage(ctx, center).list_snapshots())


def replicas(ctx: ctx_module.Context, workload_id: str, center: str = "dz-dr") -> dict[str, str]:
    """Logical name -> replica volume id, as the copy placement records them."""
    workload = workloads.get(ctx, principal=HRSS, workload_id=workload_id)
    placement = next(p for p in workload.placements if p.center == center)
    return {item["replica_of"]: item["id"] for item in placement.resources if "replica_of" in item}


@pytest.mark.parametrize("tier", ["silver", "bronze"])
def test_a_pass_that_ships_changes_snapshots_the_replica_of_every_volume_in_the_copy_center(
    ctx: ctx_module.Context, tier: str
) -> None:
    workload = ready_workload(ctx, tier=tier, count=2)
    results = ship(ctx, workload, "case/1")
    report = replication_points.take_points(ctx, results)
    points = replication_points.list_points(ctx, workload_id=workload)
    assert [(p.center, p.volume_name, p.seq, p.state) for p in points] == [
        ("dz-dr", f"{workload}-0", 1, "ready"),
        ("dz-dr", f"{workload}-1", 1, "ready"),
    ]
    assert [p.id for p in report.taken] == [p.id for p in points]
    made = replicas(ctx, workload)
    assert sorted(made) == [f"{workload}-0", f"{workload}-1"]
    for point in points:
        replica = storage(ctx, "dz-dr").get_volume(made[point.volume_name])
        assert (replica.name, replica.size_gb, point.volume_id) == (
            f"replica-{point.volume_name}",
            100,
            replica.id,
        )
        (snapshot,) = storage(ctx, "dz-dr").list_snapshots(volume_id=replica.id)
        assert (snapshot.id, snapshot.name) == (point.snapshot_id, f"rp-{point.volume_name}-1")
    dr_stream = next(s for s in recovery.status(ctx) if s.workload_id == workload)
    assert {p.consistent_at for p in points} == {dr_stream.last_consistent_at}
    assert snapshot_names(ctx, "qd-a") == []  # nothing is left where the copy does not live


def test_a_server_disk_has_a_replica_of_its_size_and_takes_points(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx, offering="vm.small")
    report = replication_points.take_points(ctx, ship(ctx, workload, "case/1"))
    assert [(p.center, p.volume_name, p.seq) for p in report.taken] == [("dz-dr", f"{workload}-0", 1)]
    replica = storage(ctx, "dz-dr").get_volume(replicas(ctx, workload)[f"{workload}-0"])
    assert replica.size_gb == 40  # vm.small's disk


def test_a_sync_standby_holds_replicas_and_no_server_before_a_failover(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx, tier="gold", offering="vm.small")
    replication_points.take_points(ctx, ship(ctx, workload, "case/1"))
    standby = replicas(ctx, workload, "qd-b")
    assert sorted(standby) == [f"{workload}-0"]
    assert storage(ctx, "qd-b").get_volume(standby[f"{workload}-0"]).size_gb == 40
    assert drivers.simulator(ctx).drivers("qd-b").compute.find_server(f"{workload}-0") is None
    assert snapshot_names(ctx, "qd-b") == []  # a sync copy takes no points


def test_no_point_is_taken_while_nothing_changed(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx)
    next_interval(ctx, workload)
    idle = recovery.run_due(ctx)
    assert [r.copied for r in idle] == [0]
    assert replication_points.take_points(ctx, idle).taken == []
    replication_points.take_points(ctx, ship(ctx, workload, "case/1"))
    next_interval(ctx, workload)
    unchanged = recovery.run_due(ctx)
    assert [r.copied for r in unchanged] == [0]
    assert replication_points.take_points(ctx, unchanged).taken == []
    assert [p.seq for p in replication_points.list_points(ctx, workload_id=workload)] == [1]
    assert snapshot_names(ctx) == [f"rp-{workload}-0-1"]


def without_windows(ctx: ctx_module.Context, tier: str) -> None:
    """The tier keeps the newest ``replication_points_kept`` points (it declares no retention window)."""
    tiers = [
        t.model_copy(update={"point_retention": []}) if t.name == tier else t for t in ctx.topology.tiers
    ]
    ctx.__dict__["topology"] = ctx.topology.model_copy(update={"tiers": tiers})


def test_retention_keeps_the_newest_points_and_deletes_the_older_snapshots(ctx: ctx_module.Context) -> None:
    without_windows(ctx, "silver")
    ctx.settings.replication_points_kept = 2
    workload = ready_workload(ctx)
    for n in range(1, 5):
        report = replication_points.take_points(ctx, ship(ctx, workload, f"case/{n}"))
    assert [p.seq for p in report.pruned] == [2]
    assert [p.seq for p in replication_points.list_points(ctx, workload_id=workload)] == [3, 4]
    assert snapshot_names(ctx) == [f"rp-{workload}-0-3", f"rp-{workload}-0-4"]

    ctx.settings.replication_points_kept = 1
    replication_points.take_points(ctx, ship(ctx, workload, "case/5"))
    assert [p.seq for p in replication_points.list_points(ctx, workload_id=workload)] == [5]
    assert snapshot_names(ctx) == [f"rp-{workload}-0-5"]


def test_keeping_fewer_than_one_point_is_refused_naming_the_setting(ctx: ctx_module.Context) -> None:
    without_windows(ctx, "silver")
    ctx.settings.replication_points_kept = 0
    workload = ready_workload(ctx)
    results = ship(ctx, workload, "case/1")
    with pytest.raises(errors.InvalidInput) as refused:
        replication_points.take_points(ctx, results)
    assert refused.value.field == "replication_points_kept"
    assert snapshot_names(ctx) == []


def test_a_retried_pass_takes_no_second_snapshot(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx)
    results = ship(ctx, workload, "case/1")
    first = replication_points.take_points(ctx, results)
    again = replication_points.take_points(ctx, results)
    assert (len(first.taken), again.taken) == (1, [])
    assert snapshot_names(ctx) == [f"rp-{workload}-0-1"]


def test_a_snapshot_made_before_a_crash_is_adopted_not_made_again(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx)
    results = ship(ctx, workload, "case/1")
    (volume_id,) = volume_ids(ctx, workload)
    assert volume_id
    dr = storage(ctx, "dz-dr")
    replica = dr.create_volume(name=names.replica_name(f"{workload}-0"), project="hrss", size_gb=100)
    made = dr.create_snapshot(replica.id, name=names.snapshot_name(f"{workload}-0", 1))
    replication_points.take_points(ctx, results)
    (point,) = replication_points.list_points(ctx, workload_id=workload)
    assert (point.volume_id, point.snapshot_id, point.state) == (replica.id, made.id, "ready")
    assert snapshot_names(ctx) == [f"rp-{workload}-0-1"]
    assert [v.name for v in dr.list_volumes()].count(replica.name) == 1


def test_an_unreachable_copy_center_fails_the_point_not_the_pass(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx)
    results = ship(ctx, workload, "case/1")
    faults.inject(ctx, kind="center-down", center="dz-dr")
    report = replication_points.take_points(ctx, results)
    assert [(r.copied, r.last_seq, r.error) for r in results] == [(1, 1, "")]
    stream = next(s for s in recovery.status(ctx) if s.workload_id == workload)
    assert (stream.state, stream.objects_copied, stream.lag_s) == ("healthy", 1, 0)
    (failed,) = replication_points.list_points(ctx, workload_id=workload)
    assert [p.id for p in report.failed] == [failed.id]
    assert (failed.state, failed.snapshot_id, failed.seq) == ("failed", None, 1)
    assert "dz-dr" in failed.last_error

    faults.clear(ctx)
    retried = replication_points.take_points(ctx, [])  # the next pass: nothing due, the point retried
    (point,) = replication_points.list_points(ctx, workload_id=workload)
    assert [p.id for p in retried.taken] == [point.id]
    assert (point.state, point.seq, point.last_error) == ("ready", 1, "")
    assert snapshot_names(ctx) == [f"rp-{workload}-0-1"]


def test_a_newer_consistent_point_supersedes_a_failed_one(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx)
    results = ship(ctx, workload, "case/1")
    faults.inject(ctx, kind="center-down", center="dz-dr")
    replication_points.take_points(ctx, results)
    faults.clear(ctx)
    replication_points.take_points(ctx, ship(ctx, workload, "case/2"))
    points = replication_points.list_points(ctx, workload_id=workload)
    assert [(p.seq, p.state) for p in points] == [(2, "ready")]
    assert snapshot_names(ctx) == [f"rp-{workload}-0-2"]


def test_the_replication_pass_of_serve_takes_points_right_after_shipping(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx)
    recovery.write(ctx, workload, key="case/1", data=b"record 1")
    next_interval(ctx, workload)
    housekeeping.run_once(ctx, "replication")
    points = replication_points.list_points(ctx, workload_id=workload)
    assert [(p.seq, p.state) for p in points] == [(1, "ready")]


def test_deleting_the_workload_deletes_its_points_and_their_snapshots(ctx: ctx_module.Context) -> None:
    workload = ready_workload(ctx)
    replication_points.take_points(ctx, ship(ctx, workload, "case/1"))
    replication_points.take_points(ctx, ship(ctx, workload, "case/2"))
    assert len(snapshot_names(ctx)) == 2
    workloads.delete(ctx, principal=HRSS, workload_id=workload)
    assert provisioning.run_pending(ctx)[workload].done
    assert workloads.get(ctx, principal=HRSS, workload_id=workload).state == "deleted"
    assert storage(ctx).find_volume(f"{workload}-0") is None
    assert storage(ctx, "dz-dr").find_volume(f"replica-{workload}-0") is None
    assert snapshot_names(ctx) == []
    assert replication_points.list_points(ctx, workload_id=workload) == []


def owned_volumes(ctx: ctx_module.Context, workload_id: str) -> list[tuple[str, str]]:
    """(center, volume name) of every volume named as the workload's in any simulator center."""
    return sorted(
        (center, v.name)
        for center in ("qd-a", "qd-b", "dz-dr")
        for v in storage(ctx, center).list_volumes()
        if names.owned_by(v.name, workload_id)
    )


def test_a_failover_records_the_replica_it_makes_and_deleting_the_workload_removes_it(
    ctx: ctx_module.Context,
) -> None:
    workload = ready_workload(ctx)  # silver, no pass yet: Dezhou holds no replica
    assert replicas(ctx, workload) == {}
    faults.inject(ctx, kind="center-down", center="qd-a")
    run = recovery.plan_failover(
        ctx, principal=identity.local_operator("sysadmin"), from_center="qd-a", planned=False
    )
    assert recovery.execute(ctx, run.run_id or "").state == "done"
    made = replicas(ctx, workload)
    assert list(made) == [f"{workload}-0"]  # made by the failover, and kept on record
    assert storage(ctx, "dz-dr").get_volume(made[f"{workload}-0"]).name == f"replica-{workload}-0"
    faults.clear(ctx)
    workloads.delete(ctx, principal=HRSS, workload_id=workload)
    assert provisioning.run_pending(ctx)[workload].done
    assert owned_volumes(ctx, workload) == []


def test_deleting_a_workload_removes_its_volumes_no_placement_lists_and_no_other(
    ctx: ctx_module.Context,
) -> None:
    workload, other = ready_workload(ctx), ready_workload(ctx)
    # Made by a process killed before it recorded them: only their names say whose they are.
    dr = storage(ctx, "dz-dr")
    stray = dr.create_volume(name=names.replica_name(f"{workload}-0"), project="hrss", size_gb=100)
    point = dr.create_snapshot(stray.id, name=names.snapshot_name(f"{workload}-0", 3))
    dr.create_volume(name=point.name, project="hrss", size_gb=100, snapshot_id=point.id)
    kept = owned_volumes(ctx, other)
    workloads.delete(ctx, principal=HRSS, workload_id=workload)
    assert provisioning.run_pending(ctx)[workload].done
    assert owned_volumes(ctx, workload) == []
    assert dr.list_snapshots() == []
    assert owned_volumes(ctx, other) == kept != []


def test_listing_names_an_unknown_workload_or_department(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.NotFound) as unknown_workload:
        replication_points.list_points(ctx, workload_id="w-nope")
    assert unknown_workload.value.field == "workload"
    with pytest.raises(errors.NotFound) as unknown_dept:
        replication_points.list_points(ctx, department="nope")
    assert unknown_dept.value.field == "department"
