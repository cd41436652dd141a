"""Requests end to end through the services: admission, placement by tier, approval,
provisioning on the simulator, deletion, isolation between departments, idempotency."""

from __future__ import annotations

from pathlib import Path

import pydantic
import pytest

from cloudctl import errors
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, provisioning, workloads
from cloudctl.services import quotas as quotas_service
from cloudctl.services import requests as requests_service

BIGDATA = identity.Principal(
    id="t:health",
    role="dept-admin",
    department="bigdata",
    department_path=("qingdao", "shinan", "bigdata"),
)
CIVIL = identity.Principal(
    id="t:civil",
    role="dept-user",
    department="shinan-civil",
    department_path=("qingdao", "shinan", "shinan-civil"),
)
SYSADMIN = identity.Principal(id="t:ops", role="sysadmin")
AUDITOR = identity.Principal(id="t:audit", role="auditor")


def submit(
    ctx: ctx_module.Context, principal: identity.Principal = BIGDATA, **fields: object
) -> requests_service.RequestPublic:
    body = requests_service.RequestCreate(**{"offering": "vm.small", "tier": "silver", **fields})  # type: ignore[arg-type]
    request, created = requests_service.submit(ctx, principal=principal, body=body)
    assert created
    return request


def held(ctx: ctx_module.Context, node: str, center: str) -> tuple[int, int]:
    view = quotas_service.show_quota(ctx, node, center=center)
    vcpu = next(item for item in view.centers[0].resources if item.resource == "vcpu")
    return vcpu.used, vcpu.reserved


def test_a_small_request_is_admitted_approved_and_provisioned(ctx: ctx_module.Context) -> None:
    request = submit(ctx, count=2, preferred_center="qd-b")
    assert request.state == "approved"
    assert [s.step for s in request.steps] == ["submitted", "policy-checked", "quota-reserved", "approved"]
    assert "approval-auto-small" in request.approval_policy_ids
    assert held(ctx, "bigdata", "qd-b") == (0, 4)
    assert held(ctx, "bigdata", "dz-dr") == (0, 4)  # silver copies to DR: failover headroom

    result = provisioning.reconcile(ctx, kind="request", object_id=request.id)
    assert result.done
    done = requests_service.get(ctx, principal=BIGDATA, request_id=request.id)
    assert done.state == "ready"
    assert [s.step for s in done.steps][-2:] == ["provisioning", "ready"]
    workload = workloads.get(ctx, principal=BIGDATA, workload_id=done.workload_id or "")
    primary = next(p for p in workload.placements if p.role == "primary")
    assert (primary.center, primary.state, len(primary.resources)) == ("qd-b", "ready", 2)
    assert held(ctx, "bigdata", "qd-b") == (4, 0)
    assert held(ctx, "bigdata", "dz-dr") == (0, 4)
    again = provisioning.reconcile(ctx, kind="request", object_id=request.id)
    assert again.done and "nothing to do" in again.message


def test_each_tier_places_where_it_promises(ctx: ctx_module.Context) -> None:
    roles = {}
    for tier in ("platinum", "gold", "silver", "bronze"):
        request = submit(ctx, tier=tier)
        workload = workloads.get(ctx, principal=BIGDATA, workload_id=request.workload_id or "")
        roles[tier] = sorted((p.role, p.center) for p in workload.placements)
    assert roles["platinum"] == [("active", "qd-a"), ("active", "qd-b"), ("dr", "dz-dr")]
    assert [r for r, _ in roles["gold"]] == ["dr", "primary", "standby"]
    assert {c for _, c in roles["gold"]} == {"qd-a", "qd-b", "dz-dr"}
    assert [r for r, _ in roles["silver"]] == ["dr", "primary"]
    assert [r for r, _ in roles["bronze"]] == ["dr", "primary"]


def test_a_large_request_waits_for_an_operator_who_may_reject_it(ctx: ctx_module.Context) -> None:
    request = submit(ctx, offering="vm.xlarge", count=3)
    assert request.state == "pending-approval"
    assert request.needs_approval
    assert "approval-size-threshold" in request.approval_policy_ids
    with pytest.raises(errors.PolicyDenied):
        requests_service.approve(ctx, principal=BIGDATA, request_id=request.id)
    rejected = requests_service.reject(ctx, principal=SYSADMIN, request_id=request.id, reason="use vm.large")
    assert (rejected.state, rejected.reasons[-1]) == ("rejected", "use vm.large")
    assert held(ctx, "bigdata", "qd-a") == (0, 0)
    with pytest.raises(errors.Conflict):
        requests_service.approve(ctx, principal=SYSADMIN, request_id=request.id)
    listed, _ = workloads.list_workloads(ctx, principal=SYSADMIN)  # never placed: not a workload
    assert [(w.id, w.state) for w in listed if w.id == request.workload_id] == []
    for state, reason in [("rejected", "never placed"), ("bogus", "not a workload state")]:
        with pytest.raises(errors.InvalidInput, match=reason) as refused:
            workloads.list_workloads(ctx, principal=SYSADMIN, state=state)
        assert refused.value.field == "state"


