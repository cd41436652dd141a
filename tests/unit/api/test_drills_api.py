"""``/v1/drills/runs``: who may start a drill, and what a refused caller learns."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloudctl.services import context as ctx_module
from cloudctl.store import schema
from tests.support.bearer import token

PLAN = (Path(__file__).parents[3] / "dr" / "drills" / "lose-qd-a.yaml").read_text(encoding="utf-8")


def scoped_to(department: str) -> str:
    return PLAN.replace(
        "  tiers: [platinum, gold]\n", f"  tiers: [platinum, gold]\n  departments: [{department}]\n"
    )


def test_a_caller_who_may_not_run_drills_is_refused_before_the_plans_departments_are_read(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    """Checking a plan reads the store's departments: a caller without ``drill.run`` gets the same
    403 for a department that exists and one that does not, and no run is recorded."""
    assert scoped_to("samr") != PLAN
    for role, department in (
        ("dept-admin", "hrss"),
        ("dept-user", "hrss"),
        ("secadmin", None),
        ("auditor", None),
    ):
        headers = token(ctx, role, department)
        answers = [
            client.post("/v1/drills/runs", json={"plan_yaml": scoped_to(name)}, headers=headers)
            for name in ("samr", "nosuch")
        ]
        assert [a.status_code for a in answers] == [403, 403], [a.text for a in answers]
        assert answers[0].json()["detail"] == answers[1].json()["detail"]
    table = schema.audit_records
    with ctx.read() as tx:
        outcomes = tx.execute(sa.select(table.c.outcome).where(table.c.action == "drill.run")).scalars()
        assert list(outcomes) == ["denied"] * 8
        assert tx.execute(sa.select(sa.func.count()).select_from(schema.drill_runs)).scalar() == 0


@pytest.mark.parametrize("character", ["\x7f", "\x07", "\ufffe"])
def test_a_plan_holding_a_character_yaml_refuses_is_one_line_naming_its_line(
    ctx: ctx_module.Context, client: TestClient, character: str
) -> None:
    plan = PLAN.replace("name: lose-qd-a\n", f"name: lose-qd-a\ndescription: a{character}\n", 1)
    refused = client.post("/v1/drills/runs", json={"plan_yaml": plan}, headers=token(ctx, "sysadmin"))
    line = plan[: plan.index(character)].count("\n") + 1
    assert (refused.status_code, refused.json()["field"]) == (422, f"line {line}"), refused.text
    assert "\n" not in refused.json()["detail"]
    assert "control characters are not allowed" in refused.json()["detail"]
    with ctx.read() as tx:
        assert tx.execute(sa.select(sa.func.count()).select_from(schema.drill_runs)).scalar() == 0


@pytest.mark.parametrize(
    ("setting", "field"),
    [("writes_per_s: 5", "canary.writes_per_s"), ("warmup_s: 120", "canary.warmup_s")],
)
def test_a_plan_with_an_infinite_rate_or_time_is_422_and_records_no_run(
    ctx: ctx_module.Context, client: TestClient, setting: str, field: str
) -> None:
    """Such a drill would never end, and no store holds the number in its saved progress."""
    plan = PLAN.replace(setting, f"{setting.partition(':')[0]}: .inf")
    refused = client.post("/v1/drills/runs", json={"plan_yaml": plan}, headers=token(ctx, "sysadmin"))
    assert (refused.status_code, refused.json()["field"]) == (422, field), refused.text
    with ctx.read() as tx:
        assert tx.execute(sa.select(sa.func.count()).select_from(schema.drill_runs)).scalar() == 0
