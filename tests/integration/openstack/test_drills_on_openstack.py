"""A drill on the loopback OpenStack: its figures are what the real cloud took, read back from
Nova through openstacksdk, not what cloudctl recorded of itself.

The drill runs on its own clock (``simulated_time``, the plans' default), as CI runs it; the
servers its recovery starts boot in a real Nova, whose own timestamps bound the RTO from below.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.model import drills
from cloudctl.services import context as ctx_module
from cloudctl.services import drills as drill_service
from cloudctl.services import setup
from cloudctl.store import db
from tests.conftest import POLICIES, ROOT
from tests.integration.openstack import stack
from tests.integration.openstack.test_recovery_on_openstack import assert_nothing_left

OPENSTACK_TOPOLOGY = ROOT / "infra" / "topology.openstack.yaml"
LOSE_QD_A_GOLD = """
name: lose-qd-a-on-openstack
description: Lose qd-a; the gold canary's cold standby in qd-b boots in Nova.
scenario: {kind: lose-local-center, center: qd-a}
scope: {departments: [hrss], tiers: [gold]}
canary: {writes_per_s: 0.5, warmup_s: 60, object_bytes: 256, workloads_per_tier: 1}
simulated_time: true
"""


@pytest.fixture
def clouds(tmp_path: Path) -> Path:
    return stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])


@pytest.fixture
def ctx(tmp_path: Path, clouds: Path) -> Iterator[ctx_module.Context]:
    settings = settings_module.Settings(
        home=tmp_path, topology=OPENSTACK_TOPOLOGY, policies=POLICIES, clouds_yaml=clouds
    )
    clock = clocks.ManualClock(start=clocks.SystemClock().now())
    context = ctx_module.Context(settings=settings, clock=clock, _store=db.Store(db.sqlite_url(tmp_path)))
    setup.initialise(context)
    yield context
    context.close()


def _instant(stamp: str) -> float:
    return datetime.datetime.fromisoformat(stamp).replace(tzinfo=datetime.UTC).timestamp()


def test_a_drills_rto_on_openstack_counts_the_time_nova_took_to_boot_the_recovered_server(
    ctx: ctx_module.Context, clouds: Path
) -> None:
    report = drill_service.run_drill(ctx, plan=drills.parse(LOSE_QD_A_GOLD))
    (canary,) = report.workloads
    assert (canary.recovered_in, canary.writes_lost) == ("qd-b", 0)

    with contextlib.closing(stack.sdk_connection(cloud="qd-b", clouds_yaml=clouds)) as qd_b:
        # The drill deleted its canary: Nova still shows the server it booted for the recovery.
        (server,) = qd_b.compute.servers(all_projects=True, deleted=True, name=f"^{canary.workload_id}-0$")
        boot_s = _instant(server.launched_at) - _instant(server.created_at)
    assert boot_s >= 1  # the rig's fake driver takes seconds to bring a server up
    assert canary.rto_measured_s is not None and canary.rto_measured_s >= boot_s
    assert_nothing_left(clouds, [canary.workload_id])
