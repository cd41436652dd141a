"""The HTTP API: authentication, problem+json errors, isolation, idempotency, pagination."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.services import identity
from tests.conftest import POLICIES, TOPOLOGY

OPS = identity.local_operator("secadmin")


def token(ctx: ctx_module.Context, role: str, department: str | None = None) -> dict[str, str]:
    issued = identity.create_token(ctx, principal=OPS, role=role, department=department)
    return {"Authorization": f"Bearer {issued.secret}"}


def test_probes_and_openapi_answer_without_a_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    spec = client.get("/openapi.json").json()
    assert "/v1/requests" in spec["paths"]


def test_metrics_are_for_the_scrape_token_and_the_operators_who_read_the_centers(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    """Every department's quota gauges are in /metrics: no department, nor anyone without a
    token, reads them; Prometheus' scrape token and the sysadmin do."""
    from cloudctl.services import scrape

    center_up = 'cloudctl_center_up{center="qd-a",role="local",site="qingdao"} 1.0'
    secret = scrape.token(ctx)
    assert scrape.token_file(ctx).stat().st_mode & 0o777 == 0o600
    scraped = client.get("/metrics", headers={"Authorization": f"Bearer {secret}"})
    assert scraped.status_code == 200 and center_up in scraped.text
    assert center_up in client.get("/metrics", headers=token(ctx, "sysadmin")).text

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": f"Bearer {secret[:-1]}x"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": secret}).status_code == 401
    for role, department in (("dept-admin", "hrss"), ("dept-user", "hrss"), ("secadmin", None)):
        refused = client.get("/metrics", headers=token(ctx, role, department))
        assert refused.status_code == 403, role
        assert "cloudctl_quota" not in refused.text


@pytest.mark.parametrize("fault", ["open to others", "empty", "missing"])
def test_an_unusable_scrape_token_file_lets_no_scrape_token_in_and_changes_nothing_else(
    ctx: ctx_module.Context, client: TestClient, fault: str
) -> None:
    """A token file open to other users, empty or gone accepts no scrape token; the operators
    still read /metrics, everyone else is refused as before, and no answer names the file."""
    from cloudctl.services import scrape

    secret = scrape.token(ctx)
    path = scrape.token_file(ctx)
    if fault == "open to others":
        path.chmod(0o644)
    elif fault == "empty":
        path.write_text("\n", encoding="utf-8")
    else:
        ctx.settings.metrics_token_file = path.with_name("elsewhere.token")
    center_up = 'cloudctl_center_up{center="qd-a",role="local",site="qingdao"}'

    assert center_up in client.get("/metrics", headers=token(ctx, "sysadmin")).text
    refused = [
        client.get("/metrics"),
        client.get("/metrics", headers={"Authorization": f"Bearer {secret}"}),
        client.get("/metrics", headers={"Authorization": "Bearer "}),
        client.get("/metrics", headers=token(ctx, "dept-admin", "hrss")),
    ]
    assert [answer.status_code for answer in refused] == [401, 401, 401, 403], [a.text for a in refused]
    assert not any(str(path.parent) in a.text or "cloudctl_" in a.text for a in refused)


def test_readyz_answers_503_until_the_store_is_initialised(tmp_path: Path) -> None:
    settings = settings_module.Settings(home=tmp_path, topology=TOPOLOGY, policies=POLICIES)
    empty = ctx_module.Context(settings=settings, clock=clocks.ManualClock(start=0))
    with TestClient(api_app.create_app(context=empty)) as fresh:
        answer = fresh.get("/readyz")
        assert (answer.status_code, answer.headers["retry-after"]) == (503, "5")
        assert "cloudctl init" in answer.json()["detail"]
        assert fresh.get("/healthz").status_code == 200  # alive, only not ready
    empty.close()


