"""Switching a center to real backends by editing the topology only: object storage on S3 and
traffic on a Route 53 API (moto servers), the rest on the simulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.model import topology
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, grants, identity, provisioning, setup, workloads
from cloudctl.services import requests as requests_service
from cloudctl.store import db
from tests.conftest import POLICIES, TOPOLOGY
from tests.integration import moto_servers


def with_real_backends(tmp_path: Path, endpoint_url: str) -> Path:
    data: dict[str, Any] = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    for center in data["centers"]:
        if center["name"] == "qd-a":
            center["drivers"] = {"object_storage": "s3"}
            center["backends"] = {"s3": {"endpoint_url": endpoint_url, "iam_account_id": "210987654321"}}
        if center["role"] == "management":
            center["drivers"] = {"traffic": "dns"}
            center["backends"] = {"dns": {"endpoint_url": endpoint_url}}
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_bucket_ordered_in_an_s3_backed_center_is_made_on_s3(
    tmp_path: Path,
    moto_servers_by_center: dict[str, moto_servers.MotoServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = next(iter(moto_servers_by_center.values()))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_servers.ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_servers.SECRET_KEY)
    path = with_real_backends(tmp_path, server.endpoint_url)
    store = db.Store(db.sqlite_url(tmp_path))
    settings = settings_module.Settings(home=tmp_path, topology=path, policies=POLICIES)
    ctx = ctx_module.Context(settings=settings, clock=clocks.SystemClock(), _store=store)
    try:
        setup.initialise(ctx)
        s3_storage = drivers.center_drivers(ctx, "qd-a").object_storage._inner
        assert type(s3_storage).__name__ == "S3ObjectStorage"
        assert (
            type(drivers.center_drivers(ctx, "qd-b").object_storage._inner).__name__
            == "SimulatedObjectStorage"
        )
        principal = identity.Principal(
            id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
        )
        body = requests_service.RequestCreate(offering="bucket.100g", tier="silver", preferred_center="qd-a")
        request, _ = requests_service.submit(ctx, principal=principal, body=body)
        assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
        workload = workloads.get(ctx, principal=principal, workload_id=request.workload_id or "")
        bucket = next(p for p in workload.placements if p.role == "primary").resources[0]["id"]
        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint_url,
            aws_access_key_id=moto_servers.ACCESS_KEY,
            aws_secret_access_key=moto_servers.SECRET_KEY,
            region_name=moto_servers.REGION,
        )
        assert bucket in {b["Name"] for b in client.list_buckets()["Buckets"]}

        # A data grant on that bucket is a bucket policy naming the topology's IAM account.
        grants.publish(
            ctx,
            principal=principal,
            item_id="hrss-cases",
            owner=None,
            kind="bucket-prefix",
            data_class="internal",
            description="case files",
            workload_id=workload.id,
            prefix="cases/",
        )
        path = ("qingdao", "civil-affairs", "civil-assistance")
        consumer = identity.Principal(id="c", role="dept-user", department=path[-1], department_path=path)
        asked = grants.request_grant(
            ctx,
            principal=consumer,
            item_id="hrss-cases",
            purpose="social-assistance",
            expires_at=clocks.isoformat(ctx.clock.now() + 86400),
        )
        assert grants.approve(ctx, principal=principal, grant_id=asked.id).state == "active"
        policy = json.loads(client.get_bucket_policy(Bucket=bucket)["Policy"])
        granted = [s for s in policy["Statement"] if s["Sid"].startswith("CloudctlGrant")]
        assert [s["Principal"] for s in granted] == [
            {"AWS": "arn:aws:iam::210987654321:user/civil-assistance"}
        ] * 2
        assert type(drivers.center_drivers(ctx, "mgmt").traffic._inner).__name__ == "Route53Traffic"
    finally:
        ctx.close()
        store.dispose()


def test_a_real_driver_without_its_endpoint_is_refused_naming_the_field() -> None:
    data: dict[str, Any] = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    data["centers"][1]["drivers"] = {"object_storage": "s3"}
    with pytest.raises(errors.TopologyError) as caught:
        topology.from_data(data)
    assert caught.value.field == "centers[1].backends.s3"
    data["centers"][1]["drivers"] = {"object_storage": "ceph-native"}
    with pytest.raises(errors.TopologyError) as unknown:
        topology.from_data(data)
    assert unknown.value.field == "centers[1].drivers.object_storage"
    data["centers"][1]["drivers"] = {"object_storage": "s3"}
    data["centers"][1]["backends"] = {"s3": {"endpoint_url": "http://s3.local", "iam_account_id": "12ab"}}
    with pytest.raises(errors.TopologyError) as bad_account:
        topology.from_data(data)
    assert bad_account.value.field == "centers[1].backends.s3.iam_account_id"
