"""Every write leaves exactly one audit record, on the API and on the command line, refused or not.

Each record is read from the raw table and must name the principal, the source address, the
request id and, for a refusal, the reason.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from cloudctl import errors
from cloudctl.api import app as api_app
from cloudctl.api import problems
from cloudctl.cli import main
from cloudctl.services import context as ctx_module
from cloudctl.services import faults, identity, recovery
from cloudctl.services import quotas as quotas_service
from cloudctl.store import schema
from tests.conftest import POLICIES, TOPOLOGY
from tests.support import operators

OPS = identity.local_operator("secadmin")


@pytest.fixture
def client(ctx: ctx_module.Context) -> Iterator[TestClient]:
    with TestClient(api_app.create_app(context=ctx)) as test_client:
        yield test_client


def bearer(ctx: ctx_module.Context, role: str, department: str | None = None) -> dict[str, str]:
    issued = identity.create_token(ctx, principal=OPS, role=role, department=department)
    return {"Authorization": f"Bearer {issued.secret}"}


def records_of(ctx: ctx_module.Context, request_id: str) -> list[dict[str, Any]]:
    table = schema.audit_records
    with ctx.read() as tx:
        rows = tx.execute(sa.select(table).where(table.c.request_id == request_id).order_by(table.c.seq))
        return [dict(row._mapping) for row in rows]


WRITE_CASES = [
    # (route name, method, path, who, body, status, action, outcome)
    (
        "create_request",
        "POST",
        "/v1/requests",
        "hrss",
        {"offering": "vm.small", "tier": "bronze"},
        201,
        "request.create",
        "success",
    ),
    (
        "create_request",
        "POST",
        "/v1/requests",
        "hrss",
        {"offering": "vm.small", "tier": "nosuch"},
        404,
        "request.create",
        "refused",
    ),
    (
        "create_request",
        "POST",
        "/v1/requests",
        "hrss",
        {"offering": "vm.small", "count": "2"},
        422,
        "request.create",
        "refused",
    ),
    (
        "create_request",
        "POST",
        "/v1/requests",
        "none",
        {"offering": "vm.small", "tier": "bronze"},
        401,
        "auth.authenticate",
        "denied",
    ),
    (
        "create_request",
        "POST",
        "/v1/requests",
        "hrss",
        {"offering": "vm.large", "count": 20, "tier": "gold"},
        409,
        "request.create",
        "refused",
    ),
    (
        "approve_request",
        "POST",
        "/v1/requests/{pending}/approve",
        "sysadmin",
        None,
        200,
        "request.approve",
        "success",
    ),
    (
        "approve_request",
        "POST",
        "/v1/requests/{pending}/approve",
        "hrss",
        None,
        403,
        "request.approve",
        "denied",
    ),
    (
        "approve_request",
        "POST",
        "/v1/requests/req-nosuch/approve",
        "sysadmin",
        None,
        404,
        "request.approve",
        "refused",
    ),
    (
        "approve_request",
        "POST",
        "/v1/requests/{approved}/approve",
        "sysadmin",
        None,
        409,
        "request.approve",
        "refused",
    ),
    (
        "reject_request",
        "POST",
        "/v1/requests/{pending}/reject",
        "sysadmin",
        {"reason": "over budget"},
        200,
        "request.reject",
        "success",
    ),
    (
        "reject_request",
        "POST",
        "/v1/requests/{pending}/reject",
        "sysadmin",
        {"reason": ""},
        422,
        "request.reject",
        "refused",
    ),
    (
        "reject_request",
        "POST",
        "/v1/requests/{pending}/reject",
        "secadmin",
        {"reason": "no"},
        403,
        "request.reject",
        "denied",
    ),
    (
        "cancel_request",
        "POST",
        "/v1/requests/{approved}/cancel",
        "hrss",
        None,
        200,
        "request.cancel",
        "success",
    ),
    (
        "cancel_request",
        "POST",
        "/v1/requests/{foreign}/cancel",
        "hrss",
        None,
        404,
        "request.cancel",
        "refused",
    ),
    (
        "delete_workload",
        "DELETE",
        "/v1/workloads/{cancelled_workload}",
        "hrss",
        None,
        409,
        "workload.delete",
        "refused",
    ),
    ("delete_workload", "DELETE", "/v1/workloads/wl-nosuch", "hrss", None, 404, "workload.delete", "refused"),
    (
        "start_failover",
        "POST",
        "/v1/failover/runs",
        "hrss",
        {"from_centers": ["qd-b"], "planned": True},
        403,
        "failover.run",
        "denied",
    ),
    (
        "start_failover",
        "POST",
        "/v1/failover/runs",
        "sysadmin",
        {"from_centers": ["nosuch"], "planned": True},
        422,
        "failover.run",
        "refused",
    ),
    (
        "start_failback",
        "POST",
        "/v1/failback/runs",
        "hrss",
        {"to_center": "qd-a"},
        403,
        "failback.run",
        "denied",
    ),
    (
        "scrub_replicas",
        "POST",
        "/v1/replication/scrub",
        "sysadmin",
        None,
        200,
        "replication.scrub",
        "success",
    ),
    ("scrub_replicas", "POST", "/v1/replication/scrub", "hrss", None, 403, "replication.scrub", "denied"),
    # Refused by the request's own validation, before the service: recorded under the service's action.
    (
        "start_failover",
        "POST",
        "/v1/failover/runs",
        "sysadmin",
        {"from_centers": "qd-a"},
        422,
        "failover.run",
        "refused",
    ),
    ("start_failback", "POST", "/v1/failback/runs", "sysadmin", {}, 422, "failback.run", "refused"),
    (
        "scrub_replicas",
        "POST",
        "/v1/replication/scrub?workload=" + "w" * 100,
        "sysadmin",
        None,
        422,
        "replication.scrub",
        "refused",
    ),
    ("publish_data_item", "POST", "/v1/data/items", "hrss", {"id": 7}, 422, "data.item.publish", "refused"),
    (
        "request_data_grant",
        "POST",
        "/v1/data/grants",
        "hrss",
        {"item_id": []},
        422,
        "data.grant.request",
        "refused",
    ),
    (
        "revoke_data_grant",
        "POST",
        "/v1/data/grants/grant-nosuch/revoke",
        "hrss",
        {"reason": 5},
        422,
        "data.grant.revoke",
        "refused",
    ),
    (
        "restore_workload",
        "POST",
        "/v1/workloads/wl-nosuch/restore",
        "sysadmin",
        {"at": "2026-01-01T00:00:00Z"},
        404,
        "workload.restore",
        "refused",
    ),
    (
        "restore_workload",
        "POST",
        "/v1/workloads/{approved_workload}/restore",
        "sysadmin",
        {"at": "not a time"},
        422,
        "workload.restore",
        "refused",
    ),
    (
        "restore_workload",
        "POST",
        "/v1/workloads/wl-nosuch/restore",
        "sysadmin",
        {"dry_run": True},
        422,
        "workload.restore",
        "refused",
    ),
    (
        "resume_run",
        "POST",
        "/v1/failover/runs/run-nosuch/resume",
        "sysadmin",
        None,
        404,
        "failover.resume",
        "refused",
    ),
    (
        "create_org_node",
        "POST",
        "/v1/org/nodes",
        "sysadmin",
        {"id": "walk-api", "display_name": "步行办公室", "parent": "shinan"},
        201,
        "org.create",
        "success",
    ),
    (
        "create_org_node",
        "POST",
        "/v1/org/nodes",
        "secadmin",
        {"id": "walk-api", "display_name": "步行办公室", "parent": "shinan"},
        403,
        "org.create",
        "denied",
    ),
    (
        "create_org_node",
        "POST",
        "/v1/org/nodes",
        "sysadmin",
        {"id": "walk-api", "display_name": "x", "parent": "shinan", "colour": "red"},
        422,
        "org.create",
        "refused",
    ),
    ("delete_org_node", "DELETE", "/v1/org/nodes/shinan", "sysadmin", None, 409, "org.delete", "refused"),
    ("delete_org_node", "DELETE", "/v1/org/nodes/shinan", "auditor", None, 403, "org.delete", "denied"),
    (
        "set_quota",
        "PUT",
        "/v1/quota/hrss-insurance",
        "sysadmin",
        {"center": "qd-a", "limits": {"object_gb": 100}},
        200,
        "quota.set",
        "success",
    ),
    (
        "set_quota",
        "PUT",
        "/v1/quota/hrss",
        "auditor",
        {"center": "qd-a", "limits": {"vcpu": 8}},
        403,
        "quota.set",
        "denied",
    ),
    (
        "set_quota",
        "PUT",
        "/v1/quota/hrss",
        "sysadmin",
        {"center": "qd-a", "limits": {"vcpu": "8"}},
        422,
        "quota.set",
        "refused",
    ),
    (
        "create_reservation",
        "POST",
        "/v1/reservations",
        "sysadmin",
        {"node": "hrss-insurance", "center": "qd-a", "amounts": {"vcpu": 2}},
        201,
        "quota.reserve",
        "success",
    ),
    (
        "create_reservation",
        "POST",
        "/v1/reservations",
        "hrss",
        {"node": "hrss-insurance", "center": "qd-a", "amounts": {"vcpu": 2}},
        403,
        "quota.reserve",
        "denied",
    ),
    (
        "create_reservation",
        "POST",
        "/v1/reservations",
        "sysadmin",
        {"node": "hrss-insurance", "center": "qd-a", "amounts": {"vcpu": "2"}},
        422,
        "quota.reserve",
        "refused",
    ),
    (
        "create_reservation",
        "POST",
        "/v1/reservations",
        "sysadmin",
        {"node": "hrss-employment", "center": "qd-a", "amounts": {"vcpu": 17}},
        409,
        "quota.reserve",
        "refused",
    ),
    (
        "commit_reservation",
        "POST",
        "/v1/reservations/{reservation}/commit",
        "sysadmin",
        None,
        200,
        "quota.commit",
        "success",
    ),
    (
        "commit_reservation",
        "POST",
        "/v1/reservations/{reservation}/commit",
        "auditor",
        None,
        403,
        "quota.commit",
        "denied",
    ),
    (
        "commit_reservation",
        "POST",
        f"/v1/reservations/{'0' * 32}/commit",
        "sysadmin",
        None,
        404,
        "quota.commit",
        "refused",
    ),
    (
        "release_reservation",
        "POST",
        "/v1/reservations/{reservation}/release",
        "sysadmin",
        None,
        200,
        "quota.release",
        "success",
    ),
    (
        "release_reservation",
        "POST",
        "/v1/reservations/{reservation}/release",
        "hrss",
        None,
        403,
        "quota.release",
        "denied",
    ),
    (
        "create_token",
        "POST",
        "/v1/tokens",
        "secadmin",
        {"role": "dept-user", "department": "hrss"},
        201,
        "token.create",
        "success",
    ),
    (
        "create_token",
        "POST",
        "/v1/tokens",
        "sysadmin",
        {"role": "dept-user", "department": "hrss"},
        403,
        "token.create",
        "denied",
    ),
    (
        "revoke_token",
        "POST",
        "/v1/tokens/0000000000000000/revoke",
        "secadmin",
        None,
        404,
        "token.revoke",
        "refused",
    ),
    (
        "start_drill",
        "POST",
        "/v1/drills/runs",
        "sysadmin",
        {"plan_yaml": "name: walk\nscenario: {kind: nosuch}\n"},
        422,
        "drill.run",
        "refused",
    ),
    (
        "publish_data_item",
        "POST",
        "/v1/data/items",
        "hrss",
        {
            "id": "wage-records",
            "kind": "dataset",
            "dataset": "wages",
            "data_class": "internal",
            "description": "x",
        },
        201,
        "data.item.publish",
        "success",
    ),
    (
        "request_data_grant",
        "POST",
        "/v1/data/grants",
        "hrss",
        {"item_id": "no-such-item", "purpose": "statistics", "expires_at": "2000-01-01T00:00:00Z"},
        422,
        "data.grant.request",
        "refused",
    ),
    (
        "approve_data_grant",
        "POST",
        "/v1/data/grants/grant-nosuch/approve",
        "hrss",
        None,
        404,
        "data.grant.approve",
        "refused",
    ),
    (
        "revoke_data_grant",
        "POST",
        "/v1/data/grants/grant-nosuch/revoke",
        "hrss",
        {"reason": "done"},
        404,
        "data.grant.revoke",
        "refused",
    ),
    (
        "use_data_grant",
        "POST",
        "/v1/data/grants/grant-nosuch/use",
        "hrss",
        None,
        404,
        "data.grant.use",
        "refused",
    ),
    (
        "resume_drill",
        "POST",
        "/v1/drills/runs/drill-nosuch/resume",
        "sysadmin",
        None,
        404,
        "drill.resume",
        "refused",
    ),
]


def test_every_write_endpoint_is_walked(ctx: ctx_module.Context) -> None:
    spec = api_app.create_app(context=ctx).openapi()
    write_operations = {
        operation["operationId"]
        for methods in spec["paths"].values()
        for method, operation in methods.items()
        if method.upper() in problems.WRITE_METHODS
    }
    walked = {case[0] for case in WRITE_CASES}
    assert {op for op in write_operations if not any(op.startswith(f"{name}_v1") for name in walked)} == set()
    assert len(write_operations) == len(walked)


@pytest.mark.parametrize("case", WRITE_CASES, ids=[f"{c[0]}-{c[5]}" for c in WRITE_CASES])
def test_a_write_on_the_api_leaves_one_record(
    ctx: ctx_module.Context, client: TestClient, case: tuple[Any, ...]
) -> None:
    _name, method, path, who, body, status, action, outcome = case
    headers = {
        "hrss": bearer(ctx, "dept-admin", "hrss"),
        "sysadmin": bearer(ctx, "sysadmin"),
        "secadmin": bearer(ctx, "secadmin"),
        "auditor": bearer(ctx, "auditor"),
        "none": {},
    }[who]
    ids = prepare(ctx, client)
    request_id = f"walk-{action}-{status}"
    response = client.request(
        method, path.format(**ids), json=body, headers={**headers, "X-Request-ID": request_id}
    )
    assert response.status_code == status, response.text
    found = records_of(ctx, request_id)
    assert len(found) == 1, [(r["action"], r["outcome"], r["detail"]) for r in found]
    record = found[0]
    assert (record["action"], record["outcome"]) == (action, outcome)
    assert record["source"] == "testclient"
    assert record["actor"].startswith("token:") or who == "none"
    if outcome != "success":
        assert record["detail"]["reason"]


def prepare(ctx: ctx_module.Context, client: TestClient) -> dict[str, str]:
    """A pending request, an approved one (both hrss') and one of another department."""
    hrss = bearer(ctx, "dept-admin", "hrss")
    samr = bearer(ctx, "dept-admin", "samr")
    pending = client.post(
        "/v1/requests", json={"offering": "vm.large", "count": 5, "tier": "silver"}, headers=hrss
    ).json()
    approved = client.post(
        "/v1/requests", json={"offering": "vm.small", "tier": "bronze"}, headers=hrss
    ).json()
    foreign = client.post(
        "/v1/requests", json={"offering": "vm.small", "tier": "bronze"}, headers=samr
    ).json()
    cancelled = client.post(
        "/v1/requests", json={"offering": "vm.small", "tier": "bronze"}, headers=hrss
    ).json()
    client.post(f"/v1/requests/{cancelled['id']}/cancel", headers=hrss)
    held = quotas_service.reserve(
        ctx,
        node_id="hrss-insurance",
        center="qd-b",
        amounts={"ram_gb": 4},
        principal=identity.local_operator("sysadmin"),
    )
    assert pending["state"] == "pending-approval", pending
    assert approved["state"] == "approved", approved
    return {
        "pending": pending["id"],
        "approved": approved["id"],
        "approved_workload": approved["workload_id"],
        "foreign": foreign["id"],
        "cancelled_workload": cancelled["workload_id"],
        "reservation": held.id,
    }


# --- the command line ---------------------------------------------------------------------------------


class Cli:
    def __init__(self, home: Path) -> None:
        self.home = home
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        argv = [
            "--home",
            str(self.home),
            "--topology",
            str(TOPOLOGY),
            "--policies",
            str(POLICIES),
            "--simulated-time",
        ]
        argv += operators.break_glass(list(args))
        result = self.runner.invoke(main.app, argv + main.hoist_global_options(list(args)))
        assert result.exit_code == code, f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}"
        return result

    def records(self) -> list[tuple[str, str, str, str, str]]:
        with sqlite3.connect(self.home / "state.db") as raw:
            rows = raw.execute(
                "SELECT action, outcome, actor, source, request_id FROM audit_records ORDER BY seq"
            )
            return list(rows)


