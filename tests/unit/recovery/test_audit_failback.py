"""Known-answer audit of a failback's report on the simulator, with a manual clock.

A silver volume workload serves in qd-a; an unplanned failover to dz-dr loses the write the DR
copy had not received; writes are made while it serves in dz-dr; qd-a comes back and a failback
brings it home. The failback's figures (writes lost, RPO, where and when it serves, what the
resync shipped and replaced) are each worked out from the writes made and the clock moved, and
the data in qd-a is read back, not only the report.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from cloudctl import clock as clocks
from cloudctl.recovery import failover
from cloudctl.recovery import replication as repl
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, faults, identity, recovery, replication_points, restores
from cloudctl.store import replication
from tests.unit.recovery.test_replication_points import ready_workload
from tests.unit.recovery.test_restore import dr_objects

OPS = identity.local_operator("sysadmin")
SILVER_INTERVAL_S = 300.0


def clock_of(ctx: ctx_module.Context) -> clocks.ManualClock:
    assert isinstance(ctx.clock, clocks.ManualClock)
    return ctx.clock


@dataclasses.dataclass(frozen=True)
class Away:
    """A workload failed over away from qd-a, with what each center should hold."""

    workload: str
    at_home: dict[str, bytes]
    """What qd-a should hold once home: every write but the one the failover lost."""
    lost_key: str
    """The key of the write the failover lost."""


@pytest.fixture
def away(sqlite_ctx: ctx_module.Context) -> tuple[ctx_module.Context, Away]:
    ctx = sqlite_ctx
    clock = clock_of(ctx)
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    recovery.write(ctx, workload, key="a/1", data=b"one")
    recovery.write(ctx, workload, key="a/2", data=b"two")
    clock.advance(SILVER_INTERVAL_S + 1)
    assert [r.last_seq for r in recovery.run_due(ctx)] == [2]
    clock.advance(5)
    recovery.write(ctx, workload, key="a/lost", data=b"never shipped")
    clock.advance(10)
    down = faults.inject(ctx, kind="center-down", center="qd-a").id
    failover = recovery.plan_failover(ctx, principal=OPS, from_centers=["qd-a"], planned=False)
    done = recovery.execute(ctx, failover.run_id or "")
    assert done.workloads[workload]["writes_lost"] == 1
    clock.advance(20)
    recovery.write(ctx, workload, key="b/1", data=b"written away")
    clock.advance(7)
    recovery.write(ctx, workload, key="a/1", data=b"one, rewritten away")
    clock.advance(30)
    faults.clear(ctx, fault_id=down)
    at_home = {"a/1": b"one, rewritten away", "a/2": b"two", "b/1": b"written away"}
    return ctx, Away(workload, at_home, "a/lost")


def test_a_failback_reports_what_it_shipped_and_replaced_and_loses_nothing(
    away: tuple[ctx_module.Context, Away],
) -> None:
    ctx, case = away
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert [s.action for s in back.steps] == [
        "resync",
        "final-sync",
        "promote",
        "switch-traffic",
        "restore-home",
    ]

    run = recovery.execute(ctx, back.run_id or "")

    assert run.state == "done"
    outcome = run.workloads[case.workload]
    switched_at = next(
        p["at"] for p in recovery.get_run(ctx, run.id).progress if p["id"].endswith("switch-traffic")
    )
    assert (outcome["writes_lost"], outcome["rpo_s"]) == (0, 0.0)
    assert (outcome["served_in"], outcome["traffic_to"], outcome["served_at"]) == (
        "qd-a",
        "qd-a",
        switched_at,
    )
    # The two objects written away are shipped home; what qd-a held of a/1 and the write the
    # failover lost are replaced, each kept as a version.
    assert (outcome["resynced_objects"], outcome["repaired_objects"], outcome["final_sync_objects"]) == (
        2,
        0,
        0,
    )
    assert outcome["superseded_count"] == 2
    assert [item["key"] for item in outcome["superseded"]] == ["a/1", case.lost_key]
    assert all(item["version_id"] for item in outcome["superseded"])
    assert dr_objects(ctx, case.workload, "qd-a") == case.at_home
    with ctx.read() as tx:
        assert replication.last_seq(tx, workload_id=case.workload) == 5  # 3 at home, 2 away
    # Home again: the next DR pass leaves the DR copy as qd-a holds it.
    clock_of(ctx).advance(SILVER_INTERVAL_S + 1)
    recovery.run_due(ctx)
    assert dr_objects(ctx, case.workload, "dz-dr") == case.at_home
    again = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert (again.steps, again.run_id) == ([], None)


def test_a_write_after_the_final_sync_is_lost_by_the_failback_and_its_age_is_the_rpo(
    away: tuple[ctx_module.Context, Away], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write the serving center takes after the final sync and before the promote is not in
    qd-a: the failback counts it lost, its RPO the seconds from it to the promote."""
    ctx, case = away
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    final_sync = failover._final_sync

    def then_a_write(env: repl.Environment, workload_id: str, *, target: str) -> dict[str, Any]:
        outcome = final_sync(env, workload_id, target=target)
        recovery.write(ctx, workload_id, key="late", data=b"too late")
        clock_of(ctx).advance(7)
        return outcome

    monkeypatch.setattr(failover, "_final_sync", then_a_write)
    run = recovery.execute(ctx, back.run_id or "")

    outcome = run.workloads[case.workload]
    assert (outcome["writes_lost"], outcome["rpo_s"]) == (1, 7.0)
    assert "late" not in dr_objects(ctx, case.workload, "qd-a")


