"""``/v1/showback`` and ``/v1/capacity/forecast``: departments read their own bill, operators everyone's."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import quotas as quotas_service
from cloudctl.services import usage
from tests.unit.api.test_api import token


@pytest.fixture
def billed(ctx: ctx_module.Context) -> ctx_module.Context:
    quotas_service.reserve(ctx, "hrss-insurance", center="qd-a", amounts={"vcpu": 16, "ram_gb": 32})
    quotas_service.reserve(ctx, "psb-traffic", center="qd-b", amounts={"vcpu": 8})
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(5 * 3600 + 60)
    usage.record_due(ctx)
    return ctx


def test_a_department_reads_its_own_bill(billed: ctx_module.Context, client: TestClient) -> None:
    hrss = token(billed, "dept-user", "hrss")
    answer = client.get("/v1/showback", params={"month": "2026-01"}, headers=hrss)
    assert answer.status_code == 200, answer.text
    bill = answer.json()
    assert (bill["scope"], bill["total"]["allocated_cny"]) == ("hrss", "12.00")
    assert {row["key"] for row in bill["rows"]} == {"hrss", "hrss-insurance"}
    below = client.get(
        "/v1/showback", params={"month": "2026-01", "department": "hrss-insurance"}, headers=hrss
    )
    assert below.json()["total"]["allocated_cny"] == "12.00"


def test_another_departments_bill_answers_as_a_missing_one(
    billed: ctx_module.Context, client: TestClient
) -> None:
    hrss = token(billed, "dept-admin", "hrss")
    other = client.get("/v1/showback", params={"month": "2026-01", "department": "psb"}, headers=hrss)
    missing = client.get("/v1/showback", params={"month": "2026-01", "department": "psb-nope"}, headers=hrss)
    assert (other.status_code, missing.status_code) == (404, 404)
    assert other.json()["detail"] == "department: no org node 'psb'"
    assert missing.json()["detail"] == "department: no org node 'psb-nope'"
    assert {k: v for k, v in other.json().items() if k not in ("detail", "instance")} == {
        k: v for k, v in missing.json().items() if k not in ("detail", "instance")
    }
    assert "8" not in other.text.replace("404", "")


def test_an_operator_reads_every_bill_and_the_forecast(
    billed: ctx_module.Context, client: TestClient
) -> None:
    ops = token(billed, "sysadmin")
    city = client.get("/v1/showback", params={"month": "2026-01", "by": "bureau"}, headers=ops).json()
    assert [(r["key"], r["allocated_cny"]) for r in city["rows"]] == [("hrss", "12.00"), ("psb", "3.60")]
    assert city["total"]["allocated_cny"] == "15.60"
    forecast = client.get("/v1/capacity/forecast", params={"center": "qd-b"}, headers=ops)
    assert forecast.status_code == 200, forecast.text
    assert forecast.json()["centers"][0]["resources"][0]["allocated"] == 8
    dept = token(billed, "dept-admin", "hrss")
    assert client.get("/v1/capacity/forecast", headers=dept).status_code == 403


def test_bad_input_is_a_problem_naming_the_field(billed: ctx_module.Context, client: TestClient) -> None:
    ops = token(billed, "sysadmin")
    for params, field in [
        ({"month": "2026-02"}, "month"),
        ({"month": "2026-1"}, "month"),
        ({"month": "2026-01", "by": "floor"}, "by"),
    ]:
        answer = client.get("/v1/showback", params=params, headers=ops)
        assert (answer.status_code, answer.json()["field"]) == (422, field), answer.text
    this_month = client.get("/v1/showback", headers=ops)  # no month: this month, billed to date
    assert (this_month.status_code, this_month.json()["month_to_date"]) == (200, True)


@pytest.mark.parametrize("month", ["9999-12", "\uff12\uff10\uff12\uff16-01"])
def test_a_month_no_bill_can_have_is_422_naming_it(
    ctx: ctx_module.Context, client: TestClient, month: str
) -> None:
    refused = client.get("/v1/showback", params={"month": month}, headers=token(ctx, "dept-user", "hrss"))
    assert (refused.status_code, refused.json()["field"]) == (422, "month")
