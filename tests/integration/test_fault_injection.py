"""Faults injected between the drivers and real servers: retries, timeouts and the circuit breaker.

A ``fault_proxy.FaultProxy`` sits between a driver and a real server (``moto_server`` for
the S3 and Route 53 drivers, the loopback OpenStack's Nova for the OpenStack driver) and
answers what each test programs: 500s, 429 with ``Retry-After``, refusals, answers slower
than the client's timeout, dropped and refused connections. The proxy counts the attempts
that reached it; the drivers sleep on the manual clock, so every backoff is measured and
none is waited out. Each behaviour is checked on all three drivers.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import time
import urllib.parse
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import dns, s3
from cloudctl.drivers import openstack as openstack_driver
from cloudctl.drivers.openstack import calls as openstack_calls
from cloudctl.model import topology
from cloudctl.services import breaker, status
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers as drivers_service
from cloudctl.store import centers
from tests import conftest as root_conftest
from tests.integration import moto_servers
from tests.integration.openstack import stack
from tests.support import fault_proxy

ATTEMPTS = 3
INITIAL_WAIT_S = 0.2
MAX_WAIT_S = 2.0
MAX_RETRY_AFTER_S = 60.0
ZONE = "faults.gov.example"

CLOCK_TOLERANCE_S = 1e-6
"""Float rounding of epoch seconds on the manual clock."""


@dataclasses.dataclass(frozen=True)
class Timing:
    """A client timeout, and a proxy hold safely longer than it."""

    timeout_s: float
    hold_s: float


AWS_SLOW = Timing(timeout_s=0.2, hold_s=0.5)
OPENSTACK_SLOW = Timing(timeout_s=0.75, hold_s=1.25)
"""Longer than AWS_SLOW: the OpenStack client also authenticates and discovers Nova's versions
under this timeout before its first, held, request."""


@dataclasses.dataclass
class Backend:
    """One driver kind behind a fault proxy; ``read(driver)`` makes one request under ``path``."""

    name: str
    proxy: fault_proxy.FaultProxy
    path: str
    """Prefix of the path of ``read``'s request: faults are aimed at it, attempts counted on it."""
    make: Callable[..., Any]
    """``make(attempts=..., timeout_s=...)``: a fresh driver through the proxy, on the test's clock."""
    read: Callable[[Any], object]
    slow: Timing
    content_type: str
    refusals: dict[int, bytes]
    """Bodies the real server would send with a 400 and a 403."""

    def attempts(self) -> list[fault_proxy.Seen]:
        return [
            seen
            for seen in self.proxy.requests
            if urllib.parse.urlsplit(seen.path).path.startswith(self.path)
        ]

    def statuses(self) -> list[int | None]:
        return [seen.status for seen in self.attempts()]


def backoff_bounds_s(waits: int) -> tuple[float, float]:
    """The least and the most ``waits`` backoffs add up to (exponential from the initial wait, with
    up to one initial wait of jitter each, capped at the maximum)."""
    low = sum(min(INITIAL_WAIT_S * 2**n, MAX_WAIT_S) for n in range(waits))
    high = sum(min(INITIAL_WAIT_S * 2**n + INITIAL_WAIT_S, MAX_WAIT_S) for n in range(waits))
    return low - CLOCK_TOLERANCE_S, high + CLOCK_TOLERANCE_S


def aws_error(code: str, message: str) -> bytes:
    return f"<Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


AWS_REFUSALS = {
    400: aws_error("InvalidArgument", "Invalid argument"),
    403: aws_error("AccessDenied", "Access Denied"),
}
NOVA_REFUSALS = {
    400: json.dumps({"badRequest": {"code": 400, "message": "Invalid filter"}}).encode(),
    403: json.dumps(
        {"forbidden": {"code": 403, "message": "Policy doesn't allow os_compute_api:servers:detail"}}
    ).encode(),
}


# --- the drivers, each behind its own proxy -----------------------------------------------


def aws_policy(*, attempts: int, timeout_s: float | None) -> s3.RetryPolicy:
    timeouts = {} if timeout_s is None else {"connect_timeout_s": timeout_s, "read_timeout_s": timeout_s}
    return s3.RetryPolicy(
        attempts=attempts,
        initial_wait_s=INITIAL_WAIT_S,
        max_wait_s=MAX_WAIT_S,
        max_retry_after_s=MAX_RETRY_AFTER_S,
        **timeouts,
    )


@dataclasses.dataclass(frozen=True)
class OpenStackEndpoints:
    clouds_yaml: Path
    compute_url: str
    """Nova's endpoint from the catalog (``http://127.0.0.1:8774/v2.1``)."""


