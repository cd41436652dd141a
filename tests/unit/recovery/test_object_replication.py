"""Object replication of workloads on the simulator: any client's writes and deletes, the DR
copy's retention, scrubs (service, continuous, the corrupt-replica fault) and what a deleted
workload leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import errors, metrics
from cloudctl import settings as settings_module
from cloudctl.recovery import replication as repl
from cloudctl.recovery import traffic
from cloudctl.services import (
    audit,
    drivers,
    faults,
    identity,
    provisioning,
    recovery,
    replication_scrub,
    workloads,
)
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import requests
from tests.unit.cli.test_cli import Cli

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)
OPS = identity.local_operator("sysadmin")
AUDITOR = identity.local_operator("auditor")
DAY_S = 86400


def ready_workload(ctx: ctx_module.Context, tier: str, *, name: str = "") -> str:
    body = requests_service.RequestCreate(offering="vm.small", tier=tier, preferred_center="qd-a", name=name)
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def advance(ctx: ctx_module.Context, seconds: float) -> None:
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(seconds)


def keys_at(ctx: ctx_module.Context, center: str, workload_id: str) -> dict[str, bytes]:
    objects = drivers.simulator(ctx).drivers(center).object_storage
    bucket = repl.data_bucket(workload_id)
    return {
        entry.key: objects.get_object(bucket, key=entry.key)[0]
        for entry in objects.list_object_entries(bucket)
    }


def test_objects_any_client_writes_or_deletes_at_the_source_reach_the_dr_copy(
    ctx: ctx_module.Context,
) -> None:
    silver = ready_workload(ctx, "silver")
    source = drivers.simulator(ctx).drivers("qd-a").object_storage
    bucket = repl.data_bucket(silver)
    recovery.write(ctx, silver, key="case/1", data=b"through cloudctl")
    source.put_object(bucket, key="upload/2", data=b"straight into the bucket by another client")
    advance(ctx, 301)

    recovery.run_due(ctx)

    assert keys_at(ctx, "dz-dr", silver) == {
        "case/1": b"through cloudctl",
        "upload/2": b"straight into the bucket by another client",
    }
    source.delete_object(bucket, key="upload/2")
    advance(ctx, 301)
    [result] = recovery.run_due(ctx)
    assert result.deleted == 1
    assert keys_at(ctx, "dz-dr", silver) == {"case/1": b"through cloudctl"}


def test_a_mass_delete_at_the_source_is_recoverable_from_the_dr_copy(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    written = {f"case/{n}": f"record {n}".encode() for n in range(5)}
    for key, data in written.items():
        recovery.write(ctx, gold, key=key, data=data)
    advance(ctx, 61)
    recovery.run_due(ctx)
    source = drivers.simulator(ctx).drivers("qd-a").object_storage
    bucket = repl.data_bucket(gold)
    for key in written:  # ransomware: everything deleted at the source
        source.delete_object(bucket, key=key)
    advance(ctx, 61)
    recovery.run_due(ctx)
    dr = drivers.simulator(ctx).drivers("dz-dr").object_storage
    assert dr.list_object_entries(bucket) == []  # the delete replicated ...

    versions = dr.list_object_versions(bucket)  # ... and the DR copy kept what it removed
    markers = {v.key for v in versions if v.deleted and v.is_latest}
    kept = {v.key: v for v in versions if not v.deleted}
    assert markers == set(written) == set(kept)
    for key, version in kept.items():
        dr.restore_object_version(bucket, key=key, version_id=version.version_id)
    assert keys_at(ctx, "dz-dr", gold) == written


def test_the_dr_copy_forgets_deleted_versions_after_the_tier_retention(ctx: ctx_module.Context) -> None:
    bronze = ready_workload(ctx, "bronze")
    retention_days = ctx.topology.tier("bronze").deleted_retention_days
    dr = drivers.simulator(ctx).drivers("dz-dr").object_storage
    bucket = repl.data_bucket(bronze)
    dr.put_object(bucket, key="k", data=b"one")
    dr.put_object(bucket, key="k", data=b"two")
    assert [v.deleted for v in dr.list_object_versions(bucket)] == [False, False]
    advance(ctx, retention_days * DAY_S + 1)
    dr.put_object(bucket, key="k", data=b"three")  # expired versions of a key go when it is written
    assert len(dr.list_object_versions(bucket)) == 2  # "two" (noncurrent since now) and "three"


def test_a_scrub_repairs_audits_and_counts_a_corrupt_replica(ctx: ctx_module.Context) -> None:
    silver = ready_workload(ctx, "silver")
    recovery.write(ctx, silver, key="ledger/1", data=b"balance: 1000")
    advance(ctx, 301)
    recovery.run_due(ctx)
    fault = faults.inject(ctx, kind="corrupt-replica", center="dz-dr", workload=silver)
    assert fault.target == f"{repl.data_bucket(silver)}/ledger/1"
    assert fault.id in {f.id for f in faults.list_faults(ctx)}
    counted = metrics.REPLICA_MISMATCHES.labels(center="dz-dr", tier="silver")
    before = counted._value.get()

    [finding] = replication_scrub.scrub(ctx, principal=OPS, workload_id=silver)

    assert (finding.target, finding.mismatches, finding.error) == ("dz-dr", ["ledger/1"], "")
    assert keys_at(ctx, "dz-dr", silver) == {"ledger/1": b"balance: 1000"}
    assert counted._value.get() == before + 1
    records = audit.list_records(ctx, principal=AUDITOR, action="replication.scrub")
    [record] = [r for r in records if r.outcome == "repaired"]
    assert (record.target_id, record.detail["key"]) == (silver, "ledger/1")
    again = replication_scrub.scrub(ctx, principal=OPS, workload_id=silver)
    assert again[0].mismatches == []  # nothing left to repair: no second repair record
    records = audit.list_records(ctx, principal=AUDITOR, action="replication.scrub")
    assert len([r for r in records if r.outcome == "repaired"]) == 1
    # Each scrub (an operator's write) is itself recorded once, with what it found.
    assert sorted(r.detail["mismatches"] for r in records if r.outcome == "success") == [0, 1]


def test_a_scrub_does_not_call_a_write_not_yet_shipped_a_mismatch(ctx: ctx_module.Context) -> None:
    silver = ready_workload(ctx, "silver")
    recovery.write(ctx, silver, key="case/new", data=b"not shipped yet")

    [finding] = replication_scrub.scrub(ctx, principal=OPS, workload_id=silver)

    assert finding.mismatches == []
    assert keys_at(ctx, "dz-dr", silver) == {"case/new": b"not shipped yet"}


def test_a_scrub_is_for_operators_only_and_names_an_unknown_workload(ctx: ctx_module.Context) -> None:
    silver = ready_workload(ctx, "silver")
    with pytest.raises(errors.PolicyDenied):
        replication_scrub.scrub(ctx, principal=HRSS, workload_id=silver)
    with pytest.raises(errors.PolicyDenied):  # refused before any lookup: no hint of what exists
        replication_scrub.scrub(ctx, principal=HRSS, workload_id="wl-nope")
    with pytest.raises(errors.NotFound) as raised:
        replication_scrub.scrub(ctx, principal=OPS, workload_id="wl-nope")
    assert raised.value.field == "workload"


def test_a_corrupt_replica_fault_needs_a_workload_with_data_there(ctx: ctx_module.Context) -> None:
    silver = ready_workload(ctx, "silver")
    with pytest.raises(errors.InvalidInput) as raised:
        faults.inject(ctx, kind="corrupt-replica", center="dz-dr")
    assert raised.value.field == "workload"
    with pytest.raises(errors.InvalidInput) as raised:
        faults.inject(ctx, kind="corrupt-replica", center="dz-dr", workload=silver)  # nothing copied yet
    assert raised.value.field == "key"


def test_serve_scrubs_continuously_at_the_configured_rate(ctx: ctx_module.Context) -> None:
    first, second = ready_workload(ctx, "silver"), ready_workload(ctx, "bronze")
    scrubber = replication_scrub.ContinuousScrub(ctx, streams_per_minute=2)
    assert scrubber.run_once() == []  # no time has passed: no budget yet
    advance(ctx, 29)
    assert scrubber.run_once() == []
    advance(ctx, 2)
    assert [f.workload_id for f in scrubber.run_once()] == [min(first, second)]
    advance(ctx, 30)
    assert [f.workload_id for f in scrubber.run_once()] == [max(first, second)]
    advance(ctx, 30)
    assert [f.workload_id for f in scrubber.run_once()] == [min(first, second)]  # round again
    off = replication_scrub.ContinuousScrub(ctx, streams_per_minute=0)
    advance(ctx, 3600)
    assert off.run_once() == []


def test_the_scrub_rate_setting_is_checked(tmp_path: Path) -> None:
    with pytest.raises(errors.InvalidInput) as raised:
        settings_module.Settings(home=tmp_path, replication_scrub_streams_per_minute=-1)
    assert raised.value.field == "replication_scrub_streams_per_minute"


def test_a_deleted_workload_loses_its_records_at_once_and_its_buckets_after_the_retention(
    ctx: ctx_module.Context,
) -> None:
    gold = ready_workload(ctx, "gold", name="portal")
    recovery.write(ctx, gold, key="case/1", data=b"record")
    advance(ctx, 61)
    recovery.run_due(ctx)
    with ctx.read() as tx:
        record = requests.get_workload(tx, gold)
    traffic_driver = drivers.simulator(ctx).drivers("mgmt").traffic
    traffic.switch(traffic_driver, ctx.topology, record, target="qd-a", left=["qd-b"])
    workloads.delete(ctx, principal=HRSS, workload_id=gold)
    provisioning.run_pending(ctx)

    first = replication_scrub.retire_deleted(ctx)

    assert first.records_removed == 2
    assert traffic_driver.list_records(ctx.topology.zone) == []
    bucket = repl.data_bucket(gold)
    assert set(first.buckets_emptied) == {f"qd-a/{bucket}", f"qd-b/{bucket}", f"dz-dr/{bucket}"}
    assert first.buckets_removed == []
    dr = drivers.simulator(ctx).drivers("dz-dr").object_storage
    assert {v.key for v in dr.list_object_versions(bucket) if not v.deleted} == {
        "case/1"
    }  # still recoverable

    advance(ctx, ctx.topology.tier("gold").deleted_retention_days * DAY_S)
    later = replication_scrub.retire_deleted(ctx)

    assert set(later.buckets_removed) == {f"qd-a/{bucket}", f"qd-b/{bucket}", f"dz-dr/{bucket}"}
    for center in ("qd-a", "qd-b", "dz-dr"):
        names = [b.name for b in drivers.simulator(ctx).drivers(center).object_storage.list_buckets()]
        assert bucket not in names
    assert replication_scrub.retire_deleted(ctx) == replication_scrub.RetirementReport(0, [], [])


def test_cli_scrub_and_the_corrupt_replica_fault(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    assert cli.json("replication", "scrub") == []
    result = cli("sim", "inject", "corrupt-replica", "--center", "dz-dr", code=2)
    assert "workload" in result.stderr and "Traceback" not in result.stderr
    result = cli("replication", "scrub", "--workload", "wl-nope", code=2)
    assert result.stderr.strip().startswith("error: workload: ")
