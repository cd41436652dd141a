"""Attacks on data items and grants: text that would forge the catalog's or the audit log's lines."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.store import schema
from tests.support.bearer import token
from tests.unit.api.test_data_grants_api import bucket_workload

PROVIDER = "hrss-insurance"
CONSUMER = "civil-assistance"
ITEM = {
    "id": "wage-records",
    "kind": "dataset",
    "dataset": "wages",
    "data_class": "internal",
    "description": "工资",
}


def audited(ctx: ctx_module.Context, request_id: str) -> list[tuple[str, str]]:
    table = schema.audit_records
    with ctx.read() as tx:
        rows = tx.execute(sa.select(table).where(table.c.request_id == request_id).order_by(table.c.seq))
        return [(row.action, row.outcome) for row in rows]


def stored(ctx: ctx_module.Context, table: sa.Table) -> list[dict[str, Any]]:
    with ctx.read() as tx:
        return [dict(row._mapping) for row in tx.execute(sa.select(table))]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"id": "wage-records\n"}, "id"),  # the id pattern's "$" matched before a final line break
        ({"dataset": "wages\n"}, "dataset"),
        ({"description": "工资\n2026-01-01 data.grant.approve success"}, "description"),
        ({"description": "\x1b[2K工资"}, "description"),
        ({"description": "工资\u20282026-01-01 data.grant.approve success"}, "description"),  # line separator
        ({"description": "工资 \u202egpj.exe"}, "description"),  # right-to-left override
        ({"kind": "bucket-prefix", "dataset": None, "workload_id": "{bucket}", "prefix": "a\rb/"}, "prefix"),
    ],
)
def test_an_item_whose_text_holds_a_control_character_is_422_audited_once_and_not_published(
    ctx: ctx_module.Context, client: TestClient, change: dict[str, Any], field: str
) -> None:
    headers = {**token(ctx, "dept-admin", PROVIDER), "X-Request-ID": "attack-item"}
    body = {key: value for key, value in {**ITEM, **change}.items() if value is not None}
    if body.get("workload_id") == "{bucket}":
        body["workload_id"] = bucket_workload(ctx, client, token(ctx, "dept-admin", PROVIDER))["id"]
    refused = client.post("/v1/data/items", json=body, headers=headers)
    assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
    assert refused.json()["detail"] == (
        f"{field}: must be one line without control characters, line separators or bidirectional controls"
    )
    assert stored(ctx, schema.data_items) == []
    assert audited(ctx, "attack-item") == [("data.item.publish", "refused")]


def test_a_revocation_reason_with_a_control_character_is_422_audited_once_and_revokes_nothing(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    client.post("/v1/data/items", json=ITEM, headers=token(ctx, "dept-admin", PROVIDER)).raise_for_status()
    consumer = token(ctx, "dept-admin", CONSUMER)
    expires_at = clocks.isoformat(ctx.clock.now() + 30 * 86400)
    asked = client.post(
        "/v1/data/grants",
        json={"item_id": ITEM["id"], "purpose": "statistics", "expires_at": expires_at},
        headers=consumer,
    )
    grant_id = asked.json()["id"]
    before = stored(ctx, schema.data_grants)
    refused = client.post(
        f"/v1/data/grants/{grant_id}/revoke",
        json={"reason": "done\n2026-01-01 data.grant.approve success"},
        headers={**consumer, "X-Request-ID": "attack-revoke"},
    )
    assert (refused.status_code, refused.json()["field"]) == (422, "reason"), refused.text
    assert stored(ctx, schema.data_grants) == before
    assert before[0]["state"] == "requested"
    assert audited(ctx, "attack-revoke") == [("data.grant.revoke", "refused")]


@pytest.mark.parametrize(
    ("path", "body", "field", "table", "action"),
    [
        ("/v1/data/items", {**ITEM, "owner": "{node}"}, "owner", schema.data_items, "data.item.publish"),
        (
            "/v1/data/grants",
            {"item_id": "pension-rolls", "purpose": "statistics", "expires_at": "+30", "consumer": "{node}"},
            "consumer",
            schema.data_grants,
            "data.grant.request",
        ),
        (
            "/v1/tokens",
            {"role": "dept-user", "department": "{node}"},
            "department",
            schema.tokens,
            "token.create",
        ),
    ],
)
def test_a_department_naming_another_departments_node_is_answered_as_for_a_missing_one(
    ctx: ctx_module.Context,
    client: TestClient,
    path: str,
    body: dict[str, Any],
    field: str,
    table: sa.Table,
    action: str,
) -> None:
    """It was 403 (no policy permits) for a node that exists and 404 for one that does not: a way
    to learn which departments there are."""
    provider = token(ctx, "dept-admin", "samr")
    client.post("/v1/data/items", json={**ITEM, "id": "pension-rolls"}, headers=provider).raise_for_status()
    caller = token(ctx, "dept-admin", CONSUMER)
    before = stored(ctx, table)
    answers = []
    for node in ("samr", "nosuch"):
        sent = {key: value.replace("{node}", node) for key, value in body.items()}
        if sent.get("expires_at") == "+30":
            sent["expires_at"] = clocks.isoformat(ctx.clock.now() + 30 * 86400)
        answer = client.post(path, json=sent, headers={**caller, "X-Request-ID": f"attack-{node}"})
        assert (answer.status_code, answer.json()["field"]) == (404, field), answer.text
        answers.append({**answer.json(), "detail": answer.json()["detail"].replace(node, "NODE")})
        assert audited(ctx, f"attack-{node}") == [(action, "refused")]
    assert answers[0] == answers[1]
    assert stored(ctx, table) == before