@pytest.fixture(scope="session")
def openstack_endpoints(tmp_path_factory: pytest.TempPathFactory, source_center: str) -> OpenStackEndpoints:
    """The loopback OpenStack's ``clouds.yaml`` for the center, and where its Nova answers."""
    clouds_yaml = stack.write_clouds_yaml(
        tmp_path_factory.mktemp("faults-openstack") / "clouds.yaml", centers=[source_center]
    )
    cloud = stack.open_cloud(center=source_center, clouds_yaml=clouds_yaml)
    try:
        compute_url = str(cloud.admin.compute.get_endpoint()).rstrip("/")
    finally:
        cloud.close()
    return OpenStackEndpoints(clouds_yaml=clouds_yaml, compute_url=compute_url)


def moto_backend(
    name: str, request: pytest.FixtureRequest, clock: clocks.ManualClock, center: str
) -> Backend:
    servers: dict[str, moto_servers.MotoServer] = request.getfixturevalue("moto_servers_by_center")
    proxy = fault_proxy.FaultProxy(servers[center].endpoint_url)
    request.addfinalizer(proxy.close)
    credentials = {
        "center": center,
        "endpoint_url": proxy.endpoint_url,
        "access_key": moto_servers.ACCESS_KEY,
        "secret_key": moto_servers.SECRET_KEY,
        "region": moto_servers.REGION,
        "clock": clock,
    }
    if name == "s3":
        # A bucket of this test's own, made straight on the server: what ``read`` asks for
        # and what the proxy counts are this test's requests only, whatever other tests left.
        bucket = f"faults-{uuid.uuid4().hex[:12]}"
        moto_servers.raw_client(servers[center]).create_bucket(Bucket=bucket)
        request.addfinalizer(lambda: moto_servers.purge_bucket(servers[center], bucket))

        def make_storage(*, attempts: int = ATTEMPTS, timeout_s: float | None = None) -> Any:
            return s3.S3ObjectStorage(**credentials, retry=aws_policy(attempts=attempts, timeout_s=timeout_s))

        return Backend(
            name=name,
            proxy=proxy,
            path=f"/{bucket}",
            make=make_storage,
            read=lambda driver: driver.list_objects(bucket),
            slow=AWS_SLOW,
            content_type="application/xml",
            refusals=AWS_REFUSALS,
        )
    shipped: topology.Topology = request.getfixturevalue("shipped_topology")

    def make_traffic(*, attempts: int = ATTEMPTS, timeout_s: float | None = None) -> Any:
        return dns.Route53Traffic(
            **credentials,
            centers=[known.name for known in shipped.centers],
            retry=aws_policy(attempts=attempts, timeout_s=timeout_s),
        )

    return Backend(
        name=name,
        proxy=proxy,
        path="/2013-04-01/hostedzonesbyname",
        make=make_traffic,
        read=lambda driver: driver.list_records(ZONE),
        slow=AWS_SLOW,
        content_type="application/xml",
        refusals=AWS_REFUSALS,
    )


def openstack_backend(
    request: pytest.FixtureRequest, clock: clocks.ManualClock, center: str, tmp_path: Path
) -> Backend:
    """Nova behind the proxy (``compute_endpoint_override``); Keystone is reached directly."""
    endpoints: OpenStackEndpoints = request.getfixturevalue("openstack_endpoints")
    nova = urllib.parse.urlsplit(endpoints.compute_url)
    proxy = fault_proxy.FaultProxy(f"{nova.scheme}://{nova.netloc}")
    request.addfinalizer(proxy.close)
    entries = yaml.safe_load(endpoints.clouds_yaml.read_text(encoding="utf-8"))
    entries["clouds"][center]["compute_endpoint_override"] = f"{proxy.endpoint_url}{nova.path}"
    clouds_yaml = tmp_path / "clouds-through-the-proxy.yaml"
    clouds_yaml.write_text(yaml.safe_dump(entries), encoding="utf-8")

    def make_compute(*, attempts: int = ATTEMPTS, timeout_s: float | None = None) -> Any:
        policy = openstack_calls.RetryPolicy(
            attempts=attempts,
            initial_wait_s=INITIAL_WAIT_S,
            max_wait_s=MAX_WAIT_S,
            max_retry_after_s=MAX_RETRY_AFTER_S,
            **({} if timeout_s is None else {"api_timeout_s": timeout_s}),
        )
        cloud = openstack_driver.Cloud.from_clouds_yaml(
            center=center, clouds_yaml=clouds_yaml, clock=clock, retry=policy
        )
        request.addfinalizer(cloud.close)
        return openstack_driver.OpenStackCompute(cloud)

    return Backend(
        name="openstack",
        proxy=proxy,
        path=f"{nova.path}/servers",
        make=make_compute,
        read=lambda driver: driver.list_servers(),
        slow=OPENSTACK_SLOW,
        content_type="application/json",
        refusals=NOVA_REFUSALS,
    )


