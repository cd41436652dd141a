"""The provisioning reconciler waits for a server only while the backend says it is not active."""

from __future__ import annotations

from typing import Any

import pytest

from cloudctl.drivers import simulator as simulator_driver
from cloudctl.drivers.simulator import compute as sim_compute
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, identity, provisioning, workloads
from cloudctl.services import requests as requests_service
from cloudctl.store import simulator_state

BIGDATA = identity.Principal(
    id="t:health",
    role="dept-admin",
    department="bigdata",
    department_path=("qingdao", "shinan", "bigdata"),
)


def provision(ctx: ctx_module.Context, name: str) -> list[dict[str, Any]]:
    """Order two servers in qd-a and provision them; the primary placement's resources."""
    body = requests_service.RequestCreate(
        offering="vm.small", tier="bronze", count=2, preferred_center="qd-a", name=name
    )
    request, _created = requests_service.submit(ctx, principal=BIGDATA, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    done = requests_service.get(ctx, principal=BIGDATA, request_id=request.id)
    assert done.state == "ready"
    workload = workloads.get(ctx, principal=BIGDATA, workload_id=done.workload_id or "")
    primary = next(p for p in workload.placements if p.role == "primary")
    return [dict(item) for item in primary.resources]


def test_a_server_still_building_is_waited_for_and_one_active_at_once_is_not(
    ctx: ctx_module.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    waited: list[str] = []
    wait = sim_compute.SimulatedCompute.wait_for_status

    def counted(self: sim_compute.SimulatedCompute, server_id: str, **options: Any) -> Any:
        waited.append(server_id)
        return wait(self, server_id, **options)

    monkeypatch.setattr(sim_compute.SimulatedCompute, "wait_for_status", counted)

    building = provision(ctx, "booting")  # the simulator's servers boot for a while by default
    assert sorted(waited) == sorted(item["id"] for item in building)

    ctx.cache[drivers._CACHE_KEY] = simulator_driver.Simulator(
        ctx.topology,
        backend=simulator_state.StoreBackedState(ctx.store, clock=ctx.clock),
        clock=ctx.clock,
        server_boot_s=0.0,
    )
    for key in [key for key in ctx.cache if key.startswith("drivers:")]:
        del ctx.cache[key]  # the centers' drivers, built on the simulator before
    waited.clear()
    instant = provision(ctx, "instant")
    assert waited == []
    # What the wait would have told is recorded all the same: each server's address.
    compute = drivers.center_drivers(ctx, "qd-a").compute
    for item in [*building, *instant]:
        server = compute.get_server(item["id"])
        assert server.status.value == "active"
        assert item.get("address") == (server.addresses[0] if item.get("network") else None)
