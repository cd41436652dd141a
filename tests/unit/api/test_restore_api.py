"""``POST /v1/workloads/{id}/restore``: operators restore a workload to a point over HTTP; a
department may not; bad input is 422 naming the field and changes nothing."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from tests.support.bearer import token
from tests.unit.recovery.test_restore import attack_workload, dr_bytes, restored_volumes


def test_an_operator_restores_a_workload_to_the_point_before_an_attack(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    workload, _at_seq3, attack = attack_workload(ctx)
    path = f"/v1/workloads/{workload}/restore"
    at = clocks.isoformat(attack)
    operator = token(ctx, "sysadmin")

    refused = client.post(path, json={"at": at}, headers=token(ctx, "dept-admin", "hrss"))
    assert (refused.status_code, refused.headers["content-type"]) == (403, "application/problem+json")
    for body, field in [
        ({"at": "soon"}, "at"),
        ({"at": "2999-01-01T00:00:00Z"}, "at"),
        ({"at": at, "to_center": "qd-a"}, "to"),
        ({}, "at"),
    ]:
        bad = client.post(path, json=body, headers=operator)
        assert (bad.status_code, bad.json()["field"]) == (422, field), bad.text
    missing = client.post("/v1/workloads/wl-nosuch/restore", json={"at": at}, headers=operator)
    assert (missing.status_code, missing.json()["field"]) == (404, "workload")
    assert restored_volumes(ctx) == []

    plan = client.post(path, json={"at": at, "dry_run": True}, headers=operator)
    assert plan.status_code == 200, plan.text
    assert (plan.json()["point"], plan.json()["changes_lost"], plan.json()["dry_run"]) == (
        f"dz-dr/{workload}@3",
        1,
        True,
    )
    assert restored_volumes(ctx) == []

    done = client.post(path, json={"at": at}, headers=operator)
    assert done.status_code == 200, done.text
    answer = done.json()
    assert (answer["point"], answer["objects_rewound"], answer["objects_removed"]) == (
        f"dz-dr/{workload}@3",
        ["case/1"],
        ["README.encrypted", "case/4"],
    )
    assert [v["name"] for v in answer["volumes"]] == restored_volumes(ctx) == [f"rs-{workload}-0-3"]
    assert dr_bytes(ctx, workload, "case/1") == b"version two"


def test_a_failover_dry_run_at_a_time_names_each_workloads_point(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    workload, _at_seq3, attack = attack_workload(ctx)
    body = {
        "from_centers": ["qd-a"],
        "to_center": "dz-dr",
        "planned": False,
        "dry_run": True,
        "at": clocks.isoformat(attack),
    }
    plan = client.post("/v1/failover/runs", json=body, headers=token(ctx, "sysadmin"))
    assert plan.status_code == 202, plan.text
    points = [(s["workload_id"], s["point"]) for s in plan.json()["steps"] if s["action"] == "promote"]
    assert points == [
        (workload, {"id": f"dz-dr/{workload}@3", "seq": 3, "consistent_at": points[0][1]["consistent_at"]})
    ]
    both = client.post(
        "/v1/failover/runs", json={**body, "point": f"dz-dr/{workload}@3"}, headers=token(ctx, "sysadmin")
    )
    assert (both.status_code, both.json()["field"]) == (422, "point")
    unknown = client.post(
        "/v1/failover/runs",
        json={**body, "at": None, "point": f"dz-dr/{workload}@2"},
        headers=token(ctx, "sysadmin"),
    )
    assert (unknown.status_code, unknown.json()["field"]) == (404, "point")


def test_a_department_is_refused_a_restore_before_anything_is_looked_up(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    order = {"offering": "vm.small", "count": 1, "tier": "bronze"}
    foreign = client.post("/v1/requests", json=order, headers=token(ctx, "dept-admin", "samr")).json()
    at = {"at": "2026-01-01T00:00:00Z"}
    for role in ("dept-admin", "dept-user"):
        hrss = token(ctx, role, "hrss")
        answers = [
            client.post(f"/v1/workloads/{foreign['workload_id']}/restore", json=at, headers=hrss),
            client.post("/v1/workloads/wl-nosuch/restore", json=at, headers=hrss),
            client.post(f"/v1/workloads/{foreign['workload_id']}/restore", json={"at": "soon"}, headers=hrss),
        ]
        assert [a.status_code for a in answers] == [403, 403, 403], [a.text for a in answers]
        assert len({a.json()["detail"] for a in answers}) == 1
        assert foreign["workload_id"] not in answers[0].json()["detail"]


@pytest.mark.parametrize("seq", ["\u00b2", "\u0661", "-1", "1.0", ""])
def test_a_failover_to_a_point_whose_seq_is_no_ascii_number_is_422_and_starts_nothing(
    ctx: ctx_module.Context, client: TestClient, seq: str
) -> None:
    workload, _at_seq3, _attack = attack_workload(ctx)
    operator = token(ctx, "sysadmin")
    body = {
        "from_centers": ["qd-a"],
        "to_center": "dz-dr",
        "planned": False,
        "point": f"dz-dr/{workload}@{seq}",
    }
    refused = client.post("/v1/failover/runs", json=body, headers=operator)
    assert (refused.status_code, refused.json()["field"]) == (422, "point"), refused.text
    assert "is not a recovery point id" in refused.json()["detail"]
    assert client.get("/v1/failover/runs", headers=operator).json()["count"] == 0
