"""Orders started and finished in one transaction each (the provisioner's group commit) end as
an order provisioned alone does: the same states and steps, their quota committed once each."""

from __future__ import annotations

from cloudctl.model import states
from cloudctl.reconcile import provisioning as reconciler
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, provisioning
from cloudctl.services import requests as requests_service
from cloudctl.store import db, quotas, requests

BIGDATA = identity.Principal(
    id="t:batches",
    role="dept-admin",
    department="bigdata",
    department_path=("qingdao", "shinan", "bigdata"),
)


def _submit(ctx: ctx_module.Context, name: str) -> str:
    body = requests_service.RequestCreate(
        offering="vm.small", tier="bronze", count=1, preferred_center="qd-a", name=name
    )
    request, _created = requests_service.submit(ctx, principal=BIGDATA, body=body)
    assert request.state == states.WorkloadState.APPROVED
    return request.id


def _counters(ctx: ctx_module.Context) -> dict[tuple[str, str, str], tuple[int, int]]:
    with ctx.store.read() as tx:
        chain = quotas.ancestor_ids(tx, node_id="bigdata")
        counters = quotas.get_counters(tx, node_ids=chain)
    return {
        (node, center, resource.value): (c.used, c.reserved)
        for (node, center, resource), c in counters.items()
    }


def _difference(
    after: dict[tuple[str, str, str], tuple[int, int]], before: dict[tuple[str, str, str], tuple[int, int]]
) -> dict[tuple[str, str, str], tuple[int, int]]:
    return {
        key: (used - before[key][0], reserved - before[key][1])
        for key, (used, reserved) in after.items()
        if (used, reserved) != before[key]
    }


def _reservation_states(
    tx: db.Transaction, workload: requests.WorkloadRecord
) -> dict[str, quotas.ReservationState]:
    """The state of each placement's reservation, by role."""
    return {p.role: quotas.get_reservation(tx, p.reservation_id).state for p in workload.placements}


def test_orders_started_and_finished_together_end_as_an_order_alone(ctx: ctx_module.Context) -> None:
    alone = _submit(ctx, "alone")
    before_alone = _counters(ctx)
    assert provisioning.reconcile(ctx, kind="request", object_id=alone).message == states.WorkloadState.READY
    one = _difference(_counters(ctx), before_alone)
    assert one and all(used > 0 and reserved < 0 for used, reserved in one.values())

    together = [_submit(ctx, f"together-{index}") for index in range(3)]
    before = _counters(ctx)
    with ctx.store.transaction() as tx:
        started = reconciler.start_orders(tx, [*together, alone], now=ctx.clock.now())
    assert started[-1] == reconciler.Result(done=True, message="nothing to do in state ready")
    workloads = {
        request_id: workload
        for request_id, workload in zip(together, started, strict=False)
        if isinstance(workload, requests.WorkloadRecord)
    }
    assert sorted(workloads) == sorted(together)
    assert {workload.state for workload in workloads.values()} == {states.WorkloadState.PROVISIONING}

    env = provisioning.environment(ctx)
    last_steps: list[reconciler.LastStep] = []
    for request_id in together:
        result = reconciler.reconcile_request(
            env, request_id, start=workloads.__getitem__, finish=last_steps.append
        )
        assert result.message == states.WorkloadState.READY
    with ctx.store.transaction() as tx:
        reconciler.commit_last_steps(tx, last_steps, now=ctx.clock.now())

    with ctx.store.read() as tx:
        reference = requests.get_request(tx, alone)
        reference_workload = requests.get_workload(tx, reference.workload_id or "")
        assert quotas.ReservationState.COMMITTED in _reservation_states(tx, reference_workload).values()
        for request_id in together:
            request = requests.get_request(tx, request_id)
            workload = requests.get_workload(tx, request.workload_id or "")
            assert request.state == workload.state == states.WorkloadState.READY
            assert [step["step"] for step in request.steps] == [step["step"] for step in reference.steps]
            assert request.resource_version == reference.resource_version
            for placement in workload.placements:
                if placement.role in reconciler.CREATING_ROLES:
                    assert placement.state == states.PlacementState.READY
                    assert [item["name"] for item in placement.resources] == [f"{workload.id}-0"]
            assert _reservation_states(tx, workload) == _reservation_states(tx, reference_workload)
    assert _difference(_counters(ctx), before) == {
        key: (3 * used, 3 * reserved) for key, (used, reserved) in one.items()
    }


def test_the_backlog_lists_each_order_oldest_first_with_the_centers_it_creates_in(
    ctx: ctx_module.Context,
) -> None:
    ordered = [_submit(ctx, f"backlog-{index}") for index in range(3)]
    provisioning.reconcile(ctx, kind="request", object_id=ordered[1])  # ready: no longer pending
    with ctx.store.read() as tx:
        expected = []
        for request_id in sorted([ordered[0], ordered[2]]):
            workload = requests.get_workload(tx, requests.get_request(tx, request_id).workload_id or "")
            centers = tuple(p.center for p in workload.placements if p.role in reconciler.CREATING_ROLES)
            assert centers
            expected.append(reconciler.WorkItem(kind="request", object_id=request_id, centers=centers))
    assert reconciler.pending_work(provisioning.environment(ctx)) == expected
