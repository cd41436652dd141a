"""The leader's loops: orders are provisioned while a periodic pass is stuck, a slow center
keeps only its own slots, and a replica leads, provisions and hands over through the lease."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cloudctl.drivers import base
from cloudctl.reconcile import provisioning as reconciler
from cloudctl.services import access, housekeeping, identity, leader, provisioning
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import leases, requests

DEADLINE_S = 120.0
HRSS = identity.Principal(
    id="test:hrss", role="dept-admin", department="hrss-insurance", department_path=("hrss-insurance",)
)


def poll(condition: Callable[[], bool], *, what: str) -> None:
    pause = threading.Event()
    until = time.monotonic() + DEADLINE_S
    while time.monotonic() < until:
        if condition():
            return
        pause.wait(0.05)
    pytest.fail(f"timed out waiting for {what}", pytrace=False)


def order(ctx: ctx_module.Context, *, center: str, name: str) -> str:
    body = requests_service.RequestCreate(
        offering="vm.small", count=1, tier="bronze", preferred_center=center, name=name
    )
    request, _created = requests_service.submit(ctx, principal=HRSS, body=body)
    return request.id


def state_of(ctx: ctx_module.Context, request_id: str) -> str:
    with ctx.read() as tx:
        return requests.get_request(tx, request_id).state


@pytest.fixture
def stuck_quota_sync(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    started, release = threading.Event(), threading.Event()

    def stuck(_ctx: ctx_module.Context) -> None:
        started.set()
        release.wait(DEADLINE_S)

    passes = tuple(
        dataclasses.replace(p, run=stuck) if p.name == "quota-sync" else p for p in housekeeping.PASSES
    )
    monkeypatch.setattr(housekeeping, "PASSES", passes)
    yield started, release
    release.set()


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_an_order_is_provisioned_while_the_quota_sync_is_still_running(
    ctx: ctx_module.Context, stuck_quota_sync: tuple[threading.Event, threading.Event]
) -> None:
    started, release = stuck_quota_sync
    leadership = leader.Leadership(ctx, api_url="http://test", interval_s=0.05)
    leadership.start()
    try:
        assert leadership.is_leader
        poll(started.is_set, what="the quota sync to start")
        request_id = order(ctx, center="qd-a", name="during-sync")
        poll(lambda: state_of(ctx, request_id) == "ready", what="the order to be provisioned")
        assert not release.is_set(), "the quota sync was still running all along"
    finally:
        release.set()
        assert leadership.stop(timeout_s=60)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_slow_center_holds_only_its_own_slots(
    ctx: ctx_module.Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_center, fast_center = "qd-a", "qd-b"
    release = threading.Event()
    real_environment = provisioning.environment

    class SlowCompute:
        def __init__(self, inner: base.Compute) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

        def create_server(self, **kwargs: Any) -> base.Server:
            release.wait(DEADLINE_S)
            return self._inner.create_server(**kwargs)

    def environment(context: ctx_module.Context) -> reconciler.Environment:
        env = real_environment(context)

        def drivers_for(center: str) -> base.CenterDrivers:
            drivers = env.drivers_for(center)
            if center != slow_center:
                return drivers
            return dataclasses.replace(drivers, compute=SlowCompute(drivers.compute))

        return dataclasses.replace(env, drivers_for=drivers_for)

    monkeypatch.setattr(provisioning, "environment", environment)
    slow = [order(ctx, center=slow_center, name=f"slow-{n}") for n in range(3)]
    fast = [order(ctx, center=fast_center, name=f"fast-{n}") for n in range(4)]
    provisioner = provisioning.Provisioner(
        ctx, interval_s=0.05, bounds=provisioning.Bounds(workers=4, per_center=2, per_backend=4)
    )
    provisioner.start()
    try:
        poll(lambda: all(state_of(ctx, r) == "ready" for r in fast), what="the fast center's orders")
        assert [state_of(ctx, r) for r in slow].count("ready") == 0
        assert provisioner.in_flight == 2  # the slow center's bound, not every worker
        release.set()
        poll(lambda: all(state_of(ctx, r) == "ready" for r in slow), what="the slow center's orders")
    finally:
        release.set()
        assert provisioner.stop(timeout_s=60)


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_a_replica_that_loses_the_lease_stops_its_loops_and_writes_nothing(ctx: ctx_module.Context) -> None:
    leadership = leader.Leadership(ctx, api_url="http://test", interval_s=0.05)
    leadership.start()
    try:
        assert leadership.is_leader and leadership.epoch == 1
        with ctx.store.transaction() as tx:  # another replica took the lease (it expired meanwhile)
            tx.execute(leases.schema.leases.update().values(holder="other", epoch=2))
        leadership.tick()
        assert not leadership.is_leader
        with pytest.raises(leases.LeaseLost), leadership._leader_context().store.transaction():
            pass
    finally:
        leadership.stop(timeout_s=60)
    with ctx.read() as tx:
        (row,) = leases.list_replicas(tx)
    assert row.role == "stopped"
    assert row.policies_sha256 == access.policies(ctx).digest  # what it decided with
