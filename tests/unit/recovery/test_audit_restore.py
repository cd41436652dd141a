"""Known-answer audit of point-in-time restore on the simulator, with a manual clock.

Each case makes its writes (their ``Ack`` gives each write's ``seq`` and time), ships them to
the DR center with a pass that takes the points, then asks for a restore: the point, its
``seq``, the objects rewound, removed and missing, the changes and seconds lost, and the bytes
the DR copy then holds are each the figure worked out from those writes, not read back from
the product.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.recovery import restore as engine
from cloudctl.services import context as ctx_module
from cloudctl.services import faults, identity, recovery, replication_points, restores
from cloudctl.store import requests
from tests.unit.recovery.test_replication_points import ready_workload
from tests.unit.recovery.test_restore import dr_objects

OPS = identity.local_operator("sysadmin")
SILVER_INTERVAL_S = 300.0


def clock_of(ctx: ctx_module.Context) -> clocks.ManualClock:
    assert isinstance(ctx.clock, clocks.ManualClock)
    return ctx.clock


def ship(ctx: ctx_module.Context) -> None:
    """Past the silver DR interval: the due passes run and take their points."""
    clock_of(ctx).advance(SILVER_INTERVAL_S + 1)
    replication_points.take_points(ctx, recovery.run_due(ctx))


@dataclasses.dataclass
class Written:
    key: str
    data: bytes
    seq: int
    at: float


def write(ctx: ctx_module.Context, workload: str, key: str, data: bytes) -> Written:
    ack = recovery.write(ctx, workload, key=key, data=data)
    return Written(key, data, ack.seq, ack.at)


def held_at(writes: list[Written], seq: int) -> dict[str, bytes]:
    """What the workload's data is once the writes up to ``seq`` are applied."""
    held: dict[str, bytes] = {}
    for item in writes:
        if item.seq <= seq:
            held[item.key] = item.data
    return held


def points_of(ctx: ctx_module.Context, workload: str) -> list[engine.RecoveryPoint]:
    """The workload's recovery points as the engine finds them (unrounded times)."""
    with ctx.read() as tx:
        record = requests.get_workload(tx, workload)
    return engine.recovery_points(recovery.environment(ctx), record)


@pytest.fixture
def two_points(sqlite_ctx: ctx_module.Context) -> tuple[ctx_module.Context, str, list[Written]]:
    """A silver volume workload: writes 1-2, a point (seq 2); writes 3-4, a point (seq 4);
    then writes 5-6, 40 s apart, not shipped."""
    ctx = sqlite_ctx
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    clock = clock_of(ctx)
    writes = [write(ctx, workload, "case/1", b"one")]
    clock.advance(0.4)
    writes.append(write(ctx, workload, "case/2", b"two"))
    ship(ctx)
    clock.advance(12.5)
    writes.append(write(ctx, workload, "case/1", b"one, second version"))
    clock.advance(3.3)
    writes.append(write(ctx, workload, "case/3", b"three"))
    ship(ctx)
    clock.advance(20)
    writes.append(write(ctx, workload, "case/2", b"two, overwritten"))
    clock.advance(40)
    writes.append(write(ctx, workload, "case/4", b"four"))
    clock.advance(60)
    assert [w.seq for w in writes] == [1, 2, 3, 4, 5, 6]
    return ctx, workload, writes


def test_the_points_listed_are_the_passes_run_each_consistent_at_its_newest_write(
    two_points: tuple[ctx_module.Context, str, list[Written]],
) -> None:
    ctx, workload, writes = two_points
    listed = replication_points.list_points(ctx, workload_id=workload)
    assert [(p.center, p.seq, p.state) for p in listed] == [("dz-dr", 2, "ready"), ("dz-dr", 4, "ready")]
    assert [p.consistent_at for p in listed] == [
        clocks.isoformat(writes[1].at),
        clocks.isoformat(writes[3].at),
    ]
    assert [(p.seq, p.consistent_at) for p in points_of(ctx, workload)] == [
        (2, writes[1].at),
        (4, writes[3].at),
    ]


def test_an_at_between_two_points_restores_the_older_and_counts_what_came_after_it(
    two_points: tuple[ctx_module.Context, str, list[Written]],
) -> None:
    ctx, workload, writes = two_points
    at = math.floor(writes[2].at) + 1  # after write 3, before write 4 (3.3 s later): seq 2's point
    assert writes[2].at < at < writes[3].at

    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(at))

    assert (done.point, done.center, done.seq) == (f"dz-dr/{workload}@2", "dz-dr", 2)
    assert done.consistent_at == clocks.isoformat(writes[1].at)
    assert (done.changes_lost, done.keys_lost) == (1, ["case/1"])  # write 3 only: write 4 came after `at`
    assert done.data_lost_s == round(at - writes[1].at, 3)
    # The DR copy held writes 1-4: case/1 goes back to its first bytes, case/3 (first written after
    # the point) is removed, case/2 already holds the point's bytes.
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == (["case/1"], ["case/3"], [])
    assert dr_objects(ctx, workload) == held_at(writes, 2)


