"""Attacks on the audit log's reading: a filter no record can match is refused, naming it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cloudctl.services import context as ctx_module
from tests.support.bearer import token


@pytest.mark.parametrize("outcome", ["bogus", "Denied", "denied ", ""])
def test_an_outcome_no_record_can_have_is_422_naming_it(
    ctx: ctx_module.Context, client: TestClient, outcome: str
) -> None:
    """It answered an empty page, as if nothing had been refused."""
    auditor = token(ctx, "auditor")
    client.post("/v1/tokens", json={"role": "auditor"}, headers=token(ctx, "sysadmin"))  # one denial
    refused = client.get("/v1/audit", params={"outcome": outcome}, headers=auditor)
    assert (refused.status_code, refused.json()["field"]) == (422, "outcome"), refused.text
    assert refused.json()["detail"] == (
        f"outcome: {outcome!r} is not an outcome (success, denied, refused, failed)"
    )
    found = client.get("/v1/audit", params={"outcome": "denied"}, headers=auditor).json()
    assert [record["action"] for record in found["data"]] == ["token.create"]