@pytest.fixture(params=["s3", "route53", "openstack"])
def backend(
    request: pytest.FixtureRequest, clock: clocks.ManualClock, source_center: str, tmp_path: Path
) -> Backend:
    """Each driver kind in turn, talking to its real server through a fault proxy."""
    if request.param == "openstack":
        return openstack_backend(request, clock, source_center, tmp_path)
    return moto_backend(request.param, request, clock, source_center)


def waited_s(clock: clocks.ManualClock, since: float) -> float:
    return clock.now() - since


# --- retries ------------------------------------------------------------------------------


def test_server_errors_are_retried_with_backoff_until_the_call_passes(
    backend: Backend, clock: clocks.ManualClock
) -> None:
    driver = backend.make()
    backend.proxy.fail(status=500, times=2, path=backend.path)
    started_at = clock.now()

    backend.read(driver)

    assert backend.statuses() == [500, 500, 200]
    low, high = backoff_bounds_s(2)
    assert low <= waited_s(clock, started_at) <= high


def test_a_backend_that_keeps_failing_is_unavailable_after_exactly_the_configured_attempts(
    backend: Backend, clock: clocks.ManualClock
) -> None:
    driver = backend.make()
    backend.proxy.fail(status=500, times=ATTEMPTS + 1, path=backend.path)
    started_at = clock.now()

    with pytest.raises(errors.BackendUnavailable, match=f"after {ATTEMPTS} attempts"):
        backend.read(driver)

    assert backend.statuses() == [500] * ATTEMPTS
    assert backend.proxy.faults_left() == 1
    low, high = backoff_bounds_s(ATTEMPTS - 1)
    assert low <= waited_s(clock, started_at) <= high


def test_throttling_is_retried_after_the_servers_retry_after(
    backend: Backend, clock: clocks.ManualClock
) -> None:
    driver = backend.make()
    backend.proxy.throttle(retry_after_s=7, path=backend.path)
    started_at = clock.now()

    backend.read(driver)

    assert backend.statuses() == [429, 200]
    assert waited_s(clock, started_at) == pytest.approx(7.0)  # longer than any backoff of the policy


def test_a_retry_after_given_as_a_date_is_waited_until_that_moment(
    backend: Backend, clock: clocks.ManualClock
) -> None:
    driver = backend.make()
    started_at = clock.now()
    backend.proxy.throttle(
        until=datetime.datetime.fromtimestamp(started_at + 30, tz=datetime.UTC), path=backend.path
    )

    backend.read(driver)

    assert backend.statuses() == [429, 200]
    assert waited_s(clock, started_at) == pytest.approx(30.0)


def test_a_retry_after_beyond_the_allowed_pause_gives_up_at_once(
    backend: Backend, clock: clocks.ManualClock
) -> None:
    driver = backend.make()
    backend.proxy.throttle(retry_after_s=3600, path=backend.path)
    started_at = clock.now()

    with pytest.raises(errors.BackendUnavailable, match="asked to retry after 3600 s"):
        backend.read(driver)

    assert backend.statuses() == [429]
    assert waited_s(clock, started_at) == 0


@pytest.mark.parametrize(
    "status_code, error, field",
    [(403, errors.OperationFailed, "credentials"), (400, errors.InvalidInput, None)],
)
def test_a_refused_request_is_not_retried(
    backend: Backend,
    clock: clocks.ManualClock,
    status_code: int,
    error: type[errors.CloudctlError],
    field: str | None,
) -> None:
    driver = backend.make()
    backend.proxy.fail(
        status=status_code,
        path=backend.path,
        body=backend.refusals[status_code],
        content_type=backend.content_type,
    )
    started_at = clock.now()

    with pytest.raises(error) as raised:
        backend.read(driver)

    assert type(raised.value) is error
    if field is not None:
        assert raised.value.field == field
    assert backend.statuses() == [status_code]
    assert waited_s(clock, started_at) == 0


def test_a_dropped_connection_is_retried(backend: Backend, clock: clocks.ManualClock) -> None:
    driver = backend.make()
    backend.proxy.drop(path=backend.path)

    backend.read(driver)

    assert backend.statuses() == [None, 200]


