"""``S3ObjectStorage`` against a real S3 server (``moto_server``), beyond the shared contract.

What only an S3 backend shows: versioning and the sha256 metadata as stored on the
server, retries that wait on the injected clock, history removed with the bucket,
objects written by other tools, and one server per center.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from pathlib import Path

import botocore.config
import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import s3
from cloudctl.drivers.s3 import wire
from tests.integration import conftest, moto_servers


@pytest.fixture
def storage(object_storage: conftest.ObjectStorageFactory, source_center: str) -> s3.S3ObjectStorage:
    return object_storage(source_center)


@pytest.fixture
def server(
    moto_servers_by_center: dict[str, moto_servers.MotoServer], source_center: str
) -> moto_servers.MotoServer:
    return moto_servers_by_center[source_center]


@pytest.fixture
def bucket(
    storage: s3.S3ObjectStorage, server: moto_servers.MotoServer, request: pytest.FixtureRequest
) -> str:
    name = f"s3-{uuid.uuid4().hex[:12]}"
    storage.create_bucket(name)
    request.addfinalizer(lambda: moto_servers.purge_bucket(server, name))
    return name


def test_a_bucket_is_versioned_and_objects_carry_their_sha256_as_metadata(
    storage: s3.S3ObjectStorage, server: moto_servers.MotoServer, bucket: str
) -> None:
    data = b"census 2026\n" * 10
    written = storage.put_object(bucket, key="census", data=data)

    raw = moto_servers.raw_client(server)
    assert raw.get_bucket_versioning(Bucket=bucket)["Status"] == "Enabled"
    head = raw.head_object(Bucket=bucket, Key="census")
    assert head["Metadata"] == {"sha256": hashlib.sha256(data).hexdigest()}
    assert head["VersionId"] == written.version_id


def test_an_unreachable_endpoint_is_retried_on_the_injected_clock_then_reported() -> None:
    clock = clocks.ManualClock()
    storage = s3.S3ObjectStorage(
        center="nowhere",
        endpoint_url=f"http://{moto_servers.LOOPBACK}:{moto_servers.closed_port()}",
        access_key=moto_servers.ACCESS_KEY,
        secret_key=moto_servers.SECRET_KEY,
        clock=clock,
        retry=s3.RetryPolicy(attempts=4, initial_wait_s=1.0, max_wait_s=5.0),
    )
    started_at, real_started_at = clock.now(), time.monotonic()

    with pytest.raises(errors.BackendUnavailable, match="after 4 attempts"):
        storage.list_buckets()

    assert clock.now() - started_at >= 1.0 + 2.0 + 4.0  # three backoffs, on the manual clock
    assert time.monotonic() - real_started_at < 5.0  # and no real sleeping


def test_deleting_an_emptied_versioned_bucket_removes_its_history(
    storage: s3.S3ObjectStorage, server: moto_servers.MotoServer
) -> None:
    name = f"s3-{uuid.uuid4().hex[:12]}"
    storage.create_bucket(name)
    storage.put_object(name, key="k", data=b"one")
    storage.put_object(name, key="k", data=b"two")
    storage.delete_object(name, key="k")
    assert storage.list_objects(name) == []

    storage.delete_bucket(name)

    assert name not in [entry["Name"] for entry in moto_servers.raw_client(server).list_buckets()["Buckets"]]


def test_an_object_written_by_another_tool_gets_its_sha256_computed(
    storage: s3.S3ObjectStorage, server: moto_servers.MotoServer, bucket: str
) -> None:
    data = b"uploaded with the aws cli"
    moto_servers.raw_client(server).put_object(Bucket=bucket, Key="foreign", Body=data)

    assert storage.head_object(bucket, key="foreign").sha256 == hashlib.sha256(data).hexdigest()
    assert [info.sha256 for info in storage.list_objects(bucket)] == [hashlib.sha256(data).hexdigest()]
    assert storage.get_object(bucket, key="foreign")[0] == data


def test_ensure_bucket_creates_once_and_switches_versioning_on(
    storage: s3.S3ObjectStorage, server: moto_servers.MotoServer, request: pytest.FixtureRequest
) -> None:
    name = s3.department_bucket_name(f"Bureau_{uuid.uuid4().hex[:8]}")
    assert name.startswith("dept-bureau-")
    request.addfinalizer(lambda: moto_servers.purge_bucket(server, name))
    created = storage.create_bucket(name, versioning=False)
    assert created.versioning is False

    ensured = storage.ensure_bucket(name)
    assert ensured.versioning is True
    assert storage.ensure_bucket(name) == ensured


def test_each_center_has_its_own_server(
    object_storage: conftest.ObjectStorageFactory, source_center: str, target_center: str, bucket: str
) -> None:
    assert bucket in [found.name for found in object_storage(source_center).list_buckets()]
    assert bucket not in [found.name for found in object_storage(target_center).list_buckets()]


ODD_KEYS = ["dept/a b+c%d", "dept/数据/2026-12-04", "dept/~tilde=equals&amp", "dept/(1) [x]"]


def test_keys_of_any_characters_go_through_put_get_and_listing_as_boto3_sees_them(
    storage: s3.S3ObjectStorage, server: moto_servers.MotoServer, bucket: str
) -> None:
    contents = {key: f"bytes of {key}".encode() for key in ODD_KEYS}
    for key, data in contents.items():
        storage.put_object(bucket, key=key, data=data)

    raw = moto_servers.raw_client(server)
    for key, data in contents.items():
        assert raw.get_object(Bucket=bucket, Key=key)["Body"].read() == data
        assert storage.get_object(bucket, key=key)[0] == data
    listed = {entry.key: entry.etag for entry in storage.list_object_entries(bucket, prefix="dept/")}
    seen = raw.list_objects_v2(Bucket=bucket, Prefix="dept/")["Contents"]
    assert listed == {entry["Key"]: entry["ETag"].strip('"') for entry in seen}
    assert set(listed) == set(contents)


def test_a_listing_is_read_page_by_page(server: moto_servers.MotoServer, bucket: str) -> None:
    raw = moto_servers.raw_client(server)
    keys = [f"page/{index:02d}" for index in range(5)]
    for key in keys:
        raw.put_object(Bucket=bucket, Key=key, Body=key.encode())
    client_config = botocore.config.Config(connect_timeout=3, read_timeout=30)
    object_wire = wire.ObjectWire(
        endpoint_url=server.endpoint_url,
        access_key=moto_servers.ACCESS_KEY,
        secret_key=moto_servers.SECRET_KEY,
        region=moto_servers.REGION,
        client_config=client_config,
        verify=True,
        max_pool_connections=2,
    )
    request_tokens: list[str | None] = [None]
    found: list[str] = []
    while True:
        page = object_wire.list_objects_page(
            bucket, prefix="page/", continuation_token=request_tokens[-1], max_keys=2
        )
        found.extend(listed.key for listed in page.objects)
        if page.next_token is None:
            break
        request_tokens.append(page.next_token)

    assert found == keys
    assert len(request_tokens) == 3


def test_a_missing_object_is_not_found_and_bytes_other_than_the_md5_are_not_taken_as_stored(
    storage: s3.S3ObjectStorage, bucket: str
) -> None:
    with pytest.raises(errors.NotFound):
        storage.get_object(bucket, key="never-written")
    source = storage.put_object(bucket, key="ledger", data=b"ledger line\n")
    # moto stores a body whatever its Content-MD5 (S3 refuses it): the ETag it answers gives it away.
    with pytest.raises(errors.OperationFailed, match="stored other bytes than sent"):
        storage.put_replica(bucket, data=b"other line\n!", source=source)


def test_a_server_that_checks_signatures_accepts_the_data_path_and_refuses_a_wrong_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    # moto checks SigV4 signatures against its IAM users once this many requests were let through
    # unchecked: the start-up probe, then the three below that make a user with a key.
    monkeypatch.setenv("INITIAL_NO_AUTH_ACTION_COUNT", "4")
    [server] = moto_servers.start(["qd-a"], log_dir=tmp_path)
    request.addfinalizer(lambda: moto_servers.stop([server]))
    iam = moto_servers.raw_client(server, "iam")
    iam.create_user(UserName="replicator")
    everything = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="replicator", PolicyName="s3", PolicyDocument=json.dumps(everything))
    key = iam.create_access_key(UserName="replicator")["AccessKey"]

    def storage(secret_key: str) -> s3.S3ObjectStorage:
        return s3.S3ObjectStorage(
            center="qd-a",
            endpoint_url=server.endpoint_url,
            access_key=key["AccessKeyId"],
            secret_key=secret_key,
            region=moto_servers.REGION,
            retry=s3.RetryPolicy(attempts=1),
        )

    signed = storage(key["SecretAccessKey"])
    signed.create_bucket("signed", versioning=False)
    for odd_key in ODD_KEYS:
        signed.put_object("signed", key=odd_key, data=odd_key.encode())
        assert signed.get_object("signed", key=odd_key)[0] == odd_key.encode()
    assert sorted(entry.key for entry in signed.list_object_entries("signed", prefix="dept/")) == sorted(
        ODD_KEYS
    )

    forged = storage("not-the-secret")
    with pytest.raises(errors.OperationFailed, match="SignatureDoesNotMatch"):
        forged.get_object("signed", key=ODD_KEYS[0])
    with pytest.raises(errors.OperationFailed, match="SignatureDoesNotMatch"):
        forged.put_object("signed", key="forged", data=b"forged")
    with pytest.raises(errors.OperationFailed, match="SignatureDoesNotMatch"):
        forged.list_object_entries("signed")
