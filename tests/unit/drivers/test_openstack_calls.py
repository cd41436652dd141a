"""The OpenStack driver's error mapping, retries and settings, without any OpenStack server.

SDK errors are made the way openstacksdk makes them from an HTTP response
(``openstack.exceptions.raise_from_response``); an unreachable cloud is a closed port on
loopback. Retries sleep on a manual clock, so nothing here waits.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import keystoneauth1.exceptions
import openstack.exceptions
import pytest
import requests

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers import calls as shared
from cloudctl.drivers import openstack as openstack_driver
from cloudctl.drivers.openstack import block_storage, calls, compute


def sdk_error(status: int, body: dict[str, object]) -> openstack.exceptions.SDKException:
    response = requests.Response()
    response.status_code = status
    response._content = json.dumps(body).encode()
    response.headers["Content-Type"] = "application/json"
    response.url = "http://127.0.0.1:8774/v2.1/servers"
    try:
        openstack.exceptions.raise_from_response(response)
    except openstack.exceptions.SDKException as error:
        return error
    raise AssertionError(f"no error for HTTP {status}")


def make_caller(clock: clocks.Clock, *, attempts: int = 3) -> shared.Caller[calls.RetryPolicy]:
    return calls.caller(
        center="qd-a", cloud_name="qd-a", clock=clock, retry=calls.RetryPolicy(attempts=attempts)
    )


def failing(*failures: BaseException, result: object = "done") -> tuple[Callable[[], object], list[int]]:
    """An operation that raises ``failures`` one per call, then returns ``result``; and its call count."""
    count = [0]

    def operation() -> object:
        count[0] += 1
        if count[0] <= len(failures):
            raise failures[count[0] - 1]
        return result

    return operation, count


def test_a_missing_thing_is_not_found(clock: clocks.ManualClock) -> None:
    operation, _ = failing(sdk_error(404, {"itemNotFound": {"message": "Instance x could not be found."}}))
    with pytest.raises(errors.NotFound) as raised:
        make_caller(clock).call(operation, what="server x")
    assert raised.value.field == "server"
    assert "qd-a" in raised.value.reason


def test_a_clash_is_a_conflict(clock: clocks.ManualClock) -> None:
    operation, _ = failing(sdk_error(409, {"conflictingRequest": {"message": "Cannot 'stop' instance"}}))
    with pytest.raises(errors.Conflict) as raised:
        make_caller(clock).call(operation, what="server x")
    assert "Cannot 'stop' instance" in raised.value.reason


def test_nova_quota_refusal_is_quota_exceeded_in_cloudctl_resources(clock: clocks.ManualClock) -> None:
    message = "Quota exceeded for cores: Requested 3, but already used 1 of 2 cores"
    operation, _ = failing(sdk_error(403, {"forbidden": {"message": message, "code": 403}}))
    with pytest.raises(errors.QuotaExceeded) as raised:
        make_caller(clock).call(operation, what="server x", project="hrss-insurance")
    (shortfall,) = raised.value.shortfalls
    assert (shortfall.node, shortfall.center, shortfall.resource) == ("hrss-insurance", "qd-a", "vcpu")
    assert (shortfall.limit, shortfall.in_use, shortfall.requested) == (2, 1, 3)


def test_nova_refusing_a_port_over_the_neutron_quota_is_a_conflict_on_ports(
    clock: clocks.ManualClock,
) -> None:
    body = {"forbidden": {"message": "Maximum number of ports exceeded", "code": 403}}
    operation, count = failing(sdk_error(403, body))
    with pytest.raises(errors.Conflict) as raised:
        make_caller(clock).call(operation, what="server x", project="hrss-insurance")
    assert raised.value.field == "network.ports"
    assert "hrss-insurance" in raised.value.one_line()
    assert count == [1]


@pytest.mark.parametrize(
    "status, body",
    [
        (400, {"badRequest": {"message": "Fixed IP address 10.0.0.161 is already in use on instance b1f4."}}),
        (409, {"NeutronError": {"message": "IP address 10.0.0.161 already allocated in subnet 7d2e"}}),
    ],
)
def test_an_address_another_port_holds_is_a_conflict_on_the_address(
    clock: clocks.ManualClock, status: int, body: dict[str, object]
) -> None:
    """What a failover keeping a server's address meets when another server took it there."""
    operation, count = failing(sdk_error(status, body))
    with pytest.raises(errors.Conflict) as raised:
        make_caller(clock).call(operation, what="server wl-1-0", project="hrss")
    assert raised.value.field == "address"
    assert "10.0.0.161" in raised.value.one_line()
    assert count == [1]


