"""The recovery API: protection status, failover and failback runs started, listed, shown and resumed."""

from __future__ import annotations

import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloudctl.model import states
from cloudctl.services import context as ctx_module
from cloudctl.services import faults, identity, provisioning
from cloudctl.services import requests as requests_service
from cloudctl.store import recovery as recovery_store
from cloudctl.store import schema
from tests.support.bearer import token

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)
SAMR = identity.Principal(
    id="t:samr", role="dept-admin", department="samr", department_path=("qingdao", "samr")
)
NOT_OPERATORS = (("dept-admin", "hrss"), ("dept-user", "hrss"), ("secadmin", None), ("auditor", None))


def ready_workload(ctx: ctx_module.Context, tier: str, principal: identity.Principal = HRSS) -> str:
    body = requests_service.RequestCreate(offering="vm.small", tier=tier, preferred_center="qd-a")
    request, _ = requests_service.submit(ctx, principal=principal, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    return request.workload_id or ""


def test_a_failover_and_its_failback_through_the_api(ctx: ctx_module.Context, client: TestClient) -> None:
    ops = token(ctx, "sysadmin")
    silver = ready_workload(ctx, "silver")
    faults.inject(ctx, kind="center-down", center="qd-a")
    bad = client.post("/v1/failover/runs", json={"from_centers": ["nosuch"], "planned": False}, headers=ops)
    assert bad.status_code == 422
    assert bad.json()["detail"].startswith("from: no center 'nosuch'")
    started = client.post("/v1/failover/runs", json={"from_centers": ["qd-a"], "planned": False}, headers=ops)
    assert started.status_code == 202
    run_id = started.json()["run_id"]
    assert [s["action"] for s in started.json()["steps"]] == ["promote", "switch-traffic", "reprotect"]
    shown = client.get(f"/v1/failover/runs/{run_id}", headers=ops).json()
    assert (shown["state"], shown["steps_done"]) == ("done", 3)
    assert shown["started_by"] not in ("", None)
    status = client.get("/v1/replication/status", params={"unprotected": True}, headers=ops).json()
    assert [(w["workload_id"], w["protection"]) for w in status["data"]] == [(silver, "unprotected")]

    refused = client.post("/v1/failback/runs", json={"to_center": "qd-a"}, headers=ops)
    assert refused.status_code == 422
    assert refused.json()["detail"] == "to: qd-a is still down; bring it back first"
    faults.clear(ctx)
    back = client.post("/v1/failback/runs", json={"to_center": "qd-a"}, headers=ops).json()
    runs = client.get("/v1/failover/runs", headers=ops).json()
    assert [(r["id"], r["kind"], r["state"]) for r in runs["data"]] == [
        (back["run_id"], "failback", "done"),
        (run_id, "failover", "done"),
    ]
    after = client.get("/v1/replication/status", params={"unprotected": True}, headers=ops).json()
    assert after["count"] == 0
    again = client.post("/v1/failback/runs", json={"to_center": "qd-a", "dry_run": True}, headers=ops).json()
    assert (again["run_id"], again["steps"]) == (None, [])
    assert client.post(f"/v1/failover/runs/{run_id}/resume", headers=ops).status_code == 409


def test_departments_neither_see_nor_start_recovery_runs(ctx: ctx_module.Context, client: TestClient) -> None:
    hrss = token(ctx, "dept-admin", "hrss")
    assert client.get("/v1/failover/runs", headers=hrss).status_code == 403
    assert client.get("/v1/replication/status", headers=hrss).status_code == 403
    denied = client.post("/v1/failover/runs", json={"from_centers": ["qd-a"], "planned": True}, headers=hrss)
    assert denied.status_code == 403


def audit_outcomes(ctx: ctx_module.Context, action: str) -> list[str]:
    table = schema.audit_records
    with ctx.read() as tx:
        found = tx.execute(sa.select(table.c.outcome).where(table.c.action == action).order_by(table.c.seq))
        return list(found.scalars())


def test_a_caller_who_may_not_fail_over_is_refused_before_any_name_is_looked_up(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    """The point's workload, its department and the department filter are the store's: a caller
    without ``failover.run`` gets the same 403 whatever they name, and no run is stored."""
    foreign = ready_workload(ctx, "silver", principal=SAMR)
    leave = {"from_centers": ["qd-a"], "planned": True}
    bodies = [
        {**leave, "point": f"dz-dr/{foreign}@1"},
        {**leave, "point": "dz-dr/wl-nosuch@1"},
        {**leave, "point": f"dz-dr/{foreign}@1", "department": "hrss"},
        {**leave, "department": "nosuch"},
        {**leave, "department": "samr"},
        {"from_centers": ["qd-a"], "planned": None, "department": "nosuch", "dry_run": True},
    ]
    for role, department in NOT_OPERATORS:
        headers = token(ctx, role, department)
        answers = [client.post("/v1/failover/runs", json=body, headers=headers) for body in bodies]
        assert [a.status_code for a in answers] == [403] * len(bodies), [a.text for a in answers]
        assert len({a.json()["detail"] for a in answers}) == 1
        assert not any(foreign in a.text or "samr" in a.text for a in answers)
    assert audit_outcomes(ctx, "failover.run") == ["denied"] * len(bodies) * len(NOT_OPERATORS)
    assert client.get("/v1/failover/runs", headers=token(ctx, "sysadmin")).json()["count"] == 0


def test_a_caller_who_may_not_resume_a_run_is_refused_before_the_run_is_read(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    """A run whose owner is gone is marked interrupted when read; a refused caller reads none: it
    cannot tell a run from a missing id, nor mark the run interrupted in its own name."""
    ready_workload(ctx, "silver")
    started = client.post(
        "/v1/failover/runs", json={"from_centers": ["qd-a"], "planned": True}, headers=token(ctx, "sysadmin")
    )
    run_id = started.json()["run_id"]
    with ctx.transaction() as tx:  # as if its process had died on another host mid-run
        recovery_store.update_run(tx, run_id, state=states.RunState.RUNNING)
        recovery_store.claim_run(tx, run_id, owner="elsewhere:1", alive_at=0.0)
    before = audit_outcomes(ctx, "failover.run")
    for role, department in NOT_OPERATORS:
        headers = token(ctx, role, department)
        answers = [
            client.post(f"/v1/failover/runs/{run_id}/resume", headers=headers),
            client.post("/v1/failover/runs/failover-nosuch/resume", headers=headers),
        ]
        assert [a.status_code for a in answers] == [403, 403], [a.text for a in answers]
        assert answers[0].json()["detail"] == answers[1].json()["detail"]
    assert audit_outcomes(ctx, "failover.resume") == ["denied"] * 2 * len(NOT_OPERATORS)
    assert audit_outcomes(ctx, "failover.run") == before
    with ctx.read() as tx:
        assert recovery_store.get_run(tx, run_id).state == states.RunState.RUNNING


def test_a_failover_dry_run_answers_each_servers_address_mapping(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    ops = token(ctx, "sysadmin")
    silver = ready_workload(ctx, "silver")
    answer = client.post(
        "/v1/failover/runs",
        json={"from_centers": ["qd-a"], "to_center": "dz-dr", "planned": True, "dry_run": True},
        headers=ops,
    )
    assert answer.status_code == 202
    assert answer.json()["run_id"] is None
    (promote,) = [s for s in answer.json()["steps"] if s["action"] == "promote"]
    (mapping,) = promote["addresses"]
    assert (mapping["server"], mapping["from_center"], mapping["network"], mapping["to_network"]) == (
        f"{silver}-0",
        "qd-a",
        "gov-apps",
        "gov-apps-dr",
    )
    assert mapping["new_address"] == mapping["old_address"].replace("10.16.", "10.80.", 1)
    assert mapping["kept"] is False
    assert next(s for s in answer.json()["steps"] if s["action"] == "reprotect")["addresses"] is None
    assert client.get("/v1/failover/runs", headers=ops).json()["count"] == 0
