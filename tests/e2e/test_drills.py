"""DR drills end to end on the simulator: every shipped plan runs, measures, and cleans up.

Drills run on their own simulated clock, so each takes seconds and never sleeps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers.simulator import driver as simulator_driver
from cloudctl.model import drill_formats, drills
from cloudctl.model import drill_report as report_model
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
    # The shortest warm-up a plan may have: the longest replication interval it measures (60 s).
    # A write every 2 s per canary: every figure these tests check needs only a few writes per
    # replication interval, and each pass lists the canary's whole bucket, so a drill's cost
    # grows with the square of its writes (2 writes/s made these tests 10-20 times slower).
    quick = plan.canary.model_copy(update={"warmup_s": 60.0, "writes_per_s": 0.5, **canary})
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
    report = drill_service.run_drill(sqlite_ctx, plan=load("lose-both-local", warmup_s=400.0))
    assert {w.recovered_in for w in report.workloads} == {"dz-dr"}
    by_tier = {t.tier: t for t in report.tiers}
    assert set(by_tier) == {"platinum", "gold", "silver"}  # bronze is marked not measured
    assert [item.tier for item in report.tiers_not_measured] == ["bronze"]
    silver = by_tier["silver"]
    assert 0 < silver.writes_lost < silver.writes_acknowledged  # written after the last shipment
    assert silver.rpo_measured_s is not None and 0 < silver.rpo_measured_s <= 300 + 30
    assert by_tier["platinum"].rpo_measured_s is not None and by_tier["platinum"].rpo_measured_s <= 30 + 10
    for tier in report.tiers:
        assert tier.gbt20988_level_achieved == 5 == tier.gbt20988_level_target
    assert report.passed
    leaves_nothing_behind(sqlite_ctx)


def test_a_drill_that_misses_its_target_fails_and_says_where(sqlite_ctx: ctx_module.Context) -> None:
    plan = load("lose-both-local", warmup_s=400.0)  # silver loses what its last 100 s held
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


def test_cutting_the_dr_link_loses_nothing_and_the_copies_catch_up(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("cut-dr-link", warmup_s=300.0))
    (cut,) = report.faults
    assert cut.restored_offset_s is not None and cut.injected_offset_s is not None
    assert cut.restored_offset_s - cut.injected_offset_s == 600  # the plan's outage
    for tier in report.tiers:
        assert (tier.writes_lost, tier.rpo_measured_s, tier.rto_measured_s) == (0, 0, 0)  # Qingdao served
        # What losing Qingdao just before the link came back would have lost: every write since
        # the cut, the first one at most a write interval (2 s) after it.
        assert tier.dr_exposure_s is not None and tier.dr_exposure_s >= 600 - 2
        assert tier.catch_up_s is not None and tier.catch_up_allowed_s is not None
        assert 0 < tier.catch_up_s <= tier.catch_up_allowed_s
    assert report.passed
    leaves_nothing_behind(sqlite_ctx)


def test_a_degraded_sync_link_keeps_zero_loss(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("degrade-sync-link"))
    assert report.passed
    assert all(w.writes_lost == 0 for w in report.workloads)


def test_a_test_failover_leaves_production_untouched(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("test-failover-dr", warmup_s=300.0))
    assert {w.recovered_in for w in report.workloads} == {"dz-dr"}
    assert all(w.rto_measured_s is not None for w in report.workloads)
    leaves_nothing_behind(sqlite_ctx)


def test_a_test_failovers_copies_start_together_so_no_rto_holds_another_copys_boot(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """Each isolated copy boots in the simulator's ``DEFAULT_SERVER_BOOT_S``: started one after
    another, the n-th copy's RTO was n boots; started together, as a failover starts its servers,
    each is one boot (and the drill clock's few milliseconds of calls)."""
    report = drill_service.run_drill(sqlite_ctx, plan=load("test-failover-dr", warmup_s=300.0))
    rtos = sorted(w.rto_measured_s or 0.0 for w in report.workloads)
    assert len(rtos) >= 3
    boot = simulator_driver.DEFAULT_SERVER_BOOT_S
    assert all(boot <= rto < boot + 0.5 for rto in rtos), rtos


def test_losing_a_local_center_on_postgresql(pg_database_url: str, tmp_path: Path) -> None:
    store = db.Store(pg_database_url)
    conftest_empty(store)
    ctx = initialised(store, tmp_path)
    report = drill_service.run_drill(ctx, plan=load("lose-qd-a"))
    assert report.passed
    leaves_nothing_behind(ctx)
    store.dispose()


@pytest.mark.parametrize(("mode", "fraction"), [("corrupt", 1.0), ("delete", 0.5)])
def test_ransomware_recovers_each_canary_to_its_last_point_before_the_attack(
    sqlite_ctx: ctx_module.Context, mode: str, fraction: float
) -> None:
    """Silver copies to DR every 300 s; the drill takes a point at every pass. The attack, 420 s
    after a 600 s warm-up, overwrites (or deletes) canary keys in qd-a and in the dz-dr copy; the
    failover to that time takes the canary to dz-dr, rewound to the newest point at or before
    the attack, and what it gave up is measured by reading every write back."""
    plan = load("ransomware", warmup_s=600.0)
    attack = plan.scenario.model_copy(update={"mode": mode, "fraction": fraction})
    report = drill_service.run_drill(sqlite_ctx, plan=plan.model_copy(update={"scenario": attack}))
    assert report.ransomware is not None, report.timeline
    assert report.ransomware.mode == mode
    (point,) = report.ransomware.workloads
    assert point.point is not None, point.reason
    assert point.point.startswith("dz-dr/") and point.recovered_in == "dz-dr"
    assert point.intact
    # At most one silver interval (and the transfer) is given up, and at least one write.
    assert point.data_lost_s is not None and 0 < point.data_lost_s <= 300 + 60
    assert point.writes_lost > 0 and point.writes_to_point > 0
    acknowledged = point.writes_to_point + point.writes_lost  # one key per write
    assert report.ransomware.keys_attacked == max(1, int(acknowledged * fraction))
    (workload,) = report.workloads
    assert (workload.writes_acknowledged, workload.writes_lost) == (acknowledged, point.writes_lost)
    assert report.passed, [m.describe() for m in drill_formats.missed(report)]
    leaves_nothing_behind(sqlite_ctx)


def test_every_shipped_plan_is_exercised() -> None:
    shipped = {path.stem for path in Path(PLANS).glob("*.yaml")}
    assert shipped == {
        "lose-qd-a",
        "lose-both-local",
        "cut-dr-link",
        "degrade-sync-link",
        "test-failover-dr",
        "degrade-then-lose-qd-a",
        "cut-dr-then-lose-both",
        "lose-qingdao-site",  # on two real PostgreSQL clusters: tests/integration/test_mgmt_pair.py
        "ransomware",
    }


def test_losing_the_management_site_on_sqlite_is_refused_in_one_line_and_records_nothing(
    sqlite_ctx: ctx_module.Context,
) -> None:
    with pytest.raises(errors.InvalidInput) as refused:
        plan = drills.parse((PLANS / "lose-qingdao-site.yaml").read_text(encoding="utf-8"))
        drill_service.run_drill(sqlite_ctx, plan=plan)
    assert refused.value.field == "scenario.kind"
    assert "PostgreSQL with its DR standby" in refused.value.reason
    with sqlite_ctx.read() as tx:
        assert recovery_store.list_drill_runs(tx) == []


def test_a_compound_night_loses_nothing_and_shows_each_fault(sqlite_ctx: ctx_module.Context) -> None:
    report = drill_service.run_drill(sqlite_ctx, plan=load("degrade-then-lose-qd-a"))
    assert report.scenario == "compound"
    kinds = [
        (f.kind, f.injected_offset_s) for f in sorted(report.faults, key=lambda f: f.injected_offset_s or 0)
    ]
    assert [kind for kind, _ in kinds] == ["degrade-link", "lose-local-center", "cut-dr-link"]
    by_kind = {f.kind: f for f in report.faults}
    assert by_kind["degrade-link"].write_latency_s > 0  # writes waited on the slow synchronous link
    assert by_kind["lose-local-center"].workloads_hit == len(report.workloads)
    assert by_kind["cut-dr-link"].dr_exposure_s is not None and by_kind["cut-dr-link"].dr_exposure_s > 0
    assert all(w.writes_lost == 0 and w.recovered_in == "qd-b" for w in report.workloads)
    assert report.passed
    leaves_nothing_behind(sqlite_ctx)


def test_a_dr_line_outage_before_the_loss_of_both_centers_raises_the_rpo(
    sqlite_ctx: ctx_module.Context,
) -> None:
    compound = load("cut-dr-then-lose-both")
    alone = compound.model_copy(
        update={
            "name": "lose-both-alone",
            "faults": (),
            "scenario": compound.scenario.model_copy(update={"at_s": 120}),
        }
    )
    with_outage = drill_service.run_drill(sqlite_ctx, plan=compound)
    without = drill_service.run_drill(sqlite_ctx, plan=alone)
    for tier in ("platinum", "gold"):
        rpo_with = next(t.rpo_measured_s for t in with_outage.tiers if t.tier == tier)
        rpo_without = next(t.rpo_measured_s for t in without.tiers if t.tier == tier)
        assert rpo_with is not None and rpo_without is not None
        assert rpo_with >= rpo_without + 60  # at least the two minutes the line was down, less one interval
    leaves_nothing_behind(sqlite_ctx)


def test_two_runs_of_one_plan_give_the_same_counts_and_figures(sqlite_ctx: ctx_module.Context) -> None:
    def figures() -> list[tuple[object, ...]]:
        report = drill_service.run_drill(sqlite_ctx, plan=load("lose-qd-a"))
        return [
            (
                t.tier,
                t.writes_acknowledged,
                t.writes_lost,
                t.rpo_measured_s,
                t.rto_measured_s,
                t.gbt20988_level_achieved,
            )
            for t in report.tiers
        ]

    assert figures() == figures()


def test_a_drill_killed_mid_way_resumes_after_its_last_phase(sqlite_ctx: ctx_module.Context) -> None:
    class Killed(BaseException):
        """Stands for SIGKILL: nothing after it runs, not even the drill's cleanup."""

    def kill_after_fault(step: report_model.TimelineStep) -> None:
        if step.step == "fault injected":
            raise Killed

    plan = load("lose-qd-a")
    with pytest.raises(Killed):
        drill_service.run_drill(sqlite_ctx, plan=plan, on_step=kill_after_fault)
    with sqlite_ctx.read() as tx:
        interrupted = recovery_store.list_drill_runs(tx, plan=plan.name)[0]
    assert interrupted.state == "interrupted"
    assert interrupted.report["progress"]["phase"] == "warm-up"
    canaries = [c["workload_id"] for c in interrupted.report["progress"]["canaries"]]

    started = drill_service.start_resume(sqlite_ctx, run_id=interrupted.id)
    with pytest.raises(errors.Conflict, match="is running"):  # claimed: a second resume is refused
        drill_service.start_resume(sqlite_ctx, run_id=interrupted.id)
    report = started.finish()

    assert report.passed
    assert sorted(w.workload_id for w in report.workloads) == sorted(canaries)  # no second set of canaries
    steps = [step.step for step in report.timeline]
    assert steps.count("fault injected") == 1
    assert "drill resumed" in steps
    leaves_nothing_behind(sqlite_ctx)
    with pytest.raises(errors.Conflict):
        drill_service.resume_drill(sqlite_ctx, interrupted.id)


def test_a_test_failover_changes_nothing_in_production(sqlite_ctx: ctx_module.Context) -> None:
    from cloudctl.services import identity, provisioning, recovery, workloads
    from cloudctl.services import requests as requests_service

    hrss = identity.Principal(
        id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
    )
    made = []
    for tier in ("gold", "silver"):
        body = requests_service.RequestCreate(offering="vm.small", tier=tier, name=f"production-{tier}")
        request, _ = requests_service.submit(sqlite_ctx, principal=hrss, body=body)
        provisioning.reconcile(sqlite_ctx, kind="request", object_id=request.id)
        recovery.write(sqlite_ctx, request.workload_id or "", key="case/1", data=b"production data")
        made.append(request.workload_id or "")

    def production() -> object:
        listed, _ = workloads.list_workloads(sqlite_ctx, principal=hrss)
        placements = [
            (w.id, w.state, [(p.center, p.role, p.state, p.resources) for p in w.placements])
            for w in listed
            if w.id in made
        ]
        streams = [
            (s.id, s.state, s.objects_copied) for s in recovery.status(sqlite_ctx) if s.workload_id in made
        ]
        return placements, streams, quotas_service.show_quota(sqlite_ctx, "hrss").model_dump()

    before = production()
    report = drill_service.run_drill(sqlite_ctx, plan=load("test-failover-dr", warmup_s=300.0))
    assert report.workloads
    assert production() == before


def test_the_drill_command_exits_1_when_a_target_is_tighter_than_achievable(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from cloudctl.cli import main
    from tests.conftest import POLICIES, TOPOLOGY
    from tests.support import operators

    data = yaml.safe_load((PLANS / "lose-both-local.yaml").read_text(encoding="utf-8"))
    data["canary"].update(warmup_s=300, writes_per_s=1)  # silver's replication interval
    data["steps"] = []
    data["targets"]["gold"] = {"rpo_s": 0}
    tight = tmp_path / "lose-both-local.yaml"  # a plan is named like its file
    tight.write_text(yaml.safe_dump(data), encoding="utf-8")
    home = ["--home", str(tmp_path / "home"), "--topology", str(TOPOLOGY), "--policies", str(POLICIES)]
    glass = operators.break_glass(["drill", "run"])  # a drill is the sysadmin's: named, with a reason
    runner = CliRunner()
    assert runner.invoke(main.app, [*home, "init"]).exit_code == 0
    reports = tmp_path / "reports"
    junit = tmp_path / "j.xml"
    result = runner.invoke(
        main.app,
        [*home, *glass, "drill", "run", str(tight), "--report-dir", str(reports), "--junit", str(junit)],
    )
    assert result.exit_code == 1, result.stdout + result.stderr
    assert '"passed": false' in (reports / "report.json").read_text(encoding="utf-8")
    assert "<failure" in junit.read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**data, "schedule": "every night"}), encoding="utf-8")
    refused = runner.invoke(main.app, [*home, *glass, "drill", "run", str(bad)])
    assert refused.exit_code == 2
    assert "schedule" in refused.stderr