COMMANDS = [
    (
        ("dept", "create", "walk-office", "--name", "步行办公室", "--parent", "shinan"),
        0,
        "org.create",
        "success",
    ),
    (("dept", "create", "walk-office", "--name", "again", "--parent", "shinan"), 2, "org.create", "refused"),
    (("quota", "set", "walk-office", "--center", "qd-a", "--vcpu", "8"), 0, "quota.set", "success"),
    (("quota", "set", "nosuch", "--center", "qd-a", "--vcpu", "8"), 2, "quota.set", "refused"),
    (("token", "create", "--role", "dept-user", "--dept", "walk-office"), 0, "token.create", "success"),
    (("token", "create", "--role", "dept-user", "--dept", "nosuch"), 2, "token.create", "refused"),
    (("token", "revoke", "0000000000000000"), 2, "token.revoke", "refused"),
    (("dept", "delete", "shinan"), 2, "org.delete", "refused"),
    (("dept", "delete", "walk-office"), 0, "org.delete", "success"),
    (("request", "approve", "req-nosuch"), 2, "request.approve", "refused"),
    (("request", "reject", "req-nosuch", "--reason", "no"), 2, "request.reject", "refused"),
    (("sim", "inject", "link-cut", "--center", "qd-a", "--peer", "dz-dr"), 0, "fault.inject", "success"),
    (("sim", "inject", "link-cut", "--center", "qd-a", "--peer", "nosuch"), 2, "fault.inject", "refused"),
    (("sim", "clear"), 0, "fault.clear", "success"),
    (("failover", "run", "--from", "qd-b", "--planned"), 0, "failover.run", ("started", "success")),
    (("failover", "--from", "mgmt", "--planned"), 2, "failover.run", "refused"),
    (("replication", "scrub"), 0, "replication.scrub", "success"),
    (("restore", "wl-nosuch", "--at", "2026-01-01T00:00:00Z"), 2, "workload.restore", "refused"),
]


