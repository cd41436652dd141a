"""Fixtures of the integration tests: real S3 / Route 53 servers, one ``moto_server`` per center.

``moto_servers`` starts, once per session, one server process per center named here
(a local center and the DR center of the shipped topology, read from it rather than
hard-coded) and stops them at the end; a server that does not come up fails the tests
loudly. ``object_storage`` builds an ``S3ObjectStorage`` per center on the manual clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.drivers import s3
from cloudctl.model import topology
from cloudctl.services import context as ctx_module
from cloudctl.services import setup
from cloudctl.store import db
from tests.conftest import POLICIES
from tests.integration import moto_servers

TOPOLOGY_FILE = Path(__file__).resolve().parents[2] / "infra" / "topology.yaml"


@pytest.fixture(scope="session")
def shipped_topology() -> topology.Topology:
    return topology.parse(TOPOLOGY_FILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def source_center(shipped_topology: topology.Topology) -> str:
    return shipped_topology.centers_with_role(topology.CenterRole.LOCAL)[0].name


@pytest.fixture(scope="session")
def target_center(shipped_topology: topology.Topology) -> str:
    return shipped_topology.centers_with_role(topology.CenterRole.DR)[0].name


@pytest.fixture(scope="session")
def moto_servers_by_center(
    request: pytest.FixtureRequest, source_center: str, target_center: str
) -> dict[str, moto_servers.MotoServer]:
    return moto_servers.serve_for_session(request, centers=[source_center, target_center])


ObjectStorageFactory = Callable[[str], s3.S3ObjectStorage]


@pytest.fixture
def object_storage(
    moto_servers_by_center: dict[str, moto_servers.MotoServer], clock: clocks.ManualClock
) -> ObjectStorageFactory:
    """``object_storage(center)``: an S3 driver for the center's own server, on the manual clock."""

    def make(center: str) -> s3.S3ObjectStorage:
        return s3.S3ObjectStorage(
            center=center,
            endpoint_url=moto_servers_by_center[center].endpoint_url,
            access_key=moto_servers.ACCESS_KEY,
            secret_key=moto_servers.SECRET_KEY,
            region=moto_servers.REGION,
            clock=clock,
        )

    return make


@contextlib.contextmanager
def real_backends_context(
    tmp_path: Path,
    *,
    s3_endpoints: dict[str, str] | None = None,
    dns_endpoint: str | None = None,
    traffic_zone: str | None = None,
    clock: clocks.Clock | None = None,
) -> Iterator[ctx_module.Context]:
    """An initialised services context on the shipped topology, with object storage of the
    named centers on S3 and the management center's traffic on a Route 53 API; the rest
    simulated. Needs ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` set (any value for moto)."""
    data: dict[str, Any] = yaml.safe_load(TOPOLOGY_FILE.read_text(encoding="utf-8"))
    if traffic_zone:
        data["traffic_zone"] = traffic_zone
    for center in data["centers"]:
        drivers_of: dict[str, str] = {}
        backends: dict[str, Any] = {}
        if center["name"] in (s3_endpoints or {}):
            drivers_of["object_storage"] = "s3"
            backends["s3"] = {"endpoint_url": (s3_endpoints or {})[center["name"]]}
        if center["role"] == "management" and dns_endpoint:
            drivers_of["traffic"] = "dns"
            backends["dns"] = {"endpoint_url": dns_endpoint}
        if drivers_of:
            center["drivers"] = drivers_of
            center["backends"] = backends
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    store = db.Store(db.sqlite_url(tmp_path))
    settings = settings_module.Settings(home=tmp_path, topology=path, policies=POLICIES)
    ctx = ctx_module.Context(settings=settings, clock=clock or clocks.ManualClock(), _store=store)
    try:
        setup.initialise(ctx)
        yield ctx
    finally:
        ctx.close()
        store.dispose()