def test_an_at_after_the_newest_point_restores_it_and_counts_the_writes_not_shipped(
    two_points: tuple[ctx_module.Context, str, list[Written]],
) -> None:
    ctx, workload, writes = two_points
    at = math.floor(writes[5].at)  # write 6 is a fraction of a second after it: not lost
    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(at))

    assert (done.point, done.seq) == (f"dz-dr/{workload}@4", 4)
    assert (done.changes_lost, done.keys_lost) == (1, ["case/2"])
    assert done.data_lost_s == round(at - writes[3].at, 3)
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == ([], [], [])
    assert dr_objects(ctx, workload) == held_at(writes, 4)


def test_the_first_whole_second_after_a_point_restores_it(
    two_points: tuple[ctx_module.Context, str, list[Written]],
) -> None:
    ctx, workload, writes = two_points
    at = math.ceil(writes[3].at)
    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(at), dry_run=True)
    assert (done.seq, done.changes_lost, done.keys_lost, done.dry_run) == (4, 0, [], True)
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == ([], [], [])
    assert dr_objects(ctx, workload) == held_at(writes, 4)  # a dry run changes nothing


def test_an_at_before_every_point_is_refused_on_one_line_naming_at(
    two_points: tuple[ctx_module.Context, str, list[Written]],
) -> None:
    ctx, workload, writes = two_points
    before = dr_objects(ctx, workload)
    with pytest.raises(errors.InvalidInput) as refused:
        restores.restore(ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(writes[0].at - 60))
    assert refused.value.field == "at"
    assert "\n" not in refused.value.one_line()
    assert "no recovery point" in refused.value.reason
    assert dr_objects(ctx, workload) == before


def test_asking_for_the_oldest_point_as_shown_names_the_first_time_that_reaches_it(
    two_points: tuple[ctx_module.Context, str, list[Written]],
) -> None:
    """Times are shown to the second, cut: the oldest point, consistent a fraction of a second
    after the second it shows, is not at or before that second. The refusal may not say the
    oldest point is at the very time it refuses; it names the first whole second that reaches
    it, and that time restores it."""
    ctx, workload, writes = two_points
    shown = replication_points.list_points(ctx, workload_id=workload)[0].consistent_at
    assert shown is not None and restores.parse_time(shown) < writes[1].at  # cut to the second
    with pytest.raises(errors.InvalidInput) as refused:
        restores.restore(ctx, principal=OPS, workload_id=workload, at=shown)
    message = refused.value.one_line()
    assert refused.value.field == "at" and "\n" not in message
    first = clocks.isoformat(math.ceil(writes[1].at))
    assert f"the oldest is {shown}" not in message
    assert first in message, message

    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=first)
    assert (done.seq, done.changes_lost, done.data_lost_s) == (
        2,
        0,
        round(math.ceil(writes[1].at) - writes[1].at, 3),
    )


@pytest.mark.xfail(
    strict=True,
    reason="known bug, named in the closing note of 7 Dec 2026: the change log keeps the writes an "
    "unplanned failover lost, unmarked, so a later point is rewound to them "
    "(recovery/restore.py rewind_objects); the fix is a schema change for the failover to mark them",
)
def test_a_restore_after_failback_does_not_bring_back_a_write_the_failover_lost(
    sqlite_ctx: ctx_module.Context,
) -> None:
    ctx = sqlite_ctx
    clock = clock_of(ctx)
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    write(ctx, workload, "a/1", b"one")
    ship(ctx)
    clock.advance(5)
    write(ctx, workload, "a/lost", b"never shipped")
    clock.advance(10)
    down = faults.inject(ctx, kind="center-down", center="qd-a").id
    away = recovery.plan_failover(ctx, principal=OPS, from_centers=["qd-a"], planned=False)
    assert recovery.execute(ctx, away.run_id or "").workloads[workload]["writes_lost"] == 1
    clock.advance(20)
    write(ctx, workload, "b/1", b"written away")
    clock.advance(30)
    faults.clear(ctx, fault_id=down)
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert recovery.execute(ctx, back.run_id or "").state == "done"
    home = {"a/1": b"one", "b/1": b"written away"}
    assert dr_objects(ctx, workload, "qd-a") == home
    clock.advance(60)

    done = restores.restore(
        ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(clock.now()), to_center="qd-a"
    )

    assert (done.objects_rewound, done.objects_missing) == ([], [])
    assert dr_objects(ctx, workload, "qd-a") == home


