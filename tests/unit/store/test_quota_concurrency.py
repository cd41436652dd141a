"""Concurrent reservations against one small quota: never overcommit, never deadlock.

64 threads reserve at once on SQLite and on PostgreSQL. Every refusal must name the
ancestor and the resource that ran out.
"""

from __future__ import annotations

import concurrent.futures
import threading

from cloudctl import errors
from cloudctl.services import context as ctx_module
from cloudctl.services import orgs as orgs_service
from cloudctl.services import quotas as quotas_service
from cloudctl.store import quotas

THREADS = 64


def _race(
    ctx: ctx_module.Context, nodes: list[str], amounts: dict[str, int]
) -> tuple[list[str], list[errors.QuotaExceeded]]:
    barrier = threading.Barrier(THREADS)

    def attempt(index: int) -> str | errors.QuotaExceeded:
        barrier.wait()
        try:
            return quotas_service.reserve(ctx, nodes[index % len(nodes)], center="qd-a", amounts=amounts).id
        except errors.QuotaExceeded as refused:
            return refused

    with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(attempt, range(THREADS)))
    granted = [outcome for outcome in outcomes if isinstance(outcome, str)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, errors.QuotaExceeded)]
    assert len(granted) + len(refused) == THREADS
    return granted, refused


def test_sixty_four_threads_against_one_small_quota_get_exactly_what_fits(ctx: ctx_module.Context) -> None:
    orgs_service.create_node(ctx, node_id="race", display_name="并发测试科", parent="egov", kind="department")
    quotas_service.set_quota(ctx, "race", center="qd-a", limits={"vcpu": 20})

    granted, refused = _race(ctx, ["race"], {"vcpu": 2, "ram_gb": 4})

    assert len(granted) == 10
    assert len(refused) == THREADS - 10
    for refusal in refused:
        assert [(s.node, s.center, s.resource) for s in refusal.shortfalls] == [("race", "qd-a", "vcpu")]
    with ctx.read() as tx:
        counters = quotas.get_counters(tx, node_ids=["race", "egov", "qingdao"], centers=["qd-a"])
    assert counters[("race", "qd-a", quotas.q.Resource.VCPU)].reserved == 20
    assert counters[("egov", "qd-a", quotas.q.Resource.VCPU)].reserved == 20
    assert counters[("qingdao", "qd-a", quotas.q.Resource.RAM_GB)].reserved == 40


def test_siblings_racing_for_their_parent_quota_never_overrun_the_parent(ctx: ctx_module.Context) -> None:
    orgs_service.create_node(
        ctx, node_id="race-parent", display_name="并发测试处", parent="egov", kind="bureau"
    )
    for child in ("race-a", "race-b", "race-c"):
        orgs_service.create_node(
            ctx, node_id=child, display_name="并发测试科", parent="race-parent", kind="department"
        )
        quotas_service.set_quota(ctx, child, center="qd-a", limits={"vcpu": 12})
    quotas_service.set_quota(ctx, "race-parent", center="all", limits={"vcpu": 25})

    granted, refused = _race(ctx, ["race-a", "race-b", "race-c"], {"vcpu": 1})

    assert len(granted) == 25
    named = {(s.node, s.resource) for refusal in refused for s in refusal.shortfalls}
    assert named <= {("race-parent", "vcpu"), ("race-a", "vcpu"), ("race-b", "vcpu"), ("race-c", "vcpu")}
    assert ("race-parent", "vcpu") in named
    with ctx.read() as tx:
        parent = quotas.get_counters(tx, node_ids=["race-parent"], centers=["*"])
        reservations = quotas.list_reservations(tx, states=[quotas.ReservationState.RESERVED])
    assert parent[("race-parent", "*", quotas.q.Resource.VCPU)].reserved == 25
    assert len([r for r in reservations if r.node_id.startswith("race-")]) == 25