def test_the_points_taken_after_a_failback_are_consistent_when_their_newest_write_was_made(
    away: tuple[ctx_module.Context, Away],
) -> None:
    """The failback's own point of the home disks and the DR center's first point after it both
    hold the changes up to seq 5 (a/1 written away): each is consistent at that write's time,
    not at the time the failback rebuilt the streams."""
    ctx, case = away
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert recovery.execute(ctx, back.run_id or "").state == "done"
    clock_of(ctx).advance(SILVER_INTERVAL_S + 1)
    replication_points.take_points(ctx, recovery.run_due(ctx))
    with ctx.read() as tx:
        (fifth,) = replication.changes_after(tx, workload_id=case.workload, seq=4)
    assert (fifth.key, fifth.center) == ("a/1", "dz-dr")

    points = replication_points.list_points(ctx, workload_id=case.workload)

    assert [(p.center, p.seq, p.consistent_at) for p in points if p.seq == 5] == [
        ("dz-dr", 5, clocks.isoformat(fifth.at)),
        ("qd-a", 5, clocks.isoformat(fifth.at)),
    ]
    chosen = restores.restore(
        ctx, principal=OPS, workload_id=case.workload, at=clocks.isoformat(math.ceil(fifth.at)), dry_run=True
    )
    assert (chosen.point, chosen.changes_lost) == (f"dz-dr/{case.workload}@5", 0)


def test_a_failback_with_no_write_away_takes_its_point_at_the_newest_write_time(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """Nothing written while away: the home center's point at the failback holds seq 1, written
    before the failover; it is consistent then, not when the failover rebuilt the streams."""
    ctx = sqlite_ctx
    clock = clock_of(ctx)
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    first = recovery.write(ctx, workload, key="a/1", data=b"one")
    clock.advance(SILVER_INTERVAL_S + 1)
    replication_points.take_points(ctx, recovery.run_due(ctx))
    clock.advance(100)
    away = recovery.plan_failover(ctx, principal=OPS, from_centers=["qd-a"], planned=True)
    assert recovery.execute(ctx, away.run_id or "").workloads[workload]["writes_lost"] == 0
    clock.advance(100)
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert recovery.execute(ctx, back.run_id or "").state == "done"

    points = replication_points.list_points(ctx, workload_id=workload)

    assert [(p.center, p.seq, p.consistent_at) for p in points] == [
        ("dz-dr", 1, clocks.isoformat(first.at)),
        ("qd-a", 1, clocks.isoformat(first.at)),
    ]


def test_an_object_damaged_in_the_returning_center_is_repaired_and_counted_once(
    away: tuple[ctx_module.Context, Away],
) -> None:
    """a/2, shipped before the failover and not written since, is damaged in qd-a while it is
    away: the resync re-reads it, repairs it, and counts it among the objects it resynced."""
    ctx, case = away
    drivers.simulator(ctx).corrupt_object("qd-a", bucket=repl.data_bucket(case.workload), key="a/2")
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")

    outcome = recovery.execute(ctx, back.run_id or "").workloads[case.workload]

    assert (outcome["resynced_objects"], outcome["repaired_objects"]) == (
        3,
        1,
    )  # b/1 and a/1 shipped, a/2 repaired
    assert (outcome["writes_lost"], outcome["superseded_count"]) == (0, 2)
    assert dr_objects(ctx, case.workload, "qd-a") == case.at_home


def test_a_gold_failback_from_its_sync_standby_ships_the_writes_made_away_and_loses_none(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """Gold: qd-a lost, qd-b (the sync standby) serves and takes two writes, qd-a comes back.
    The failback resyncs exactly those two into qd-a, loses nothing, and every center holds
    every write; the points of seq 3 are consistent when b/2 was written."""
    ctx = sqlite_ctx
    clock = clock_of(ctx)
    workload = ready_workload(ctx, tier="gold", offering="volume.100g")
    recovery.write(ctx, workload, key="a/1", data=b"one")
    clock.advance(61)
    replication_points.take_points(ctx, recovery.run_due(ctx))
    down = faults.inject(ctx, kind="center-down", center="qd-a").id
    away = recovery.plan_failover(ctx, principal=OPS, from_centers=["qd-a"], planned=False)
    assert recovery.execute(ctx, away.run_id or "").workloads[workload]["writes_lost"] == 0
    clock.advance(5)
    recovery.write(ctx, workload, key="b/1", data=b"away")
    last = recovery.write(ctx, workload, key="b/2", data=b"away, too")
    clock.advance(61)
    replication_points.take_points(ctx, recovery.run_due(ctx))
    faults.clear(ctx, fault_id=down)

    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    outcome = recovery.execute(ctx, back.run_id or "").workloads[workload]

    assert (outcome["resynced_objects"], outcome["repaired_objects"], outcome["superseded_count"]) == (
        2,
        0,
        0,
    )
    assert (outcome["writes_lost"], outcome["rpo_s"], outcome["served_in"]) == (0, 0.0, "qd-a")
    everything = {"a/1": b"one", "b/1": b"away", "b/2": b"away, too"}
    for center in ("qd-a", "qd-b", "dz-dr"):
        assert dr_objects(ctx, workload, center) == everything, center
    at_three = {
        p.center: p.consistent_at
        for p in replication_points.list_points(ctx, workload_id=workload)
        if p.seq == 3
    }
    assert at_three == {"dz-dr": clocks.isoformat(last.at), "qd-a": clocks.isoformat(last.at)}