def test_nova_ram_quota_refusal_is_counted_in_gb(clock: clocks.ManualClock) -> None:
    message = "Quota exceeded for ram: Requested 2048, but already used 7168 of 8192 ram"
    operation, _ = failing(sdk_error(403, {"forbidden": {"message": message, "code": 403}}))
    with pytest.raises(errors.QuotaExceeded) as raised:
        make_caller(clock).call(operation, what="server x", project="p")
    (shortfall,) = raised.value.shortfalls
    assert (shortfall.resource, shortfall.limit, shortfall.in_use, shortfall.requested) == ("ram_gb", 8, 7, 2)


def test_cinder_quota_refusal_is_quota_exceeded_in_volume_gb(clock: clocks.ManualClock) -> None:
    message = (
        "VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes "
        "quota. Requested 3G, quota is 2G and 1G has been consumed."
    )
    operation, _ = failing(sdk_error(413, {"overLimit": {"message": message, "code": 413}}))
    with pytest.raises(errors.QuotaExceeded) as raised:
        make_caller(clock).call(operation, what="volume v", project="p")
    (shortfall,) = raised.value.shortfalls
    assert (shortfall.resource, shortfall.limit, shortfall.in_use, shortfall.requested) == (
        "volume_gb",
        2,
        1,
        3,
    )


def test_a_refused_request_is_invalid_input(clock: clocks.ManualClock) -> None:
    operation, count = failing(sdk_error(400, {"badRequest": {"message": "Invalid flavorRef"}}))
    with pytest.raises(errors.InvalidInput) as raised:
        make_caller(clock).call(operation, what="server x")
    assert type(raised.value) is errors.InvalidInput
    assert count == [1]


@pytest.mark.parametrize(
    "status, body",
    [
        (401, {"error": {"message": "The request you have made requires authentication."}}),
        (403, {"forbidden": {"message": "Policy doesn't allow os_compute_api:servers:create"}}),
    ],
)
def test_refused_credentials_are_an_operation_failure(
    clock: clocks.ManualClock, status: int, body: dict[str, object]
) -> None:
    operation, count = failing(sdk_error(status, body))
    with pytest.raises(errors.OperationFailed) as raised:
        make_caller(clock).call(operation, what="server x")
    assert raised.value.field == "credentials"
    assert count == [1]


def test_a_server_error_is_retried_on_the_clock_until_it_passes(clock: clocks.ManualClock) -> None:
    unavailable = sdk_error(503, {"message": "Service Unavailable"})
    operation, count = failing(unavailable, unavailable, result="served")
    started_at = clock.now()
    assert make_caller(clock).call(operation, what="server x") == "served"
    assert count == [3]
    assert clock.now() > started_at


def test_a_cloud_that_keeps_failing_is_unavailable_after_the_attempts(clock: clocks.ManualClock) -> None:
    refused = keystoneauth1.exceptions.ConnectFailure("Unable to establish connection")
    operation, count = failing(*[refused] * 5)
    with pytest.raises(errors.BackendUnavailable) as raised:
        make_caller(clock, attempts=4).call(operation, what="server x")
    assert count == [4]
    assert "after 4 attempts" in raised.value.reason


def test_too_many_requests_is_retried(clock: clocks.ManualClock) -> None:
    operation, count = failing(sdk_error(429, {"message": "slow down"}))
    assert make_caller(clock).call(operation, what="servers") == "done"
    assert count == [2]


def test_a_retry_policy_needs_an_attempt(clock: clocks.ManualClock) -> None:
    with pytest.raises(errors.InvalidInput):
        make_caller(clock, attempts=0)


# --- a real SDK connection to nothing -----------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_clouds_yaml(path: Path, *, auth_url: str, cloudctl: dict[str, object] | None = None) -> Path:
    entry: dict[str, object] = {
        "auth": {
            "auth_url": auth_url,
            "username": "admin",
            "password": "unused",
            "project_name": "admin",
            "user_domain_name": "Default",
            "project_domain_name": "Default",
        },
        "region_name": "RegionOne",
        "identity_api_version": 3,
    }
    if cloudctl is not None:
        entry["cloudctl"] = cloudctl
    path.write_text(json.dumps({"clouds": {"qd-a": entry}}), encoding="utf-8")
    return path


