"""The quota engine on SQLite and PostgreSQL: reservations, limits, and their invariants."""

from __future__ import annotations

import pytest

from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.services import orgs as orgs_service
from cloudctl.services import quotas as quotas_service
from cloudctl.store import quotas

VCPU = q.Resource.VCPU


def headroom(ctx: ctx_module.Context, node: str, center: str, resource: str = "vcpu") -> int | None:
    view = quotas_service.show_quota(ctx, node, center=center)
    return next(item.headroom for item in view.centers[0].resources if item.resource == resource)


def counter(ctx: ctx_module.Context, node: str, center: str, resource: q.Resource = VCPU) -> quotas.Counter:
    with ctx.read() as tx:
        return quotas.get_counters(tx, node_ids=[node], centers=[center])[(node, center, resource)]


def test_a_reservation_counts_at_the_node_and_every_ancestor_on_its_center_and_all(
    ctx: ctx_module.Context,
) -> None:
    quotas_service.reserve(ctx, "hrss-insurance", center="qd-a", amounts={"vcpu": 8, "ram_gb": 16})
    for node in ("hrss-insurance", "hrss", "qingdao"):
        assert counter(ctx, node, "qd-a").reserved == 8
        assert counter(ctx, node, "*").reserved == 8
        assert counter(ctx, node, "qd-b").reserved == 0
    assert counter(ctx, "hrss-employment", "qd-a").reserved == 0


def test_a_reservation_over_the_department_limit_names_the_department_and_changes_nothing(
    ctx: ctx_module.Context,
) -> None:
    with pytest.raises(errors.QuotaExceeded) as caught:
        quotas_service.reserve(ctx, "hrss-employment", center="qd-a", amounts={"vcpu": 17, "ram_gb": 1})
    shortfall = caught.value.shortfalls[0]
    assert (shortfall.node, shortfall.center, shortfall.resource) == ("hrss-employment", "qd-a", "vcpu")
    assert (shortfall.limit, shortfall.requested, shortfall.available) == (16, 17, 16)
    assert caught.value.field == "quota.vcpu"
    assert "hrss-employment" in caught.value.one_line()
    assert counter(ctx, "hrss-employment", "qd-a").in_use == 0
    assert counter(ctx, "hrss", "qd-a", q.Resource.RAM_GB).in_use == 0


def test_a_reservation_that_fits_the_department_but_not_an_ancestor_names_the_ancestor(
    ctx: ctx_module.Context,
) -> None:
    quotas_service.set_quota(ctx, "hrss", center="qd-a", limits={"vcpu": 40})
    quotas_service.reserve(ctx, "hrss-insurance", center="qd-a", amounts={"vcpu": 30})
    with pytest.raises(errors.QuotaExceeded) as caught:
        quotas_service.reserve(ctx, "hrss-employment", center="qd-a", amounts={"vcpu": 12})
    assert [(s.node, s.center) for s in caught.value.shortfalls] == [("hrss", "qd-a")]
    assert caught.value.shortfalls[0].available == 10


def test_the_all_centers_limit_bounds_the_sum_over_centers(ctx: ctx_module.Context) -> None:
    # hrss-employment: 16 vCPU per local center, 32 over all centers, 16 in the DR center.
    quotas_service.reserve(ctx, "hrss-employment", center="qd-a", amounts={"vcpu": 16})
    quotas_service.reserve(ctx, "hrss-employment", center="qd-b", amounts={"vcpu": 16})
    with pytest.raises(errors.QuotaExceeded) as caught:
        quotas_service.reserve(ctx, "hrss-employment", center="dz-dr", amounts={"vcpu": 1})
    assert (caught.value.shortfalls[0].node, caught.value.shortfalls[0].center) == ("hrss-employment", "*")


def test_commit_turns_held_quota_into_usage_and_release_gives_it_back(ctx: ctx_module.Context) -> None:
    reservation = quotas_service.reserve(ctx, "psb-traffic", center="qd-b", amounts={"vcpu": 4})
    committed = quotas_service.commit(ctx, reservation.id)
    assert committed.state == "committed"
    assert (counter(ctx, "psb", "qd-b").used, counter(ctx, "psb", "qd-b").reserved) == (4, 0)
    released = quotas_service.release(ctx, reservation.id)
    assert released.state == "released"
    assert counter(ctx, "psb", "qd-b").in_use == 0
    assert quotas_service.release(ctx, reservation.id).state == "released"
    assert counter(ctx, "qingdao", "*").in_use == 0
    with pytest.raises(errors.Conflict):
        quotas_service.commit(ctx, reservation.id)


def test_headroom_is_the_least_free_amount_up_the_tree(ctx: ctx_module.Context) -> None:
    assert headroom(ctx, "shinan-civil", "qd-a") == 16
    quotas_service.set_quota(ctx, "shinan", center="qd-a", limits={"vcpu": 40})
    quotas_service.reserve(ctx, "shinan-approval", center="qd-a", amounts={"vcpu": 30})
    assert headroom(ctx, "shinan-civil", "qd-a") == 10
    view = quotas_service.show_quota(ctx, "shinan-civil", center="qd-a")
    assert view.centers[0].resources[0].bounded_by == "shinan"


