"""Each OpenStack center of ``infra/topology.openstack.yaml`` is a cloud of its own on the
loopback rig (a region with its own Nova, Cinder and Neutron under the one Keystone), so the
project quotas the tree gives each center converge: a full ``quota sync`` leaves no drift on any
center, seen through openstacksdk in each region, and a RAM drift under 1 GiB is found in MiB.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.reconcile import quota_sync
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, provisioning, setup
from cloudctl.store import db
from tests.conftest import POLICIES, ROOT
from tests.integration.openstack import stack
from tests.integration.openstack.conftest import Cleanup

OPENSTACK_TOPOLOGY = ROOT / "infra" / "topology.openstack.yaml"
CENTERS = ["qd-a", "qd-b", "dz-dr"]


@pytest.fixture
def clouds(tmp_path: Path) -> Path:
    return stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=CENTERS)


@pytest.fixture
def ctx(tmp_path: Path, clouds: Path) -> Iterator[ctx_module.Context]:
    settings = settings_module.Settings(
        home=tmp_path, topology=OPENSTACK_TOPOLOGY, policies=POLICIES, clouds_yaml=clouds
    )
    context = ctx_module.Context(
        settings=settings, clock=clocks.SystemClock(), _store=db.Store(db.sqlite_url(tmp_path))
    )
    setup.initialise(context)
    yield context
    context.close()


def test_a_volume_made_in_one_center_is_seen_in_that_region_only(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    storage = drivers.center_drivers(ctx, "qd-b").block_storage
    volume = storage.create_volume(name="region-probe", project="hrss-insurance", size_gb=1)
    cleanup(lambda: storage.delete_volume(volume.id))
    seen = {}
    for center in CENTERS:
        with contextlib.closing(stack.sdk_connection(cloud=center, clouds_yaml=clouds)) as conn:
            seen[center] = [v.id for v in conn.block_storage.volumes(all_projects=True, name="region-probe")]
            region = conn.config.get_region_name()
            endpoint = conn.block_storage.get_endpoint()
            seen[center + " endpoint"] = [f"{region} {endpoint}"]
    assert seen["qd-a"] == [] and seen["dz-dr"] == [] and seen["qd-b"] == [volume.id]
    endpoints = {seen[c + " endpoint"][0] for c in CENTERS}
    assert len(endpoints) == 3, endpoints  # three regions, three Cinder endpoints


def test_quota_sync_leaves_no_drift_on_any_center(ctx: ctx_module.Context, clouds: Path) -> None:
    """Three departments of three bureaus (the whole tree, 33 projects in three regions, is the
    same code path at 33 times the calls: ``quota sync`` by hand, see docs/openstack.md)."""
    env = provisioning.environment(ctx)
    chosen = ["hrss-insurance", "shinan-health", "housing"]
    first = [quota_sync.sync_center(env, center=c, projects=chosen) for c in CENTERS]
    assert [(r.center, r.projects, r.error) for r in first] == [(c, 3, "") for c in CENTERS]
    again = [quota_sync.sync_center(env, center=c, projects=chosen, dry_run=True) for c in CENTERS]
    assert {r.center: r.drift for r in again} == {c: [] for c in CENTERS}

    # The tree gives hrss-insurance 3,200 GB on qd-a and 4,800 GB on dz-dr: each region holds its own.
    wanted = {"qd-a": 3200, "qd-b": 3200, "dz-dr": 4800}
    for center, volume_gb in wanted.items():
        with contextlib.closing(stack.sdk_connection(cloud=center, clouds_yaml=clouds)) as conn:
            project = conn.identity.find_project("hrss-insurance", domain_id="default")
            cinder = conn.block_storage.get_quota_set(project.id)
            nova = conn.compute.get_quota_set(project.id)
        assert (cinder.gigabytes, cinder.volumes, cinder.snapshots) == (volume_gb, volume_gb, volume_gb * 16)
        assert (nova.cores, nova.ram, nova.instances) == (32, 128 * 1024, 16)


def test_a_ram_drift_under_one_gib_is_found_in_mib_and_corrected(
    ctx: ctx_module.Context, clouds: Path
) -> None:
    """Its department is one no other test on the stack touches: the RAM it writes behind
    cloudctl's back must never be what another test's pass finds (``shinan-health``, which the
    test above syncs on every center and finds without drift, was this test's until then)."""
    env = provisioning.environment(ctx)
    project_name = "civil-assistance"

    def sync(*, dry_run: bool) -> quota_sync.SyncResult:
        return quota_sync.sync_center(env, center="qd-b", projects=[project_name], dry_run=dry_run)

    assert sync(dry_run=False).error == ""
    with contextlib.closing(stack.sdk_connection(cloud="qd-b", clouds_yaml=clouds)) as conn:
        project = conn.identity.find_project(project_name, domain_id="default")
        conn.compute.update_quota_set(project.id, ram=64 * 1024 - 100)  # behind cloudctl's back

        found = sync(dry_run=True)
        assert [(d.project, d.resource, d.found, d.wanted) for d in found.drift] == [
            (project_name, "compute.ram_mib", 64 * 1024 - 100, 64 * 1024)
        ]
        assert conn.compute.get_quota_set(project.id).ram == 64 * 1024 - 100  # a dry run changes nothing

        assert sync(dry_run=False).error == ""
        assert conn.compute.get_quota_set(project.id).ram == 64 * 1024
    assert sync(dry_run=True).drift == []
