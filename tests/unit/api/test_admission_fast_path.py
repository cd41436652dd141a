"""``POST /v1/requests`` answers the same whether ``AdmissionFastPath`` or the route answers it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.services import identity

OPS = identity.local_operator("secadmin")
ROUTE_ONLY = "application/json; charset=utf-8"
"""A content type the route reads as JSON and the fast path leaves to it."""


@pytest.fixture
def fast_answers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The orders the fast path answered (their bodies)."""
    taken: list[Any] = []
    admit = api_app.AdmissionFastPath._admit

    async def counted(self: Any, *args: Any) -> None:
        taken.append(args[3])
        await admit(self, *args)

    monkeypatch.setattr(api_app.AdmissionFastPath, "_admit", counted)
    return taken


def department(ctx: ctx_module.Context, client: TestClient, node: str) -> dict[str, str]:
    """A department's token, already in the token cache (a first call read it)."""
    issued = identity.create_token(ctx, principal=OPS, role="dept-user", department=node)
    headers = {"Authorization": f"Bearer {issued.secret}"}
    assert client.get("/v1/catalog", headers=headers).status_code == 200
    return headers


def order(client: TestClient, body: dict[str, Any], headers: dict[str, str], *, route: bool = False) -> Any:
    content_type = ROUTE_ONLY if route else "application/json"
    return client.post(
        "/v1/requests", content=json.dumps(body), headers={**headers, "Content-Type": content_type}
    )


def test_an_admitted_order_answers_the_same_on_both_paths(
    ctx: ctx_module.Context, client: TestClient, fast_answers: list[Any]
) -> None:
    hrss = department(ctx, client, "hrss")
    body = {"offering": "vm.small", "count": 1, "tier": "gold"}
    fast = order(client, {**body, "name": "fast"}, {**hrss, "Idempotency-Key": "k-fast"})
    routed = order(client, {**body, "name": "routed"}, {**hrss, "Idempotency-Key": "k-routed"}, route=True)
    assert len(fast_answers) == 1
    assert (fast.status_code, routed.status_code) == (201, 201)
    for answer in (fast, routed):
        assert answer.headers["content-type"] == "application/json"
        assert answer.headers["location"] == f"/v1/requests/{answer.json()['id']}"
    same = ("state", "steps", "needs_approval", "offering", "tier", "department", "created_by")
    assert {k: fast.json()[k] for k in same} == {k: routed.json()[k] for k in same}
    assert fast.json().keys() == routed.json().keys()
    replay = order(client, {**body, "name": "fast"}, {**hrss, "Idempotency-Key": "k-fast"})
    assert (replay.status_code, replay.json()["id"]) == (200, fast.json()["id"])
    assert client.get(fast.headers["location"], headers=hrss).json() == fast.json()


def test_a_refusal_answers_the_same_on_both_paths_and_is_audited_alike(
    ctx: ctx_module.Context, client: TestClient, fast_answers: list[Any]
) -> None:
    employment = department(ctx, client, "hrss-employment")
    auditor = {"Authorization": f"Bearer {identity.create_token(ctx, principal=OPS, role='auditor').secret}"}

    def audited() -> list[tuple[str, str]]:
        records = client.get("/v1/audit", params={"action": "request.create"}, headers=auditor).json()["data"]
        return [(r["outcome"], r["detail"].get("reason", "")) for r in records]

    too_big = {"offering": "vm.xlarge", "count": 2, "tier": "silver"}
    unknown = {"offering": "vm.nonesuch", "tier": "silver"}
    for body, status in ((too_big, 409), (unknown, 404)):
        before = audited()
        fast = order(client, body, employment)
        after_fast = audited()
        routed = order(client, body, employment, route=True)
        after_routed = audited()
        assert (fast.status_code, routed.status_code) == (status, status)
        assert fast.headers["content-type"] == routed.headers["content-type"] == "application/problem+json"
        assert fast.json() == routed.json()
        assert after_fast[len(before) :] == after_routed[len(after_fast) :]
    assert len(fast_answers) == 2
    assert len(audited()) == 4  # one record per refusal, on either path


def test_what_the_fast_path_leaves_is_answered_by_the_route(
    ctx: ctx_module.Context, client: TestClient, fast_answers: list[Any]
) -> None:
    hrss = department(ctx, client, "hrss")
    loose = order(client, {"offering": "vm.small", "count": "2", "tier": "gold"}, hrss)
    assert (loose.status_code, loose.json()["field"]) == (422, "count")
    extra = order(client, {"offering": "vm.small", "tier": "gold", "colour": "red"}, hrss)
    assert (extra.status_code, extra.json()["field"]) == (422, "colour")
    broken = client.post("/v1/requests", content=b"{", headers={**hrss, "Content-Type": "application/json"})
    assert broken.status_code == 422
    long_key = order(client, {"offering": "vm.small", "tier": "gold"}, {**hrss, "Idempotency-Key": "k" * 201})
    assert long_key.status_code == 422
    anonymous = order(client, {"offering": "vm.small", "tier": "gold"}, {})
    assert (anonymous.status_code, anonymous.json()["field"]) == (401, "authorization")
    fresh = identity.create_token(ctx, principal=OPS, role="dept-user", department="hrss")
    not_cached = {"Authorization": f"Bearer {fresh.secret}"}
    assert order(client, {"offering": "vm.small", "tier": "gold"}, not_cached).status_code == 201
    assert fast_answers == []
    assert order(client, {"offering": "vm.small", "tier": "gold"}, not_cached).status_code == 201
    assert len(fast_answers) == 1  # the route's authentication put the token in the cache
