"""The usage pass on the loopback OpenStack: what a department consumed is what Nova reports.

A department's request becomes a real Nova server; the hour it ran in is recorded, and its
consumed vCPU, RAM and instances equal the flavor Nova embeds in the server, read with
openstacksdk, and the line is read from the raw table with SQLAlchemy.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import sqlalchemy as sa

from cloudctl import settings as settings_module
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, identity, provisioning, setup, usage, workloads
from cloudctl.services import requests as requests_service
from cloudctl.store import db, schema
from tests.conftest import POLICIES
from tests.integration.openstack import stack
from tests.integration.openstack.test_cloudctl_on_openstack import OPENSTACK_TOPOLOGY


class MovableClock:
    """Real time, plus an offset a test moves forward (to let an hour end without waiting)."""

    def __init__(self) -> None:
        self.offset_s = 0.0

    def now(self) -> float:
        return time.time() + self.offset_s

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def test_consumption_recorded_for_an_hour_is_what_nova_reports(tmp_path: Path) -> None:
    clouds = stack.write_clouds_yaml(tmp_path / "clouds.yaml", centers=["qd-a", "qd-b", "dz-dr"])
    store = db.Store(db.sqlite_url(tmp_path))
    settings = settings_module.Settings(
        home=tmp_path, topology=OPENSTACK_TOPOLOGY, policies=POLICIES, clouds_yaml=clouds
    )
    clock = MovableClock()
    ctx = ctx_module.Context(settings=settings, clock=clock, _store=store)
    principal = identity.Principal(
        id="t",
        role="dept-admin",
        department="hrss-employment",
        department_path=("qingdao", "hrss", "hrss-employment"),
    )
    workload_id = ""
    try:
        setup.initialise(ctx)
        body = requests_service.RequestCreate(
            offering="vm.small", tier="bronze", preferred_center="qd-a", name="usage-on-openstack"
        )
        request, _ = requests_service.submit(ctx, principal=principal, body=body)
        workload_id = request.workload_id or ""
        assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
        server_id = next(
            p
            for p in workloads.get(ctx, principal=principal, workload_id=workload_id).placements
            if p.role == "primary"
        ).resources[0]["id"]
        began = ctx.clock.now()
        clock.offset_s = 3600 - began % 3600 + 60  # the hour it ran in has ended

        recorded = usage.record_due(ctx)

        hour = int(began // 3600) * 3600
        assert hour in recorded.recorded
        sdk = drivers.center_drivers(ctx, "qd-a").compute._inner._cloud.admin  # type: ignore[attr-defined]
        flavor = sdk.compute.get_server(server_id).flavor
        with store.engine.connect() as connection:
            consumed = {
                row.resource: row.consumed
                for row in connection.execute(
                    sa.select(schema.usage_hours).where(
                        schema.usage_hours.c.hour == hour,
                        schema.usage_hours.c.node_id == "hrss-employment",
                        schema.usage_hours.c.center == "qd-a",
                    )
                )
            }
        assert consumed["vcpu"] == flavor.vcpus
        assert consumed["ram_gb"] == math.ceil(flavor.ram / 1024)
        assert consumed["instances"] == 1
    finally:
        if workload_id:
            workloads.delete(ctx, principal=principal, workload_id=workload_id)
            provisioning.run_pending(ctx)
        ctx.close()
