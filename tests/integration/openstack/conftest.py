"""Fixtures of the tests against the loopback OpenStack (``scripts/openstack/stack``).

The stack is brought up (or reused) once per session; a stack that cannot be brought up
fails these tests loudly. The drivers are built for the first local center of the shipped
topology, from a ``clouds.yaml`` written for this session (cloud name = center name).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.drivers import openstack as openstack_driver
from cloudctl.model import topology
from cloudctl.services import context as ctx_module
from cloudctl.services import setup
from cloudctl.store import db
from tests.conftest import POLICIES
from tests.integration.openstack import stack

TOPOLOGY_FILE = Path(__file__).resolve().parents[3] / "infra" / "topology.yaml"
OPENSTACK_TOPOLOGY = TOPOLOGY_FILE.with_name("topology.openstack.yaml")
SDK_WARNINGS = "ignore::PendingDeprecationWarning:openstack"
"""openstacksdk 4.22 warns about its own internals on every call (RemovedInSDK50Warning and
RemovedInSDK60Warning, raised inside ``openstack.*`` with nothing a caller can change)."""

Cleanup = Callable[[Callable[[], object]], None]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.filterwarnings(SDK_WARNINGS))


@pytest.fixture(scope="module", autouse=True)
def stack_up() -> None:
    """Each module starts on a stack that is up: a service that died under an earlier module
    is started again (and said so in ``stack.py``'s output) instead of failing every test after."""
    stack.start_or_reuse()


@pytest.fixture(scope="session")
def openstack_center() -> str:
    shipped = topology.parse(TOPOLOGY_FILE.read_text(encoding="utf-8"))
    return shipped.centers_with_role(topology.CenterRole.LOCAL)[0].name


@pytest.fixture(scope="session")
def openstack_clouds_yaml(tmp_path_factory: pytest.TempPathFactory, openstack_center: str) -> Path:
    return stack.write_clouds_yaml(
        tmp_path_factory.mktemp("openstack") / "clouds.yaml", centers=[openstack_center]
    )


@pytest.fixture(scope="session")
def openstack_cloud(openstack_center: str, openstack_clouds_yaml: Path) -> Iterator[openstack_driver.Cloud]:
    cloud = stack.open_cloud(center=openstack_center, clouds_yaml=openstack_clouds_yaml)
    yield cloud
    cloud.close()


@pytest.fixture
def compute(openstack_cloud: openstack_driver.Cloud) -> openstack_driver.OpenStackCompute:
    return openstack_driver.OpenStackCompute(openstack_cloud)


@pytest.fixture
def block_storage(openstack_cloud: openstack_driver.Cloud) -> openstack_driver.OpenStackBlockStorage:
    return openstack_driver.OpenStackBlockStorage(openstack_cloud)


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    """Register an undo right after each create; undos run last-first after the test."""
    undos: list[Callable[[], object]] = []
    yield undos.append
    for undo in reversed(undos):
        undo()


@pytest.fixture
def openstack_clouds(tmp_path: Path) -> Path:
    """A ``clouds.yaml`` naming the three cloud centers of ``infra/topology.openstack.yaml``."""
    return stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])


@pytest.fixture
def openstack_ctx(tmp_path: Path, openstack_clouds: Path) -> Iterator[ctx_module.Context]:
    """A context over ``infra/topology.openstack.yaml`` on a SQLite store, initialised, on a
    manual clock started at now (the clouds' own timestamps stay comparable)."""
    settings = settings_module.Settings(
        home=tmp_path, topology=OPENSTACK_TOPOLOGY, policies=POLICIES, clouds_yaml=openstack_clouds
    )
    clock = clocks.ManualClock(start=clocks.SystemClock().now())
    context = ctx_module.Context(settings=settings, clock=clock, _store=db.Store(db.sqlite_url(tmp_path)))
    setup.initialise(context)
    yield context
    context.close()