def test_an_unreachable_cloud_is_backend_unavailable_without_waiting_for_real(
    tmp_path: Path, clock: clocks.ManualClock
) -> None:
    clouds_yaml = write_clouds_yaml(tmp_path / "clouds.yaml", auth_url=f"http://127.0.0.1:{closed_port()}/v3")
    cloud = openstack_driver.Cloud.from_clouds_yaml(center="qd-a", clouds_yaml=clouds_yaml, clock=clock)
    started_at = clock.now()
    with pytest.raises(errors.BackendUnavailable) as raised:
        openstack_driver.OpenStackCompute(cloud).get_server("5b1c0d0e-0000-0000-0000-000000000000")
    assert "qd-a" in raised.value.reason
    assert clock.now() > started_at
    cloud.close()


def test_the_cloud_of_a_center_is_the_clouds_yaml_entry_of_that_name(
    tmp_path: Path, clock: clocks.ManualClock
) -> None:
    clouds_yaml = write_clouds_yaml(
        tmp_path / "clouds.yaml",
        auth_url="http://127.0.0.1:5000/v3",
        cloudctl={"image": "base-2026", "network": "tenant-net", "operation_timeout_s": 60},
    )
    cloud = openstack_driver.Cloud.from_clouds_yaml(center="qd-a", clouds_yaml=clouds_yaml, clock=clock)
    assert (cloud.center, cloud.cloud_name) == ("qd-a", "qd-a")
    assert cloud.settings == openstack_driver.Settings(
        image="base-2026", network="tenant-net", operation_timeout_s=60.0
    )
    cloud.close()
    with pytest.raises(errors.InvalidInput) as raised:
        openstack_driver.Cloud.from_clouds_yaml(center="qd-b", clouds_yaml=clouds_yaml, clock=clock)
    assert raised.value.field == "clouds_yaml"


def test_unknown_cloudctl_settings_are_refused(tmp_path: Path, clock: clocks.ManualClock) -> None:
    clouds_yaml = write_clouds_yaml(
        tmp_path / "clouds.yaml", auth_url="http://127.0.0.1:5000/v3", cloudctl={"flavour": "x"}
    )
    with pytest.raises(errors.InvalidInput) as raised:
        openstack_driver.Cloud.from_clouds_yaml(center="qd-a", clouds_yaml=clouds_yaml, clock=clock)
    assert raised.value.field == "clouds.yaml.cloudctl"
    with pytest.raises(errors.InvalidInput):
        openstack_driver.Cloud.from_clouds_yaml(
            center="qd-a", clouds_yaml=tmp_path / "missing.yaml", clock=clock
        )


# --- statuses and names -------------------------------------------------------------------


@pytest.mark.parametrize(
    "nova_status, expected",
    [
        ("ACTIVE", base.ServerStatus.ACTIVE),
        ("BUILD", base.ServerStatus.BUILD),
        ("REBOOT", base.ServerStatus.BUILD),
        ("SHUTOFF", base.ServerStatus.SHUTOFF),
        ("SHELVED_OFFLOADED", base.ServerStatus.SHUTOFF),
        ("ERROR", base.ServerStatus.ERROR),
        ("UNKNOWN", base.ServerStatus.ERROR),
    ],
)
def test_nova_statuses_map_onto_four(nova_status: str, expected: base.ServerStatus) -> None:
    assert compute.server_status(nova_status) is expected


@pytest.mark.parametrize(
    "cinder_status, expected",
    [
        ("available", base.VolumeStatus.AVAILABLE),
        ("creating", base.VolumeStatus.CREATING),
        ("in-use", base.VolumeStatus.IN_USE),
        ("deleting", base.VolumeStatus.IN_USE),
        ("error_deleting", base.VolumeStatus.ERROR),
    ],
)
def test_cinder_statuses_map_onto_four(cinder_status: str, expected: base.VolumeStatus) -> None:
    assert block_storage.volume_status(cinder_status) is expected


def test_openstack_timestamps_without_a_zone_are_utc() -> None:
    assert compute.epoch_s("2026-01-01T00:00:00.000000") == 1_767_225_600.0
    assert compute.epoch_s("2026-01-01T00:00:00Z") == 1_767_225_600.0


def test_flavors_are_named_after_their_size() -> None:
    assert compute.flavor_name(vcpu=2, ram_gb=4, disk_gb=40) == "cloudctl-2c-4g-40d"
