"""Point-in-time restore on the simulator centers, with a manual clock: the newest point at or
before a time, its volumes made from the replication points' snapshots, the data bucket of the
copy center rewound to it, and the data lost measured."""

from __future__ import annotations

import math

import pytest
import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl import errors, metrics
from cloudctl.recovery import replication as repl
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, identity, recovery, replication_points, restores, workloads
from cloudctl.store import schema
from tests.unit.recovery.test_replication_points import HRSS, next_interval, ready_workload, storage

SYSADMIN = identity.local_operator("sysadmin")


def write(ctx: ctx_module.Context, workload: str, key: str, data: bytes) -> None:
    recovery.write(ctx, workload, key=key, data=data)


def ship_points(ctx: ctx_module.Context, workload: str) -> None:
    """The DR pass of the workload, then the replication points it calls for."""
    next_interval(ctx, workload)
    replication_points.take_points(ctx, recovery.run_due(ctx))


def now(ctx: ctx_module.Context) -> float:
    assert isinstance(ctx.clock, clocks.ManualClock)
    return ctx.clock.now()


def advance(ctx: ctx_module.Context, seconds: float) -> None:
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(seconds)


def dr_bytes(ctx: ctx_module.Context, workload: str, key: str) -> bytes | None:
    objects = drivers.simulator(ctx).drivers("dz-dr").object_storage
    try:
        data, _info = objects.get_object(repl.data_bucket(workload), key=key)
    except errors.NotFound:
        return None
    return data


def dr_objects(ctx: ctx_module.Context, workload: str, center: str = "dz-dr") -> dict[str, bytes]:
    """Every current object of the workload's data bucket in ``center``, read through its driver."""
    objects = drivers.simulator(ctx).drivers(center).object_storage
    bucket = repl.data_bucket(workload)
    return {item.key: objects.get_object(bucket, key=item.key)[0] for item in objects.list_objects(bucket)}


def restored_volumes(ctx: ctx_module.Context) -> list[str]:
    return sorted(v.name for v in storage(ctx, "dz-dr").list_volumes() if v.name.startswith("rs-"))


def audit_actions(ctx: ctx_module.Context) -> list[tuple[str, str]]:
    table = schema.audit_records
    with ctx.read() as tx:
        rows = tx.execute(sa.select(table).order_by(table.c.seq))
        return [(r.action, r.outcome) for r in rows if r.action == "workload.restore"]


@pytest.fixture
def attacked(ctx: ctx_module.Context) -> tuple[str, float, float]:
    return attack_workload(ctx)


def attack_workload(ctx: ctx_module.Context, *, offering: str = "volume.100g") -> tuple[str, float, float]:
    """A silver workload with points at seq 1 and 3, one write after the second point, then at
    ``T`` a ransomware overwrite and note, shipped with a point of their own (seq 6).

    Returns ``(workload, consistent_at of seq 3 to the second, T)``.
    """
    workload = ready_workload(ctx, offering=offering)
    write(ctx, workload, "case/1", b"version one")
    ship_points(ctx, workload)
    write(ctx, workload, "case/1", b"version two")
    write(ctx, workload, "case/2", b"second case")
    ship_points(ctx, workload)
    advance(ctx, 30)
    write(ctx, workload, "case/4", b"written after the point")
    advance(ctx, 30 + math.ceil(now(ctx)) - now(ctx))
    attack = now(ctx)  # a whole second: the time asked for is one
    advance(ctx, 1)
    write(ctx, workload, "case/1", b"\x00encrypted\x00")
    write(ctx, workload, "README.encrypted", b"pay up")
    ship_points(ctx, workload)
    assert dr_bytes(ctx, workload, "case/1") == b"\x00encrypted\x00"
    points = replication_points.list_points(ctx, workload_id=workload)
    assert sorted({p.seq for p in points}) == [1, 3, 6]
    (at_seq3,) = {p.consistent_at for p in points if p.seq == 3}
    assert at_seq3 is not None
    return workload, restores.parse_time(at_seq3), attack


