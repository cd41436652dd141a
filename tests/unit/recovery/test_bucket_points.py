"""Recovery points of a workload with no volume (an object-storage offering) on the simulator
centers, with a manual clock: each DR pass that reaches a new consistent point records one
objects point in the DR center, retention prunes them by the tier's windows, and a restore (or a
failover to a named point) brings the Dezhou bucket back to exactly the bytes it held at the point.
A failover to a time is tested for both kinds of workload in ``test_failover_to_point``."""

from __future__ import annotations

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import topology as topo
from cloudctl.recovery import replication as repl
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, faults, provisioning, recovery, replication_points, restores, workloads
from cloudctl.store import replication_points as points_store
from tests.unit.recovery.test_replication_points import HRSS, next_interval, ready_workload, storage
from tests.unit.recovery.test_restore import (
    SYSADMIN,
    attack_workload,
    audit_actions,
    dr_objects,
    now,
    ship_points,
    write,
)

OBJECTS = points_store.PointKind.OBJECTS


def bucket_workload(ctx: ctx_module.Context, *, tier: str = "silver") -> str:
    return ready_workload(ctx, tier=tier, offering="bucket.100g")


def kept_versions(ctx: ctx_module.Context, workload: str) -> int:
    objects = drivers.simulator(ctx).drivers("dz-dr").object_storage
    return len(objects.list_object_versions(repl.data_bucket(workload)))


def points_of(ctx: ctx_module.Context, workload: str) -> list[tuple[str, str, int, str, str | None]]:
    return [
        (p.center, p.kind, p.seq, p.state, p.bucket)
        for p in replication_points.list_points(ctx, workload_id=workload)
    ]


def test_each_dr_pass_records_one_objects_point_in_the_dr_center_and_a_retry_none(
    ctx: ctx_module.Context,
) -> None:
    workload = bucket_workload(ctx)
    bucket = repl.data_bucket(workload)
    write(ctx, workload, "case/1", b"one")
    next_interval(ctx, workload)
    results = recovery.run_due(ctx)

    first = replication_points.take_points(ctx, results)
    again = replication_points.take_points(ctx, results)

    assert [(p.id, p.kind, p.seq, p.state) for p in first.taken] == [
        (f"dz-dr/{bucket}@1", OBJECTS, 1, "ready")
    ]
    assert (again.taken, again.failed) == ([], [])
    (point,) = replication_points.list_points(ctx, workload_id=workload)
    assert (point.volume_id, point.volume_name, point.snapshot_id, point.snapshot_name) == ("", "", None, "")
    dr_stream = next(s for s in recovery.status(ctx) if s.workload_id == workload)
    assert point.consistent_at == dr_stream.last_consistent_at
    assert storage(ctx, "dz-dr").list_snapshots() == []  # nothing is made for an objects point

    next_interval(ctx, workload)
    idle = replication_points.take_points(ctx, recovery.run_due(ctx))  # nothing new reached Dezhou
    assert idle.taken == []
    write(ctx, workload, "case/1", b"two")
    write(ctx, workload, "case/2", b"three")
    ship_points(ctx, workload)
    assert points_of(ctx, workload) == [
        ("dz-dr", OBJECTS, 1, "ready", bucket),
        ("dz-dr", OBJECTS, 3, "ready", bucket),
    ]


def test_a_bronze_backup_records_objects_points_too(ctx: ctx_module.Context) -> None:
    workload = bucket_workload(ctx, tier="bronze")
    write(ctx, workload, "ledger", b"day one")
    ship_points(ctx, workload)
    assert points_of(ctx, workload) == [("dz-dr", OBJECTS, 1, "ready", repl.data_bucket(workload))]


def test_an_unreachable_dr_center_fails_the_objects_point_and_the_next_pass_takes_it(
    ctx: ctx_module.Context,
) -> None:
    workload = bucket_workload(ctx)
    write(ctx, workload, "case/1", b"one")
    next_interval(ctx, workload)
    results = recovery.run_due(ctx)
    faults.inject(ctx, kind="center-down", center="dz-dr")
    report = replication_points.take_points(ctx, results)
    (failed,) = replication_points.list_points(ctx, workload_id=workload)
    assert [p.id for p in report.failed] == [failed.id]
    assert (failed.state, failed.taken_at) == ("failed", None) and "dz-dr" in failed.last_error

    faults.clear(ctx)
    retried = replication_points.take_points(ctx, [])
    assert [p.id for p in retried.taken] == [failed.id]
    assert points_of(ctx, workload) == [("dz-dr", OBJECTS, 1, "ready", repl.data_bucket(workload))]


def with_windows(ctx: ctx_module.Context, tier: str, windows: list[topo.RetentionWindow]) -> None:
    tiers = [
        t.model_copy(update={"point_retention": windows}) if t.name == tier else t for t in ctx.topology.tiers
    ]
    ctx.__dict__["topology"] = ctx.topology.model_copy(update={"tiers": tiers})


