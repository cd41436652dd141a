"""Attacks on restores and recovery runs: times no answer can name are refused like any bad time."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloudctl.services import context as ctx_module
from cloudctl.store import schema
from tests.support.bearer import token
from tests.unit.api.test_recovery_api import ready_workload


def audited(ctx: ctx_module.Context, request_id: str) -> list[tuple[str, str]]:
    table = schema.audit_records
    with ctx.read() as tx:
        rows = tx.execute(sa.select(table).where(table.c.request_id == request_id).order_by(table.c.seq))
        return [(row.action, row.outcome) for row in rows]


def rows(ctx: ctx_module.Context, table: sa.Table) -> int:
    with ctx.read() as tx:
        return int(tx.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)


@pytest.mark.parametrize(
    "at", ["0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59+01:00", "9999-12-31T23:59:59-01:00"]
)
@pytest.mark.parametrize(
    ("path", "body", "action"),
    [
        ("/v1/workloads/{workload}/restore", {}, "workload.restore"),
        ("/v1/workloads/{workload}/restore", {"dry_run": True}, "workload.restore"),
        ("/v1/failover/runs", {"from_centers": ["qd-a"], "planned": False}, "failover.run"),
        ("/v1/failover/runs", {"from_centers": ["qd-a"], "planned": False, "dry_run": True}, "failover.run"),
    ],
)
def test_a_time_outside_the_years_1_to_9999_is_422_naming_at_audited_once_and_changes_nothing(
    ctx: ctx_module.Context,
    client: TestClient,
    at: str,
    path: str,
    body: dict[str, Any],
    action: str,
) -> None:
    """Such a time parses, but no answer could print it: it was a 500 with no audit record."""
    workload = ready_workload(ctx, "silver")
    runs, steps = rows(ctx, schema.recovery_runs), rows(ctx, schema.recovery_steps)
    request_id = "attack-far-time"
    refused = client.post(
        path.format(workload=workload),
        json={**body, "at": at},
        headers={**token(ctx, "sysadmin"), "X-Request-ID": request_id},
    )
    assert (refused.status_code, refused.json()["field"]) == (422, "at"), refused.text
    assert refused.json()["detail"] == f"at: {at!r} lies outside the years 1 to 9999 (UTC)"
    assert audited(ctx, request_id) == [(action, "refused")]
    assert (rows(ctx, schema.recovery_runs), rows(ctx, schema.recovery_steps)) == (runs, steps)
