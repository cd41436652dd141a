"""A workload's data replicated between two S3 centers (moto servers), checked with boto3.

The local center and the DR center keep their object storage on S3; everything else is
simulated. What is checked on the servers themselves: objects another client wrote into
the source bucket arrive at the DR copy; deletes replicate as delete markers with the
old versions kept; the DR bucket carries the tier's retention (lifecycle rule and a
bucket policy refusing version deletes); a scrub repairs a replica overwritten behind
cloudctl's back; a deleted workload's buckets go from both servers once the retention
has passed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudctl import clock as clocks
from cloudctl.recovery import replication as repl
from cloudctl.services import audit, faults, identity, provisioning, recovery, replication_scrub, workloads
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from tests.integration import conftest, moto_servers

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)
OPS = identity.local_operator("sysadmin")
DAY_S = 86400


@pytest.fixture
def ctx(
    tmp_path: Path,
    moto_servers_by_center: dict[str, moto_servers.MotoServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ctx_module.Context]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_servers.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_servers.SECRET_KEY)
    endpoints = {center: server.endpoint_url for center, server in moto_servers_by_center.items()}
    with conftest.real_backends_context(
        tmp_path, s3_endpoints=endpoints, clock=clocks.ManualClock()
    ) as context:
        yield context


def ready_silver(ctx: ctx_module.Context, source_center: str, *, offering: str = "vm.small") -> str:
    body = requests_service.RequestCreate(offering=offering, tier="silver", preferred_center=source_center)
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def advance(ctx: ctx_module.Context, seconds: float) -> None:
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(seconds)


@pytest.fixture
def s3_clients(
    moto_servers_by_center: dict[str, moto_servers.MotoServer], source_center: str, target_center: str
) -> tuple[Any, Any]:
    """boto3 clients of the source center's S3 server and the DR center's."""
    servers = moto_servers_by_center
    return moto_servers.raw_client(servers[source_center]), moto_servers.raw_client(servers[target_center])


def shipped_silver(ctx: ctx_module.Context, source_center: str, **writes: bytes) -> tuple[str, str]:
    """A silver workload in ``source_center`` and its bucket, ``writes`` (key: bytes) shipped."""
    workload = ready_silver(ctx, source_center)
    for key, data in writes.items():
        recovery.write(ctx, workload, key=key, data=data)
    ship_with_points(ctx)
    return workload, repl.data_bucket(workload)


def ship_with_points(ctx: ctx_module.Context) -> None:
    """The silver DR pass falls due and runs, then the replication points it calls for."""
    from cloudctl.services import replication_points

    advance(ctx, 301)
    replication_points.take_points(ctx, recovery.run_due(ctx))


def bodies(client: Any, bucket: str) -> dict[str, bytes]:
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        entry["Key"]: client.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read() for entry in listed
    }


def bucket_names(client: Any) -> set[str]:
    return {bucket["Name"] for bucket in client.list_buckets()["Buckets"]}


def test_a_workloads_bucket_replicates_any_clients_writes_and_deletes_and_keeps_history(
    ctx: ctx_module.Context,
    moto_servers_by_center: dict[str, moto_servers.MotoServer],
    source_center: str,
    target_center: str,
) -> None:
    source = moto_servers.raw_client(moto_servers_by_center[source_center])
    dr = moto_servers.raw_client(moto_servers_by_center[target_center])
    silver = ready_silver(ctx, source_center)
    bucket = repl.data_bucket(silver)
    recovery.write(ctx, silver, key="case/1", data=b"through cloudctl")
    source.put_object(Bucket=bucket, Key="upload/2", Body=b"from another client")
    advance(ctx, 301)

    results = recovery.run_due(ctx)

    assert [(r.copied, r.error) for r in results] == [(2, "")]  # each object once: log, then sweep
    assert bodies(dr, bucket) == {"case/1": b"through cloudctl", "upload/2": b"from another client"}
    retention_days = ctx.topology.tier("silver").deleted_retention_days
    [rule] = dr.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] == retention_days
    policy = json.loads(dr.get_bucket_policy(Bucket=bucket)["Policy"])
    [statement] = policy["Statement"]
    assert statement["Effect"] == "Deny" and "s3:DeleteObjectVersion" in statement["Action"]
    assert dr.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    recovery.write(ctx, silver, key="case/3", data=b"shipped from the change log")
    advance(ctx, 301)
    assert [r.copied for r in recovery.run_due(ctx)] == [1]  # the sweep knows the log shipped it

    for key in ("case/1", "upload/2"):  # a mass delete at the source, by any client
        source.delete_object(Bucket=bucket, Key=key)
    advance(ctx, 301)
    recovery.run_due(ctx)

    assert bodies(dr, bucket) == {"case/3": b"shipped from the change log"}
    history = dr.list_object_versions(Bucket=bucket)
    assert {m["Key"] for m in history.get("DeleteMarkers", []) if m["IsLatest"]} == {"case/1", "upload/2"}
    kept = {v["Key"]: v["VersionId"] for v in history.get("Versions", []) if not v["IsLatest"]}
    assert set(kept) == {"case/1", "upload/2"}
    assert dr.get_object(Bucket=bucket, Key="upload/2", VersionId=kept["upload/2"])["Body"].read() == (
        b"from another client"
    )


def test_a_scrub_repairs_a_replica_overwritten_behind_cloudctls_back(
    ctx: ctx_module.Context,
    moto_servers_by_center: dict[str, moto_servers.MotoServer],
    source_center: str,
    target_center: str,
) -> None:
    dr = moto_servers.raw_client(moto_servers_by_center[target_center])
    silver = ready_silver(ctx, source_center)
    bucket = repl.data_bucket(silver)
    recovery.write(ctx, silver, key="ledger/1", data=b"balance: 1000")
    advance(ctx, 301)
    recovery.run_due(ctx)
    dr.put_object(Bucket=bucket, Key="ledger/1", Body=b"balance: 0")

    [finding] = replication_scrub.scrub(ctx, principal=OPS, workload_id=silver)

    assert finding.mismatches == ["ledger/1"]
    assert dr.get_object(Bucket=bucket, Key="ledger/1")["Body"].read() == b"balance: 1000"
    repaired, summary = audit.list_records(
        ctx, principal=identity.local_operator("auditor"), action="replication.scrub"
    )
    assert (repaired.outcome, repaired.target_id) == ("repaired", silver)
    assert (repaired.detail["key"], repaired.detail["target"]) == ("ledger/1", target_center)
    assert (summary.outcome, summary.detail["mismatches"]) == ("success", 1)
    assert replication_scrub.scrub(ctx, principal=OPS, workload_id=silver)[0].mismatches == []


def test_a_deleted_workloads_buckets_leave_both_servers_after_the_retention(
    ctx: ctx_module.Context,
    moto_servers_by_center: dict[str, moto_servers.MotoServer],
    source_center: str,
    target_center: str,
) -> None:
    source = moto_servers.raw_client(moto_servers_by_center[source_center])
    dr = moto_servers.raw_client(moto_servers_by_center[target_center])
    silver = ready_silver(ctx, source_center)
    bucket = repl.data_bucket(silver)
    recovery.write(ctx, silver, key="case/1", data=b"record")
    advance(ctx, 301)
    recovery.run_due(ctx)
    workloads.delete(ctx, principal=HRSS, workload_id=silver)
    provisioning.run_pending(ctx)

    replication_scrub.retire_deleted(ctx)

    assert bucket in bucket_names(source) and bucket in bucket_names(dr)  # within the retention
    assert bodies(dr, bucket) == {}
    assert {v["Key"] for v in dr.list_object_versions(Bucket=bucket).get("Versions", [])} == {"case/1"}

    advance(ctx, ctx.topology.tier("silver").deleted_retention_days * DAY_S)
    replication_scrub.retire_deleted(ctx)

    assert bucket not in bucket_names(source)
    assert bucket not in bucket_names(dr)


def test_a_restore_rewinds_the_dr_bucket_to_the_point_before_an_attack(
    ctx: ctx_module.Context,
    moto_servers_by_center: dict[str, moto_servers.MotoServer],
    source_center: str,
    target_center: str,
) -> None:
    from cloudctl.services import restores

    source = moto_servers.raw_client(moto_servers_by_center[source_center])
    dr = moto_servers.raw_client(moto_servers_by_center[target_center])
    silver = ready_silver(ctx, source_center)
    bucket = repl.data_bucket(silver)
    ship = functools.partial(ship_with_points, ctx)

    recovery.write(ctx, silver, key="case/1", data=b"version one")
    ship()
    recovery.write(ctx, silver, key="case/1", data=b"version two")
    recovery.write(ctx, silver, key="case/2", data=b"second case")
    ship()
    advance(ctx, 60)
    attack = clocks.isoformat(ctx.clock.now())
    advance(ctx, 1)
    recovery.write(ctx, silver, key="case/2", data=b"\x00encrypted\x00")
    recovery.write(ctx, silver, key="README.encrypted", data=b"pay up")
    source.put_object(Bucket=bucket, Key="case/1", Body=b"overwritten by another client")
    ship()
    assert bodies(dr, bucket)["case/1"] == b"overwritten by another client"

    done = restores.restore(ctx, principal=OPS, workload_id=silver, at=attack)

    assert (done.point, done.changes_lost) == (f"{target_center}/{silver}@3", 0)
    assert (done.objects_rewound, done.objects_removed, done.objects_missing) == (
        ["case/1", "case/2"],
        ["README.encrypted"],
        [],
    )
    assert bodies(dr, bucket) == {"case/1": b"version two", "case/2": b"second case"}
    versions = dr.list_object_versions(Bucket=bucket)
    assert {v["Key"] for v in versions.get("Versions", []) if not v["IsLatest"]} >= {
        "case/2",
        "README.encrypted",
    }


def test_a_bucket_only_workload_gets_points_and_a_restore_rewinds_its_dr_bucket(
    ctx: ctx_module.Context, s3_clients: tuple[Any, Any], source_center: str, target_center: str
) -> None:
    from cloudctl.services import replication_points, restores

    source, dr = s3_clients
    workload = ready_silver(ctx, source_center, offering="bucket.100g")
    bucket = repl.data_bucket(workload)
    recovery.write(ctx, workload, key="case/1", data=b"version one")
    ship_with_points(ctx)
    recovery.write(ctx, workload, key="case/1", data=b"version two")
    source.put_object(Bucket=bucket, Key="upload/2", Body=b"from another client")  # beside the log
    ship_with_points(ctx)
    advance(ctx, 60)
    attack = clocks.isoformat(ctx.clock.now())
    advance(ctx, 1)
    recovery.write(ctx, workload, key="case/1", data=b"\x00encrypted\x00")
    recovery.write(ctx, workload, key="README.encrypted", data=b"pay up")
    ship_with_points(ctx)
    points = replication_points.list_points(ctx, workload_id=workload)
    assert [(p.kind, p.seq, p.bucket, p.state) for p in points] == [
        ("objects", seq, bucket, "ready") for seq in (1, 2, 4)
    ]
    attacked = {
        "case/1": b"\x00encrypted\x00",
        "README.encrypted": b"pay up",
        "upload/2": b"from another client",
    }
    assert bodies(dr, bucket) == attacked

    plan = restores.restore(ctx, principal=OPS, workload_id=workload, at=attack, dry_run=True)
    assert (plan.point, plan.volumes) == (f"{target_center}/{workload}@2", [])
    assert bodies(dr, bucket) == attacked

    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=attack)

    assert (done.point, done.seq, done.volumes, done.objects_missing) == (
        f"{target_center}/{workload}@2",
        2,
        [],
        [],
    )
    # upload/2 came by the sweep, not the change log: the restore leaves it as the copy holds it.
    assert bodies(dr, bucket) == {"case/1": b"version two", "upload/2": b"from another client"}
    assert bodies(source, bucket)["case/1"] == b"\x00encrypted\x00"  # the serving copy is not touched


def test_a_cut_dr_link_stops_the_copy_to_s3_until_it_is_back(
    ctx: ctx_module.Context, source_center: str, target_center: str, s3_clients: tuple[Any, Any]
) -> None:
    _source, target = s3_clients
    workload, bucket = shipped_silver(ctx, source_center, before=b"shipped before the cut")
    cut = faults.inject(ctx, kind="link-cut", center=source_center, peer=target_center)
    recovery.write(ctx, workload, key="during", data=b"written while the line is cut")
    advance(ctx, 301)
    (during_cut,) = recovery.run_due(ctx)
    assert "cut" in during_cut.error
    assert bodies(target, bucket) == {"before": b"shipped before the cut"}  # nothing crossed the cut

    faults.clear(ctx, fault_id=cut.id)
    advance(ctx, 301)
    (restored,) = recovery.run_due(ctx)
    assert restored.error == ""
    assert bodies(target, bucket)["during"] == b"written while the line is cut"


def test_a_center_down_takes_no_write_and_ships_nothing_from_its_s3_until_it_is_back(
    ctx: ctx_module.Context, source_center: str, target_center: str, s3_clients: tuple[Any, Any]
) -> None:
    """A drill's ``center-down`` holds for a center on real S3 as for a simulated one: the
    server still answers, but cloudctl neither writes to it nor copies from it, so what a
    failover then counts as lost is what a lost center would lose."""
    from cloudctl import errors

    source, target = s3_clients
    workload, bucket = shipped_silver(ctx, source_center, before=b"shipped before the fault")
    source.put_object(Bucket=bucket, Key="late", Body=b"written by another client, never shipped")
    down = faults.inject(ctx, kind="center-down", center=source_center)

    with pytest.raises(errors.BackendUnavailable, match=f"center {source_center} is down"):
        recovery.write(ctx, workload, key="during", data=b"refused: the center is down")
    advance(ctx, 301)
    (while_down,) = recovery.run_due(ctx)

    assert f"center {source_center} is down" in while_down.error
    assert bodies(target, bucket) == {"before": b"shipped before the fault"}  # nothing left the center
    assert "during" not in bodies(source, bucket)  # the refused write reached no server

    faults.clear(ctx, fault_id=down.id)
    advance(ctx, 301)
    (back,) = recovery.run_due(ctx)
    assert back.error == ""
    assert bodies(target, bucket) == {
        "before": b"shipped before the fault",
        "late": b"written by another client, never shipped",
    }


def test_a_degraded_dr_link_paces_the_copy_to_s3_as_the_simulator_paces_its_own(
    ctx: ctx_module.Context, source_center: str, target_center: str, s3_clients: tuple[Any, Any]
) -> None:
    _source, target = s3_clients
    workload, bucket = shipped_silver(ctx, source_center)
    faults.inject(ctx, kind="link-degraded", center=source_center, peer=target_center, factor=10)
    data = b"x" * 5_000_000
    recovery.write(ctx, workload, key="large", data=data)
    advance(ctx, 301)
    before = ctx.clock.now()

    (degraded,) = recovery.run_due(ctx)

    link = ctx.topology.link(source_center, target_center)
    assert link is not None
    # The copy took what the nominal link would take for it, nine times over, on the clock.
    assert (degraded.copied, degraded.error) == (1, "")
    assert ctx.clock.now() - before == pytest.approx(9 * link.transfer_s(len(data)), abs=1e-6)
    assert bodies(target, bucket)["large"] == data


def test_writes_a_failover_lost_stay_at_home_as_versions_the_failback_names(
    ctx: ctx_module.Context, source_center: str, target_center: str, s3_clients: tuple[Any, Any]
) -> None:
    """Home is lost before its last writes ship; the DR copy serves; home comes back and the
    failback resyncs it from the DR copy. What the failover counted as lost is not destroyed:
    each lost object stays in the home bucket as the version the failback step names."""
    home, _dr = s3_clients
    workload, bucket = shipped_silver(ctx, source_center, **{"case/1": b"first, shipped"})
    recovery.write(ctx, workload, key="case/1", data=b"second, lost")
    recovery.write(ctx, workload, key="case/2", data=b"new, lost")
    down = faults.inject(ctx, kind="center-down", center=source_center)
    plan = recovery.plan_failover(ctx, principal=OPS, from_center=source_center, planned=False)
    failed_over = recovery.execute(ctx, plan.run_id or "")
    assert (failed_over.state, failed_over.workloads[workload]["writes_lost"]) == ("done", 2)
    faults.clear(ctx, fault_id=down.id)
    advance(ctx, 301)

    back = recovery.plan_failback(ctx, principal=OPS, to_center=source_center)
    run = recovery.execute(ctx, back.run_id or "")

    assert run.state == "done"
    assert bodies(home, bucket) == {"case/1": b"first, shipped"}  # home holds what the DR copy served
    resynced = run.workloads[workload]
    kept = {item["key"]: item["version_id"] for item in resynced["superseded"]}
    assert set(kept) == {"case/1", "case/2"} and resynced["superseded_count"] == 2
    for key, lost in (("case/1", b"second, lost"), ("case/2", b"new, lost")):
        assert home.get_object(Bucket=bucket, Key=key, VersionId=kept[key])["Body"].read() == lost
