"""The exposition of the estate's state: centers, quotas, replication, drills, audit — read at scrape time."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer
from prometheus_client import parser
from typer.testing import CliRunner

from cloudctl import clock as clocks
from cloudctl.cli import commands_observability, common, output
from cloudctl.model import drill_report
from cloudctl.services import audit as audit_service
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, observability
from cloudctl.services import requests as requests_service
from cloudctl.store import audit, recovery, replication, schema
from tests.observability import conftest
from tests.support import operators, replicas

STATE_FAMILIES = {
    "cloudctl_center_up",
    "cloudctl_center_capacity",
    "cloudctl_link_up",
    "cloudctl_replica_policies_differ",
    "cloudctl_quota_limit",
    "cloudctl_quota_used",
    "cloudctl_quota_reserved",
    "cloudctl_requests",
    "cloudctl_replication_lag_seconds",
    "cloudctl_replication_lag_target_seconds",
    "cloudctl_replication_bytes",
    "cloudctl_replication_streams",
    "cloudctl_replication_rpo_target_seconds",
    "cloudctl_replication_rto_target_seconds",
    "cloudctl_drill_last_passed",
    "cloudctl_drill_last_run_timestamp_seconds",
    "cloudctl_drill_last_rpo_seconds",
    "cloudctl_drill_last_rto_seconds",
    "cloudctl_drill_last_level",
    "cloudctl_drill_last_level_target",
    "cloudctl_drill_last_writes_lost",
    "cloudctl_audit_chain_ok",
    "cloudctl_audit_records",
    "cloudctl_audit_verified_timestamp_seconds",
    "cloudctl_state_collect_duration_seconds",
    "cloudctl_store_pool_size",
    "cloudctl_store_pool_max_overflow",
    "cloudctl_store_pool_in_use",
}
PROCESS_FAMILIES = {
    "cloudctl_build_info",
    "cloudctl_reconcile",
    "cloudctl_reconcile_errors",
    "cloudctl_reconcile_duration_seconds",
    "cloudctl_api_requests",
    "cloudctl_api_request_duration_seconds",
    "cloudctl_auth_failures",
    "cloudctl_auth_lockouts",
}


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def stream(
    workload_id: str, *, department: str, tier: str, target: str, mode: str, now: float, **values: object
) -> replication.Stream:
    fields: dict[str, object] = {
        "id": replication.stream_id(workload_id, "qd-a", target),
        "workload_id": workload_id,
        "department": department,
        "tier": tier,
        "source": "qd-a",
        "target": target,
        "mode": mode,
        "interval_s": None if mode == "sync" else 300.0,
        "state": "active",
        "last_seq": 0,
        "last_consistent_at": None,
        "bytes_copied": 0,
        "objects_copied": 0,
        "objects_resent": 0,
        "last_pass_at": None,
        "last_error": "",
        "created_at": now,
        "updated_at": now,
    }
    fields.update(values)
    return replication.Stream(**fields)  # type: ignore[arg-type]


def write(tx: object, workload_id: str, *, at: float) -> replication.Change:
    return replication.append_change(
        tx,  # type: ignore[arg-type]
        workload_id=workload_id,
        key="canary",
        sha256="0" * 64,
        size_bytes=100,
        at=at,
        center="qd-a",
    )


def test_an_initialised_context_describes_every_family_even_without_samples(ctx: ctx_module.Context) -> None:
    found = conftest.families(ctx)
    assert set(found) >= STATE_FAMILIES | PROCESS_FAMILIES
    assert found["cloudctl_replication_lag_seconds"].samples == []
    assert found["cloudctl_drill_last_passed"].samples == []
    assert len(found["cloudctl_center_up"].samples) == len(ctx.topology.centers)


def test_centers_and_quota_limits_come_from_the_topology(ctx: ctx_module.Context) -> None:
    up = conftest.samples(ctx, "cloudctl_center_up")
    for center in ctx.topology.centers:
        assert up[labels(center=center.name, role=center.role.value, site=center.site)] == 1.0
    limits = conftest.samples(ctx, "cloudctl_quota_limit")
    spec = ctx.topology.org.quotas[1]
    assert limits[labels(node=ctx.topology.org.id, center=spec.center, resource="vcpu")] == spec.vcpu


def test_a_running_replica_with_other_policies_than_the_leader_is_1(ctx: ctx_module.Context) -> None:
    now = ctx.clock.now()
    rows = [
        ("mgmt-1", "leader", "a"),
        ("mgmt-2", "follower", "b"),
        ("mgmt-3", "follower", "a"),
        ("mgmt-4", "stopped", "b"),
    ]
    replicas.record(
        ctx,
        (
            replicas.replica(
                host, role=role, started_at=now - 60 + index, heartbeat_at=now, policies=digit * 64
            )
            for index, (host, role, digit) in enumerate(rows)
        ),
    )

    differ = conftest.samples(ctx, "cloudctl_replica_policies_differ")

    assert differ == {  # a stopped replica decides nothing: no series
        labels(replica=f"{host}:1:abcdef", api_url=f"http://{host}:8080"): value
        for host, value in (("mgmt-1", 0.0), ("mgmt-2", 1.0), ("mgmt-3", 0.0))
    }


def test_rpo_and_rto_targets_are_the_tiers_of_the_topology(ctx: ctx_module.Context) -> None:
    rpo = conftest.samples(ctx, "cloudctl_replication_rpo_target_seconds")
    rto = conftest.samples(ctx, "cloudctl_replication_rto_target_seconds")
    assert rpo == {labels(tier=tier.name): float(tier.rpo_target_s) for tier in ctx.topology.tiers}
    assert rto == {labels(tier=tier.name): float(tier.rto_target_s) for tier in ctx.topology.tiers}


def test_replication_lag_is_the_age_of_the_oldest_change_a_target_lacks_worst_stream_per_group(
    ctx: ctx_module.Context, clock: clocks.ManualClock
) -> None:
    start = clock.now()
    with ctx.transaction() as tx:
        # Two silver workloads of one department copying to DR: one group.
        replication.upsert_stream(
            tx,
            stream(
                "wl-1",
                department="hrss",
                tier="silver",
                target="dz-dr",
                mode="async",
                now=start,
                bytes_copied=1000,
            ),
        )
        replication.upsert_stream(
            tx,
            stream(
                "wl-2",
                department="hrss",
                tier="silver",
                target="dz-dr",
                mode="async",
                now=start,
                bytes_copied=500,
                state="degraded",
            ),
        )
        # A gold workload's sync stream, fully caught up.
        replication.upsert_stream(
            tx,
            stream(
                "wl-3", department="hrss", tier="gold", target="qd-b", mode="sync", now=start, bytes_copied=42
            ),
        )
        write(tx, "wl-1", at=start)  # seq 1, copied below
        write(tx, "wl-1", at=start + 10)  # seq 2, pending: 50 s old at the scrape
        write(tx, "wl-2", at=start + 30)  # seq 1, pending: 30 s old
        write(tx, "wl-3", at=start + 5)  # seq 1, copied below
        replication.update_stream(tx, "wl-1:qd-a>dz-dr", now=start, last_seq=1)
        replication.update_stream(tx, "wl-3:qd-a>qd-b", now=start, last_seq=1)
    clock.advance(60)

    silver = labels(department="hrss", tier="silver", source="qd-a", target="dz-dr", mode="async")
    gold = labels(department="hrss", tier="gold", source="qd-a", target="qd-b", mode="sync")
    assert conftest.samples(ctx, "cloudctl_replication_lag_seconds") == {silver: 50.0, gold: 0.0}
    assert conftest.samples(ctx, "cloudctl_replication_bytes") == {silver: 1500.0, gold: 42.0}
    assert conftest.samples(ctx, "cloudctl_replication_streams") == {
        labels(state="active"): 2.0,
        labels(state="degraded"): 1.0,
    }


def test_the_lag_an_async_copy_may_reach_is_at_least_its_interval(ctx: ctx_module.Context) -> None:
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        replication.upsert_stream(
            tx,
            stream(
                "wl-1",
                department="ga",
                tier="platinum",
                target="dz-dr",
                mode="async",
                now=now,
                interval_s=30.0,
            ),
        )
        replication.upsert_stream(
            tx, stream("wl-1", department="ga", tier="platinum", target="qd-b", mode="sync", now=now)
        )
        replication.upsert_stream(
            tx,
            stream(
                "wl-2",
                department="ga",
                tier="silver",
                target="dz-dr",
                mode="async",
                now=now,
                interval_s=300.0,
            ),
        )
    allowed = conftest.samples(ctx, "cloudctl_replication_lag_target_seconds")
    assert (
        allowed[labels(department="ga", tier="platinum", source="qd-a", target="dz-dr", mode="async")] == 30
    )
    assert allowed[labels(department="ga", tier="platinum", source="qd-a", target="qd-b", mode="sync")] == 0
    assert allowed[labels(department="ga", tier="silver", source="qd-a", target="dz-dr", mode="async")] == 900


def drill_run(
    run_id: str, *, plan: str, passed: bool, finished_at: float | None, tiers: list[dict[str, object]]
) -> recovery.DrillRun:
    report = {"plan": plan, "scenario": "center-down", "passed": passed, "tiers": tiers, "workloads": []}
    return recovery.DrillRun(
        id=run_id,
        plan=plan,
        scenario="center-down",
        state="finished" if finished_at is not None else "running",
        passed=passed if finished_at is not None else None,
        report=report,
        started_at=(finished_at or 0.0) - 100,
        finished_at=finished_at,
    )


def tier_result(
    tier: str, *, rpo: float | None, rto: float | None, level: int | None, lost: int
) -> dict[str, object]:
    return drill_report.TierResult(
        tier=tier,
        workloads=2,
        gbt20988_level_target=6,
        rpo_target_s=0,
        rto_target_s=120,
        rpo_measured_s=rpo,
        rto_measured_s=rto,
        writes_acknowledged=100,
        writes_lost=lost,
        gbt20988_level_achieved=level,
        passed=level == 6,
    ).model_dump(mode="json")


def test_drills_export_the_newest_finished_run_of_each_plan(ctx: ctx_module.Context) -> None:
    with ctx.transaction() as tx:
        recovery.insert_drill_run(
            tx,
            drill_run(
                "d1",
                plan="lose-qd-a",
                passed=False,
                finished_at=1000.0,
                tiers=[tier_result("platinum", rpo=5, rto=300, level=5, lost=3)],
            ),
        )
        recovery.insert_drill_run(
            tx,
            drill_run(
                "d2",
                plan="lose-qd-a",
                passed=True,
                finished_at=2000.0,
                tiers=[tier_result("platinum", rpo=0, rto=40.5, level=6, lost=0)],
            ),
        )
        recovery.insert_drill_run(
            tx, drill_run("d3", plan="lose-qd-a", passed=False, finished_at=None, tiers=[])
        )
        recovery.insert_drill_run(
            tx,
            drill_run(
                "d4",
                plan="cut-dr-link",
                passed=False,
                finished_at=1500.0,
                tiers=[tier_result("silver", rpo=None, rto=None, level=None, lost=0)],
            ),
        )

    assert conftest.samples(ctx, "cloudctl_drill_last_passed") == {
        labels(plan="lose-qd-a"): 1.0,
        labels(plan="cut-dr-link"): 0.0,
    }
    assert conftest.samples(ctx, "cloudctl_drill_last_run_timestamp_seconds") == {
        labels(plan="lose-qd-a"): 2000.0,
        labels(plan="cut-dr-link"): 1500.0,
    }
    platinum = labels(plan="lose-qd-a", tier="platinum")
    silver = labels(plan="cut-dr-link", tier="silver")
    assert conftest.samples(ctx, "cloudctl_drill_last_rpo_seconds") == {platinum: 0.0}
    assert conftest.samples(ctx, "cloudctl_drill_last_rto_seconds") == {platinum: 40.5}
    assert conftest.samples(ctx, "cloudctl_drill_last_level") == {platinum: 6.0, silver: 0.0}
    assert conftest.samples(ctx, "cloudctl_drill_last_level_target") == {platinum: 6.0, silver: 6.0}
    assert conftest.samples(ctx, "cloudctl_drill_last_writes_lost") == {platinum: 0.0, silver: 0.0}


def test_a_malformed_drill_report_costs_its_tier_figures_not_the_scrape(ctx: ctx_module.Context) -> None:
    run = drill_run("d1", plan="odd", passed=True, finished_at=10.0, tiers=[])
    with ctx.transaction() as tx:
        recovery.insert_drill_run(tx, dataclasses.replace(run, report={"tiers": [{"no": "tier"}, "x", None]}))
    assert conftest.samples(ctx, "cloudctl_drill_last_passed") == {labels(plan="odd"): 1.0}
    assert conftest.samples(ctx, "cloudctl_drill_last_level") == {}


def tamper_with_the_first_audit_record(ctx: ctx_module.Context) -> None:
    with ctx.transaction() as tx:
        tx.execute(
            schema.audit_records.update().where(schema.audit_records.c.seq == 1).values(actor="mallory")
        )


def test_audit_chain_verification_is_reused_for_a_minute_of_the_clock(
    ctx: ctx_module.Context, clock: clocks.ManualClock
) -> None:
    for action in ("test.first", "test.second"):
        audit_service.record(
            ctx,
            principal=identity.local_operator(),
            action=action,
            target_type="Test",
            target_id="-",
            outcome="success",
        )
    with ctx.read() as tx:
        records, _ = audit.head(tx)
    assert records >= 2
    assert conftest.samples(ctx, "cloudctl_audit_chain_ok") == {(): 1.0}
    assert conftest.samples(ctx, "cloudctl_audit_records") == {(): float(records)}
    tamper_with_the_first_audit_record(ctx)
    clock.advance(observability.AUDIT_VERIFY_EVERY_S - 1)
    assert conftest.samples(ctx, "cloudctl_audit_chain_ok") == {(): 1.0}
    clock.advance(1)
    assert conftest.samples(ctx, "cloudctl_audit_chain_ok") == {(): 0.0}
    assert conftest.samples(ctx, "cloudctl_audit_verified_timestamp_seconds") == {(): clock.now()}


def test_no_label_value_looks_like_the_id_of_a_request_or_workload(ctx: ctx_module.Context) -> None:
    department = identity.Principal(
        id="t:insurance",
        role="dept-admin",
        department="hrss-insurance",
        department_path=identity.department_path(ctx, "hrss-insurance"),
    )
    request, _ = requests_service.submit(
        ctx, principal=department, body=requests_service.RequestCreate(offering="vm.small", tier="silver")
    )
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        replication.upsert_stream(
            tx,
            stream(
                "wl-0123abcd",
                department="hrss-insurance",
                tier="silver",
                target="dz-dr",
                mode="async",
                now=now,
            ),
        )
        write(tx, "wl-0123abcd", at=now)
        recovery.insert_drill_run(
            tx,
            drill_run(
                "drill-1",
                plan="lose-qd-a",
                passed=True,
                finished_at=now,
                tiers=[tier_result("silver", rpo=1, rto=2, level=5, lost=0)],
            ),
        )
    text = observability.exposition(ctx).decode()
    assert request.id.startswith("req-")
    assert conftest.samples(ctx, "cloudctl_requests") == {labels(state=request.state): 1.0}
    values = {
        value
        for family in parser.text_string_to_metric_families(text)
        for sample in family.samples
        for value in sample.labels.values()
    }
    assert values, "the exposition has labelled samples"
    assert not [value for value in values if value.startswith(("req-", "wl-", "drill-"))]
    assert request.id not in text
    assert "wl-0123abcd" not in text


@pytest.fixture
def cli() -> typer.Typer:
    """A root command with the global options' state, and ``cloudctl metrics`` registered on it."""
    app = typer.Typer()

    @app.callback()
    def root(
        ctx: typer.Context, home: Path = Path(), database_url: str = "", topology: Path = Path()
    ) -> None:
        ctx.obj = common.State(
            home=home,
            database_url=database_url or None,
            topology=topology,
            fmt=output.Format.TABLE,
            policies=conftest.ROOT / "policies",
            act_as="sysadmin",  # at the console, breaking glass: the API in this process
            reason=operators.REASON,
        )
        ctx.call_on_close(ctx.obj.close)

    commands_observability.register(app)
    return app


