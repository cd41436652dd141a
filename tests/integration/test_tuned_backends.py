"""Real backends tuned through the topology and the settings only, proved against real servers.

A center's ``backends.<kind>.calls`` sets how its real driver retries and times out, and the
settings ``breaker_failures_to_open`` / ``breaker_cooldown_s`` set its circuit breaker. Here the
drivers are the ones ``services.drivers`` builds for a context, talking to ``moto_server`` (S3,
Route 53) or the loopback OpenStack's Nova through a ``fault_proxy.FaultProxy`` that counts their
attempts (see ``test_fault_injection.py`` for the proxy's use against hand-built drivers).

Real drivers sleep on the real clock, so every topology here caps the backoff with a small
``max_wait_s``; the breaker runs on the context's manual clock, so no cooldown is waited out.
"""

from __future__ import annotations

import dataclasses
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, setup
from cloudctl.store import centers, db
from tests.conftest import POLICIES, TOPOLOGY
from tests.integration import moto_servers
from tests.integration.openstack import stack
from tests.support import fault_proxy

ZONE = "tuned.gov.example"
SHORT_WAIT_S = 0.01
"""``max_wait_s`` of every topology here: the real sleeps between attempts stay this short."""


@dataclasses.dataclass(frozen=True)
class Kind:
    """One kind of real backend: the capability it serves, where its reads go, how slow is too slow."""

    name: str
    capability: str
    path: str
    """Prefix of the path of ``read``'s request: faults are aimed at it, attempts counted on it."""
    read: Callable[[Any], object]
    """One request through the center's driver of ``capability``."""
    timeout_s: float
    hold_s: float
    """A proxy hold safely longer than ``timeout_s``."""


S3 = Kind(
    name="s3",
    capability="object_storage",
    path="/",
    read=lambda built: built.object_storage.list_buckets(),
    timeout_s=0.2,
    hold_s=0.5,
)
DNS = Kind(
    name="dns",
    capability="traffic",
    path="/2013-04-01/hostedzonesbyname",
    read=lambda built: built.traffic.list_records(ZONE),
    timeout_s=0.2,
    hold_s=0.5,
)
OPENSTACK = Kind(
    name="openstack",
    capability="compute",
    path="/servers",  # under Nova's version path, prefixed in ``Tuned.path``
    read=lambda built: built.compute.list_servers(project=None),
    timeout_s=0.75,  # the client also authenticates and discovers Nova's versions under it
    hold_s=1.25,
)


@dataclasses.dataclass
class Tuned:
    """A context whose source center reaches its real backend through ``proxy``."""

    ctx: ctx_module.Context
    clock: clocks.ManualClock
    center: str
    kind: Kind
    proxy: fault_proxy.FaultProxy
    path_prefix: str = ""

    @property
    def path(self) -> str:
        return f"{self.path_prefix}{self.kind.path}"

    def read(self) -> object:
        return self.kind.read(drivers.center_drivers(self.ctx, self.center))

    def attempts(self) -> list[fault_proxy.Seen]:
        """The requests of the read itself: for S3 the listing ``GET /`` only, not the
        versioning lookups of whatever buckets earlier tests left on the shared moto server."""
        return [seen for seen in self.proxy.requests if self._is_read(urllib.parse.urlsplit(seen.path).path)]

    def _is_read(self, path: str) -> bool:
        return path == self.path if self.path == "/" else path.startswith(self.path)

    def statuses(self) -> list[int | None]:
        return [seen.status for seen in self.attempts()]

    def center_state(self) -> str:
        with self.ctx.read() as tx:
            return centers.get_center(tx, self.center).state


TunedFactory = Callable[..., Tuned]


@pytest.fixture(scope="session")
def openstack_clouds_yaml(tmp_path_factory: pytest.TempPathFactory, source_center: str) -> Path:
    return stack.write_clouds_yaml(
        tmp_path_factory.mktemp("tuned-openstack") / "clouds.yaml", centers=[source_center]
    )


@pytest.fixture(scope="session")
def nova_url(openstack_clouds_yaml: Path, source_center: str) -> str:
    """Nova's endpoint from the loopback OpenStack's catalog (``http://127.0.0.1:8774/v2.1``)."""
    cloud = stack.open_cloud(center=source_center, clouds_yaml=openstack_clouds_yaml)
    try:
        return str(cloud.admin.compute.get_endpoint()).rstrip("/")
    finally:
        cloud.close()


