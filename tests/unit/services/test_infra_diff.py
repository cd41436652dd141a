"""``cloudctl infra diff`` as a use case: drift between what infra/ declares and the store."""

from __future__ import annotations

import pytest

from cloudctl import errors
from cloudctl.services import context as ctx_module
from cloudctl.services import infra, quotas


def test_a_freshly_initialised_store_shows_no_drift(ctx: ctx_module.Context) -> None:
    result = infra.diff(ctx)
    assert result.differences == []
    assert result.resources_declared > 0
    management = [c.name for c in ctx.topology.centers if c.role.value == "management"]
    assert set(management).isdisjoint(result.centers)


def test_a_limit_changed_in_the_store_shows_in_the_project_and_the_namespace(ctx: ctx_module.Context) -> None:
    dr = next(center.name for center in ctx.topology.centers if center.role.value == "dr")
    quotas.set_quota(ctx, "hrss-insurance", center=dr, limits={"vcpu": 20, "ram_gb": 100})
    result = infra.diff(ctx)
    found = {(d.kind, d.center, d.name, d.field): (d.declared, d.stored) for d in result.differences}
    assert found == {
        ("project", dr, "hrss-insurance", "quota.cores"): (32, 20),
        ("project", dr, "hrss-insurance", "quota.ram_mib"): (128 * 1024, 100 * 1024),
        ("namespace", dr, "hrss-insurance", "hard.requests.cpu"): ("32", "20"),
        ("namespace", dr, "hrss-insurance", "hard.requests.memory"): ("128Gi", "100Gi"),
    }


def test_an_all_centers_limit_tighter_than_a_center_s_shows_in_every_center(ctx: ctx_module.Context) -> None:
    quotas.set_quota(ctx, "hrss-insurance", center="all", limits={"vcpu": 24})
    result = infra.diff(ctx)
    cores = {d.center: d.stored for d in result.differences if d.field == "quota.cores"}
    assert cores == {center: 24 for center in result.centers}


def test_diff_of_one_center_shows_only_that_center(ctx: ctx_module.Context) -> None:
    centers = infra.diff(ctx).centers
    quotas.set_quota(ctx, "samr", center=centers[0], limits={"instances": 3})
    assert infra.diff(ctx, center=centers[1]).differences == []
    only = infra.diff(ctx, center=centers[0])
    assert only.centers == [centers[0]]
    assert [(d.name, d.field, d.stored) for d in only.differences] == [("samr", "quota.instances", 3)]


def test_diff_of_a_center_without_foundation_is_refused(ctx: ctx_module.Context) -> None:
    management = next(center.name for center in ctx.topology.centers if center.role.value == "management")
    with pytest.raises(errors.NotFound) as refused:
        infra.diff(ctx, center=management)
    assert refused.value.field == "center"
