"""``cloudctl showback``: a month's bill per org node, bureau, district, center or tier.

Invariant: the table, CSV and JSON show the same figures, exact to the fen (strings in
CSV and JSON, never floats); bad input is one line naming the field, exit 2.
"""

from __future__ import annotations

import csv
import sys
from typing import Annotated, Any

import typer

from cloudctl.cli import common, output

RESOURCE_COLUMNS = ("vcpu", "ram_gb", "volume_gb", "object_gb", "instances")


def register(app: typer.Typer) -> None:
    app.command("showback")(showback)


@common.handles_errors
def showback(
    ctx: typer.Context,
    month: Annotated[
        str | None,
        typer.Option(
            "--month", metavar="YYYY-MM", help="The month billed (UTC); default: this month, to date."
        ),
    ] = None,
    dept: Annotated[
        str | None,
        typer.Option("--dept", help="Bill this org node's subtree only (default: the whole city)."),
    ] = None,
    by: Annotated[
        str | None,
        typer.Option("--by", help="Group by bureau, district, center or tier (default: the org tree)."),
    ] = None,
) -> None:
    """A month's showback and chargeback per department, bureau, district, center or tier (CNY)."""
    state = common.state_of(ctx)
    bill = state.api().get("/v1/showback", month=month, department=dept, by=by)
    if state.fmt is output.Format.CSV:
        write_csv(bill)
        return
    state.emit(bill, lambda: render(bill))


def write_csv(bill: dict[str, Any]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(
        [
            "month",
            "by",
            "key",
            "name",
            "kind",
            "parent",
            "depth",
            "allocated_cny",
            "consumed_cny",
            "own_allocated_cny",
            *(f"{resource}_hours" for resource in RESOURCE_COLUMNS),
        ]
    )
    for row in bill["rows"]:
        writer.writerow(
            [
                bill["month"],
                bill["by"],
                output.csv_text(row["key"]),
                output.csv_text(row["name"]),
                row["kind"],
                output.csv_text(row["parent"] or ""),
                row["depth"],
                row["allocated_cny"],
                row["consumed_cny"],
                row["own_allocated_cny"],
                *(row["allocated_unit_hours"].get(resource, 0) for resource in RESOURCE_COLUMNS),
            ]
        )
    writer.writerow(
        [
            bill["month"],
            bill["by"],
            "total",
            "",
            "",
            "",
            "",
            bill["total"]["allocated_cny"],
            bill["total"]["consumed_cny"],
            "",
            *([""] * 5),
        ]
    )


def render(bill: dict[str, Any]) -> None:
    from cloudctl.model import pricing

    def grouped(text: str) -> str:
        fen = int(text.replace(".", "").replace("-", "")) * (-1 if text.startswith("-") else 1)
        return pricing.yuan_grouped(fen)

    span = "to date" if bill["month_to_date"] else "whole month"
    title = (
        f"showback {bill['month']} {span}, {bill['currency']}: {bill['hours_recorded']} of "
        f"{bill['hours_in_month']} h recorded, up to {bill['period_end']}"
    )
    key_column = {"department": "org node", "bureau": "bureau", "district": "district"}.get(
        bill["by"], bill["by"]
    )
    rows = [
        [
            ("  " * row["depth"]) + row["key"],
            grouped(row["allocated_cny"]),
            grouped(row["consumed_cny"]),
            f"{row['allocated_unit_hours'].get('vcpu', 0):,}",
            f"{row['allocated_unit_hours'].get('ram_gb', 0):,}",
        ]
        for row in bill["rows"]
    ]
    rows.append(
        ["total", grouped(bill["total"]["allocated_cny"]), grouped(bill["total"]["consumed_cny"]), "", ""]
    )
    output.stdout.print(
        output.table(
            title,
            [key_column, "allocated CNY", "consumed CNY", "vCPU·h", "RAM GB·h"],
            rows,
        )
    )
    if bill["hours_consumed_observed"] < bill["hours_recorded"]:
        output.stdout.print(
            f"consumed: observed in {bill['hours_consumed_observed']} of {bill['hours_recorded']} "
            "recorded hours",
            highlight=False,
        )