def cli_args(ctx: ctx_module.Context) -> list[str]:
    return [
        "--home",
        str(ctx.settings.home),
        "--database-url",
        str(ctx.settings.database_url),
        "--topology",
        str(ctx.settings.topology),
    ]


def test_cloudctl_metrics_prints_the_same_families_as_the_endpoint(
    ctx: ctx_module.Context, cli: typer.Typer
) -> None:
    result = CliRunner().invoke(cli, [*cli_args(ctx), "metrics"])
    assert result.exit_code == 0, result.output
    printed = {family.name: family for family in parser.text_string_to_metric_families(result.stdout)}
    assert set(printed) == set(conftest.families(ctx))
    assert printed["cloudctl_quota_limit"].samples == conftest.families(ctx)["cloudctl_quota_limit"].samples


def test_cloudctl_metrics_write_replaces_a_textfile_atomically(
    ctx: ctx_module.Context, cli: typer.Typer, tmp_path: Path
) -> None:
    target = tmp_path / "textfile" / "cloudctl.prom"
    target.parent.mkdir()
    target.write_text("stale\n")
    result = CliRunner().invoke(cli, [*cli_args(ctx), "metrics", "--write", str(target)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    names = {family.name for family in parser.text_string_to_metric_families(target.read_text())}
    assert names >= STATE_FAMILIES
    assert [path.name for path in target.parent.iterdir()] == ["cloudctl.prom"]


def test_cloudctl_metrics_write_into_a_missing_directory_is_bad_input(
    ctx: ctx_module.Context, cli: typer.Typer, tmp_path: Path
) -> None:
    result = CliRunner().invoke(cli, [*cli_args(ctx), "metrics", "--write", str(tmp_path / "no" / "x.prom")])
    assert result.exit_code == 2
    assert "write:" in result.output and "No such file or directory" in result.output
