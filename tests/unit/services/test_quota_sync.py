"""Project quotas in the centers follow the quota tree: drift is found, shown and corrected."""

from __future__ import annotations

from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, provisioning
from cloudctl.services import quotas as quotas_service


def drift_of(
    ctx: ctx_module.Context, center: str, *, dry_run: bool = False
) -> list[tuple[str, str, int | None, int | None]]:
    (result,) = provisioning.sync_quotas(ctx, center=center, dry_run=dry_run)
    return [(d.project, d.resource, d.found, d.wanted) for d in result.drift]


def test_the_first_pass_sets_every_project_and_the_second_changes_nothing(ctx: ctx_module.Context) -> None:
    first = drift_of(ctx, "qd-a")
    assert ("hrss-employment", "vcpu", None, 16) in first
    assert drift_of(ctx, "qd-a") == []
    compute = drivers.center_drivers(ctx, "qd-a").compute
    assert compute.get_project_quota("hrss-employment").limits["vcpu"] == 16


def test_drift_in_a_center_is_found_then_corrected(ctx: ctx_module.Context) -> None:
    drift_of(ctx, "dz-dr")
    compute = drivers.center_drivers(ctx, "dz-dr").compute
    compute.set_project_quota(
        "shinan-civil", amounts={"vcpu": 999, "ram_gb": 64, "instances": 8, "volume_gb": 2400}
    )
    assert drift_of(ctx, "dz-dr", dry_run=True) == [("shinan-civil", "vcpu", 999, 16)]
    assert compute.get_project_quota("shinan-civil").limits["vcpu"] == 999  # a dry run changes nothing
    assert drift_of(ctx, "dz-dr") == [("shinan-civil", "vcpu", 999, 16)]
    assert compute.get_project_quota("shinan-civil").limits["vcpu"] == 16


def test_a_changed_limit_in_the_tree_reaches_the_center(ctx: ctx_module.Context) -> None:
    drift_of(ctx, "qd-b")
    quotas_service.set_quota(ctx, "shinan", center="qd-b", limits={"vcpu": 40})
    quotas_service.set_quota(ctx, "shinan-approval", center="qd-b", limits={"vcpu": None})
    assert drift_of(ctx, "qd-b") == [("shinan-approval", "vcpu", 32, 40)]
