"""Failback restores the home layout of every tier after any failover, on the simulator centers.

Each scenario provisions one workload of each tier (gold and silver once with their home in
each local center), writes, fails over, writes again where the workloads then serve, brings
the centers back and fails back. Afterwards every workload has the roles, placement states,
streams and quota use it had before, holds every acknowledged write at home, and a second
failback plans nothing.
"""

from __future__ import annotations

import dataclasses

import pytest

from cloudctl import clock as clocks
from cloudctl.recovery import replication as repl
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, faults, identity, provisioning, recovery, workloads
from cloudctl.services import quotas as quotas_service
from cloudctl.services import requests as requests_service

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)
OPS = identity.local_operator("sysadmin")
CENTERS = ("qd-a", "qd-b", "dz-dr")


@dataclasses.dataclass(frozen=True)
class Scenario:
    name: str
    lost: tuple[str, ...]
    planned: bool


SCENARIOS = [
    Scenario("planned-from-qd-a", ("qd-a",), planned=True),
    Scenario("unplanned-from-qd-a", ("qd-a",), planned=False),
    Scenario("planned-from-qd-b", ("qd-b",), planned=True),
    Scenario("unplanned-from-qd-b", ("qd-b",), planned=False),
    Scenario("both-local-to-dz-dr", ("qd-a", "qd-b"), planned=False),
]


def provision(ctx: ctx_module.Context, tier: str, home: str) -> str:
    body = requests_service.RequestCreate(offering="vm.small", tier=tier, preferred_center=home)
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def layout(ctx: ctx_module.Context, workload_id: str) -> dict[str, tuple[str, str]]:
    found = workloads.get(ctx, principal=HRSS, workload_id=workload_id)
    return {p.center: (p.role, p.state) for p in found.placements}


def streams(ctx: ctx_module.Context, workload_id: str) -> dict[str, tuple[str, str]]:
    return {
        f"{s.source}>{s.target}": (s.mode, s.state)
        for s in recovery.status(ctx)
        if s.workload_id == workload_id
    }


def quota_use(ctx: ctx_module.Context) -> dict[str, tuple[int, int]]:
    use = {}
    for center in CENTERS:
        view = quotas_service.show_quota(ctx, "hrss", center=center)
        vcpu = next(item for item in view.centers[0].resources if item.resource == "vcpu")
        use[center] = (vcpu.used, vcpu.reserved)
    return use


def advance(ctx: ctx_module.Context, seconds: float) -> None:
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(seconds)


def replicate_everything(ctx: ctx_module.Context) -> None:
    advance(ctx, 86_401)  # past every tier's interval, bronze's daily backup included
    recovery.run_due(ctx)


def holds(ctx: ctx_module.Context, center: str, workload_id: str, key: str, data: bytes) -> bool:
    storage = drivers.simulator(ctx).drivers(center).object_storage
    stored, _info = storage.get_object(repl.data_bucket(workload_id), key=key)
    return stored == data


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_failback_restores_the_home_layout_of_every_tier(ctx: ctx_module.Context, scenario: Scenario) -> None:
    made = {
        "platinum": provision(ctx, "platinum", "qd-a"),
        "gold@qd-a": provision(ctx, "gold", "qd-a"),
        "gold@qd-b": provision(ctx, "gold", "qd-b"),
        "silver@qd-a": provision(ctx, "silver", "qd-a"),
        "silver@qd-b": provision(ctx, "silver", "qd-b"),
        "bronze@qd-a": provision(ctx, "bronze", "qd-a"),
    }
    for workload_id in made.values():
        recovery.write(ctx, workload_id, key="before", data=f"before {workload_id}".encode())
    replicate_everything(ctx)
    home_layout = {name: layout(ctx, workload_id) for name, workload_id in made.items()}
    home_streams = {name: streams(ctx, workload_id) for name, workload_id in made.items()}
    home_quota = quota_use(ctx)
    assert all(state == "healthy" for s in home_streams.values() for _mode, state in s.values())

    outages = {}
    if not scenario.planned:
        for center in scenario.lost:
            outages[center] = faults.inject(ctx, kind="center-down", center=center).id
    plan = recovery.plan_failover(
        ctx, principal=OPS, from_centers=list(scenario.lost), planned=scenario.planned
    )
    assert plan.stranded == []
    assert recovery.execute(ctx, plan.run_id or "").state == "done"
    for workload_id in made.values():
        recovery.write(ctx, workload_id, key="during", data=f"during {workload_id}".encode())

    for center in scenario.lost:
        if center in outages:
            faults.clear(ctx, fault_id=outages[center])
        back = recovery.plan_failback(ctx, principal=OPS, to_center=center)
        assert back.stranded == []
        resync_at = [i for i, s in enumerate(back.steps) if s.action == "resync"]
        switch_at = [i for i, s in enumerate(back.steps) if s.action == "switch-traffic"]
        assert not switch_at or min(resync_at) < min(switch_at)  # reprotected before switching
        assert recovery.execute(ctx, back.run_id or "").state == "done"

    replicate_everything(ctx)  # the DR copies take what was written away from home
    for name, workload_id in made.items():
        assert layout(ctx, workload_id) == home_layout[name], name
        assert streams(ctx, workload_id) == home_streams[name], name
        serving = [c for c, (role, state) in home_layout[name].items() if role in ("primary", "active")]
        for center in serving:
            assert holds(ctx, center, workload_id, "before", f"before {workload_id}".encode())
            assert holds(ctx, center, workload_id, "during", f"during {workload_id}".encode())
    assert quota_use(ctx) == home_quota
    for center in (*scenario.lost, "qd-a", "qd-b", "dz-dr"):
        again = recovery.plan_failback(ctx, principal=OPS, to_center=center)
        assert (again.steps, again.run_id) == ([], None), center
    stand_in_servers = [
        server.name
        for server in drivers.simulator(ctx).drivers("dz-dr").compute.list_servers()
        if any(server.name.startswith(workload_id) for workload_id in made.values())
    ]
    assert stand_in_servers == []  # the DR center stood in and handed back