def test_a_restore_without_a_center_rewinds_the_dr_copy_not_the_serving_center_after_a_failback(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """A failback takes a point of the home center's disks as it promotes them (the recovered
    volume's snapshot): a point in the center that serves. A restore that names no center
    restores in the center that holds the DR copy; the data served is left as it is."""
    ctx = sqlite_ctx
    clock = clock_of(ctx)
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    writes = [write(ctx, workload, "a/1", b"one")]
    ship(ctx)
    down = faults.inject(ctx, kind="center-down", center="qd-a").id
    away = recovery.plan_failover(ctx, principal=OPS, from_centers=["qd-a"], planned=False)
    assert recovery.execute(ctx, away.run_id or "").workloads[workload]["writes_lost"] == 0
    clock.advance(20)
    writes.append(write(ctx, workload, "b/1", b"written away"))
    clock.advance(30)
    faults.clear(ctx, fault_id=down)
    back = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert recovery.execute(ctx, back.run_id or "").state == "done"
    assert [(p.center, p.seq) for p in points_of(ctx, workload)] == [("dz-dr", 1), ("qd-a", 2)]
    clock.advance(60)
    writes.append(write(ctx, workload, "c/1", b"written at home"))
    serving = dr_objects(ctx, workload, "qd-a")
    assert serving == held_at(writes, 3)
    clock.advance(1)  # the time asked for is cut to the second: c/1 is before it

    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(clock.now()))

    assert (done.point, done.center, done.seq) == (f"dz-dr/{workload}@1", "dz-dr", 1)
    assert (done.changes_lost, done.keys_lost) == (2, ["b/1", "c/1"])
    assert dr_objects(ctx, workload, "qd-a") == serving
    assert dr_objects(ctx, workload, "dz-dr") == held_at(writes, 1)


def test_bytes_the_copy_no_longer_keeps_are_reported_missing_and_the_key_left_as_it_is(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """With overwritten versions kept one day, the first bytes of case/1 expire in the DR copy
    when it is written again two days later: a restore to the point that held them names
    case/1 missing, leaves it as it is, and rewinds nothing else."""
    ctx = sqlite_ctx
    tiers = [
        t.model_copy(update={"deleted_retention_days": 1}) if t.name == "silver" else t
        for t in ctx.topology.tiers
    ]
    ctx.__dict__["topology"] = ctx.topology.model_copy(update={"tiers": tiers})
    clock = clock_of(ctx)
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    writes = [write(ctx, workload, "case/1", b"first"), write(ctx, workload, "case/2", b"two")]
    ship(ctx)
    clock.advance(3600)  # the next point in another hour: retention keeps both
    writes.append(write(ctx, workload, "case/1", b"second"))
    ship(ctx)
    clock.advance(2 * 86_400)
    writes.append(write(ctx, workload, "case/1", b"third"))
    ship(ctx)
    assert [p.seq for p in points_of(ctx, workload)] == [2, 3, 4]

    at = math.ceil(writes[1].at)
    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(at))

    assert (done.seq, done.changes_lost, done.data_lost_s) == (2, 0, round(at - writes[1].at, 3))
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == ([], [], ["case/1"])
    assert dr_objects(ctx, workload) == {"case/1": b"third", "case/2": b"two"}


def test_while_failed_over_a_restore_naming_no_center_leaves_the_served_data_and_says_to_name_it(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """Served in dz-dr after a failover, before any pass has shipped to qd-a: the only points are
    dz-dr's, where it serves. A restore naming no center is refused, naming ``at`` and the
    center to name; naming it restores there."""
    ctx = sqlite_ctx
    clock = clock_of(ctx)
    workload = ready_workload(ctx, tier="silver", offering="volume.100g")
    writes = [write(ctx, workload, "a/1", b"one")]
    ship(ctx)
    away = recovery.plan_failover(ctx, principal=OPS, from_centers=["qd-a"], planned=True)
    assert recovery.execute(ctx, away.run_id or "").state == "done"
    clock.advance(10)
    writes.append(write(ctx, workload, "b/1", b"written away"))
    clock.advance(10)
    served = dr_objects(ctx, workload, "dz-dr")
    assert served == held_at(writes, 2)

    with pytest.raises(errors.InvalidInput) as refused:
        restores.restore(ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(clock.now()))
    assert refused.value.field == "at" and "\n" not in refused.value.one_line()
    assert "dz-dr, where it serves, is restored only when named" in refused.value.reason
    assert dr_objects(ctx, workload, "dz-dr") == served

    done = restores.restore(
        ctx, principal=OPS, workload_id=workload, at=clocks.isoformat(clock.now()), to_center="dz-dr"
    )
    assert (done.point, done.changes_lost, done.keys_lost) == (f"dz-dr/{workload}@1", 1, ["b/1"])
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == ([], ["b/1"], [])
    assert dr_objects(ctx, workload, "dz-dr") == held_at(writes, 1)
