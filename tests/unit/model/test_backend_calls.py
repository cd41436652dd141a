"""The ``calls:`` block of a center's backends in the topology: how its real driver retries and
times out. It parses into each backend's settings; a bad value is refused naming its path."""

from __future__ import annotations

import copy
import math
from typing import Any

import pytest
import yaml

from cloudctl import errors
from cloudctl.model import topology
from tests.conftest import TOPOLOGY

CENTER = 1
"""Index of the center the tests give backends (a local center of the shipped topology)."""


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def with_backend(raw: dict[str, Any], backend: str, calls: dict[str, Any]) -> dict[str, Any]:
    """The shipped topology with one backend of ``CENTER`` given ``calls``."""
    data = copy.deepcopy(raw)
    entry: dict[str, Any] = {"calls": calls}
    if backend in ("s3", "dns"):
        entry["endpoint_url"] = "http://127.0.0.1:9000"
    data["centers"][CENTER]["backends"] = {backend: entry}
    return data


def rejected(data: dict[str, Any]) -> errors.TopologyError:
    with pytest.raises(errors.TopologyError) as caught:
        topology.from_data(data)
    return caught.value


def test_a_calls_block_parses_into_the_backends_call_settings() -> None:
    text = TOPOLOGY.read_text(encoding="utf-8").replace(
        "    role: local\n",
        "    role: local\n"
        "    backends:\n"
        "      s3:\n"
        "        endpoint_url: http://127.0.0.1:9000\n"
        "        calls:\n"
        "          {attempts: 2, timeout_s: 0.5, connect_timeout_s: 1, max_wait_s: 4, max_retry_after_s: 0}\n"
        "      openstack: {cloud: qd-a, calls: {attempts: 5, timeout_s: 90}}\n",
        1,
    )

    parsed = topology.parse(text)

    backends = parsed.centers_with_role(topology.CenterRole.LOCAL)[0].backends
    assert backends.s3 is not None
    assert backends.s3.calls == topology.ClientCallSettings(
        attempts=2, timeout_s=0.5, connect_timeout_s=1.0, max_wait_s=4.0, max_retry_after_s=0.0
    )
    assert backends.openstack is not None
    assert backends.openstack.calls == topology.OpenStackCallSettings(attempts=5, timeout_s=90.0)


@pytest.mark.parametrize("backend", ["s3", "dns", "kubernetes", "openstack"])
def test_calls_left_out_set_nothing_so_the_driver_keeps_its_defaults(
    raw: dict[str, Any], backend: str
) -> None:
    data = with_backend(raw, backend, {})
    del data["centers"][CENTER]["backends"][backend]["calls"]

    parsed = topology.from_data(data)

    calls = getattr(parsed.centers[CENTER].backends, backend).calls
    assert calls.model_dump(exclude_none=True) == {}


@pytest.mark.parametrize(
    ("backend", "field", "value", "reason"),
    [
        ("s3", "attempts", 0, "greater than or equal to 1"),
        ("s3", "attempts", 1.5, "valid integer"),
        ("dns", "timeout_s", 0, "greater than 0"),
        ("kubernetes", "timeout_s", -1, "greater than 0"),
        ("openstack", "timeout_s", math.inf, "finite number"),
        ("s3", "connect_timeout_s", 0, "greater than 0"),
        ("kubernetes", "connect_timeout_s", "soon", "valid number"),
        ("dns", "max_wait_s", 0, "greater than 0"),
        ("openstack", "max_wait_s", "long", "valid number"),
        ("kubernetes", "max_retry_after_s", -0.5, "greater than or equal to 0"),
        ("s3", "retries", 3, "unknown field"),
    ],
)
def test_a_bad_calls_field_is_refused_naming_its_path(
    raw: dict[str, Any], backend: str, field: str, value: object, reason: str
) -> None:
    error = rejected(with_backend(raw, backend, {"attempts": 2, field: value}))

    assert error.field == f"centers[{CENTER}].backends.{backend}.calls.{field}"
    assert reason in error.reason
    assert error.exit_code == 2


def test_a_connect_timeout_on_openstack_is_refused_pointing_at_timeout_s(raw: dict[str, Any]) -> None:
    error = rejected(with_backend(raw, "openstack", {"timeout_s": 30, "connect_timeout_s": 5}))

    assert error.field == f"centers[{CENTER}].backends.openstack.calls.connect_timeout_s"
    assert error.reason == "not for OpenStack, whose calls have a single timeout: set timeout_s"
    assert error.exit_code == 2


def test_calls_must_be_a_mapping(raw: dict[str, Any]) -> None:
    data = with_backend(raw, "s3", {})
    data["centers"][CENTER]["backends"]["s3"]["calls"] = [2]

    error = rejected(data)

    assert error.field == f"centers[{CENTER}].backends.s3.calls"
