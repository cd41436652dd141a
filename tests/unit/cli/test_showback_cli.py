"""``cloudctl showback`` and ``cloudctl capacity``: table, CSV and JSON agree; bad input exits 2."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

from cloudctl.model import pricing
from cloudctl.model import quotas as q
from cloudctl.store import db, usage
from tests.unit.cli.test_cli import Cli, one_line_error


def recorded_usage(home: Path) -> str:
    """Two recorded hours at the start of this month, written straight into the store."""
    month = pricing.month_of(time.time())
    store = db.Store(db.sqlite_url(home))
    try:
        with store.transaction() as tx:
            for hour in (month.start, month.start + pricing.HOUR_S):
                usage.record_hour(
                    tx,
                    hour=hour,
                    lines={
                        ("hrss-insurance", "qd-a", "gold", q.Resource.VCPU): usage.Line(
                            allocated=16, consumed=8
                        ),
                        ("shinan-civil", "dz-dr", "silver", q.Resource.RAM_GB): usage.Line(
                            allocated=64, consumed=None
                        ),
                    },
                    samples={},
                    consumed_observed=False,
                    now=hour,
                )
    finally:
        store.dispose()
    return month.name


def test_the_bill_is_the_same_in_table_csv_and_json(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    month = recorded_usage(tmp_path / "home")

    data = cli.json("showback", "--month", month)
    table = cli("showback", "--month", month).stdout
    rows = list(csv.DictReader(io.StringIO(cli("showback", "--month", month, "-o", "csv").stdout)))

    # 16 vCPU x 2 h x 0.1100 (gold) = 3.52; 64 GB x 2 h x 0.0150 (DR center) = 1.92
    assert data["total"] == {"allocated_cny": "5.44", "consumed_cny": "1.76"}
    by_key = {row["key"]: row for row in data["rows"]}
    assert (by_key["hrss-insurance"]["allocated_cny"], by_key["shinan-civil"]["allocated_cny"]) == (
        "3.52",
        "1.92",
    )
    assert [(r["key"], r["allocated_cny"]) for r in rows] == [
        (row["key"], row["allocated_cny"]) for row in data["rows"]
    ] + [("total", "5.44")]
    assert rows[0]["vcpu_hours"] == "32"
    assert "5.44" in table and "hrss-insurance" in table
    centers = cli.json("showback", "--month", month, "--by", "center")
    assert [(r["key"], r["allocated_cny"]) for r in centers["rows"]] == [("qd-a", "3.52"), ("dz-dr", "1.92")]
    districts = cli.json("showback", "--month", month, "--by", "district", "--dept", "shinan")
    assert [(r["key"], r["allocated_cny"]) for r in districts["rows"]] == [("shinan", "1.92")]


def test_bad_input_is_one_line_naming_the_field_with_exit_2(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    for args, field in [
        (("showback", "--month", "2026-13"), "month:"),
        (("showback", "--month", "2999-01"), "month:"),
        (("showback", "--month", "2026-01", "--dept", "no-such-dept"), "dept:"),
        (("showback", "--month", "2026-01", "--by", "floor"), "by:"),
        (("capacity", "forecast", "--center", "mars"), "center:"),
        (("status", "-o", "csv"), "output:"),
    ]:
        assert one_line_error(cli(*args, code=2)).startswith(f"error: {field}"), args


def test_the_forecast_and_the_usage_pass_answer_from_the_cli(tmp_path: Path) -> None:
    cli = Cli(tmp_path / "home")
    cli("init")
    recorded = cli.json("capacity", "record")
    assert recorded["behind_hours"] == 0
    forecast = cli.json("capacity", "forecast", "--center", "qd-a")
    assert [c["center"] for c in forecast["centers"]] == ["qd-a"]
    assert {r["resource"] for r in forecast["centers"][0]["resources"]} == {r.value for r in q.RESOURCES}
    rows = list(csv.DictReader(io.StringIO(cli("capacity", "forecast", "-o", "csv").stdout)))
    assert len(rows) == 4 * len(q.RESOURCES)
    assert rows[0]["outlook"] == "insufficient-data"
    assert "qd-a" in cli("capacity", "forecast").stdout