def test_a_missing_or_wrong_token_is_401_problem_json_and_audited(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    response = client.get("/v1/catalog")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["field"] == "authorization"
    wrong = client.get("/v1/catalog", headers={"Authorization": f"Bearer cct_{'0' * 16}.{'x' * 43}"})
    assert (wrong.status_code, wrong.json()["detail"]) == (401, "authorization: unknown token")
    auditor = token(ctx, "auditor")
    records = client.get("/v1/audit", params={"action": "auth.authenticate"}, headers=auditor).json()["data"]
    assert [r["outcome"] for r in records] == ["denied", "denied"]


def test_repeated_failures_throttle_the_source(client: TestClient) -> None:
    for _ in range(4):  # the fifth failure throttles the source
        assert client.get("/v1/catalog", headers={"Authorization": "Bearer cct_x.y"}).status_code == 401
    locked = client.get("/v1/catalog", headers={"Authorization": "Bearer cct_x.y"})
    assert locked.status_code == 429
    assert locked.headers["retry-after"] == "900"


def test_a_revoked_token_no_longer_works(ctx: ctx_module.Context, client: TestClient) -> None:
    issued = identity.create_token(ctx, principal=OPS, role="dept-user", department="hrss")
    headers = {"Authorization": f"Bearer {issued.secret}"}
    assert client.get("/v1/catalog", headers=headers).status_code == 200
    identity.revoke_token(ctx, principal=OPS, token_id=issued.token.id)
    assert client.get("/v1/catalog", headers=headers).json()["detail"] == "authorization: revoked token"


def test_a_department_orders_and_follows_its_request(ctx: ctx_module.Context, client: TestClient) -> None:
    hrss = token(ctx, "dept-admin", "hrss")
    catalog = client.get("/v1/catalog", headers=hrss).json()
    assert {"vm.small", "bucket.100g"} <= {o["name"] for o in catalog["offerings"]}
    created = client.post(
        "/v1/requests",
        json={"offering": "vm.medium", "count": 2, "tier": "gold", "name": "social-insurance-portal"},
        headers={**hrss, "Idempotency-Key": "order-1", "X-Request-ID": "trace-42"},
    )
    assert created.status_code == 201, created.text
    assert created.headers["x-request-id"] == "trace-42"
    request = created.json()
    assert created.headers["location"] == f"/v1/requests/{request['id']}"
    assert request["state"] == "approved"
    replay = client.post(
        "/v1/requests",
        json={"offering": "vm.medium", "count": 2, "tier": "gold", "name": "social-insurance-portal"},
        headers={**hrss, "Idempotency-Key": "order-1"},
    )
    assert (replay.status_code, replay.json()["id"]) == (200, request["id"])
    shown = client.get(f"/v1/requests/{request['id']}", headers=hrss).json()
    assert [s["step"] for s in shown["steps"]] == [
        "submitted",
        "policy-checked",
        "quota-reserved",
        "approved",
    ]
    workload = client.get(f"/v1/workloads/{request['workload_id']}", headers=hrss).json()
    assert {p["role"] for p in workload["placements"]} == {"primary", "standby", "dr"}
    assert workload["protection"]["gbt20988_level"] == 6
    quota = client.get("/v1/quota", params={"center": "dz-dr"}, headers=hrss).json()
    vcpu = next(r for r in quota["centers"][0]["resources"] if r["resource"] == "vcpu")
    assert vcpu["reserved"] == 8
    auditor = token(ctx, "auditor")
    created_record = client.get("/v1/audit", params={"action": "request.create"}, headers=auditor).json()[
        "data"
    ][0]
    assert created_record["request_id"] == "trace-42"


def test_another_department_gets_404_never_the_data(ctx: ctx_module.Context, client: TestClient) -> None:
    hrss = token(ctx, "dept-admin", "hrss")
    psb = token(ctx, "dept-admin", "psb")
    request = client.post(
        "/v1/requests", json={"offering": "vm.small", "tier": "silver"}, headers=hrss
    ).json()
    for path in (f"/v1/requests/{request['id']}", f"/v1/workloads/{request['workload_id']}"):
        response = client.get(path, headers=psb)
        assert response.status_code == 404
        assert "hrss" not in response.text
    assert client.delete(f"/v1/workloads/{request['workload_id']}", headers=psb).status_code == 404
    assert client.get("/v1/quota", params={"department": "hrss"}, headers=psb).status_code == 404
    assert client.get("/v1/requests", headers=psb).json() == {"data": [], "count": 0, "next_cursor": None}


def test_quota_refusal_is_409_naming_the_quota(ctx: ctx_module.Context, client: TestClient) -> None:
    employment = token(ctx, "dept-user", "hrss-employment")
    response = client.post(
        "/v1/requests", json={"offering": "vm.xlarge", "count": 2, "tier": "silver"}, headers=employment
    )
    assert response.status_code == 409
    body = response.json()
    assert body["field"] == "quota.vcpu"
    assert body["shortfalls"][0] == {
        "node": "hrss-employment",
        "center": body["shortfalls"][0]["center"],
        "resource": "vcpu",
        "limit": 16,
        "in_use": 0,
        "requested": 32,
    }


def test_bad_input_is_422_naming_the_field(ctx: ctx_module.Context, client: TestClient) -> None:
    hrss = token(ctx, "dept-admin", "hrss")
    missing = client.post("/v1/requests", json={"count": 1, "tier": "gold"}, headers=hrss)
    assert (missing.status_code, missing.json()["field"]) == (422, "offering")
    unknown = client.post("/v1/requests", json={"offering": "vm.small", "tier": "diamond"}, headers=hrss)
    assert (unknown.status_code, unknown.json()["field"]) == (404, "tier")
    paged = client.get("/v1/requests", params={"limit": 0}, headers=hrss)
    assert (paged.status_code, paged.json()["field"]) == (422, "limit")
    base = {"offering": "vm.small", "tier": "silver"}
    too_many = client.post("/v1/requests", json={**base, "count": 101}, headers=hrss)
    assert (too_many.status_code, too_many.json()["detail"]) == (422, "count: must be between 1 and 100")
    unknown_class = client.post("/v1/requests", json={**base, "data_class": "top-secret"}, headers=hrss)
    assert (unknown_class.status_code, unknown_class.json()["field"]) == (422, "data_class")
    assert client.get("/v1/requests", headers=hrss).json()["count"] == 0


def test_the_catalog_and_the_schema_show_the_topologys_classes_and_limit(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    catalog = client.get("/v1/catalog", headers=token(ctx, "dept-admin", "hrss")).json()
    assert catalog["data_classes"] == list(ctx.topology.data_classes)
    assert {offering["max_count"] for offering in catalog["offerings"]} == {100}
    body = client.get("/openapi.json").json()["components"]["schemas"]["RequestCreateBody"]["properties"]
    assert body["data_class"]["enum"] == ["public", "internal", "sensitive", "secret"]
    assert body["count"]["maximum"] == 100


def test_separation_of_powers(ctx: ctx_module.Context, client: TestClient) -> None:
    sysadmin = token(ctx, "sysadmin")
    auditor = token(ctx, "auditor")
    hrss = token(ctx, "dept-admin", "hrss")
    big = client.post(
        "/v1/requests", json={"offering": "vm.large", "count": 5, "tier": "silver"}, headers=hrss
    ).json()
    assert big["state"] == "pending-approval"
    denied = client.post(f"/v1/requests/{big['id']}/approve", headers=auditor)
    assert denied.status_code == 403 and denied.json()["policy_ids"] is not None
    assert client.get("/v1/audit", headers=sysadmin).status_code == 403
    refused_export = client.get("/v1/audit/export", headers=sysadmin)  # refused before it streams
    assert (refused_export.status_code, refused_export.json()["field"]) == (403, "audit.read")
    export = client.get("/v1/audit/export", headers=auditor)
    assert export.status_code == 200 and export.text.count("\n") >= 1
    approved = client.post(f"/v1/requests/{big['id']}/approve", headers=sysadmin)
    assert approved.json()["state"] == "approved"
    assert client.get("/v1/audit/verify", headers=auditor).json()["ok"] is True


def test_deleting_a_workload_is_accepted_and_finishes_in_the_reconciler(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    from cloudctl.services import provisioning

    hrss = token(ctx, "dept-admin", "hrss")
    request = client.post(
        "/v1/requests", json={"offering": "bucket.100g", "tier": "bronze"}, headers=hrss
    ).json()
    provisioning.run_pending(ctx)
    workload = client.get(f"/v1/workloads/{request['workload_id']}", headers=hrss).json()
    assert workload["state"] == "ready"
    deleting = client.delete(f"/v1/workloads/{request['workload_id']}", headers=hrss)
    assert (deleting.status_code, deleting.json()["state"]) == (202, "deleting")
    provisioning.run_pending(ctx)
    assert client.get(f"/v1/workloads/{request['workload_id']}", headers=hrss).json()["state"] == "deleted"


@pytest.mark.parametrize("value", [2**53, 2**63, 10**30])
def test_a_limit_beyond_what_the_store_can_sum_is_422_naming_it_and_changes_nothing(
    ctx: ctx_module.Context, client: TestClient, value: int
) -> None:
    from cloudctl.model import quotas as q
    from cloudctl.services import quotas as quotas_service

    before = quotas_service.show_quota(ctx, "hrss", center="qd-a")
    answer = client.put(
        "/v1/quota/hrss", json={"center": "qd-a", "limits": {"vcpu": value}}, headers=token(ctx, "sysadmin")
    )

    assert answer.status_code == 422 and answer.json()["field"] == "limits.vcpu", answer.text
    assert quotas_service.show_quota(ctx, "hrss", center="qd-a") == before
    with pytest.raises(errors.InvalidInput, match=f"at most {q.MAX_AMOUNT}") as refused:  # the console's path
        quotas_service.set_quota(ctx, "hrss", center="qd-a", limits={"vcpu": value})
    assert refused.value.field == "limits.vcpu"
    with pytest.raises(errors.InvalidInput) as held:
        quotas_service.reserve(ctx, "hrss", center="qd-a", amounts={"vcpu": value})
    assert held.value.field == "amounts.vcpu"
    assert quotas_service.show_quota(ctx, "hrss", center="qd-a") == before
