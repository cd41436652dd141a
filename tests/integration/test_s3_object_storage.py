"""``S3ObjectStorage`` against a real S3 server (``moto_server``), beyond the shared contract.

What only an S3 backend shows: versioning and the sha256 metadata as stored on the
server, retries that wait on the injected clock, history removed with the bucket,
objects written by other tools, and one server per center.
"""

from __future__ import annotations

import hashlib
import time
import uuid

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
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
