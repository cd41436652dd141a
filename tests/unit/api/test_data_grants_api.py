"""Cross-department data grants over the API: publish, request, approve (the provider, then the
big-data bureau for sensitive data), enforcement in the simulator's object storage, expiry by the
periodic pass, revocation, the audit trail, bad input and hidden ids."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, housekeeping, identity, observability, provisioning
from cloudctl.store import schema

OPS = identity.local_operator("secadmin")
PROVIDER = "hrss-insurance"
CONSUMER = "civil-assistance"


def bearer(ctx: ctx_module.Context, role: str, department: str | None = None) -> dict[str, str]:
    issued = identity.create_token(ctx, principal=OPS, role=role, department=department)
    return {"Authorization": f"Bearer {issued.secret}"}


def later(ctx: ctx_module.Context, days: float) -> str:
    return clocks.isoformat(ctx.clock.now() + days * 86400)


def bucket_workload(ctx: ctx_module.Context, client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    request = client.post("/v1/requests", json={"offering": "bucket.100g", "tier": "bronze"}, headers=headers)
    assert request.status_code == 201, request.text
    provisioning.run_pending(ctx)
    workload = client.get(f"/v1/workloads/{request.json()['workload_id']}", headers=headers).json()
    assert workload["state"] == "ready"
    return workload


def audit_actions(ctx: ctx_module.Context, target_id: str) -> list[tuple[str, str]]:
    table = schema.audit_records
    with ctx.read() as tx:
        rows = tx.execute(sa.select(table).where(table.c.target_id == target_id).order_by(table.c.seq))
        return [(row.action, row.outcome) for row in rows]


def test_a_sensitive_prefix_is_shared_after_both_approvals_and_withdrawn_at_expiry(
    ctx: ctx_module.Context, client: TestClient, clock: clocks.ManualClock
) -> None:
    provider = bearer(ctx, "dept-admin", PROVIDER)
    consumer = bearer(ctx, "dept-user", CONSUMER)
    bureau = bearer(ctx, "dept-admin", "bigdata")
    workload = bucket_workload(ctx, client, provider)
    published = client.post(
        "/v1/data/items",
        json={
            "id": "household-contributions",
            "kind": "bucket-prefix",
            "workload_id": workload["id"],
            "prefix": "households/2026",
            "data_class": "sensitive",
            "description": "社保缴费记录 per household",
        },
        headers=provider,
    )
    assert published.status_code == 201, published.text
    assert published.json()["prefix"] == "households/2026/"

    asked = client.post(
        "/v1/data/grants",
        json={
            "item_id": "household-contributions",
            "purpose": "social-assistance",
            "expires_at": later(ctx, 30),
        },
        headers=consumer,
    )
    assert asked.status_code == 201, asked.text
    grant = asked.json()
    assert (grant["state"], grant["needs_bureau"], grant["consumer"]) == ("requested", True, CONSUMER)

    first = client.post(f"/v1/data/grants/{grant['id']}/approve", headers=provider).json()
    assert (first["state"], first["provider_approved_by"] is not None) == ("requested", True)
    second = client.post(f"/v1/data/grants/{grant['id']}/approve", headers=bureau).json()
    assert second["state"] == "active"
    bucket = next(r["id"] for p in workload["placements"] for r in p["resources"] if r["kind"] == "bucket")
    center = next(p["center"] for p in workload["placements"] if p["resources"])
    assert second["enforced_in"] == [{"center": center, "bucket": bucket}]
    storage = drivers.center_drivers(ctx, center).object_storage
    held = storage.list_prefix_grants(bucket)
    assert [(g.grant_id, g.prefix, g.consumer) for g in held] == [(grant["id"], "households/2026/", CONSUMER)]

    used = client.post(f"/v1/data/grants/{grant['id']}/use", headers=consumer)
    assert used.status_code == 200, used.text
    exposition = observability.exposition(ctx).decode()
    assert 'cloudctl_data_grants_active{data_class="sensitive"} 1.0' in exposition
    assert 'cloudctl_data_items_shared{data_class="sensitive"} 1.0' in exposition

    clock.advance(31 * 86400)
    housekeeping.run_once(ctx, "data-grant-expiry")
    ended = client.get(f"/v1/data/grants/{grant['id']}", headers=consumer).json()
    assert (ended["state"], ended["reason"], ended["enforced_in"]) == ("expired", "expired", [])
    assert storage.list_prefix_grants(bucket) == []
    housekeeping.run_once(ctx, "data-grant-expiry")  # a second pass finds nothing to do
    assert audit_actions(ctx, grant["id"]) == [
        ("data.grant.request", "success"),
        ("data.grant.approve", "success"),
        ("data.grant.bureau_approve", "success"),
        ("data.grant.use", "success"),
        ("data.grant.expire", "success"),
    ]


def test_an_internal_dataset_needs_only_the_provider_and_is_revoked_by_the_consumer(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    provider = bearer(ctx, "dept-admin", "samr")
    consumer = bearer(ctx, "dept-admin", "approval")
    client.post(
        "/v1/data/items",
        json={
            "id": "enterprise-licences",
            "kind": "dataset",
            "dataset": "licences/2026",
            "data_class": "internal",
            "description": "营业执照 of 460,000 legal persons",
        },
        headers=provider,
    ).raise_for_status()
    grant = client.post(
        "/v1/data/grants",
        json={
            "item_id": "enterprise-licences",
            "purpose": "license-verification",
            "expires_at": later(ctx, 90),
        },
        headers=consumer,
    ).json()
    assert grant["needs_bureau"] is False
    active = client.post(f"/v1/data/grants/{grant['id']}/approve", headers=provider).json()
    assert (active["state"], active["enforced_in"]) == ("active", [])
    revoked = client.post(
        f"/v1/data/grants/{grant['id']}/revoke", json={"reason": "review done"}, headers=consumer
    ).json()
    assert (revoked["state"], revoked["reason"]) == ("revoked", "review done")
    again = client.post(f"/v1/data/grants/{grant['id']}/revoke", json={}, headers=consumer).json()
    assert again["reason"] == "review done"
    assert client.post(f"/v1/data/grants/{grant['id']}/use", headers=consumer).status_code == 409


def test_an_activation_a_backend_failure_interrupted_is_finished_by_the_periodic_pass(
    ctx: ctx_module.Context, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = bearer(ctx, "dept-admin", PROVIDER)
    consumer = bearer(ctx, "dept-user", CONSUMER)
    workload = bucket_workload(ctx, client, provider)
    client.post(
        "/v1/data/items",
        json={
            "id": "pension-payments",
            "kind": "bucket-prefix",
            "workload_id": workload["id"],
            "prefix": "payments",
            "data_class": "internal",
            "description": "养老金发放记录",
        },
        headers=provider,
    ).raise_for_status()
    grant = client.post(
        "/v1/data/grants",
        json={"item_id": "pension-payments", "purpose": "statistics", "expires_at": later(ctx, 30)},
        headers=consumer,
    ).json()
    center = next(p["center"] for p in workload["placements"] if p["resources"])
    storage = drivers.center_drivers(ctx, center).object_storage
    bucket = next(r["id"] for p in workload["placements"] for r in p["resources"] if r["kind"] == "bucket")

    def unreachable(*_args: Any, **_kwargs: Any) -> None:
        raise errors.BackendUnavailable("object storage did not answer")

    with monkeypatch.context() as patched:
        patched.setattr(type(storage._inner), "grant_prefix_access", unreachable)
        failed = client.post(f"/v1/data/grants/{grant['id']}/approve", headers=provider)
    assert failed.status_code == 503
    waiting = client.get(f"/v1/data/grants/{grant['id']}", headers=consumer).json()
    assert (waiting["state"], waiting["provider_approved_by"] is not None) == ("requested", True)
    assert storage.list_prefix_grants(bucket) == []

    housekeeping.run_once(ctx, "data-grant-expiry")  # the backend answers again
    active = client.get(f"/v1/data/grants/{grant['id']}", headers=consumer).json()
    assert (active["state"], active["enforced_in"]) == ("active", [{"center": center, "bucket": bucket}])
    assert [g.grant_id for g in storage.list_prefix_grants(bucket)] == [grant["id"]]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"purpose": "", "expires_at": "+30"}, 422, "purpose"),
        ({"purpose": "statistics", "expires_at": "-1"}, 422, "expires_at"),
        ({"purpose": "statistics", "expires_at": "next year"}, 422, "expires_at"),
        ({"item_id": "no-such-item", "purpose": "statistics", "expires_at": "+30"}, 404, "item"),
        ({"consumer": PROVIDER, "purpose": "statistics", "expires_at": "+30"}, 422, "item"),
        ({"purpose": "marketing", "expires_at": "+30"}, 403, "data.grant.request"),
        (
            {"purpose": "statistics", "expires_at": "+30", "consumer_data_class": "public"},
            403,
            "data.grant.request",
        ),
    ],
)
def test_a_bad_grant_request_names_the_field_and_changes_nothing(
    ctx: ctx_module.Context, client: TestClient, body: dict[str, Any], status: int, field: str
) -> None:
    provider = bearer(ctx, "dept-admin", PROVIDER)
    client.post(
        "/v1/data/items",
        json={
            "id": "pension-rolls",
            "kind": "dataset",
            "dataset": "pensions",
            "data_class": "internal",
            "description": "养老金发放名册",
        },
        headers=provider,
    ).raise_for_status()
    sent = {"item_id": "pension-rolls", **body}
    if sent["expires_at"].lstrip("+-").isdigit():
        sent["expires_at"] = later(ctx, float(sent["expires_at"]))
    answer = client.post(
        "/v1/data/grants",
        json=sent,
        headers=provider if "consumer" in body else bearer(ctx, "dept-admin", CONSUMER),
    )
    assert answer.status_code == status, answer.text
    problem = answer.json()
    assert field in (problem.get("field"), problem.get("action")) or field in problem["detail"], problem
    assert "\n" not in problem["detail"]
    with ctx.read() as tx:
        assert tx.execute(sa.select(sa.func.count()).select_from(schema.data_grants)).scalar() == 0


def test_hidden_items_and_grants_answer_404_like_missing_ones(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    provider = bearer(ctx, "dept-admin", "psb-household")
    consumer = bearer(ctx, "dept-admin", CONSUMER)
    stranger = bearer(ctx, "dept-admin", "education")
    for item_id, data_class in (("household-register", "secret"), ("household-counts", "internal")):
        client.post(
            "/v1/data/items",
            json={
                "id": item_id,
                "kind": "dataset",
                "dataset": item_id,
                "data_class": data_class,
                "description": "户籍",
            },
            headers=provider,
        ).raise_for_status()
    grant = client.post(
        "/v1/data/grants",
        json={"item_id": "household-counts", "purpose": "statistics", "expires_at": later(ctx, 10)},
        headers=consumer,
    ).json()

    def same(path: str, hidden: str, missing: str, method: str = "GET") -> None:
        one = client.request(method, path.format(hidden), headers=stranger)
        two = client.request(method, path.format(missing), headers=stranger)
        assert one.status_code == two.status_code == 404, (one.text, two.text)
        assert one.json()["detail"].replace(hidden, "ID") == two.json()["detail"].replace(missing, "ID")

    same("/v1/data/items/{}", "household-register", "no-such-item")
    same("/v1/data/grants/{}", grant["id"], "grant-nosuch")
    same("/v1/data/grants/{}/approve", grant["id"], "grant-nosuch", "POST")
    listed = client.get("/v1/data/items", headers=stranger).json()["data"]
    assert [item["id"] for item in listed] == ["household-counts"]
    assert client.get("/v1/data/grants", headers=stranger).json()["count"] == 0
    refused = client.post(f"/v1/data/grants/{grant['id']}/approve", headers=consumer)
    assert refused.status_code == 403  # the consumer sees its grant but does not approve it
