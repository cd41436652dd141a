"""``failover --point ID | --at TIME``: each promote starts from a chosen recovery point (its
volumes from that point's snapshots, its object data rewound to it), the dry run names the
point, and bad input is refused naming the field and starts nothing."""

from __future__ import annotations

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, recovery, workloads
from tests.unit.recovery.test_replication_points import HRSS, ready_workload
from tests.unit.recovery.test_restore import attack_workload, dr_bytes, dr_objects

OPS = identity.local_operator("sysadmin")


def promotes(plan: recovery.PlanPublic) -> list[tuple[str, str, str | None]]:
    return [
        (s.workload_id, s.target, s.point.id if s.point else None)
        for s in plan.steps
        if s.action.value == "promote"
    ]


@pytest.mark.parametrize("offering", ["volume.100g", "bucket.100g"])
def test_a_failover_at_a_time_recovers_to_the_newest_point_before_it(
    ctx: ctx_module.Context, offering: str
) -> None:
    workload, _at_seq3, attack = attack_workload(ctx, offering=offering)
    at = clocks.isoformat(attack)
    attacked = dr_objects(ctx, workload)

    plan = recovery.plan_failover(
        ctx, principal=OPS, from_center="qd-a", to_center="dz-dr", planned=False, at=at, dry_run=True
    )
    assert promotes(plan) == [(workload, "dz-dr", f"dz-dr/{workload}@3")]
    (step,) = [s for s in plan.steps if s.point is not None]
    assert step.point is not None and step.point.seq == 3
    assert recovery.list_runs(ctx, principal=OPS) == []  # a dry run starts nothing
    assert dr_objects(ctx, workload) == attacked

    run = recovery.plan_failover(
        ctx, principal=OPS, from_center="qd-a", to_center="dz-dr", planned=False, at=at
    )
    done = recovery.execute(ctx, run.run_id or "")
    assert done.state == "done"
    promoted = done.workloads[workload]
    assert (promoted["point"], promoted["writes_lost"], promoted["objects_rewound"]) == (
        f"dz-dr/{workload}@3",
        3,  # the write after the point, and the attack's two
        1,
    )
    assert dr_objects(ctx, workload) == {"case/1": b"version two", "case/2": b"second case"}
    placement = next(
        p for p in workloads.get(ctx, principal=HRSS, workload_id=workload).placements if p.center == "dz-dr"
    )
    made = [i["name"] for i in placement.resources if "point" in i]
    assert made == ([f"rp-{workload}-0-3"] if offering == "volume.100g" else [])  # no volume: none made
    assert placement.role in ("primary", "active")


def test_a_failover_to_a_named_point_recovers_only_its_workload(ctx: ctx_module.Context) -> None:
    workload, _at_seq3, _attack = attack_workload(ctx)
    other = ready_workload(ctx)
    plan = recovery.plan_failover(
        ctx,
        principal=OPS,
        from_center="qd-a",
        to_center="dz-dr",
        planned=False,
        point=f"dz-dr/{workload}@1",
        dry_run=True,
    )
    assert promotes(plan) == [(workload, "dz-dr", f"dz-dr/{workload}@1")]
    assert other not in {s.workload_id for s in plan.steps}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"point": "dz-dr/{workload}@2"}, "point"),  # no point at seq 2 (retention, or never taken)
        ({"point": "dz-dr/wl-nosuch@3"}, "point"),
        ({"point": "not-a-point"}, "point"),
        ({"point": "dz-dr/{workload}@3", "workload_ids": ["{other}"]}, "point"),
        ({"point": "dz-dr/{workload}@3", "department": "psb"}, "point"),
        ({"point": "dz-dr/{workload}@3", "at": "{attack}"}, "point"),
        ({"point": "dz-dr/{workload}@3", "to_center": "qd-b"}, "point"),
        ({"at": "2999-01-01T00:00:00Z"}, "at"),
        ({"at": "2026-01-01T00:00:00Z"}, "at"),
        ({"at": "noon"}, "at"),
    ],
)
def test_bad_points_and_times_are_refused_naming_the_field_and_start_nothing(
    ctx: ctx_module.Context, kwargs: dict[str, object], field: str
) -> None:
    workload, _at_seq3, attack = attack_workload(ctx)
    other = ready_workload(ctx)
    names = {"workload": workload, "other": other, "attack": clocks.isoformat(attack)}
    filled: dict[str, object] = {
        key: [v.format(**names) for v in value] if isinstance(value, list) else str(value).format(**names)
        for key, value in kwargs.items()
    }
    filled.setdefault("to_center", "dz-dr")
    with pytest.raises(errors.InvalidInput) as refused:
        recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False, **filled)  # type: ignore[arg-type]
    assert refused.value.field == field, refused.value.one_line()
    assert "\n" not in refused.value.one_line()
    assert recovery.list_runs(ctx, principal=OPS) == []
    assert dr_bytes(ctx, workload, "case/1") == b"\x00encrypted\x00"
