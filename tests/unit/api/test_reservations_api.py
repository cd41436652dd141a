"""``/v1/reservations``: quota an operator holds by hand, as a person through the API.

What is checked is the store's state afterwards (the quota tree's counters, the audit trail), not
only the answers: a refused call holds nothing.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.services import quotas as quotas_service
from tests.support.bearer import token

HOLD = {
    "node": "hrss-insurance",
    "center": "qd-a",
    "amounts": {"vcpu": 4, "ram_gb": 8},
    "purpose": "社保卡系统扩容",
}


def reserved(ctx: ctx_module.Context, node: str = "hrss-insurance", center: str = "qd-a") -> dict[str, int]:
    """What the node holds on ``center``, resource by resource, as the quota tree counts it."""
    quota = quotas_service.show_quota(ctx, node, center=center)
    return {item.resource: item.reserved for item in quota.centers[0].resources}


def live(ctx: ctx_module.Context) -> list[str]:
    return [item.id for item in quotas_service.list_reservations(ctx)]


def test_a_sysadmin_reserves_commits_and_releases(ctx: ctx_module.Context, client: TestClient) -> None:
    sysadmin = token(ctx, "sysadmin")
    made = client.post("/v1/reservations", json=HOLD, headers=sysadmin)
    assert made.status_code == 201, made.text
    held = made.json()
    assert (held["state"], held["node"], held["amounts"], held["purpose"]) == (
        "reserved",
        "hrss-insurance",
        {"vcpu": 4, "ram_gb": 8},
        "社保卡系统扩容",
    )
    assert reserved(ctx)["vcpu"] == 4
    assert reserved(ctx, "hrss")["vcpu"] == 4  # every ancestor holds it too

    listed = client.get("/v1/reservations", params={"node": "hrss-insurance"}, headers=sysadmin).json()
    assert (listed["count"], [item["id"] for item in listed["data"]]) == (1, [held["id"]])
    assert (
        client.get("/v1/reservations", params={"node": "hrss-employment"}, headers=sysadmin).json()["data"]
        == []
    )

    committed = client.post(f"/v1/reservations/{held['id']}/commit", headers=sysadmin)
    assert (committed.status_code, committed.json()["state"]) == (200, "committed")
    used = quotas_service.show_quota(ctx, "hrss-insurance", center="qd-a").centers[0].resources[0]
    assert (used.resource, used.used, used.reserved) == ("vcpu", 4, 0)

    released = client.post(f"/v1/reservations/{held['id']}/release", headers=sysadmin)
    assert (released.status_code, released.json()["state"]) == (200, "released")
    assert reserved(ctx) == dict.fromkeys(reserved(ctx), 0)
    assert live(ctx) == []
    everything = client.get("/v1/reservations", params={"all": "true"}, headers=sysadmin).json()
    assert [item["state"] for item in everything["data"]] == ["released"]


def test_a_reservation_over_an_ancestors_limit_is_409_and_holds_nothing(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    body = dict(HOLD, node="hrss-employment", amounts={"vcpu": 17})
    refused = client.post("/v1/reservations", json=body, headers=token(ctx, "sysadmin"))
    assert refused.status_code == 409
    assert refused.json()["field"] == "quota.vcpu"
    assert "hrss-employment has 16 of 16 available on center qd-a, 17 requested" in refused.json()["detail"]
    assert live(ctx) == []
    assert reserved(ctx, "hrss-employment")["vcpu"] == 0


@pytest.mark.parametrize(
    ("change", "status", "field"),
    [
        ({"amounts": {"gpu": 1}}, 422, "amounts"),
        ({"amounts": {"vcpu": -1}}, 422, "amounts.vcpu"),
        ({"amounts": {"vcpu": q.MAX_AMOUNT + 1}}, 422, "amounts.vcpu"),
        ({"amounts": {"vcpu": 1.5}}, 422, "amounts.vcpu"),
        ({"amounts": {"vcpu": "2"}}, 422, "amounts.vcpu"),
        ({"amounts": {}}, 422, "amounts"),
        ({"amounts": {"vcpu": 0}}, 422, "amounts"),
        ({"center": "all"}, 422, "center"),
        ({"center": "nowhere"}, 404, "center"),
        ({"node": "nosuch"}, 404, "node"),
        ({"node": "x" * 41}, 422, "node"),
        ({"purpose": "p" * 501}, 422, "purpose"),
        ({"extra": 1}, 422, "extra"),
    ],
)
def test_bad_input_names_the_field_and_holds_nothing(
    ctx: ctx_module.Context, client: TestClient, change: dict[str, Any], status: int, field: str
) -> None:
    refused = client.post("/v1/reservations", json=dict(HOLD, **change), headers=token(ctx, "sysadmin"))
    assert refused.status_code == status, refused.text
    assert refused.json()["field"] == field
    assert live(ctx) == []


def test_departments_see_their_own_subtree_and_change_nothing(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    held = client.post("/v1/reservations", json=HOLD, headers=token(ctx, "sysadmin")).json()
    bureau = token(ctx, "dept-admin", "hrss")
    other = token(ctx, "dept-admin", "psb")

    mine = client.get("/v1/reservations", params={"node": "hrss-insurance"}, headers=bureau)
    assert (mine.status_code, [item["id"] for item in mine.json()["data"]]) == (200, [held["id"]])
    theirs = client.get("/v1/reservations", params={"node": "hrss-insurance"}, headers=other)
    missing = client.get("/v1/reservations", params={"node": "nosuch"}, headers=other)
    assert (theirs.status_code, missing.status_code) == (404, 404)
    assert theirs.json()["detail"].replace("hrss-insurance", "X") == missing.json()["detail"].replace(
        "nosuch", "X"
    )
    own = client.get("/v1/reservations", headers=token(ctx, "dept-user", "hrss-insurance"))
    assert [item["id"] for item in own.json()["data"]] == [held["id"]]  # none named: its own department's
    assert client.get("/v1/reservations", headers=other).json()["data"] == []

    for role_token in (bureau, other, token(ctx, "auditor"), token(ctx, "secadmin")):
        assert client.post("/v1/reservations", json=HOLD, headers=role_token).status_code == 403
        for verb in ("commit", "release"):
            known = client.post(f"/v1/reservations/{held['id']}/{verb}", headers=role_token)
            unknown = client.post(f"/v1/reservations/{'0' * 32}/{verb}", headers=role_token)
            assert (known.status_code, unknown.status_code) == (403, 403)  # no hint of which ids exist
    assert live(ctx) == [held["id"]]
    assert reserved(ctx)["vcpu"] == 4
    assert client.get("/v1/reservations", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_an_unknown_reservation_is_404_and_a_long_id_422(ctx: ctx_module.Context, client: TestClient) -> None:
    sysadmin = token(ctx, "sysadmin")
    unknown = client.post(f"/v1/reservations/{'0' * 32}/commit", headers=sysadmin)
    assert unknown.status_code == 404
    long = client.post(f"/v1/reservations/{'0' * 65}/release", headers=sysadmin)
    assert (long.status_code, long.json()["field"]) == (422, "reservation_id")


def test_every_call_is_audited_refusals_too(ctx: ctx_module.Context, client: TestClient) -> None:
    held = client.post("/v1/reservations", json=HOLD, headers=token(ctx, "sysadmin")).json()
    client.post(f"/v1/reservations/{held['id']}/release", headers=token(ctx, "dept-admin", "hrss"))
    client.post(f"/v1/reservations/{held['id']}/release", headers=token(ctx, "sysadmin"))
    page = client.get("/v1/audit", headers=token(ctx, "auditor")).json()
    records = [r for r in page["data"] if r["action"].startswith("quota.")]
    assert sorted((r["action"], r["role"], r["outcome"]) for r in records) == [
        ("quota.release", "dept-admin", "denied"),
        ("quota.release", "sysadmin", "success"),
        ("quota.reserve", "sysadmin", "success"),
    ]
