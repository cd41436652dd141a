"""``cloudctl infra diff`` as a use case: drift between what infra/ declares and the store."""

from __future__ import annotations

import pytest

from cloudctl import errors
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, infra, orgs, quotas
from cloudctl.services import requests as requests_service


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


def test_a_department_gets_no_children_and_the_tree_is_unchanged(ctx: ctx_module.Context) -> None:
    before = infra.diff(ctx)
    with pytest.raises(errors.InvalidInput) as refused:
        orgs.create_node(
            ctx, node_id="hrss-sub", display_name="下属科", parent="hrss-insurance", kind="department"
        )
    assert refused.value.field == "parent"
    assert "'hrss-insurance' is a department and cannot have children" in refused.value.reason
    assert "hrss-sub" not in {node.id for node in orgs.list_nodes(ctx)}
    assert infra.diff(ctx).resources_declared == before.resources_declared


def test_a_leaf_bureau_holding_quota_keeps_its_project_and_gets_no_children(ctx: ctx_module.Context) -> None:
    body = requests_service.RequestCreate(offering="vm.small", tier="bronze", preferred_center="qd-a")
    principal = identity.Principal(
        id="t", role="dept-admin", department="samr", department_path=("qingdao", "samr")
    )
    requests_service.submit(ctx, principal=principal, body=body)  # samr, a leaf bureau, now holds quota
    with pytest.raises(errors.Conflict) as refused:
        orgs.create_node(ctx, node_id="samr-office", display_name="办公室", parent="samr", kind="department")
    assert refused.value.field == "parent"
    assert "would stop being a tenant" in refused.value.reason
    assert "samr-office" not in {node.id for node in orgs.list_nodes(ctx)}


def test_a_leaf_bureau_holding_nothing_hands_its_tenancy_to_its_new_department(
    ctx: ctx_module.Context,
) -> None:
    before = infra.diff(ctx)
    orgs.create_node(ctx, node_id="samr-office", display_name="办公室", parent="samr", kind="department")
    after = infra.diff(ctx)
    # Not silent: the diff shows the bureau's project, namespace and network going and the
    # department's coming, in every center with a foundation.
    assert sorted({(d.kind, d.name, d.declared, d.stored) for d in after.differences}) == [
        ("namespace", "samr", "yes", None),
        ("namespace", "samr-office", None, "yes"),
        ("network", "samr-net", "yes", None),
        ("network", "samr-office-net", None, "yes"),
        ("project", "samr", "yes", None),
        ("project", "samr-office", None, "yes"),
    ]
    assert len(after.differences) == 6 * len(after.centers)
    assert after.resources_declared == before.resources_declared  # one tenant for one