def test_retention_windows_prune_objects_points_by_age(ctx: ctx_module.Context) -> None:
    with_windows(
        ctx,
        "silver",
        [topo.RetentionWindow(every_s=0, until_s=900), topo.RetentionWindow(every_s=1800, until_s=3600)],
    )
    ctx.settings.replication_points_kept = 1  # ignored where the tier declares windows
    workload = bucket_workload(ctx)
    pruned: list[int] = []
    for n in range(1, 16):  # a point every 301 s
        write(ctx, workload, f"case/{n}", f"record {n}".encode())
        next_interval(ctx, workload)
        pruned += [p.seq for p in replication_points.take_points(ctx, recovery.run_due(ctx)).pruned]
    # As for volume points: 14 and 15 are within 900 s of the last pass; of the older ones within
    # 3600 s, the newest of each epoch-aligned half hour (6, 12, 13); 1-3 are older than 3600 s.
    assert [seq for _c, _k, seq, _s, _b in points_of(ctx, workload)] == [6, 12, 13, 14, 15]
    assert sorted(pruned) == [1, 2, 3, 4, 5, 7, 8, 9, 10, 11]
    assert kept_versions(ctx, workload) == 15  # a pruned point removes no object version


def test_without_windows_the_newest_points_are_kept(ctx: ctx_module.Context) -> None:
    with_windows(ctx, "silver", [])
    ctx.settings.replication_points_kept = 2
    workload = bucket_workload(ctx)
    for n in range(1, 5):
        write(ctx, workload, f"case/{n}", b"x")
        ship_points(ctx, workload)
    assert [seq for _c, _k, seq, _s, _b in points_of(ctx, workload)] == [3, 4]


def attack_bucket(ctx: ctx_module.Context) -> tuple[str, float]:
    """``test_restore.attack_workload`` on a bucket workload: objects points at seq 1, 3 and 6,
    the attack at ``T`` after the one at seq 3. Returns ``(workload, T)``."""
    workload, _at_seq3, attack = attack_workload(ctx, offering="bucket.100g")
    assert {kind for _c, kind, _seq, _s, _b in points_of(ctx, workload)} == {OBJECTS}
    return workload, attack


AT_SEQ_3 = {"case/1": b"version two", "case/2": b"second case"}
AFTER_ATTACK = {
    "case/1": b"\x00encrypted\x00",
    "case/2": b"second case",
    "case/4": b"written after the point",
    "README.encrypted": b"pay up",
}


def test_a_restore_rewinds_the_dezhou_bucket_to_exactly_its_bytes_at_the_point_before_the_time(
    ctx: ctx_module.Context,
) -> None:
    workload, attack = attack_bucket(ctx)
    assert dr_objects(ctx, workload) == AFTER_ATTACK

    done = restores.restore(ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(attack))

    assert (done.point, done.center, done.seq, done.volumes) == (f"dz-dr/{workload}@3", "dz-dr", 3, [])
    assert (done.changes_lost, done.keys_lost) == (1, ["case/4"])
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == (
        ["case/1"],
        ["README.encrypted", "case/4"],
        [],
    )
    assert dr_objects(ctx, workload) == AT_SEQ_3
    assert dr_objects(ctx, workload, "qd-a") == AFTER_ATTACK  # the serving copy is not touched
    assert storage(ctx, "dz-dr").list_volumes() == []
    assert audit_actions(ctx) == [("workload.restore", "success")]

    earlier = restores.restore(
        ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(attack - 400)
    )
    assert earlier.seq == 1
    assert dr_objects(ctx, workload) == {"case/1": b"version one"}


def test_a_dry_run_names_the_point_and_changes_nothing(ctx: ctx_module.Context) -> None:
    workload, attack = attack_bucket(ctx)
    versions = kept_versions(ctx, workload)
    plan = restores.restore(
        ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(attack), dry_run=True
    )
    assert (plan.point, plan.dry_run, plan.volumes, plan.changes_lost) == (f"dz-dr/{workload}@3", True, [], 1)
    assert dr_objects(ctx, workload) == AFTER_ATTACK
    assert kept_versions(ctx, workload) == versions
    assert audit_actions(ctx) == []


def test_without_a_point_before_the_time_a_restore_is_refused_in_one_line(ctx: ctx_module.Context) -> None:
    workload = bucket_workload(ctx)
    write(ctx, workload, "case/1", b"one")
    with pytest.raises(errors.InvalidInput) as none_yet:
        restores.restore(ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(now(ctx)))
    assert none_yet.value.field == "at" and "\n" not in none_yet.value.one_line()
    ship_points(ctx, workload)
    with pytest.raises(errors.InvalidInput) as wrong_center:
        restores.restore(
            ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(now(ctx)), to_center="qd-a"
        )
    assert wrong_center.value.field == "to"
    assert "its points are in dz-dr" in wrong_center.value.one_line()
    assert dr_objects(ctx, workload) == {"case/1": b"one"}


def test_a_failover_to_a_named_point_of_a_bucket_workload(ctx: ctx_module.Context) -> None:
    workload, _attack = attack_bucket(ctx)
    point = f"dz-dr/{workload}@1"
    run = recovery.plan_failover(
        ctx, principal=SYSADMIN, from_center="qd-a", to_center="dz-dr", planned=False, point=point
    )
    assert recovery.execute(ctx, run.run_id or "").workloads[workload]["point"] == point
    assert dr_objects(ctx, workload) == {"case/1": b"version one"}


def test_deleting_the_workload_deletes_its_objects_points(ctx: ctx_module.Context) -> None:
    workload = bucket_workload(ctx)
    write(ctx, workload, "case/1", b"one")
    ship_points(ctx, workload)
    assert len(points_of(ctx, workload)) == 1
    workloads.delete(ctx, principal=HRSS, workload_id=workload)
    assert provisioning.run_pending(ctx)[workload].done
    assert replication_points.list_points(ctx, workload_id=workload) == []
