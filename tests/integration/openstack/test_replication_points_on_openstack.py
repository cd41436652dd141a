"""Replication points on the loopback OpenStack: each point is a real Cinder snapshot of the
workload's volume, retention deletes real snapshots, and deleting the workload removes them all.

cloudctl's own clock is a manual one (DR passes fall due without waiting); the OpenStack driver
polls Cinder on real time, as it always does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.drivers import openstack as openstack_driver
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, identity, provisioning, recovery, replication_points, setup, workloads
from cloudctl.services import requests as requests_service
from cloudctl.store import db
from tests.conftest import POLICIES, ROOT
from tests.integration.openstack import stack
from tests.integration.openstack.conftest import Cleanup

OPENSTACK_TOPOLOGY = ROOT / "infra" / "topology.openstack.yaml"
HRSS = identity.Principal(id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss"))


def test_replication_points_are_cinder_snapshots_kept_and_deleted_by_cloudctl(
    tmp_path: Path,
    openstack_center: str,
    block_storage: openstack_driver.OpenStackBlockStorage,
    cleanup: Cleanup,
) -> None:
    clouds = stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])
    settings = settings_module.Settings(
        home=tmp_path,
        topology=OPENSTACK_TOPOLOGY,
        policies=POLICIES,
        clouds_yaml=clouds,
        replication_points_kept=2,
    )
    clock = clocks.ManualClock(start=clocks.SystemClock().now())
    ctx = ctx_module.Context(settings=settings, clock=clock, _store=db.Store(db.sqlite_url(tmp_path)))
    cleanup(ctx.close)
    setup.initialise(ctx)
    body = requests_service.RequestCreate(
        offering="volume.100g", tier="silver", preferred_center=openstack_center, name="openstack-points"
    )
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    workload_id = request.workload_id or ""
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    workload = workloads.get(ctx, principal=HRSS, workload_id=workload_id)
    assert workload.state == "ready", workload.reasons
    volume_id = next(p for p in workload.placements if p.role == "primary").resources[0]["id"]
    cleanup(lambda: _remove(block_storage, volume_id))
    assert type(drivers.center_drivers(ctx, openstack_center).block_storage._inner).__name__ == (
        "OpenStackBlockStorage"
    )

    taken = []
    for n in range(1, 4):
        recovery.write(ctx, workload_id, key=f"case/{n}", data=f"record {n}".encode())
        clock.advance(301)  # silver ships to DR every 300 s
        results = recovery.run_due(ctx)
        assert [(r.copied, r.error) for r in results] == [(1, "")]
        report = replication_points.take_points(ctx, results)
        assert report.failed == []
        taken += report.taken
    assert [p.seq for p in taken] == [1, 2, 3]
    # The points are snapshots of the replica in the DR center, so they outlive the source center.
    dr_storage = drivers.center_drivers(ctx, "dz-dr").block_storage
    replica = dr_storage.find_volume(f"replica-{workload_id}-0")
    assert replica is not None
    first = taken[0]
    with pytest.raises(errors.NotFound):
        dr_storage.get_snapshot(first.snapshot_id or "")
    kept = {s.name: s for s in dr_storage.list_snapshots(volume_id=replica.id)}
    assert sorted(kept) == [f"rp-{workload_id}-0-2", f"rp-{workload_id}-0-3"]
    assert block_storage.list_snapshots(volume_id=volume_id) == []  # none in the source center
    points = replication_points.list_points(ctx, workload_id=workload_id)
    assert [(p.seq, p.state, p.snapshot_id) for p in points] == [
        (2, "ready", kept[f"rp-{workload_id}-0-2"].id),
        (3, "ready", kept[f"rp-{workload_id}-0-3"].id),
    ]
    assert dr_storage.get_snapshot(points[-1].snapshot_id or "").volume_id == replica.id

    workloads.delete(ctx, principal=HRSS, workload_id=workload_id)
    assert provisioning.run_pending(ctx)[workload_id].done
    assert dr_storage.list_snapshots(volume_id=replica.id) == []
    with pytest.raises(errors.NotFound):
        dr_storage.get_volume(replica.id)
    with pytest.raises(errors.NotFound):
        block_storage.get_volume(volume_id)
    assert replication_points.list_points(ctx, workload_id=workload_id) == []


def _remove(storage: openstack_driver.OpenStackBlockStorage, volume_id: str) -> None:
    """What a failed run leaves behind: the volume's snapshots, then the volume."""
    for snapshot in storage.list_snapshots(volume_id=volume_id):
        storage.delete_snapshot(snapshot.id)
    storage.delete_volume(volume_id)