@pytest.fixture
def tuned(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    source_center: str,
) -> Iterator[TunedFactory]:
    """``tuned(kind, calls, **settings)``: an initialised context on the manual clock whose source
    center has its ``kind.capability`` on the real ``kind`` backend, behind a fresh fault proxy,
    with ``calls:`` as given; ``settings`` are extra ``Settings`` fields."""
    opened: list[tuple[ctx_module.Context, db.Store]] = []

    def make(kind: Kind, calls: dict[str, Any], **settings: Any) -> Tuned:
        backend: dict[str, Any] = {"calls": calls}
        path_prefix = ""
        if kind is OPENSTACK:
            nova = urllib.parse.urlsplit(request.getfixturevalue("nova_url"))
            proxy = fault_proxy.FaultProxy(f"{nova.scheme}://{nova.netloc}")
            entries = yaml.safe_load(
                request.getfixturevalue("openstack_clouds_yaml").read_text(encoding="utf-8")
            )
            entries["clouds"][source_center]["compute_endpoint_override"] = f"{proxy.endpoint_url}{nova.path}"
            clouds_yaml = tmp_path / "clouds-through-the-proxy.yaml"
            clouds_yaml.write_text(yaml.safe_dump(entries), encoding="utf-8")
            settings["clouds_yaml"] = clouds_yaml
            path_prefix = nova.path
        else:
            servers: dict[str, moto_servers.MotoServer] = request.getfixturevalue("moto_servers_by_center")
            proxy = fault_proxy.FaultProxy(servers[source_center].endpoint_url)
            monkeypatch.setenv("AWS_ACCESS_KEY_ID", moto_servers.ACCESS_KEY)
            monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", moto_servers.SECRET_KEY)
            backend |= {"endpoint_url": proxy.endpoint_url, "region": moto_servers.REGION}
        request.addfinalizer(proxy.close)
        data: dict[str, Any] = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
        for center in data["centers"]:
            if center["name"] == source_center:
                center["drivers"] = {kind.capability: kind.name}
                center["backends"] = {kind.name: backend}
        topology_file = tmp_path / "topology.yaml"
        topology_file.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        store = db.Store(db.sqlite_url(tmp_path))
        clock = clocks.ManualClock()
        ctx = ctx_module.Context(
            settings=settings_module.Settings(
                home=tmp_path, topology=topology_file, policies=POLICIES, **settings
            ),
            clock=clock,
            _store=store,
        )
        opened.append((ctx, store))
        setup.initialise(ctx)
        return Tuned(
            ctx=ctx, clock=clock, center=source_center, kind=kind, proxy=proxy, path_prefix=path_prefix
        )

    yield make
    for ctx, store in opened:
        ctx.close()
        store.dispose()


@pytest.mark.parametrize("kind", [S3, DNS, OPENSTACK], ids=lambda kind: kind.name)
def test_a_center_tuned_to_two_attempts_makes_exactly_two_against_a_failing_server(
    tuned: TunedFactory, kind: Kind
) -> None:
    center = tuned(kind, {"attempts": 2, "max_wait_s": SHORT_WAIT_S})
    center.proxy.fail(status=500, times=3, path=center.path)

    with pytest.raises(errors.BackendUnavailable, match="after 2 attempts"):
        center.read()

    assert center.statuses() == [500, 500]
    assert center.proxy.faults_left() == 1


@pytest.mark.parametrize("kind", [S3, OPENSTACK], ids=lambda kind: kind.name)
def test_a_center_tuned_to_a_short_timeout_gives_up_on_slow_answers(tuned: TunedFactory, kind: Kind) -> None:
    center = tuned(kind, {"attempts": 2, "timeout_s": kind.timeout_s, "max_wait_s": SHORT_WAIT_S})
    center.proxy.delay(kind.hold_s, times=2, path=center.path)
    real_started_at = time.monotonic()

    with pytest.raises(errors.BackendUnavailable, match="after 2 attempts"):
        center.read()

    assert [seen.fault for seen in center.attempts()] == ["delay", "delay"]
    # Each attempt gave up at the tuned timeout; the default (30 s or more) would have waited
    # the hold out and been answered.
    assert time.monotonic() - real_started_at < 2 * kind.hold_s


def test_the_breaker_settings_open_a_real_centers_circuit_and_let_a_call_through_after_the_cooldown(
    tuned: TunedFactory,
) -> None:
    center = tuned(S3, {"attempts": 1}, breaker_failures_to_open=2, breaker_cooldown_s=10)
    center.proxy.fail(status=500, times=2, path=center.path)

    for _ in range(2):
        with pytest.raises(errors.BackendUnavailable, match="after 1 attempts"):
            center.read()
    with pytest.raises(errors.BackendUnavailable, match=r"failed 2 times in a row.*10 s cooldown"):
        center.read()

    assert center.statuses() == [500, 500]  # the third call failed fast, unsent
    assert center.center_state() == "unhealthy"
    center.clock.advance(9)
    with pytest.raises(errors.BackendUnavailable, match="circuit is open"):
        center.read()
    center.clock.advance(1)
    center.read()
    assert center.statuses() == [500, 500, 200]
    assert center.center_state() == "up"
