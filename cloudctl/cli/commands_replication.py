"""``cloudctl replication scrub``: re-read every replica, repair and audit what is wrong.

Attached to the ``replication`` group that ``commands_recovery`` defines; a call on
``POST /v1/replication/scrub`` as the person logged in (or the break-glass identity). Exit code 1
when a stream could not be scrubbed (its error is shown); mismatches found and repaired
are the scrub doing its job (exit 0), each one listed and audited.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cloudctl.cli import common, output


@common.handles_errors
def replication_scrub(
    ctx: typer.Context,
    workload: Annotated[str | None, typer.Option(help="Only this workload's streams.")] = None,
) -> None:
    """Re-read every replica; re-send damaged, missing or other bytes and audit each (operators)."""
    state = common.state_of(ctx)
    findings = state.api().post("/v1/replication/scrub", workload=workload)["data"]

    def render() -> None:
        table = output.table(None, ["workload", "source → target", "mismatches repaired", "error"], [])
        for item in findings:
            output.add_row(
                table,
                [
                    item["workload_id"],
                    f"{item['source']} → {item['target']}",
                    ", ".join(item["mismatches"]) or "–",
                    item["error"] or "–",
                ],
                style="bold red" if item["error"] else ("yellow" if item["mismatches"] else None),
            )
        output.stdout.print(table)
        repaired = sum(len(item["mismatches"]) for item in findings)
        output.stdout.print(f"{len(findings)} stream(s) scrubbed; {repaired} mismatch(es) repaired")

    state.emit(findings, render)
    if any(item["error"] for item in findings):
        raise typer.Exit(1)
