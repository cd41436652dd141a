"""Running the ``infra/`` Pulumi program under ``pulumi.runtime.set_mocks``.

``infra/`` is a Pulumi project, not a package: its directory goes on ``sys.path`` here so the tests
import ``foundation_components`` exactly as ``infra/__main__.py`` does. ``declare`` runs a piece of
the program against recording mocks and returns every resource it registered, in order.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pulumi
import pytest

from tests.conftest import ROOT

INFRA = ROOT / "infra"
if str(INFRA) not in sys.path:
    sys.path.insert(0, str(INFRA))


class RecordingMocks(pulumi.runtime.Mocks):
    """Resources come back with their inputs as outputs and ``<logical name>-id`` as id."""

    def __init__(self) -> None:
        self.registered: list[pulumi.runtime.MockResourceArgs] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.registered.append(args)
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict[str, Any]:
        return {}


class Registered:
    """What one run of the program registered."""

    def __init__(self, resources: list[pulumi.runtime.MockResourceArgs]) -> None:
        self.resources = resources

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [resource for resource in self.resources if resource.typ == typ]

    def by_name(self, typ: str) -> dict[str, pulumi.runtime.MockResourceArgs]:
        return {resource.name: resource for resource in self.of_type(typ)}


Declare = Callable[[Callable[[], Any]], Registered]


def every_urn(component: Any) -> list[pulumi.Output[str]]:
    urns = []
    for project in component.projects.values():
        urns += [project.project.urn, project.compute_quota.urn, project.volume_quota.urn]
        urns += [project.network.urn, project.subnet.urn]
    for namespace in component.namespaces.values():
        urns += [namespace.namespace.urn, namespace.resource_quota.urn]
    return urns


@pytest.fixture
def mocks() -> RecordingMocks:
    recording = RecordingMocks()
    pulumi.runtime.set_mocks(recording, preview=False)
    return recording


@pytest.fixture
def declare(mocks: RecordingMocks) -> Declare:
    """Run ``program`` (returning a ``CenterFoundation``) to completion; what did it register?"""

    def run(program: Callable[[], Any]) -> Registered:
        mocks.registered.clear()

        @pulumi.runtime.test
        def complete() -> pulumi.Output[list[str]]:
            return pulumi.Output.all(*every_urn(program()))

        complete()
        return Registered(list(mocks.registered))

    return run