def test_every_write_command_leaves_one_record(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    for args, code, action, outcome in COMMANDS:
        before = len(cli.records())
        cli(*args, code=code)
        new = cli.records()[before:]
        # A long operation records its start and then its end (so a run that dies is seen).
        # Each command breaks glass (one record of its own), then the write records its one.
        outcomes = outcome if isinstance(outcome, tuple) else (outcome,)
        expected = [("break-glass", "success"), *((action, each) for each in outcomes)]
        assert [(r[0], r[1]) for r in new] == expected, (args, new)
        _action, _outcome, actor, source, request_id = new[1]
        assert actor.startswith("breakglass:") and source.startswith("local@") and request_id, new[1]


def test_fault_injection_failover_and_failback_services_record_their_writes(ctx: ctx_module.Context) -> None:
    sysadmin = identity.local_operator("sysadmin")
    fault = faults.inject(ctx, kind="center-down", center="qd-b", principal=sysadmin)
    faults.clear(ctx, fault_id=fault.id, principal=sysadmin)
    plan = recovery.plan_failback(ctx, principal=sysadmin, to_center="qd-a")
    with pytest.raises(errors.PolicyDenied):
        recovery.plan_failback(ctx, principal=identity.local_operator("auditor"), to_center="qd-a")
    table = schema.audit_records
    with ctx.read() as tx:
        actions = [
            (r.action, r.outcome)
            for r in tx.execute(sa.select(table).order_by(table.c.seq))
            if r.action != "token.create"
        ]
    assert actions == [
        ("fault.inject", "success"),
        ("fault.clear", "success"),
        ("failback.run", "denied"),
    ]
    # Nothing was away from qd-a: the failback planned nothing, started no run and changed nothing.
    assert (plan.run_id, plan.steps) == (None, [])


def test_break_glass_is_recorded_with_os_user_host_and_reason_and_counted(ctx: ctx_module.Context) -> None:
    from cloudctl.services import audit, observability

    with pytest.raises(errors.InvalidInput) as no_reason:
        audit.record_break_glass(ctx, role="sysadmin", reason=" ")
    assert no_reason.value.field == "reason"
    principal = audit.record_break_glass(ctx, role="sysadmin", reason="API down during the flood")
    assert (principal.id.startswith("breakglass:"), principal.role) == (True, "sysadmin")
    table = schema.audit_records
    with ctx.read() as tx:
        (row,) = tx.execute(sa.select(table).where(table.c.action == "break-glass")).all()
    assert (
        row.detail["reason"] == "API down during the flood" and row.detail["os_user"] and row.detail["host"]
    )
    assert "cloudctl_break_glass_total 1.0" in observability.exposition(ctx).decode()


@pytest.mark.parametrize(
    "reason",
    ["fine\x1b[2K\x1b[1Ahidden", "two\nlines", "tab\there", "x" * 501],
    ids=["escape", "newline", "tab", "long"],
)
def test_a_break_glass_reason_the_auditor_could_not_read_as_given_is_refused_and_records_nothing(
    ctx: ctx_module.Context, reason: str
) -> None:
    from cloudctl.services import audit

    with pytest.raises(errors.InvalidInput) as refused:
        audit.record_break_glass(ctx, role="sysadmin", reason=reason)
    assert refused.value.field == "reason"
    table = schema.audit_records
    with ctx.read() as tx:
        assert tx.execute(sa.select(table).where(table.c.action == "break-glass")).all() == []
