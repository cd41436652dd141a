"""The hourly usage pass, the bills it feeds and the capacity forecast, on SQLite and PostgreSQL.

Outcomes are read back from the raw tables with SQLAlchemy, not through cloudctl's reads.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.services import audit, capacity, identity, observability, provisioning, setup, showback, usage
from cloudctl.services import context as ctx_module
from cloudctl.services import quotas as quotas_service
from cloudctl.services import requests as requests_service
from cloudctl.store import db, schema
from tests import conftest

HOUR = 3600
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z, the manual clock's start and the time of init
BIGDATA = identity.Principal(
    id="t:bigdata", role="dept-admin", department="bigdata", department_path=("qingdao", "bigdata")
)


def rows(
    ctx: ctx_module.Context, table: sa.Table, *where: sa.ColumnElement[bool]
) -> list[sa.Row[tuple[object, ...]]]:
    with ctx.store.engine.connect() as connection:
        return list(connection.execute(sa.select(table).where(*where)))


def at(ctx: ctx_module.Context, moment: float) -> None:
    clock = ctx.clock
    assert isinstance(clock, clocks.ManualClock)
    clock.advance(moment - clock.now())


def test_an_hour_is_recorded_once_with_what_was_allocated_and_consumed(ctx: ctx_module.Context) -> None:
    at(ctx, T0 + 600)
    body = requests_service.RequestCreate(
        offering="vm.small", count=2, tier="silver", preferred_center="qd-b"
    )
    request, _ = requests_service.submit(ctx, principal=BIGDATA, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    at(ctx, T0 + HOUR + 300)

    first = usage.record_due(ctx)
    again = usage.record_due(ctx)

    assert (first.recorded, again.recorded) == ([T0], [])
    lines = {
        (r.node_id, r.center, r.tier, r.resource): (r.allocated, r.consumed)
        for r in rows(ctx, schema.usage_hours, schema.usage_hours.c.hour == T0)
    }
    assert lines[("bigdata", "qd-b", "silver", "vcpu")] == (4, 4)
    assert lines[("bigdata", "qd-b", "silver", "instances")] == (2, 2)
    assert lines[("bigdata", "qd-b", "silver", "volume_gb")] == (80, 80)  # two 40 GB root disks
    assert lines[("bigdata", "dz-dr", "silver", "vcpu")] == (4, 0)  # held for failover, nothing runs
    passes = rows(ctx, schema.usage_passes)
    assert [(p.hour, p.consumed_observed) for p in passes] == [(T0, True)]
    samples = {
        (s.center, s.resource): s
        for s in rows(ctx, schema.capacity_samples, schema.capacity_samples.c.hour == T0)
    }
    assert (samples[("qd-b", "vcpu")].total, samples[("qd-b", "vcpu")].allocated) == (4096, 4)
    assert samples[("qd-b", "vcpu")].used == 4
    audited = rows(ctx, schema.audit_records, schema.audit_records.c.action == "usage.record")
    assert [(r.target_id, r.outcome) for r in audited] == [("2026-01-01T00:00:00Z", "success")]


def test_a_late_pass_backfills_allocation_exactly_and_claims_no_consumption(ctx: ctx_module.Context) -> None:
    at(ctx, T0 + 1800)
    held = quotas_service.reserve(ctx, "hrss-insurance", center="qd-a", amounts={"vcpu": 16})
    at(ctx, T0 + 2 * HOUR + 1800)
    quotas_service.release(ctx, held.id)
    at(ctx, T0 + 10 * HOUR + 60)

    part = usage.record_due(ctx, max_hours=3)
    rest = usage.record_due(ctx)

    assert (len(part.recorded), part.behind_hours) == (3, 7)
    assert rest.recorded == [T0 + h * HOUR for h in range(3, 10)]
    vcpu = {
        r.hour: (r.allocated, r.consumed)
        for r in rows(ctx, schema.usage_hours, schema.usage_hours.c.node_id == "hrss-insurance")
    }
    # Held from 00:30 to 02:30: billed for every hour it was held in, none after.
    assert vcpu == {T0: (16, None), T0 + HOUR: (16, None), T0 + 2 * HOUR: (16, None)}
    observed = {p.hour: p.consumed_observed for p in rows(ctx, schema.usage_passes)}
    assert [hour for hour, seen in observed.items() if seen] == [T0 + 9 * HOUR]
    assert len(observed) == 10


def test_a_pass_killed_part_way_resumes_at_the_hour_it_was_writing(
    ctx: ctx_module.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    quotas_service.reserve(ctx, "hrss-insurance", center="qd-a", amounts={"vcpu": 8})
    at(ctx, T0 + 5 * HOUR + 60)
    real_record = audit.record
    calls = []

    def dies_on_the_third_hour(*args: object, **kwargs: object) -> None:
        calls.append(kwargs.get("target_id"))
        if len(calls) == 3:
            raise RuntimeError("killed")
        real_record(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(audit, "record", dies_on_the_third_hour)
    with pytest.raises(RuntimeError, match="killed"):
        usage.record_due(ctx)
    assert sorted(p.hour for p in rows(ctx, schema.usage_passes)) == [T0, T0 + HOUR]
    assert rows(ctx, schema.usage_hours, schema.usage_hours.c.hour == T0 + 2 * HOUR) == []

    monkeypatch.setattr(audit, "record", real_record)
    resumed = usage.record_due(ctx)

    assert resumed.recorded == [T0 + h * HOUR for h in range(2, 5)]
    hours = [r.hour for r in rows(ctx, schema.usage_hours, schema.usage_hours.c.node_id == "hrss-insurance")]
    assert sorted(hours) == [T0 + h * HOUR for h in range(5)]


def test_a_second_recorder_of_an_hour_writes_nothing(ctx: ctx_module.Context) -> None:
    from cloudctl.model import quotas as q
    from cloudctl.store import usage as usage_store

    line = {("hrss", "qd-a", "gold", q.Resource.VCPU): usage_store.Line(allocated=4, consumed=None)}
    with ctx.store.transaction() as tx:
        assert usage_store.record_hour(tx, hour=T0, lines=line, samples={}, consumed_observed=False, now=T0)
    with ctx.store.transaction() as tx:
        assert not usage_store.record_hour(
            tx, hour=T0, lines=line, samples={}, consumed_observed=True, now=T0
        )
    assert [(r.allocated,) for r in rows(ctx, schema.usage_hours)] == [(4,)]
    assert [p.consumed_observed for p in rows(ctx, schema.usage_passes)] == [False]


def test_a_bill_prices_the_recorded_hours_to_the_fen(ctx: ctx_module.Context) -> None:
    at(ctx, T0 + 1800)
    quotas_service.reserve(ctx, "hrss-insurance", center="qd-a", amounts={"vcpu": 16, "ram_gb": 32})
    at(ctx, T0 + 5 * HOUR + 60)
    usage.record_due(ctx)

    bill = showback.bill(ctx, month="2026-01")

    # 16 vCPU x 5 h x 0.0900 + 32 GB x 5 h x 0.0300 (no tier: the default rates)
    assert bill.total.allocated_cny == "12.00"
    assert (bill.hours_recorded, bill.month_to_date, bill.period_end) == (5, True, "2026-01-01T05:00:00Z")
    tree = {row.key: row for row in bill.rows}
    assert [tree[k].allocated_cny for k in ("qingdao", "hrss", "hrss-insurance")] == ["12.00"] * 3
    assert tree["hrss-insurance"].allocated_unit_hours == {"vcpu": 80, "ram_gb": 160}
    assert tree["hrss"].own_allocated_cny == "0.00"
    assert [(r.key, r.allocated_cny) for r in showback.bill(ctx, month="2026-01", by="center").rows] == [
        ("qd-a", "12.00")
    ]
    assert [(r.key, r.allocated_cny) for r in showback.bill(ctx, month="2026-01", by="bureau").rows] == [
        ("hrss", "12.00")
    ]
    assert showback.bill(ctx, month="2026-01", department="psb").total.allocated_cny == "0.00"
    assert showback.bill(ctx, month="2025-12").total.allocated_cny == "0.00"
    exposition = observability.exposition(ctx).decode()
    assert 'cloudctl_showback_month_to_date_cny{center="qd-a",node="hrss-insurance"} 12.0' in exposition
    assert "cloudctl_usage_last_recorded_hour_end_timestamp_seconds 1.7672436e+09" in exposition


@pytest.mark.parametrize(
    ("fields", "field", "reason"),
    [
        ({"month": "2026-13"}, "month", "is not a month"),
        ({"month": "Jan 2026"}, "month", "is not a month"),
        ({"month": "2026-02"}, "month", "has not begun"),
        ({"month": "2026-01", "department": "no-such-bureau"}, "dept", "no org node"),
        ({"month": "2026-01", "by": "floor"}, "by", "unknown grouping"),
    ],
)
def test_bad_input_names_the_field_and_changes_nothing(
    ctx: ctx_module.Context, fields: dict[str, str], field: str, reason: str
) -> None:
    at(ctx, T0 + 3 * HOUR)
    usage.record_due(ctx)
    before = [
        len(rows(ctx, table)) for table in (schema.usage_passes, schema.usage_hours, schema.audit_records)
    ]
    with pytest.raises(errors.InvalidInput, match=reason) as caught:
        showback.bill(ctx, **fields)  # type: ignore[arg-type]
    assert caught.value.field == field
    after = [
        len(rows(ctx, table)) for table in (schema.usage_passes, schema.usage_hours, schema.audit_records)
    ]
    assert after == before


def test_the_forecast_follows_a_steady_growth_to_its_threshold(ctx: ctx_module.Context) -> None:
    early = capacity.forecast(ctx, center="qd-a")
    assert {r.outlook for r in early.centers[0].resources} == {"insufficient-data"}
    for hour in range(30):
        at(ctx, T0 + hour * HOUR + 60)
        quotas_service.reserve(ctx, "qingdao", center="qd-a", amounts={"vcpu": 40})
        at(ctx, T0 + (hour + 1) * HOUR + 30)
        usage.record_due(ctx)

    result = capacity.forecast(ctx, center="qd-a")

    vcpu = next(r for r in result.centers[0].resources if r.resource == "vcpu")
    assert (vcpu.allocated, vcpu.threshold_percent, vcpu.outlook, vcpu.confidence) == (
        1200,
        80,
        "growing",
        "high",
    )
    assert vcpu.trend_per_day == pytest.approx(960, rel=0.01)  # 40 vCPU an hour
    assert vcpu.days_to_threshold == pytest.approx((0.8 * 4096 - 1200) / 960, abs=0.1)
    assert vcpu.samples == 31  # 30 hourly samples and the allocation now
    ram = next(r for r in result.centers[0].resources if r.resource == "ram_gb")
    assert (ram.outlook, ram.confidence, ram.days_to_threshold) == ("not-growing", "none", None)
    exposition = observability.exposition(ctx).decode()
    assert 'cloudctl_capacity_allocated_ratio{center="qd-a",resource="vcpu"} 0.29296875' in exposition
    assert 'cloudctl_capacity_threshold_ratio{center="dz-dr",resource="volume_gb"} 0.9' in exposition
    assert 'cloudctl_capacity_days_to_threshold{center="qd-a",resource="vcpu"}' in exposition


def test_an_unknown_center_is_refused_naming_it(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.NotFound) as caught:
        capacity.forecast(ctx, center="mars")
    assert caught.value.field == "center"


def small_center_context(store: db.Store, clock: clocks.ManualClock, tmp_path: Path) -> ctx_module.Context:
    text = conftest.TOPOLOGY.read_text(encoding="utf-8").replace(
        "capacity: {vcpu: 4096, ram_gb: 16384, volume_gb: 400000, object_gb: 800000, instances: 2000}",
        "capacity: {vcpu: 36, ram_gb: 16384, volume_gb: 400000, object_gb: 800000, instances: 2000}",
        1,
    )
    topology = tmp_path / "small-qd-a.yaml"
    topology.write_text(text, encoding="utf-8")
    settings = settings_module.Settings(
        home=tmp_path,
        database_url=store.url,
        topology=topology,
        policies=conftest.POLICIES,
    )
    context = ctx_module.Context(settings=settings, clock=clock, _store=store)
    setup.initialise(context)
    return context


def test_placement_warns_when_a_request_would_pass_a_threshold_but_admits_it(
    store: db.Store, clock: clocks.ManualClock, tmp_path: Path
) -> None:
    ctx = small_center_context(store, clock, tmp_path)
    insurance = identity.Principal(
        id="t:insurance",
        role="dept-admin",
        department="hrss-insurance",
        department_path=("qingdao", "hrss", "hrss-insurance"),
    )
    small = requests_service.RequestCreate(
        offering="vm.medium", count=2, tier="silver", preferred_center="qd-a"
    )
    quiet, _ = requests_service.submit(ctx, principal=insurance, body=small)
    assert "capacity-warning" not in [s.step for s in quiet.steps]
    clock.advance(capacity.WARNING_CACHE_S)

    big = requests_service.RequestCreate(offering="vm.large", count=3, tier="silver", preferred_center="qd-a")
    warned, _ = requests_service.submit(ctx, principal=insurance, body=big)

    assert warned.state == "approved"
    warnings = [s for s in warned.steps if s.step == "capacity-warning"]
    assert len(warnings) == 1
    assert warnings[0].detail == (
        "center qd-a would be allocated past its capacity threshold: vcpu 88.9% of 36 (threshold 80%)"
    )
    assert [s.step for s in warned.steps][-1] == "approved"
