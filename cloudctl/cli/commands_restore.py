"""``cloudctl restore WORKLOAD --at TIME``: a workload's volumes and data as they were at a point.

A call on ``POST /v1/workloads/{id}/restore`` as the person logged in (or the break-glass
identity). It shows the recovery point used (the newest consistent at or before ``--at``),
the volumes made from its snapshots, the object keys rewound or removed, and the data lost
between the point and ``--at``; ``--dry-run`` shows the point and the loss and changes nothing.
Exit 1 when some data at the point was no longer kept (listed as missing).
"""

from __future__ import annotations

from typing import Annotated

import typer

from cloudctl.cli import client, common, output


def register(app: typer.Typer) -> None:
    app.command("restore")(restore)


@common.handles_errors
def restore(
    ctx: typer.Context,
    workload: Annotated[str, typer.Argument(help="The workload to restore.")],
    at: Annotated[
        str,
        typer.Option(
            "--at", help="ISO 8601 time (e.g. 2026-11-18T02:20:00Z); the newest point at or before it."
        ),
    ],
    to_center: Annotated[
        str | None,
        typer.Option("--to", help="The center to restore in (one holding a point; default: the DR copy's)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show the point that would be used and the data lost.")
    ] = False,
) -> None:
    """Restore a workload's volumes and data to the newest recovery point at or before a time.

    Operators (``failover.run`` on the center restored in). Exit 2 on bad input (nothing is
    changed), 1 when some data at the point was no longer kept.
    """
    state = common.state_of(ctx)
    done = state.api().post(
        f"/v1/workloads/{client.segment(workload, field='workload')}/restore",
        {"at": at, "to_center": to_center, "dry_run": dry_run},
    )

    def render() -> None:
        verb = "would restore" if done["dry_run"] else "restored"
        output.stdout.print(
            f"{done['workload_id']} {verb} in {done['center']} to point {done['point']} "
            f"(seq {done['seq']}, consistent at {done['consistent_at']})",
            markup=False,
        )
        if done["volumes"]:  # a workload with no volume recovers its bucket only
            table = output.table(None, ["volume", "of", "from snapshot", "id"], [])
            for volume in done["volumes"]:
                output.add_row(
                    table, [volume["name"], volume["of"], volume["restored_from"], volume["id"] or "–"]
                )
            output.stdout.print(table)
        if not done["dry_run"]:
            output.stdout.print(
                f"objects: {len(done['objects_rewound'])} rewound, {len(done['objects_removed'])} removed, "
                f"{len(done['objects_missing'])} missing"
                + (f" ({', '.join(done['objects_missing'])})" if done["objects_missing"] else ""),
                markup=False,
            )
        output.stdout.print(
            f"data lost up to {done['at']}: {done['changes_lost']} write(s), {done['data_lost_s']:g} s",
            markup=False,
        )

    state.emit(done, render)
    if done["objects_missing"]:
        raise typer.Exit(1)