def test_an_approved_large_request_is_provisioned(ctx: ctx_module.Context) -> None:
    request = submit(ctx, offering="vm.large", count=5, tier="bronze")
    approved = requests_service.approve(ctx, principal=SYSADMIN, request_id=request.id)
    assert approved.state == "approved"
    assert provisioning.run_pending(ctx)[request.id].done
    assert requests_service.get(ctx, principal=SYSADMIN, request_id=request.id).state == "ready"


def test_a_request_over_quota_is_refused_naming_the_quota_and_nothing_is_kept(
    ctx: ctx_module.Context,
) -> None:
    with pytest.raises(errors.QuotaExceeded) as caught:
        submit(ctx, offering="vm.xlarge", count=7, tier="silver")
    assert caught.value.shortfalls[0].node == "bigdata"
    assert caught.value.shortfalls[0].resource == "vcpu"
    assert requests_service.list_requests(ctx, principal=BIGDATA)[0] == []
    assert held(ctx, "bigdata", "qd-a") == (0, 0)


def test_a_batch_is_admitted_whole_holding_what_each_would_alone(ctx: ctx_module.Context) -> None:
    one = requests_service.RequestCreate(
        offering="vm.small", tier="silver", name="alone", preferred_center="qd-a"
    )
    alone, _ = requests_service.submit(ctx, principal=BIGDATA, body=one)
    _used, held_by_one = held(ctx, "bigdata", "qd-a")
    bodies = [one.model_copy(update={"name": f"canary-{n}"}) for n in range(3)]
    admitted = requests_service.submit_many(ctx, principal=BIGDATA, bodies=bodies)
    assert [r.name for r in admitted] == ["canary-0", "canary-1", "canary-2"]
    assert {r.state for r in admitted} == {"approved"}
    assert len({r.workload_id for r in admitted}) == 3
    assert held(ctx, "bigdata", "qd-a") == (0, 4 * held_by_one)
    listed, _ = requests_service.list_requests(ctx, principal=BIGDATA)
    assert {r.id for r in listed} == {*(r.id for r in admitted), alone.id}


def test_a_batch_that_does_not_fit_is_refused_whole_and_audited_once(ctx: ctx_module.Context) -> None:
    from cloudctl.services import audit

    fits = requests_service.RequestCreate(offering="vm.small", tier="silver")
    too_big = requests_service.RequestCreate(offering="vm.xlarge", count=7, tier="silver")
    with pytest.raises(errors.QuotaExceeded) as caught:
        requests_service.submit_many(ctx, principal=BIGDATA, bodies=[fits, too_big])
    assert caught.value.shortfalls[0].node == "bigdata"
    assert requests_service.list_requests(ctx, principal=BIGDATA)[0] == []
    assert held(ctx, "bigdata", "qd-a") == (0, 0)
    records = audit.list_records(ctx, principal=AUDITOR)
    assert [(r.action, r.outcome, r.detail["requests"]) for r in records] == [
        ("request.create", "refused", 2)
    ]
    with pytest.raises(errors.InvalidInput) as bad:
        requests_service.submit_many(
            ctx, principal=BIGDATA, bodies=[fits, fits.model_copy(update={"preferred_center": "dz-dr"})]
        )
    assert bad.value.field == "preferred_center"
    assert requests_service.list_requests(ctx, principal=BIGDATA)[0] == []


def test_secret_data_never_goes_to_the_dr_center(ctx: ctx_module.Context) -> None:
    with pytest.raises(errors.PolicyDenied) as caught:
        submit(ctx, tier="silver", data_class="secret")
    assert "center dz-dr" in caught.value.reason
    assert caught.value.policy_ids
    with pytest.raises(errors.PolicyDenied):
        submit(ctx, tier="gold", data_class="secret")