def test_refused_connections_are_retried_then_unavailable_until_the_server_listens_again(
    backend: Backend, clock: clocks.ManualClock
) -> None:
    driver = backend.make()
    backend.proxy.refuse()
    started_at = clock.now()

    with pytest.raises(errors.BackendUnavailable, match=f"after {ATTEMPTS} attempts"):
        backend.read(driver)

    assert backend.proxy.requests == []
    low, high = backoff_bounds_s(ATTEMPTS - 1)
    assert low <= waited_s(clock, started_at) <= high
    backend.proxy.resume()
    backend.read(driver)
    assert backend.statuses() == [200]


# --- timeouts -----------------------------------------------------------------------------


def test_an_answer_slower_than_the_timeout_is_retried_then_unavailable(backend: Backend) -> None:
    driver = backend.make(attempts=2, timeout_s=backend.slow.timeout_s)
    backend.proxy.delay(backend.slow.hold_s, times=2, path=backend.path)
    real_started_at = time.monotonic()

    with pytest.raises(errors.BackendUnavailable, match="after 2 attempts"):
        backend.read(driver)

    assert [seen.fault for seen in backend.attempts()] == ["delay", "delay"]
    # Each attempt gave up at the client's timeout, long before the proxy's holds ended.
    assert time.monotonic() - real_started_at < 2 * backend.slow.hold_s


# --- the circuit breaker ------------------------------------------------------------------


def center_state(ctx: ctx_module.Context, center: str) -> str:
    with ctx.read() as tx:
        return centers.get_center(tx, center).state


def health_in_another_process(ctx: ctx_module.Context, tmp_path: Path, center: str) -> str:
    """What ``cloudctl status`` shows from a process with no circuits of its own: the store's word."""
    other = root_conftest.make_context(ctx.store, ctx.clock, tmp_path / "other-process")
    return {row.name: row.health for row in status.overview(other).centers}[center]


def test_a_center_that_keeps_failing_has_its_circuit_opened_and_closed_again(
    backend: Backend, ctx: ctx_module.Context, clock: clocks.ManualClock, source_center: str, tmp_path: Path
) -> None:
    attempts = 2
    guarded = breaker.Guarded(
        backend.make(attempts=attempts), center=source_center, breakers=drivers_service.breakers(ctx)
    )
    backend.proxy.fail(status=500, times=breaker.FAILURES_TO_OPEN * attempts, path=backend.path)

    for _ in range(breaker.FAILURES_TO_OPEN):
        with pytest.raises(errors.BackendUnavailable, match=f"after {attempts} attempts"):
            backend.read(guarded)

    assert len(backend.attempts()) == breaker.FAILURES_TO_OPEN * attempts
    assert center_state(ctx, source_center) == "unhealthy"
    assert health_in_another_process(ctx, tmp_path, source_center) == "unhealthy"

    with pytest.raises(errors.BackendUnavailable, match="circuit is open"):
        backend.read(guarded)
    assert len(backend.attempts()) == breaker.FAILURES_TO_OPEN * attempts  # failed fast, unsent

    clock.advance(breaker.COOLDOWN_S)
    backend.read(guarded)

    assert backend.statuses()[-1] == 200
    assert center_state(ctx, source_center) == "up"
    assert health_in_another_process(ctx, tmp_path, source_center) == "up"


def test_a_failure_after_the_cooldown_opens_the_circuit_again_at_once(
    backend: Backend, ctx: ctx_module.Context, clock: clocks.ManualClock, source_center: str
) -> None:
    guarded = breaker.Guarded(
        backend.make(attempts=1), center=source_center, breakers=drivers_service.breakers(ctx)
    )
    backend.proxy.fail(status=503, times=breaker.FAILURES_TO_OPEN + 1, path=backend.path)
    for _ in range(breaker.FAILURES_TO_OPEN):
        with pytest.raises(errors.BackendUnavailable):
            backend.read(guarded)
    clock.advance(breaker.COOLDOWN_S)

    with pytest.raises(errors.BackendUnavailable, match="after 1 attempts"):
        backend.read(guarded)  # the one call let through after the cooldown

    assert len(backend.attempts()) == breaker.FAILURES_TO_OPEN + 1
    with pytest.raises(errors.BackendUnavailable, match="circuit is open"):
        backend.read(guarded)
    assert len(backend.attempts()) == breaker.FAILURES_TO_OPEN + 1
    assert center_state(ctx, source_center) == "unhealthy"


def test_the_proxy_forwards_unchanged_what_no_fault_matches(backend: Backend) -> None:
    driver = backend.make()
    backend.proxy.fail(status=500, path="/not-this-path")

    backend.read(driver)

    assert backend.statuses() == [200]
    assert backend.proxy.faults_left() == 1
    assert all(seen.fault is None for seen in backend.proxy.requests)
