"""A failover carries each server's address over as the topology's network maps say: kept on the
network stretched between qd-a and qd-b, re-mapped into the DR center's own range; the dry run
shows it, the run records it with its steps, the traffic record points at it, and it is counted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from cloudctl import clock as clocks
from cloudctl import metrics
from cloudctl import settings as settings_module
from cloudctl.drivers import base
from cloudctl.recovery import traffic
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, faults, identity, provisioning, recovery, setup
from cloudctl.services import requests as requests_service
from cloudctl.store import db, schema
from cloudctl.store import recovery as recovery_store
from cloudctl.store import requests as requests_store
from tests.conftest import POLICIES, TOPOLOGY

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)
OPS = identity.local_operator("sysadmin")


def ready_workload(ctx: ctx_module.Context, tier: str) -> str:
    body = requests_service.RequestCreate(offering="vm.small", tier=tier, preferred_center="qd-a")
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def address_in(ctx: ctx_module.Context, center: str, server: str) -> tuple[str, ...]:
    found = drivers.center_drivers(ctx, center).compute.find_server(server)
    assert found is not None, f"no {server} in {center}"
    return found.addresses


def counted(from_center: str, to_center: str, outcome: str) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "cloudctl_failover_addresses_total",
        {"from_center": from_center, "to_center": to_center, "outcome": outcome},
    )
    return value or 0.0


def traffic_records(ctx: ctx_module.Context, workload_id: str) -> dict[str, tuple[int, str | None]]:
    with ctx.read() as tx:
        name = traffic.record_name(requests_store.get_workload(tx, workload_id))
    records = drivers.center_drivers(ctx, "mgmt").traffic.list_records(ctx.topology.zone, name=name)
    return {r.target_center: (r.weight, r.address) for r in records}


def test_servers_get_their_port_on_the_centers_workload_network(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    other = ready_workload(ctx, "gold")
    (first,) = address_in(ctx, "qd-a", f"{gold}-0")
    (second,) = address_in(ctx, "qd-a", f"{other}-0")
    assert first.startswith("10.16.") and second.startswith("10.16.") and first != second


def test_a_planned_gold_failover_keeps_the_address_on_the_stretched_network(ctx: ctx_module.Context) -> None:
    gold = ready_workload(ctx, "gold")
    (home_address,) = address_in(ctx, "qd-a", f"{gold}-0")
    before = counted("qd-a", "qd-b", "kept")

    dry = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True, dry_run=True)
    (promote,) = [s for s in dry.steps if s.action == "promote"]
    assert [m.model_dump() for m in promote.addresses or []] == [
        {
            "server": f"{gold}-0",
            "from_center": "qd-a",
            "network": "gov-apps",
            "to_network": "gov-apps",
            "old_address": home_address,
            "new_address": home_address,
            "kept": True,
        }
    ]
    assert drivers.center_drivers(ctx, "qd-b").compute.find_server(f"{gold}-0") is None  # a dry run

    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    run = recovery.execute(ctx, plan.run_id or "")
    assert run.state == "done"
    assert address_in(ctx, "qd-b", f"{gold}-0") == (home_address,)
    assert run.workloads[gold]["addresses"][0]["new_address"] == home_address
    assert run.workloads[gold]["traffic_address"] == home_address
    assert traffic_records(ctx, gold)["qd-b"] == (100, home_address)
    assert counted("qd-a", "qd-b", "kept") == before + 1


def test_an_unplanned_failover_to_dr_remaps_the_address_into_its_range(ctx: ctx_module.Context) -> None:
    silver = ready_workload(ctx, "silver")
    (home_address,) = address_in(ctx, "qd-a", f"{silver}-0")
    mapped = home_address.replace("10.16.", "10.80.", 1)  # /20 onto /20: the host part is kept
    before = counted("qd-a", "dz-dr", "remapped")
    faults.inject(ctx, kind="center-down", center="qd-a")

    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    (promote,) = [s for s in plan.steps if s.action == "promote"]
    assert promote.target == "dz-dr"
    assert [
        (m.network, m.to_network, m.old_address, m.new_address, m.kept) for m in promote.addresses or []
    ] == [("gov-apps", "gov-apps-dr", home_address, mapped, False)]
    run = recovery.execute(ctx, plan.run_id or "")
    assert run.state == "done"
    assert address_in(ctx, "dz-dr", f"{silver}-0") == (mapped,)
    assert traffic_records(ctx, silver)["dz-dr"] == (100, mapped)
    assert counted("qd-a", "dz-dr", "remapped") == before + 1
    with ctx.read() as tx:
        stored = recovery_store.get_run(tx, plan.run_id or "")
    assert stored.result["workloads"][silver]["addresses"][0]["new_address"] == mapped
    with ctx.read() as tx:
        (started,) = [
            row.detail
            for row in tx.execute(
                sa.select(schema.audit_records).where(
                    schema.audit_records.c.action == "failover.run",
                    schema.audit_records.c.outcome == "started",
                )
            )
        ]
    assert (started["run"], started["addresses_kept"], started["addresses_remapped"]) == (plan.run_id, 0, 1)
    assert started["addresses"] == [f"{silver}-0: {home_address} (qd-a/gov-apps) -> {mapped} (gov-apps-dr)"]
    assert started["points"] == []


def test_an_address_another_server_holds_in_the_recovery_center_does_not_stop_the_failover(
    ctx: ctx_module.Context,
) -> None:
    """The mapped address is taken there (by a server the city made by hand, or another cloud's
    allocation): the server is made at an address the backend picks, served and steered to, and
    the run says which address it got and which it was planned at."""
    silver = ready_workload(ctx, "silver")
    (home_address,) = address_in(ctx, "qd-a", f"{silver}-0")
    mapped = home_address.replace("10.16.", "10.80.", 1)
    network = ctx.topology.network("dz-dr", "gov-apps-dr")
    assert network is not None
    dr = drivers.center_drivers(ctx, "dz-dr").compute
    squatter = dr.create_server(
        name="hand-made-0",
        project="hrss",
        vcpu=1,
        ram_gb=1,
        disk_gb=1,
        port=base.PortRequest(
            network="gov-apps-dr",
            subnet=str(network.subnet),
            address=mapped,
            segment=ctx.topology.segment("dz-dr", "gov-apps-dr"),
        ),
    )
    assert squatter.addresses == (mapped,)
    before = counted("qd-a", "dz-dr", "remapped")
    faults.inject(ctx, kind="center-down", center="qd-a")

    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    run = recovery.execute(ctx, plan.run_id or "")

    assert run.state == "done"
    (got,) = address_in(ctx, "dz-dr", f"{silver}-0")
    assert got != mapped and got.startswith("10.80.")
    assert address_in(ctx, "dz-dr", "hand-made-0") == (mapped,)  # the holder keeps it
    outcome = run.workloads[silver]
    assert [(m["old_address"], m["new_address"], m["kept"]) for m in outcome["addresses"]] == [
        (home_address, got, False)
    ]
    assert outcome["addresses_held_there"] == [{"server": f"{silver}-0", "planned": mapped, "got": got}]
    assert traffic_records(ctx, silver)["dz-dr"] == (100, got)
    assert counted("qd-a", "dz-dr", "remapped") == before + 1


def test_a_failback_after_a_failover_to_dr_brings_the_server_home_at_its_old_address(
    ctx: ctx_module.Context,
) -> None:
    silver = ready_workload(ctx, "silver")
    (home_address,) = address_in(ctx, "qd-a", f"{silver}-0")
    faults.inject(ctx, kind="center-down", center="qd-a")
    away = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=False)
    recovery.execute(ctx, away.run_id or "")
    faults.clear(ctx)
    home = recovery.plan_failback(ctx, principal=OPS, to_center="qd-a")
    assert recovery.execute(ctx, home.run_id or "").state == "done"
    assert address_in(ctx, "qd-a", f"{silver}-0") == (home_address,)
    assert traffic_records(ctx, silver)["qd-a"][0] == 100


def test_without_network_maps_a_failover_makes_servers_as_before(
    store: db.Store, clock: clocks.ManualClock, tmp_path: Path
) -> None:
    data: dict[str, Any] = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    del data["networks"], data["network_maps"]
    plain = tmp_path / "topology.yaml"
    plain.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    settings = settings_module.Settings(
        home=tmp_path, database_url=store.url, topology=plain, policies=POLICIES
    )
    ctx = ctx_module.Context(settings=settings, clock=clock, _store=store)
    setup.initialise(ctx)
    gold = ready_workload(ctx, "gold")
    assert address_in(ctx, "qd-a", f"{gold}-0") == ()
    plan = recovery.plan_failover(ctx, principal=OPS, from_center="qd-a", planned=True)
    assert all(step.addresses is None for step in plan.steps)
    assert all("addresses" not in step.document() for step in plan.steps)
    run = recovery.execute(ctx, plan.run_id or "")
    assert run.state == "done" and "addresses" not in run.workloads[gold]
    assert address_in(ctx, "qd-b", f"{gold}-0") == ()
    assert traffic_records(ctx, gold)["qd-b"] == (100, None)
