"""A failover on the loopback OpenStack, each center a region of its own: replication points
live in the center that holds the copy, and the recovered workload is whole in its new center
(servers, volumes made there from the replica and attached, its network port). A failback
brings every tier home to its layout and the center that stood in hands back. Everything is
checked with openstacksdk in each region, not through cloudctl's reads.

Cinder's fake driver stores no bytes: what this proves is where each volume, snapshot, server
and port is made, from what, of what size and attached to what, not that blocks were copied.
cloudctl's own clock is a manual one (DR passes fall due without waiting).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import openstack.connection
import pytest

from cloudctl import clock as clocks
from cloudctl.drivers import base
from cloudctl.recovery import replication as repl
from cloudctl.services import context as ctx_module
from cloudctl.services import (
    drivers,
    faults,
    identity,
    provisioning,
    recovery,
    replication_points,
    restores,
    workloads,
)
from cloudctl.services import requests as requests_service
from tests.conftest import ROOT
from tests.integration.openstack import stack
from tests.integration.openstack.conftest import Cleanup

OPENSTACK_TOPOLOGY = ROOT / "infra" / "topology.openstack.yaml"
HRSS = identity.Principal(id="t", role="dept-admin", department="hrss", department_path=("qingdao", "hrss"))
OPS = identity.local_operator("sysadmin")


@pytest.fixture
def clouds(openstack_clouds: Path) -> Path:
    return openstack_clouds


@pytest.fixture
def ctx(openstack_ctx: ctx_module.Context) -> ctx_module.Context:
    return openstack_ctx


def provision(ctx: ctx_module.Context, cleanup: Cleanup, *, offering: str, tier: str, name: str) -> str:
    body = requests_service.RequestCreate(offering=offering, tier=tier, preferred_center="qd-a", name=name)
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    workload_id = request.workload_id or ""
    cleanup(lambda: _delete(ctx, workload_id))
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    assert workloads.get(ctx, principal=HRSS, workload_id=workload_id).state == "ready"
    return workload_id


def _delete(ctx: ctx_module.Context, workload_id: str) -> None:
    faults.clear(ctx)
    if workloads.delete(ctx, principal=HRSS, workload_id=workload_id).state != "deleted":
        assert provisioning.run_pending(ctx)[workload_id].done


def assert_nothing_left(clouds: Path, workload_ids: list[str]) -> None:
    """No server, volume or snapshot named as one of the workloads' in any region: a deleted
    workload leaves nothing after a failover and a failback (its replicas and the volumes made
    from its replication points included)."""
    for center in ("qd-a", "qd-b", "dz-dr"):
        with region(clouds, center) as conn:
            names = [v.name or "" for v in conn.block_storage.volumes(all_projects=True)]
            names += [s.name or "" for s in conn.block_storage.snapshots(all_projects=True)]
            names += [s.name or "" for s in conn.compute.servers(all_projects=True)]
            assert [n for n in names if any(w in n for w in workload_ids)] == [], center


def ship(ctx: ctx_module.Context, workload_id: str, key: str, *, interval_s: float) -> None:
    """Write one object, run the DR pass that ships it, take the replication points it calls for."""
    recovery.write(ctx, workload_id, key=key, data=f"record {key}".encode())
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(interval_s + 1)
    results = recovery.run_due(ctx)
    assert results and [r.error for r in results] == [""] * len(results)
    assert replication_points.take_points(ctx, results).failed == []


def in_pool(address: str, pool: tuple[str, str] | None) -> bool:
    assert pool is not None
    first, last = (ipaddress.IPv4Address(end) for end in pool)
    return first <= ipaddress.IPv4Address(address) <= last


@contextlib.contextmanager
def region(clouds: Path, center: str) -> Iterator[openstack.connection.Connection]:
    with contextlib.closing(stack.sdk_connection(cloud=center, clouds_yaml=clouds)) as conn:
        yield conn


def test_points_live_in_dr_and_an_unplanned_failover_recovers_the_volume_there(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    workload = provision(ctx, cleanup, offering="volume.100g", tier="silver", name="os-dr-volume")
    for n in (1, 2):
        ship(ctx, workload, f"case/{n}", interval_s=300)
    volume_name = f"{workload}-0"
    with region(clouds, "dz-dr") as dr, region(clouds, "qd-a") as home:
        (replica,) = dr.block_storage.volumes(all_projects=True, name=f"replica-{volume_name}")
        assert replica.size == 100
        points = sorted(s.name for s in dr.block_storage.snapshots(all_projects=True, volume_id=replica.id))
        assert points == [f"rp-{volume_name}-1", f"rp-{volume_name}-2"]
        (source,) = home.block_storage.volumes(all_projects=True, name=volume_name)
        assert list(home.block_storage.snapshots(all_projects=True, volume_id=source.id)) == []

    faults.inject(ctx, kind="center-down", center="qd-a")  # the source is lost: only dz-dr is read
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    assert plan.steps and plan.steps[0].target == "dz-dr"
    recovery.execute(ctx, plan.run_id or "")

    with region(clouds, "dz-dr") as dr:
        (point,) = dr.block_storage.snapshots(all_projects=True, name=f"rp-{volume_name}-2")
        (recovered,) = dr.block_storage.volumes(all_projects=True, name=f"rp-{volume_name}-2")
        assert (recovered.size, recovered.snapshot_id, recovered.status) == (100, point.id, "available")
        project = dr.identity.find_project("hrss", domain_id="default")
        assert recovered.project_id == project.id


def test_a_restore_makes_the_volume_in_dr_from_the_cinder_snapshot_of_the_point_before_the_time(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    workload = provision(ctx, cleanup, offering="volume.100g", tier="silver", name="os-restore")
    ship(ctx, workload, "case/1", interval_s=300)
    before_second = clocks.isoformat(ctx.clock.now())
    ship(ctx, workload, "case/2", interval_s=300)
    done = restores.restore(ctx, principal=OPS, workload_id=workload, at=before_second)
    volume_name = f"{workload}-0"
    assert (done.point, done.seq, done.center, done.changes_lost) == (f"dz-dr/{workload}@1", 1, "dz-dr", 0)
    with region(clouds, "dz-dr") as dr:
        (point,) = dr.block_storage.snapshots(all_projects=True, name=f"rp-{volume_name}-1")
        (restored,) = dr.block_storage.volumes(all_projects=True, name=f"rs-{volume_name}-1")
        assert (restored.snapshot_id, restored.size, restored.id) == (point.id, 100, done.volumes[0].id)
    _delete(ctx, workload)
    assert_nothing_left(clouds, [workload])  # the restored volume goes with the workload


def test_a_gold_standby_is_cold_and_a_failover_makes_the_server_its_volume_and_its_port(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    workload = provision(ctx, cleanup, offering="vm.small", tier="gold", name="os-gold-vm")
    ship(ctx, workload, "case/1", interval_s=60)
    server_name = f"{workload}-0"
    with region(clouds, "qd-b") as standby:
        # Cold standby (the gold tier's documented property): the replica of the disk, no server.
        assert list(standby.compute.servers(all_projects=True, name=f"^{server_name}$")) == []
        (replica,) = standby.block_storage.volumes(all_projects=True, name=f"replica-{server_name}")
        assert replica.size == 40

    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    recovery.execute(ctx, plan.run_id or "")

    with region(clouds, "qd-b") as standby:
        (server,) = standby.compute.servers(all_projects=True, name=f"^{server_name}$")
        assert server.status == "ACTIVE"
        (volume,) = standby.block_storage.volumes(all_projects=True, name=f"rp-{server_name}-1")
        (point,) = standby.block_storage.snapshots(all_projects=True, volume_id=replica.id)
        assert (volume.size, volume.snapshot_id, volume.status) == (40, point.id, "in-use")
        assert [a["server_id"] for a in volume.attachments] == [server.id]
        (port,) = standby.network.ports(device_id=server.id)
        network = standby.network.get_network(port.network_id)
        assert network.name == "hrss-net"
        assert port.binding_host_id == "cloudctl-openstack-regiontwo"  # bound in qd-b's own region


def test_a_gold_failback_brings_the_server_home_with_data_written_away_and_leaves_qd_b_cold(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    workload = provision(ctx, cleanup, offering="vm.small", tier="gold", name="os-gold-home")
    ship(ctx, workload, "case/1", interval_s=60)
    server_name = f"{workload}-0"
    away = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    recovery.execute(ctx, away.run_id or "")
    ship(ctx, workload, "case/2", interval_s=60)  # written while it serves in qd-b

    home = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    done = recovery.execute(ctx, home.run_id or "")
    assert (done.state, done.stranded) == ("done", [])

    with region(clouds, "qd-a") as qd_a, region(clouds, "qd-b") as qd_b:
        (server,) = qd_a.compute.servers(all_projects=True, name=f"^{server_name}$")
        assert server.status == "ACTIVE"
        attached = [v for v in qd_a.block_storage.volumes(all_projects=True) if v.attachments]
        disks = [v for v in attached if any(a["server_id"] == server.id for a in v.attachments)]
        assert len(disks) == 1 and disks[0].size == 40
        # The home layout again: qd-b holds the cold replica of the disk, no server, and not the
        # disk the server ran on while it stood in.
        assert list(qd_b.compute.servers(all_projects=True, name=f"^{server_name}$")) == []
        held = [v.name for v in qd_b.block_storage.volumes(all_projects=True) if workload in (v.name or "")]
        assert held == [f"replica-{server_name}"]
    shown = workloads.get(ctx, principal=HRSS, workload_id=workload)
    serving = sorted((p.center, p.role, p.state) for p in shown.placements if p.role in ("primary", "active"))
    assert serving == [("qd-a", "primary", "ready")]
    # What was written in qd-b came home: the bytes in qd-a's own store, read from there.
    home_objects = drivers.center_drivers(ctx, "qd-a").object_storage
    data, _info = home_objects.get_object(repl.data_bucket(workload), key="case/2")
    assert data == b"record case/2"
    _delete(ctx, workload)
    assert_nothing_left(clouds, [workload])


def test_a_gold_failover_keeps_the_servers_fixed_ip_on_the_stretched_tenant_network(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    workload = provision(ctx, cleanup, offering="vm.small", tier="gold", name="os-gold-ip")
    ship(ctx, workload, "case/1", interval_s=60)
    server_name = f"{workload}-0"
    with region(clouds, "qd-a") as home:
        (served,) = home.compute.servers(all_projects=True, name=f"^{server_name}$")
        (port,) = home.network.ports(device_id=served.id)
        home_ips = [fixed["ip_address"] for fixed in port.fixed_ips]
    assert len(home_ips) == 1
    assert in_pool(home_ips[0], ctx.topology.allocation_pool("qd-a", "tenant"))  # 10.0.0.86 to .169

    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    (promote,) = [step for step in plan.steps if step.action == "promote"]
    assert [(m.server, m.old_address, m.new_address, m.kept) for m in promote.addresses or []] == [
        (server_name, home_ips[0], home_ips[0], True)
    ]
    assert recovery.execute(ctx, plan.run_id or "").state == "done"

    with region(clouds, "qd-b") as standby:
        (server,) = standby.compute.servers(all_projects=True, name=f"^{server_name}$")
        (port,) = standby.network.ports(device_id=server.id)
        assert [fixed["ip_address"] for fixed in port.fixed_ips] == home_ips
        assert standby.network.get_network(port.network_id).name == "hrss-net"


def test_a_gold_failover_whose_address_another_server_holds_in_qd_b_serves_at_another(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    """qd-b's Neutron hands out its addresses without asking qd-a's: another server there may
    hold the address the plan keeps. The failover still serves the workload, at an address
    qd-b picks, and its run says so."""
    workload = provision(ctx, cleanup, offering="vm.small", tier="gold", name="os-gold-held")
    server_name = f"{workload}-0"
    with region(clouds, "qd-a") as home:
        (served,) = home.compute.servers(all_projects=True, name=f"^{server_name}$")
        ((address,),) = [
            [f["ip_address"] for f in p.fixed_ips] for p in home.network.ports(device_id=served.id)
        ]
    qd_b = drivers.center_drivers(ctx, "qd-b").compute
    holder = qd_b.create_server(
        name=f"hand-made-{workload}",
        project="hrss",
        vcpu=2,
        ram_gb=4,
        disk_gb=40,
        port=base.PortRequest(network="tenant", subnet="10.0.0.0/24", address=address),
    )
    cleanup(lambda: qd_b.delete_server(holder.id))
    qd_b.wait_for_status(holder.id, status=base.ServerStatus.ACTIVE, timeout_s=300)  # its port is made

    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    run = recovery.execute(ctx, plan.run_id or "")

    assert run.state == "done"
    with region(clouds, "qd-b") as standby:
        (server,) = standby.compute.servers(all_projects=True, name=f"^{server_name}$")
        ((got,),) = [
            [f["ip_address"] for f in p.fixed_ips] for p in standby.network.ports(device_id=server.id)
        ]
        ((held,),) = [
            [f["ip_address"] for f in p.fixed_ips] for p in standby.network.ports(device_id=holder.id)
        ]
    assert held == address and got != address
    assert in_pool(got, ctx.topology.allocation_pool("qd-b", "tenant"))  # qd-b's own: .170 to .254
    outcome = run.workloads[workload]
    assert outcome["addresses_held_there"] == [{"server": server_name, "planned": address, "got": got}]
    assert [(m["new_address"], m["kept"]) for m in outcome["addresses"]] == [(got, False)]
    assert outcome["traffic_address"] == got


def test_platinum_silver_and_bronze_come_home_after_losing_qd_a_and_a_second_failback_plans_nothing(
    ctx: ctx_module.Context, clouds: Path, cleanup: Cleanup
) -> None:
    silver = provision(ctx, cleanup, offering="vm.small", tier="silver", name="os-silver-home")
    platinum = provision(ctx, cleanup, offering="vm.small", tier="platinum", name="os-platinum-home")
    bronze = provision(ctx, cleanup, offering="vm.small", tier="bronze", name="os-bronze-home")
    ship(ctx, silver, "case/1", interval_s=300)
    faults.inject(ctx, kind="center-down", center="qd-a")
    away = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    assert recovery.execute(ctx, away.run_id or "").state == "done"
    recovery.write(ctx, silver, key="case/2", data=b"record case/2")  # while it serves in Dezhou
    faults.clear(ctx)  # qd-a is back; the failback's resync carries case/2 home

    home = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    done = recovery.execute(ctx, home.run_id or "")
    assert (done.state, done.stranded) == ("done", [])
    again = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a", dry_run=True)
    assert again.steps == []

    def serving(workload_id: str) -> list[tuple[str, str]]:
        shown = workloads.get(ctx, principal=HRSS, workload_id=workload_id)
        return sorted(
            (p.center, p.role)
            for p in shown.placements
            if p.state == "ready" and p.role in ("primary", "active")
        )

    assert serving(silver) == serving(bronze) == [("qd-a", "primary")]
    assert serving(platinum) == [("qd-a", "active"), ("qd-b", "active")]  # active-active again
    with region(clouds, "qd-a") as qd_a, region(clouds, "qd-b") as qd_b, region(clouds, "dz-dr") as dr:
        for workload_id, regions in ((silver, [qd_a]), (bronze, [qd_a]), (platinum, [qd_a, qd_b])):
            for where in regions:
                (server,) = where.compute.servers(all_projects=True, name=f"^{workload_id}-0$")
                assert server.status == "ACTIVE"
        # Dezhou stood in for silver and bronze and hands them back: no server, no disk it ran on,
        # the replica kept.
        for stood_in in (silver, bronze):
            assert list(dr.compute.servers(all_projects=True, name=f"^{stood_in}-0$")) == []
        held = sorted(v.name for v in dr.block_storage.volumes(all_projects=True) if silver in (v.name or ""))
        assert held == [f"replica-{silver}-0"]
    home_objects = drivers.center_drivers(ctx, "qd-a").object_storage
    data, _info = home_objects.get_object(repl.data_bucket(silver), key="case/2")
    assert data == b"record case/2"  # what was written in Dezhou came home
    for workload_id in (silver, platinum, bronze):
        _delete(ctx, workload_id)
    assert_nothing_left(clouds, [silver, platinum, bronze])
