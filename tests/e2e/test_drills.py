"""DR drills end to end on the simulator: every shipped plan runs, measures, and cleans up.

Drills run on their own simulated clock, so each takes seconds and never sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl.model import drills
from cloudctl.services import context as ctx_module
from cloudctl.services import drills as drill_service
from cloudctl.services import faults, setup
from cloudctl.services import quotas as quotas_service
from cloudctl.store import db
from cloudctl.store import quotas as quota_store
from cloudctl.store import recovery as recovery_store
from tests.conftest import ROOT, make_context
from tests.conftest import _empty as conftest_empty

PLANS = ROOT / "dr" / "drills"


def load(name: str, **canary: float) -> drills.DrillPlan:
    plan = drills.parse((PLANS / f"{name}.yaml").read_text(encoding="utf-8"))
    quick = plan.canary.model_copy(update={"warmup_s": 20.0, "writes_per_s": 2.0, **canary})
    return plan.model_copy(update={"canary": quick, "steps": ()})


def leaves_nothing_behind(ctx: ctx_module.Context) -> None:
    assert faults.list_faults(ctx) == []
    with ctx.read() as tx:
        live = quota_store.list_reservations(
            tx, states=[quota_store.ReservationState.RESERVED, quota_store.ReservationState.COMMITTED]
        )
    assert live == []
    vcpu = next(r for r in quotas_service.show_quota(ctx, "qingdao", center="qd-a").centers[0].resources)
    assert (vcpu.used, vcpu.reserved) == (0, 0)


def initialised(store: db.Store, tmp_path: Path) -> ctx_module.Context:
    context = make_context(store, clocks.ManualClock(), tmp_path)
    setup.initialise(context)
    return context


@pytest.fixture
def sqlite_ctx(tmp_path: Path) -> Iterator[ctx_module.Context]:
    """Drills are long: they run on SQLite, and one of them on PostgreSQL below."""
    store = db.Store(db.sqlite_url(tmp_path))
    store.migrate()
    yield initialised(store, tmp_path)
    store.dispose()


def test_losing_a_local_center_loses_no_synchronous_write(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("lose-qd-a"))
    assert report.passed
    assert {t.tier for t in report.tiers} == {"platinum", "gold"}
    for workload in report.workloads:
        assert workload.writes_acknowledged > 0
        assert workload.writes_lost == 0
        assert workload.rpo_measured_s == 0
        assert workload.recovered_in == "qd-b"
        assert workload.rto_measured_s is not None and workload.rto_measured_s <= workload.rto_target_s
        assert workload.gbt20988_level_achieved == 6
    steps = [step.step for step in report.timeline]
    assert steps.index("fault injected") < steps.index("recovery finished")
    leaves_nothing_behind(sqlite_ctx)


def test_losing_both_local_centers_recovers_in_dr_with_the_loss_async_allows(
    sqlite_ctx: ctx_module.Context,
) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("lose-both-local", warmup_s=150.0))
    assert {w.recovered_in for w in report.workloads} == {"dz-dr"}
    by_tier = {t.tier: t for t in report.tiers}
    assert by_tier["silver"].writes_lost > 0  # written after the last 5-minute shipment
    # Silver ships every 5 minutes: nothing reached DR in the 150 s warm-up, so all of it is lost.
    assert 149 < (by_tier["silver"].rpo_measured_s or 0) <= 151
    assert by_tier["platinum"].rpo_measured_s is not None and by_tier["platinum"].rpo_measured_s <= 30
    assert all(t.gbt20988_level_achieved is not None for t in report.tiers)
    leaves_nothing_behind(sqlite_ctx)


def test_a_drill_that_misses_its_target_fails_and_says_where(sqlite_ctx: ctx_module.Context) -> None:
    plan = load("lose-both-local", warmup_s=150.0)
    tighter = {**plan.targets, "silver": drills.TargetOverride(rpo_s=1.0)}
    strict = plan.model_copy(update={"targets": tighter})
    report = drill_service.run_drill(sqlite_ctx, plan=strict)
    assert not report.passed
    failing = [t.tier for t in report.tiers if not t.passed]
    assert failing == ["silver"]
    with sqlite_ctx.read() as tx:
        stored = recovery_store.list_drill_runs(tx, plan=plan.name)
    assert stored[0].passed is False
    assert stored[0].report["tiers"]


def test_cutting_the_dr_link_keeps_production_serving(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("cut-dr-link"))
    by_tier = {t.tier: t for t in report.tiers}
    assert by_tier["gold"].rpo_measured_s == 0  # the synchronous copy in qd-b holds everything
    assert (by_tier["silver"].rpo_measured_s or 0) > 0  # the DR copy fell behind while cut
    assert all(t.rto_measured_s == 0 for t in report.tiers)
    assert by_tier["silver"].writes_lost <= by_tier["silver"].writes_acknowledged
    leaves_nothing_behind(sqlite_ctx)


def test_a_degraded_sync_link_keeps_zero_loss(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("degrade-sync-link"))
    assert report.passed
    assert all(w.writes_lost == 0 for w in report.workloads)


def test_a_test_failover_leaves_production_untouched(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("test-failover-dr", warmup_s=70.0))
    assert {w.recovered_in for w in report.workloads} == {"dz-dr"}
    assert all(w.rto_measured_s is not None for w in report.workloads)
    leaves_nothing_behind(sqlite_ctx)


def test_losing_a_local_center_on_postgresql(pg_database_url: str, tmp_path: Path) -> None:
    store = db.Store(pg_database_url)
    conftest_empty(store)
    ctx = initialised(store, tmp_path)
    report = drill_service.run_drill(ctx, plan=load("lose-qd-a", warmup_s=10.0))
    assert report.passed
    leaves_nothing_behind(ctx)
    store.dispose()


def test_every_shipped_plan_is_exercised() -> None:
    shipped = {path.stem for path in Path(PLANS).glob("*.yaml")}
    assert shipped == {"lose-qd-a", "lose-both-local", "cut-dr-link", "degrade-sync-link", "test-failover-dr"}