def test_a_fifteen_minute_window_over_a_thousand_workloads_runs_on_the_drill_clock(tmp_path: Path) -> None:
    """A drill of silver's 15-minute RPO over 1,000 workloads, on the drill's own clock.

    What it costs in wall time is measured by ``python -m bench recovery`` (the 15-minute
    window row), not here; here, that the drill at this size measures what it should.
    """
    from bench import common

    context = common.open_context(
        db.sqlite_url(tmp_path),
        home=tmp_path,
        topology_file=common.write_bench_topology(tmp_path),
        clock=clocks.ManualClock(),
    )
    common.create_bench_node(context, node_id="drill-fleet")
    plan = drills.DrillPlan.model_validate(
        {
            "name": "fleet-lose-both-local",
            "description": "1,000 silver canaries over a 15-minute window; both local centers lost",
            "scenario": {"kind": "lose-both-local-centers", "recover_in": "dz-dr"},
            "scope": {"departments": ["drill-fleet"], "tiers": ["silver"]},
            "canary": {
                "writes_per_s": 1 / 60,
                "warmup_s": 900,
                "object_bytes": 1024,
                "workloads_per_tier": 1000,
            },
            "simulated_time": True,
        }
    )
    report = drill_service.run_drill(context, plan=plan)

    assert report.passed
    assert len(report.workloads) == 1000
    assert {w.recovered_in for w in report.workloads} == {"dz-dr"}
    # One write a minute for 15 minutes, on each canary's seeded schedule; silver ships to
    # Dezhou every 5 minutes, so what is lost is what was written after the last shipment.
    assert {w.writes_acknowledged for w in report.workloads} == {15}
    # Passes and restarts take simulated time one after another, so a workload shipped late in
    # a round may have lost nothing.
    for workload in report.workloads:
        assert 0 <= workload.writes_lost <= 5
        assert workload.rpo_measured_s is not None and workload.rpo_measured_s <= 300
        assert workload.rto_measured_s is not None and workload.rto_measured_s <= workload.rto_target_s
    assert sum(w.writes_lost for w in report.workloads) > 0
    (silver,) = report.tiers
    assert (silver.tier, silver.workloads, silver.gbt20988_level_achieved) == ("silver", 1000, 5)
    warm = next(step for step in report.timeline if step.step == "warm-up done")
    assert warm.offset_s >= 900
    with context.read() as tx:
        live = quota_store.list_reservations(
            tx, states=[quota_store.ReservationState.RESERVED, quota_store.ReservationState.COMMITTED]
        )
    assert live == []
    context.close()


def test_a_warm_up_as_long_as_the_replication_interval_leaves_the_dr_copy_some_writes(
    sqlite_ctx: ctx_module.Context,
) -> None:
    # Silver copies to DR every 300 s; its first pass runs as the canary is provisioned, the next
    # falls due after the last write of a 300 s warm-up but before the fault: it ships them.
    plan = load("lose-both-local", warmup_s=300.0)
    silver_only = plan.model_copy(
        update={"scope": drills.Scope(departments=("hrss",), tiers=("silver",)), "targets": {}}
    )
    report = drill_service.run_drill(sqlite_ctx, plan=silver_only)
    (canary,) = report.workloads
    assert not canary.all_writes_lost
    assert canary.writes_lost < canary.writes_acknowledged
    assert canary.rpo_measured_s is not None and canary.rpo_measured_s <= 300
    assert report.passed
    leaves_nothing_behind(sqlite_ctx)