def test_a_restore_uses_the_newest_point_before_the_time_and_rewinds_the_copy_to_it(
    ctx: ctx_module.Context, attacked: tuple[str, float, float]
) -> None:
    workload, at_seq3, attack = attacked
    before = metrics.REGISTRY.get_sample_value(
        "cloudctl_restores_total", {"center": "dz-dr", "outcome": "success"}
    )

    done = restores.restore(ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(attack))

    assert (done.point, done.center, done.seq, done.dry_run) == (f"dz-dr/{workload}@3", "dz-dr", 3, False)
    assert done.consistent_at == clocks.isoformat(at_seq3)
    assert (done.changes_lost, done.keys_lost) == (1, ["case/4"])
    # The pass that shipped seq 3 came 301 s after it was written, then 60 s passed before T.
    assert 361 < done.data_lost_s <= 362 and done.data_lost_s == pytest.approx(attack - at_seq3, abs=1)
    assert [(v.name, v.of, v.restored_from) for v in done.volumes] == [
        (f"rs-{workload}-0-3", f"{workload}-0", f"dz-dr/rp-{workload}-0-3")
    ]
    (volume,) = done.volumes
    made = storage(ctx, "dz-dr").get_volume(volume.id or "")
    (snapshot,) = [s for s in storage(ctx, "dz-dr").list_snapshots() if s.name == f"rp-{workload}-0-3"]
    assert (made.name, made.size_gb, made.source_snapshot_id) == (f"rs-{workload}-0-3", 100, snapshot.id)
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == (
        ["case/1"],
        ["README.encrypted", "case/4"],
        [],
    )
    assert dr_bytes(ctx, workload, "case/1") == b"version two"
    assert dr_bytes(ctx, workload, "case/2") == b"second case"
    assert dr_bytes(ctx, workload, "case/4") is None
    assert dr_bytes(ctx, workload, "README.encrypted") is None
    placement = next(
        p for p in workloads.get(ctx, principal=HRSS, workload_id=workload).placements if p.center == "dz-dr"
    )
    assert [i["name"] for i in placement.resources if "restored_from" in i] == [f"rs-{workload}-0-3"]
    assert audit_actions(ctx) == [("workload.restore", "success")]
    after = metrics.REGISTRY.get_sample_value(
        "cloudctl_restores_total", {"center": "dz-dr", "outcome": "success"}
    )
    assert (after or 0) - (before or 0) == 1

    again = restores.restore(ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(attack))
    assert (again.objects_rewound, again.objects_removed, [v.id for v in again.volumes]) == (
        [],
        [],
        [volume.id],
    )
    assert restored_volumes(ctx) == [f"rs-{workload}-0-3"]


def test_an_earlier_time_picks_an_earlier_point(
    ctx: ctx_module.Context, attacked: tuple[str, float, float]
) -> None:
    workload, at_seq3, _attack = attacked
    done = restores.restore(ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(at_seq3 - 1))
    assert (done.seq, done.changes_lost, done.keys_lost) == (1, 0, [])
    assert dr_bytes(ctx, workload, "case/1") == b"version one"
    assert dr_bytes(ctx, workload, "case/2") is None


def test_a_dry_run_names_the_point_and_the_loss_and_changes_nothing(
    ctx: ctx_module.Context, attacked: tuple[str, float, float]
) -> None:
    workload, _at_seq3, attack = attacked
    plan = restores.restore(
        ctx, principal=SYSADMIN, workload_id=workload, at=clocks.isoformat(attack), dry_run=True
    )
    assert (plan.point, plan.dry_run, plan.changes_lost) == (f"dz-dr/{workload}@3", True, 1)
    assert 361 < plan.data_lost_s <= 362
    assert [(v.name, v.id) for v in plan.volumes] == [(f"rs-{workload}-0-3", None)]
    assert restored_volumes(ctx) == []
    assert dr_bytes(ctx, workload, "case/1") == b"\x00encrypted\x00"
    assert audit_actions(ctx) == []


@pytest.mark.parametrize(
    ("at", "to", "field"),
    [
        ("yesterday", None, "at"),
        ("future", None, "at"),
        ("before-any", None, "at"),
        ("attack", "qd-a", "to"),
        ("attack", "nosuch", "to"),
    ],
)
def test_bad_input_is_refused_naming_the_field_and_changes_nothing(
    ctx: ctx_module.Context, attacked: tuple[str, float, float], at: str, to: str | None, field: str
) -> None:
    workload, _at_seq3, attack = attacked
    text = {
        "future": clocks.isoformat(now(ctx) + 3600),
        "before-any": "2026-01-01T00:00:00Z",
        "attack": clocks.isoformat(attack),
    }.get(at, at)
    with pytest.raises(errors.InvalidInput) as refused:
        restores.restore(ctx, principal=SYSADMIN, workload_id=workload, at=text, to_center=to)
    assert refused.value.field == field
    assert "\n" not in refused.value.one_line()
    assert restored_volumes(ctx) == []
    assert dr_bytes(ctx, workload, "case/1") == b"\x00encrypted\x00"
    assert audit_actions(ctx) == [("workload.restore", "refused")]


def test_an_unknown_workload_is_not_found_and_a_department_may_not_restore(
    ctx: ctx_module.Context, attacked: tuple[str, float, float]
) -> None:
    workload, _at_seq3, attack = attacked
    with pytest.raises(errors.NotFound) as unknown:
        restores.restore(ctx, principal=SYSADMIN, workload_id="wl-nosuch", at=clocks.isoformat(attack))
    assert unknown.value.field == "workload"
    with pytest.raises(errors.PolicyDenied):
        restores.restore(ctx, principal=HRSS, workload_id=workload, at=clocks.isoformat(attack))
    assert restored_volumes(ctx) == []
    assert audit_actions(ctx) == [("workload.restore", "refused"), ("workload.restore", "denied")]
