"""A data grant on S3 is a bucket policy for exactly the granted prefix (``moto_server``).

moto evaluates bucket policies only partly: it does not check *who* a statement names (only
``Principal: "*"`` is verified) and ignores conditions, and an authenticated caller (the bucket
owner) is never refused for want of an Allow. What it does enforce is the statement's resource
for unsigned object reads: an Allow lets an anonymous GET through, its absence leaves it refused.
So the test reads the policy back and asserts the principal and prefix there, and shows the
prefix boundary with unsigned GETs; that only the consumer is admitted is not checked by moto.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid

import pytest

from cloudctl.drivers import s3
from tests.integration import conftest, moto_servers


@pytest.fixture
def storage(object_storage: conftest.ObjectStorageFactory, source_center: str) -> s3.S3ObjectStorage:
    return object_storage(source_center)


@pytest.fixture
def server(
    moto_servers_by_center: dict[str, moto_servers.MotoServer], source_center: str
) -> moto_servers.MotoServer:
    return moto_servers_by_center[source_center]


def anonymous_get(server: moto_servers.MotoServer, bucket: str, key: str) -> int:
    try:
        with urllib.request.urlopen(f"{server.endpoint_url}/{bucket}/{key}", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return int(refused.code)


def test_a_grant_is_a_bucket_policy_for_exactly_its_prefix_and_revoking_removes_it(
    storage: s3.S3ObjectStorage, server: moto_servers.MotoServer, request: pytest.FixtureRequest
) -> None:
    bucket = f"grant-{uuid.uuid4().hex[:12]}"
    storage.create_bucket(bucket)
    request.addfinalizer(lambda: moto_servers.purge_bucket(server, bucket))
    storage.put_object(bucket, key="households/2026/0001.json", data=b'{"income": 1800}')
    storage.put_object(bucket, key="payroll/2026/0001.json", data=b'{"salary": 9000}')
    storage.set_retention(bucket, days=30)

    storage.grant_prefix_access(
        bucket, grant_id="grant-0abc", prefix="households/2026/", consumer="civil-assistance"
    )

    policy = json.loads(moto_servers.raw_client(server).get_bucket_policy(Bucket=bucket)["Policy"])
    by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert set(by_sid) == {
        "KeepHistoryForRetention",
        "CloudctlGrantRead6772616e742d30616263",
        "CloudctlGrantList6772616e742d30616263",
    }
    read = by_sid["CloudctlGrantRead6772616e742d30616263"]
    assert read["Principal"] == {"AWS": "arn:aws:iam::123456789012:user/civil-assistance"}
    assert (read["Effect"], read["Action"]) == ("Allow", "s3:GetObject")
    assert read["Resource"] == f"arn:aws:s3:::{bucket}/households/2026/*"
    listing = by_sid["CloudctlGrantList6772616e742d30616263"]
    assert listing["Condition"] == {"StringLike": {"s3:prefix": ["households/2026/*"]}}
    assert [(g.grant_id, g.prefix, g.consumer) for g in storage.list_prefix_grants(bucket)] == [
        ("grant-0abc", "households/2026/", "civil-assistance")  # the id given, back exactly
    ]

    # Enforced by moto: the statement's resource. Inside the prefix an unsigned read passes,
    # outside it is refused. (moto admits any caller the Allow covers: it does not check the
    # consumer principal; the policy read back above is the evidence for that part.)
    assert anonymous_get(server, bucket, "households/2026/0001.json") == 200
    assert anonymous_get(server, bucket, "payroll/2026/0001.json") == 403

    storage.revoke_prefix_access(bucket, grant_id="grant-0abc")
    policy = json.loads(moto_servers.raw_client(server).get_bucket_policy(Bucket=bucket)["Policy"])
    assert [statement["Sid"] for statement in policy["Statement"]] == ["KeepHistoryForRetention"]
    assert storage.list_prefix_grants(bucket) == []
    assert anonymous_get(server, bucket, "households/2026/0001.json") == 403
    storage.revoke_prefix_access(bucket, grant_id="grant-0abc")  # quiet when already gone