def test_departments_see_only_their_own_requests_and_workloads(ctx: ctx_module.Context) -> None:
    request = submit(ctx)
    with pytest.raises(errors.NotFound):
        requests_service.get(ctx, principal=CIVIL, request_id=request.id)
    with pytest.raises(errors.NotFound):
        workloads.get(ctx, principal=CIVIL, workload_id=request.workload_id or "")
    with pytest.raises(errors.NotFound):
        workloads.delete(ctx, principal=CIVIL, workload_id=request.workload_id or "")
    assert requests_service.list_requests(ctx, principal=CIVIL)[0] == []
    assert [r.id for r in requests_service.list_requests(ctx, principal=BIGDATA)[0]] == [request.id]
    assert [r.id for r in requests_service.list_requests(ctx, principal=SYSADMIN)[0]] == [request.id]
    with pytest.raises(errors.NotFound):
        quotas_service.department_quota(ctx, principal=CIVIL, department="bigdata")


def test_deleting_a_workload_removes_resources_before_releasing_quota(ctx: ctx_module.Context) -> None:
    request = submit(ctx, count=2)
    provisioning.reconcile(ctx, kind="request", object_id=request.id)
    workload_id = request.workload_id or ""
    deleting = workloads.delete(ctx, principal=BIGDATA, workload_id=workload_id)
    assert deleting.state == "deleting"
    primary = next(p.center for p in deleting.placements if p.role == "primary")
    assert held(ctx, "bigdata", primary) == (4, 0)
    result = provisioning.run_pending(ctx)[workload_id]
    assert result.done
    gone = workloads.get(ctx, principal=BIGDATA, workload_id=workload_id)
    assert gone.state == "deleted"
    assert all(not p.resources for p in gone.placements)
    assert held(ctx, "bigdata", primary) == (0, 0)
    assert held(ctx, "bigdata", "dz-dr") == (0, 0)


def test_provisioning_waits_for_a_center_that_is_down_and_resumes(ctx: ctx_module.Context) -> None:
    from cloudctl.services import faults

    request = submit(ctx, preferred_center="qd-a")
    faults.inject(ctx, kind="center-down", center="qd-a")
    result = provisioning.reconcile(ctx, kind="request", object_id=request.id)
    assert not result.done and result.requeue_after_s
    assert requests_service.get(ctx, principal=BIGDATA, request_id=request.id).state == "provisioning"
    faults.clear(ctx)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    assert requests_service.get(ctx, principal=BIGDATA, request_id=request.id).state == "ready"


def test_the_same_idempotency_key_returns_the_same_request(ctx: ctx_module.Context) -> None:
    body = requests_service.RequestCreate(offering="vm.small", tier="silver")
    first, created = requests_service.submit(ctx, principal=BIGDATA, body=body, idempotency_key="k-1")
    second, created_again = requests_service.submit(ctx, principal=BIGDATA, body=body, idempotency_key="k-1")
    assert (created, created_again) == (True, False)
    assert first.id == second.id
    other = requests_service.RequestCreate(offering="vm.medium", tier="silver")
    with pytest.raises(errors.Conflict) as caught:
        requests_service.submit(ctx, principal=BIGDATA, body=other, idempotency_key="k-1")
    assert caught.value.field == "idempotency_key"
    assert len(requests_service.list_requests(ctx, principal=BIGDATA)[0]) == 1


def test_bad_input_names_the_field(ctx: ctx_module.Context) -> None:
    cases = {
        "offering": {"offering": "vm.gigantic"},
        "tier": {"tier": "diamond"},
        "preferred_center": {"preferred_center": "dz-dr"},
        "name": {"name": "Not A Slug"},
    }
    for field, fields in cases.items():
        with pytest.raises(errors.InvalidInput) as caught:
            submit(ctx, **fields)
        assert caught.value.field == field, field
    with pytest.raises(pydantic.ValidationError) as invalid:
        requests_service.RequestCreate(offering="vm.small", tier="silver", count=0)
    assert invalid.value.errors()[0]["loc"] == ("count",)
    # The count limit and the data classes are the topology's: admission checks them.
    with pytest.raises(errors.InvalidInput) as caught:
        submit(ctx, count=101)
    assert caught.value.one_line() == "count: must be between 1 and 100"
    with pytest.raises(errors.InvalidInput) as caught:
        submit(ctx, data_class="top-secret")
    assert caught.value.one_line() == (
        "data_class: unknown data class 'top-secret' (known: public, internal, sensitive, secret)"
    )
    assert requests_service.list_requests(ctx, principal=BIGDATA)[0] == []


