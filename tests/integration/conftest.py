"""Fixtures of the integration tests: real S3 / Route 53 servers, one ``moto_server`` per center.

``moto_servers`` starts, once per session, one server process per center named here
(a local center and the DR center of the shipped topology, read from it rather than
hard-coded) and stops them at the end; a server that does not come up fails the tests
loudly. ``object_storage`` builds an ``S3ObjectStorage`` per center on the manual clock.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl.drivers import s3
from cloudctl.model import topology
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
