"""Known-answer audit of the recovery points a silver workload keeps, with the shipped tier's
retention (every point for a day, then the newest of each hour for a week), on a manual clock.

The writes are made at known times, each shipped by the pass that follows it: the points
listed, their ``seq`` and ``consistent_at``, and the snapshots left in the DR center are what
the windows keep of those passes.
"""

from __future__ import annotations

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, recovery, replication_points
from tests.unit.recovery.test_replication_points import ready_workload, snapshot_names

OPS = identity.local_operator("sysadmin")
SILVER_INTERVAL_S = 300.0
DAY, WEEK = 86_400, 604_800


def test_the_points_kept_are_every_one_for_a_day_then_the_newest_of_each_hour_for_a_week(
    sqlite_ctx: ctx_module.Context,
) -> None:
    ctx = sqlite_ctx
    clock = ctx.clock
    assert isinstance(clock, clocks.ManualClock)
    start = clock.now()
    assert start % 3600 == 0  # the hourly slices begin with the clock
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    written: dict[int, float] = {}

    def ship_at(offset: float) -> list[tuple[int, str | None]]:
        """A write ``offset`` seconds after the start, the pass after it; the points listed."""
        clock.advance(start + offset - clock.now())
        ack = recovery.write(ctx, workload, key=f"case/{offset}", data=str(offset).encode())
        written[ack.seq] = ack.at
        clock.advance(SILVER_INTERVAL_S + 1)
        replication_points.take_points(ctx, recovery.run_due(ctx))
        return [(p.seq, p.consistent_at) for p in replication_points.list_points(ctx, workload_id=workload)]

    def shown(*seqs: int) -> list[tuple[int, str | None]]:
        return [(seq, clocks.isoformat(written[seq])) for seq in seqs]

    for offset in (100, 1000, 3700, 5000):  # hour 0: writes 1 and 2; hour 1: writes 3 and 4
        ship_at(offset)
    assert ship_at(8000) == shown(1, 2, 3, 4, 5)  # within a day: every one
    # A day later: the newest of hours 0, 1 and 2, and the new one.
    assert ship_at(DAY + 8200) == shown(2, 4, 5, 6)
    # A week later: 2, 4 and 5 are older than a week; 6 is the newest of its hour.
    assert ship_at(WEEK + 8100) == shown(6, 7)
    assert snapshot_names(ctx) == [f"rp-{workload}-0-6", f"rp-{workload}-0-7"]


def test_the_point_a_failback_takes_in_the_home_center_is_let_go_by_the_same_retention(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """A failback takes a point of the home disks it promotes, in the home center, which no DR
    pass feeds. The tier keeps no point older than a week: a week on, it is gone with its
    snapshot, as the DR center's points of that time are."""
    ctx = sqlite_ctx
    clock = ctx.clock
    assert isinstance(clock, clocks.ManualClock)
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    recovery.write(ctx, workload, key="a/1", data=b"one")
    clock.advance(SILVER_INTERVAL_S + 1)
    replication_points.take_points(ctx, recovery.run_due(ctx))
    away = recovery.plan_failover(ctx, principal=OPS, from_centers=["qd-a"], planned=True)
    assert recovery.execute(ctx, away.run_id or "").state == "done"
    recovery.write(ctx, workload, key="b/1", data=b"written away")
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert recovery.execute(ctx, back.run_id or "").state == "done"
    listed = replication_points.list_points(ctx, workload_id=workload)
    assert [(p.center, p.seq) for p in listed] == [("dz-dr", 1), ("qd-a", 2)]

    clock.advance(WEEK + 3600)
    recovery.write(ctx, workload, key="c/1", data=b"a week later")
    clock.advance(SILVER_INTERVAL_S + 1)
    replication_points.take_points(ctx, recovery.run_due(ctx))

    listed = replication_points.list_points(ctx, workload_id=workload)
    assert [(p.center, p.seq) for p in listed] == [("dz-dr", 3)]
    assert snapshot_names(ctx, "qd-a") == []
