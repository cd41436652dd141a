"""cloudctl itself on the loopback OpenStack: a department's request becomes a real Nova server in
the center the placement chose, and deleting the workload removes it before the quota is released."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable
from pathlib import Path

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.drivers import base
from cloudctl.model import names
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, identity, provisioning, setup, workloads
from cloudctl.services import requests as requests_service
from cloudctl.store import db
from tests.conftest import POLICIES, ROOT
from tests.integration.openstack import stack

OPENSTACK_TOPOLOGY = ROOT / "infra" / "topology.openstack.yaml"


def test_a_request_is_provisioned_on_openstack_and_deleted_again(tmp_path: Path) -> None:
    clouds = stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])
    store = db.Store(db.sqlite_url(tmp_path))
    settings = settings_module.Settings(
        home=tmp_path, topology=OPENSTACK_TOPOLOGY, policies=POLICIES, clouds_yaml=clouds
    )
    ctx = ctx_module.Context(settings=settings, clock=clocks.SystemClock(), _store=store)
    ctx_cleanup: list[Callable[[], None]] = []
    try:
        setup.initialise(ctx)
        principal = identity.Principal(
            id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
        )
        body = requests_service.RequestCreate(
            offering="vm.small", tier="bronze", preferred_center="qd-a", name="openstack-portal"
        )
        request, _ = requests_service.submit(ctx, principal=principal, body=body)
        assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
        workload = workloads.get(ctx, principal=principal, workload_id=request.workload_id or "")
        assert workload.state == "ready", workload.reasons
        primary = next(p for p in workload.placements if p.role == "primary")
        server_id = primary.resources[0]["id"]
        compute = drivers.center_drivers(ctx, "qd-a").compute
        assert type(compute._inner).__name__ == "OpenStackCompute"  # behind its circuit breaker
        assert compute.get_server(server_id).status is base.ServerStatus.ACTIVE

        # A replica made by a process killed before it recorded it: only its name says whose it is.
        storage = drivers.center_drivers(ctx, "qd-a").block_storage
        stray = storage.create_volume(name=names.replica_name(f"{workload.id}-0"), project="hrss", size_gb=1)
        other_name = names.replica_name(f"wl-other{uuid.uuid4().hex[:12]}-0")
        other = storage.create_volume(name=other_name, project="hrss", size_gb=1)
        ctx_cleanup.append(lambda: storage.delete_volume(other.id))

        workloads.delete(ctx, principal=principal, workload_id=workload.id)
        assert provisioning.run_pending(ctx)[workload.id].done
        assert compute.find_server(f"{workload.id}-0") is None
        # Asked of Cinder and Nova through openstacksdk: the workload's own are gone, another's kept.
        with contextlib.closing(stack.sdk_connection(cloud="qd-a", clouds_yaml=clouds)) as sdk:
            left = {
                v.name for v in sdk.block_storage.volumes(all_projects=True) if workload.id in (v.name or "")
            }
            assert left == set()
            assert sdk.block_storage.find_volume(stray.id, ignore_missing=True) is None
            assert sdk.block_storage.get_volume(other.id).name == other.name
            assert list(sdk.compute.servers(all_projects=True, name=f"{workload.id}-0")) == []
    finally:
        for undo in ctx_cleanup:
            undo()
        ctx.close()


def test_project_quota_drift_on_openstack_is_corrected(tmp_path: Path) -> None:
    from cloudctl.reconcile import quota_sync

    clouds = stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])
    store = db.Store(db.sqlite_url(tmp_path))
    settings = settings_module.Settings(
        home=tmp_path, topology=OPENSTACK_TOPOLOGY, policies=POLICIES, clouds_yaml=clouds
    )
    ctx = ctx_module.Context(settings=settings, clock=clocks.SystemClock(), _store=store)
    try:
        setup.initialise(ctx)
        compute = drivers.center_drivers(ctx, "qd-a").compute
        compute.set_project_quota("hrss-employment", amounts={"vcpu": 2, "ram_gb": 4, "instances": 1})
        env = provisioning.environment(ctx)
        found = quota_sync.sync_center(env, center="qd-a", projects=["hrss-employment"])
        assert {(d.resource, d.found, d.wanted) for d in found.drift} >= {
            ("vcpu", 2, 16),
            ("instances", 1, 8),
        }
        limits = compute.get_project_quota("hrss-employment").limits
        assert (limits["vcpu"], limits["ram_gb"], limits["instances"]) == (16, 64, 8)
        again = quota_sync.sync_center(env, center="qd-a", projects=["hrss-employment"])
        assert again.drift == []
    finally:
        ctx.close()


NETWORK_QUOTA_PROJECT = "psb-household"
"""The department of the network-quota test, which no other test on the stack touches."""


def test_network_quota_drift_on_openstack_is_corrected(tmp_path: Path) -> None:
    """Neutron's quota of a department follows its tree limits (``instances`` 8 on qd-a: 10 ports).

    Its department is one no other test on the stack touches: the values it writes behind
    cloudctl's back must never be what another test's pass finds (both once read the other's)."""
    from cloudctl.reconcile import quota_sync

    clouds = stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])
    store = db.Store(db.sqlite_url(tmp_path))
    settings = settings_module.Settings(
        home=tmp_path, topology=OPENSTACK_TOPOLOGY, policies=POLICIES, clouds_yaml=clouds
    )
    ctx = ctx_module.Context(settings=settings, clock=clocks.SystemClock(), _store=store)
    try:
        setup.initialise(ctx)
        env = provisioning.environment(ctx)
        quota_sync.sync_center(env, center="qd-a", projects=[NETWORK_QUOTA_PROJECT])
        compute = drivers.center_drivers(ctx, "qd-a").compute
        neutron = compute._inner._cloud.admin.network
        project_id = compute._inner._cloud.find_project_id(NETWORK_QUOTA_PROJECT)
        synced = neutron.get_quota(project_id)
        assert (synced.networks, synced.subnets, synced.ports, synced.floating_ips) == (1, 1, 10, 0)

        neutron.update_quota(project_id, ports=500, networks=3)  # behind cloudctl's back

        def drift(result: quota_sync.SyncResult) -> set[tuple[str, int | None, int | None]]:
            return {(d.resource, d.found, d.wanted) for d in result.drift}

        found = quota_sync.sync_center(env, center="qd-a", projects=[NETWORK_QUOTA_PROJECT], dry_run=True)
        assert drift(found) == {("network.ports", 500, 10), ("network.networks", 3, 1)}
        assert neutron.get_quota(project_id).ports == 500  # a dry run changes nothing

        corrected = quota_sync.sync_center(env, center="qd-a", projects=[NETWORK_QUOTA_PROJECT])
        assert corrected.corrected and len(drift(corrected)) == 2
        after = neutron.get_quota(project_id)
        assert (after.ports, after.networks) == (10, 1)
        assert drift(quota_sync.sync_center(env, center="qd-a", projects=[NETWORK_QUOTA_PROJECT])) == set()
    finally:
        ctx.close()
