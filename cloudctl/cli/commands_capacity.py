"""``cloudctl capacity``: the forecast of each center's allocation, and the hourly usage pass.

Invariant: ``forecast`` changes nothing and reads through the API. ``record`` acts on the
database directly (break-glass, as ``replication run`` does) and records only ended hours not
recorded yet (each once, however often it runs), the same pass ``cloudctl serve`` runs every
minute.
"""

from __future__ import annotations

import csv
import sys
from typing import Annotated, Any

import typer

from cloudctl.cli import common, output

capacity_app = typer.Typer(
    help="Capacity per center: the forecast of allocation against thresholds, and usage recording.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(capacity_app, name="capacity")


@capacity_app.command("forecast")
@common.handles_errors
def forecast(
    ctx: typer.Context,
    center: Annotated[
        str | None, typer.Option("--center", help="One center only (default: every center).")
    ] = None,
) -> None:
    """Growth trend of each resource's allocation, days until its threshold, and the confidence (R²)."""
    state = common.state_of(ctx)
    result = state.api().get("/v1/capacity/forecast", center=center)
    if state.fmt is output.Format.CSV:
        write_csv(result)
        return
    state.emit(result, lambda: render(result))


@capacity_app.command("record")
@common.handles_errors
def record(
    ctx: typer.Context,
    max_hours: Annotated[
        int, typer.Option("--max-hours", min=1, help="Record at most this many hours (oldest first).")
    ] = 24 * 7,
) -> None:
    """Record the usage and capacity samples of every ended hour not recorded yet (safe to repeat)."""
    from cloudctl import clock as clocks
    from cloudctl.services import usage

    state = common.state_of(ctx)
    state.operator()

    def progress(hour: int) -> None:
        if not state.wants_data:
            output.stderr.print(f"recorded {clocks.isoformat(hour)}", highlight=False)

    result = usage.record_due(state.context, max_hours=max_hours, on_hour=progress)
    summary = {
        "recorded": [clocks.isoformat(hour) for hour in result.recorded],
        "already_recorded": result.skipped,
        "behind_hours": result.behind_hours,
    }

    def render() -> None:
        if not result.recorded:
            output.stdout.print("nothing to record: every ended hour is recorded", highlight=False)
            return
        first, last = clocks.isoformat(result.recorded[0]), clocks.isoformat(result.recorded[-1])
        behind = f"; {result.behind_hours} h still behind" if result.behind_hours else ""
        output.stdout.print(f"recorded {len(result.recorded)} h ({first} … {last}){behind}", highlight=False)

    state.emit(summary, render)


def _number(value: float | None, pattern: str = "{:,.1f}") -> str:
    return "—" if value is None else pattern.format(value)


def render(result: dict[str, Any]) -> None:
    for center in result["centers"]:
        title = (
            f"{center['center']} {center['display_name']} ({center['role']}) — trend over "
            f"{result['window_days']} days"
        )
        output.stdout.print(
            output.table(
                title,
                [
                    "resource",
                    "allocated",
                    "total",
                    "%",
                    "threshold %",
                    "trend/day",
                    "days left",
                    "reaches it on",
                    "R²",
                    "confidence",
                    "outlook",
                ],
                [
                    [
                        item["resource"],
                        f"{item['allocated']:,}",
                        f"{item['total']:,}",
                        f"{item['allocated_percent']:.1f}",
                        str(item["threshold_percent"]),
                        _number(item["trend_per_day"], "{:+,.2f}"),
                        _number(item["days_to_threshold"]),
                        item["reaches_threshold_on"] or "—",
                        _number(item["r_squared"], "{:.2f}"),
                        item["confidence"],
                        item["outlook"],
                    ]
                    for item in center["resources"]
                ],
            )
        )
    output.stdout.print(f"method: {result['method']}", highlight=False)


def write_csv(result: dict[str, Any]) -> None:
    writer = csv.writer(sys.stdout, lineterminator="\n")
    columns = [
        "resource",
        "total",
        "allocated",
        "allocated_percent",
        "threshold_percent",
        "samples",
        "trend_per_day",
        "days_to_threshold",
        "reaches_threshold_on",
        "r_squared",
        "confidence",
        "outlook",
    ]
    writer.writerow(["center", *columns])
    for center in result["centers"]:
        for item in center["resources"]:
            values = item
            writer.writerow(
                [
                    output.csv_text(center["center"]),
                    *("" if values[c] is None else values[c] for c in columns),
                ]
            )