def test_a_child_limit_above_an_ancestor_is_refused_and_nothing_changes(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.Conflict) as caught:
        quotas_service.set_quota(ctx, "hrss-employment", center="qd-a", limits={"ram_gb": 32, "vcpu": 97})
    assert caught.value.field == "limits.vcpu"
    assert "ancestor 'hrss'" in caught.value.reason
    view = quotas_service.show_quota(ctx, "hrss-employment", center="qd-a")
    assert {item.resource: item.limit for item in view.centers[0].resources}["ram_gb"] == 64


def test_a_parent_limit_below_a_child_limit_is_refused(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.Conflict) as caught:
        quotas_service.set_quota(ctx, "hrss", center="all", limits={"vcpu": 20})
    assert "descendant 'hrss-insurance'" in caught.value.reason


def test_a_limit_below_what_is_in_use_is_refused(ctx: ctx_module.Context) -> None:
    quotas_service.reserve(ctx, "egov", center="qd-a", amounts={"vcpu": 30})
    with pytest.raises(errors.Conflict) as caught:
        quotas_service.set_quota(ctx, "egov", center="qd-a", limits={"vcpu": 29})
    assert "already uses or holds (30)" in caught.value.reason
    quotas_service.set_quota(ctx, "egov", center="qd-a", limits={"vcpu": 30})


def test_headroom_on_one_center_counts_the_all_centers_limits_too(ctx: ctx_module.Context) -> None:
    # hrss-employment: 16 vCPU on each local center, 32 over all centers.
    quotas_service.reserve(ctx, "hrss-employment", center="qd-b", amounts={"vcpu": 16})
    quotas_service.reserve(ctx, "hrss-employment", center="dz-dr", amounts={"vcpu": 6})
    assert headroom(ctx, "hrss-employment", "qd-a") == 10


def test_unsetting_a_limit_leaves_the_ancestors_in_charge(ctx: ctx_module.Context) -> None:
    quotas_service.set_quota(ctx, "shinan-civil", center="qd-a", limits={"vcpu": None})
    assert headroom(ctx, "shinan-civil", "qd-a") == 32  # its own all-centers limit still holds
    quotas_service.set_quota(ctx, "shinan-civil", center="all", limits={"vcpu": None})
    assert headroom(ctx, "shinan-civil", "qd-a") == 64
    view = quotas_service.show_quota(ctx, "shinan-civil", center="qd-a")
    assert view.centers[0].resources[0].bounded_by == "shinan"


def test_unknown_names_are_bad_input(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.NotFound) as caught:
        quotas_service.reserve(ctx, "no-such-dept", center="qd-a", amounts={"vcpu": 1})
    assert caught.value.field == "node"
    with pytest.raises(errors.NotFound) as center_error:
        quotas_service.reserve(ctx, "hrss", center="sh-x", amounts={"vcpu": 1})
    assert center_error.value.field == "center"
    with pytest.raises(errors.InvalidInput) as resource_error:
        quotas_service.reserve(ctx, "hrss", center="qd-a", amounts={"gpu": 1})
    assert "unknown resource 'gpu'" in resource_error.value.reason


def test_a_node_with_usage_or_children_is_not_deleted(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.Conflict):
        orgs_service.delete_node(ctx, "hrss")
    reservation = quotas_service.reserve(ctx, "hrss-employment", center="qd-a", amounts={"vcpu": 1})
    with pytest.raises(errors.Conflict) as caught:
        orgs_service.delete_node(ctx, "hrss-employment")
    assert "release them first" in caught.value.reason
    quotas_service.release(ctx, reservation.id)
    assert orgs_service.delete_node(ctx, "hrss-employment") is True
    assert orgs_service.delete_node(ctx, "hrss-employment", ignore_missing=True) is False


def test_a_new_department_can_reserve_within_its_parent(ctx: ctx_module.Context) -> None:
    orgs_service.create_node(
        ctx, node_id="shinan-edu", display_name="青岛市市南区教育和体育局", parent="shinan", kind="department"
    )
    quotas_service.set_quota(ctx, "shinan-edu", center="qd-a", limits={"vcpu": 8})
    quotas_service.reserve(ctx, "shinan-edu", center="qd-a", amounts={"vcpu": 8})
    assert counter(ctx, "shinan", "qd-a").reserved == 8
    with pytest.raises(errors.Conflict):
        orgs_service.create_node(
            ctx, node_id="shinan-edu", display_name="重复", parent="shinan", kind="department"
        )
    with pytest.raises(errors.InvalidInput) as caught:
        orgs_service.create_node(ctx, node_id="Bad_ID", display_name="x", parent="shinan", kind="department")
    assert caught.value.field == "id"