def test_the_count_limit_is_the_topologys(ctx: ctx_module.Context) -> None:
    shipped = ctx.topology
    catalog = tuple(
        offering.model_copy(update={"max_count": 2}) if offering.name == "vm.large" else offering
        for offering in shipped.catalog
    )
    ctx.__dict__["topology"] = shipped.model_copy(
        update={"catalog_limits": topo.CatalogLimits(max_count=3), "catalog": catalog}
    )
    assert submit(ctx, count=3).count == 3
    with pytest.raises(errors.InvalidInput) as caught:
        submit(ctx, count=4)
    assert caught.value.one_line() == "count: must be between 1 and 3"
    with pytest.raises(errors.InvalidInput) as caught:
        submit(ctx, offering="vm.large", count=3)
    assert caught.value.one_line() == "count: must be between 1 and 2"
    assert len(requests_service.list_requests(ctx, principal=BIGDATA)[0]) == 1


def test_lists_page_with_a_cursor(ctx: ctx_module.Context) -> None:
    made = [submit(ctx, name=f"app-{n}").id for n in range(5)]
    page, cursor = requests_service.list_requests(ctx, principal=BIGDATA, limit=2)
    seen = [r.id for r in page]
    while cursor:
        page, cursor = requests_service.list_requests(ctx, principal=BIGDATA, limit=2, cursor=cursor)
        seen += [r.id for r in page]
    assert seen == sorted(made)  # one stable order, every request exactly once


def test_every_change_is_audited_and_the_chain_verifies(ctx: ctx_module.Context) -> None:
    from cloudctl.services import audit

    request = submit(ctx)
    with pytest.raises(errors.QuotaExceeded):
        submit(ctx, offering="vm.xlarge", count=7, tier="silver")
    requests_service.cancel(ctx, principal=BIGDATA, request_id=request.id)
    records = audit.list_records(ctx, principal=AUDITOR)
    assert [(r.action, r.outcome) for r in records] == [
        ("request.create", "success"),
        ("request.create", "refused"),
        ("request.cancel", "success"),
    ]
    assert audit.verify(ctx, principal=AUDITOR).ok
    with pytest.raises(errors.PolicyDenied):
        audit.list_records(ctx, principal=SYSADMIN)


def test_audit_export_and_retention_keep_the_chain_verifiable(
    ctx: ctx_module.Context, tmp_path: Path
) -> None:
    import json

    from cloudctl import clock as clocks
    from cloudctl.services import audit

    submit(ctx)
    submit(ctx)
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(181 * 86400)
    recent = submit(ctx)
    exported = audit.export(ctx, principal=AUDITOR, path=tmp_path / "all.jsonl")
    assert exported.records == 3
    lines = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3]
    archived = audit.apply_retention(ctx, archive_dir=tmp_path / "archive")
    assert (archived.records, archived.first_seq, archived.last_seq) == (2, 1, 2)
    assert (
        len((tmp_path / "archive").glob("*.jsonl").__next__().read_text(encoding="utf-8").splitlines()) == 2
    )
    remaining = audit.list_records(ctx, principal=AUDITOR)
    assert remaining[0].target_id == recent.id
    assert remaining[-1].action == "audit.retention"
    assert audit.verify(ctx, principal=AUDITOR).ok
    assert audit.apply_retention(ctx, archive_dir=tmp_path / "archive").records == 0
    with pytest.raises(errors.PolicyDenied):
        audit.export(ctx, principal=SYSADMIN, path=tmp_path / "nope.jsonl")


def test_a_center_that_keeps_failing_gets_its_circuit_opened_then_closed(ctx: ctx_module.Context) -> None:
    from cloudctl import clock as clocks
    from cloudctl.services import breaker, faults, status

    request = submit(ctx, preferred_center="qd-a")
    faults.inject(ctx, kind="api-error-rate", center="qd-a", rate=1.0)
    for _ in range(breaker.FAILURES_TO_OPEN):
        assert not provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    health = {c.name: c.health for c in status.overview(ctx).centers}
    assert health["qd-a"] == "unhealthy"
    result = provisioning.reconcile(ctx, kind="request", object_id=request.id)
    assert "circuit is open" in result.message  # failed fast: the center was not called
    faults.clear(ctx)
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(breaker.COOLDOWN_S + 1)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    assert {c.name: c.health for c in status.overview(ctx).centers}["qd-a"] == "up"
