"""``cloudctl init``, ``status`` and ``centers``: the state and the four centers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudctl import errors
from cloudctl.cli import common, output
from cloudctl.model import states

if TYPE_CHECKING:
    from rich.text import Text

centers_app = typer.Typer(
    help="The centers of the topology: role, site, health, capacity.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("status")(status)
    app.add_typer(centers_app, name="centers")


@common.handles_errors
def init(
    ctx: typer.Context,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Re-apply the topology to existing state: add centers and org nodes, set the file's "
            "limits. Never deletes an org node, a reservation or a limit the file does not name.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate the topology file; write nothing.")
    ] = False,
    topology_file: Annotated[
        Path | None, typer.Argument(help="Topology file (default: the global --topology).")
    ] = None,
) -> None:
    """Create the state from the topology; running it again is safe."""
    from cloudctl.services import setup

    state = common.state_of(ctx)
    result = setup.initialise(state.context, topology_file=topology_file, force=force, dry_run=dry_run)

    def render() -> None:
        messages = {
            "initialised": f"initialised {result.store} from {result.topology_file}: "
            f"{result.centers} centers, {result.org_nodes_created} org nodes, {result.limits_set} limits",
            "reapplied": f"re-applied {result.topology_file} to {result.store}: "
            f"{result.org_nodes_created} new org nodes, {result.limits_set} limits set",
            "already-initialised": f"already initialised: {result.store} "
            "(use --force to re-apply the topology)",
            "valid": f"{result.topology_file} is valid: {result.centers} centers",
        }
        if result.schema_upgraded_from is not None:
            output.stdout.print(
                f"upgraded the schema of {result.store} from revision {result.schema_upgraded_from}; "
                "what it held is kept",
                highlight=False,
                markup=False,
            )
        output.stdout.print(messages[result.outcome], highlight=False, markup=False)
        if result.stored_topology_differs:
            output.stdout.print(
                f"note: {result.topology_file} differs from the topology stored at init; "
                "`cloudctl init --force` applies it",
                highlight=False,
                markup=False,
            )

    state.emit(result, render)


@common.handles_errors
def status(ctx: typer.Context) -> None:
    """The centers with role, site, health and capacity, and the links between them."""
    state = common.state_of(ctx)
    result = state.api().get("/v1/status")
    state.emit(result, lambda: render_status(result))


def _health(value: str) -> Text:
    from rich.text import Text

    colours: dict[str, str] = {
        states.CenterHealth.UP: "green",
        states.CenterHealth.DOWN: "red",
        states.LinkState.DEGRADED: "yellow",
        states.LinkState.CUT: "red",
    }
    colour = colours.get(value, "white")
    return Text(value, style=colour)


def _drivers(drivers: dict[str, str]) -> str:
    """``simulator``, or e.g. ``openstack: compute, block_storage; simulator: the rest``."""
    names = set(drivers.values())
    if len(names) == 1:
        return names.pop()
    real = sorted({name for name in names if name != "simulator"})
    parts = [f"{name}: {', '.join(c for c, n in drivers.items() if n == name)}" for name in real]
    return "; ".join([*parts, "simulator: the rest"] if "simulator" in names else parts)


def render_status(result: dict[str, Any]) -> None:
    """``GET /v1/status`` (``StatusPublic`` as JSON) for people."""
    output.stdout.print(
        f"[bold]{output.escape(result['display_name'])}[/] ({result['topology']}) at {result['generated_at']}"
    )
    centers = result["centers"]
    output.stdout.print(
        output.table(
            "Centers",
            ["center", "name", "role", "site", "health", "drivers"],
            [
                [
                    c["name"],
                    c["display_name"],
                    c["role"],
                    c["site"],
                    _health(c["health"]),
                    _drivers(c["drivers"]),
                ]
                for c in centers
            ],
        )
    )
    capacity = output.table(
        "Capacity (allocated = quota granted to departments, used = consumed in the center)",
        ["center", "resource", "total", "allocated", "used", "allocated %"],
        [],
    )
    for center in centers:
        for index, (resource, cap) in enumerate(center["capacity"].items()):
            share = f"{100 * cap['allocated'] / cap['total']:.0f}%" if cap["total"] else "–"
            output.add_row(
                capacity,
                [
                    center["name"] if index == 0 else "",
                    resource,
                    f"{cap['total']:,}",
                    f"{cap['allocated']:,}",
                    f"{cap['used']:,}",
                    share,
                ],
                end_section=index == len(center["capacity"]) - 1,
            )
    output.stdout.print(capacity)
    output.stdout.print(
        output.table(
            "Links",
            ["between", "mode", "rtt ms", "bandwidth Mbps", "state"],
            [
                [
                    " ↔ ".join(link["between"]),
                    link["mode"],
                    link["rtt_ms"],
                    f"{link['bandwidth_mbps']:,}",
                    _health(link["state"]),
                ]
                for link in result["links"]
            ],
        )
    )
    if result.get("replicas"):
        output.stdout.print(
            output.table(
                "Management center replicas (cloudctl serve)",
                ["replica", "api", "role", "epoch", "heartbeat s ago", "policies"],
                [
                    [
                        r["id"],
                        r["api_url"],
                        r["role"],
                        r["epoch"] if r["epoch"] is not None else "–",
                        r["heartbeat_age_s"],
                        _policies_cell(r),
                    ]
                    for r in result["replicas"]
                ],
            )
        )
        differ = [r["id"] for r in result["replicas"] if r.get("policies_differ")]
        if differ:
            output.stderr.print(
                f"warning: {', '.join(differ)} decide(s) with other Cedar policies than the leader "
                "(with no leader: the newest replica): make the policies directory the same on every replica "
                "and restart the ones that differ",
                highlight=False,
                markup=False,
            )


def _policies_cell(replica: dict[str, Any]) -> str:
    """The first 12 hex digits of its policies' sha256, marked when they differ from the leader's."""
    sha = replica.get("policies_sha256")
    shown = f"{sha[:12]}…" if sha else "–"
    return f"{shown} ≠ leader" if replica.get("policies_differ") else shown


@centers_app.command("list")
@common.handles_errors
def centers_list(ctx: typer.Context) -> None:
    """Every center with its role, site and health."""
    state = common.state_of(ctx)
    result = state.api().get("/v1/status")["centers"]
    state.emit_table(
        result,
        ["center", "name", "role", "site", "health"],
        lambda c: [c["name"], c["display_name"], c["role"], c["site"], _health(c["health"])],
    )


@centers_app.command("show")
@common.handles_errors
def centers_show(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Center name.")]) -> None:
    """One center: role, site, health, capacity per resource, links."""
    state = common.state_of(ctx)
    overview = state.api().get("/v1/status")
    by_name = {c["name"]: c for c in overview["centers"]}
    if name not in by_name:
        raise errors.NotFound(f"no center {name!r} (known: {', '.join(by_name)})", field="center")
    center = by_name[name]
    links = [link for link in overview["links"] if name in link["between"]]

    def render() -> None:
        output.stdout.print(
            f"[bold]{center['name']}[/] {output.escape(center['display_name'])} — role {center['role']}, "
            f"site {center['site']}, health {_health(center['health']).markup}"
        )
        output.stdout.print(
            output.table(
                "Capacity",
                ["resource", "total", "allocated", "used", "free"],
                [
                    [
                        resource,
                        f"{cap['total']:,}",
                        f"{cap['allocated']:,}",
                        f"{cap['used']:,}",
                        f"{cap['total'] - max(cap['allocated'], cap['used']):,}",
                    ]
                    for resource, cap in center["capacity"].items()
                ],
            )
        )
        output.stdout.print(
            output.table(
                "Links",
                ["peer", "mode", "rtt ms", "bandwidth Mbps", "state"],
                [
                    [
                        next(end for end in link["between"] if end != name),
                        link["mode"],
                        link["rtt_ms"],
                        f"{link['bandwidth_mbps']:,}",
                        _health(link["state"]),
                    ]
                    for link in links
                ],
            )
        )

    state.emit({"center": center, "links": links}, render)
