"""``cloudctl dept`` and ``cloudctl quota``: the org tree and its hierarchical quotas.

``dept`` and ``quota show|set|reserve|commit|release|reservations`` go through the API
(``/v1/org/nodes``, ``/v1/quota``, ``/v1/reservations``); ``quota sync`` acts on the database and
the centers directly, as a break-glass identity (``--as ROLE --reason TEXT``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cloudctl.cli import client, common, output

dept_app = typer.Typer(help="The org tree: city → district or bureau → department.", no_args_is_help=True)
quota_app = typer.Typer(
    help="Hierarchical quotas per org node and center, and reservations.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(dept_app, name="dept")
    app.add_typer(quota_app, name="quota")


# --- dept ------------------------------------------------------------------------------------------


@dept_app.command("list")
@common.handles_errors
def dept_list(
    ctx: typer.Context,
    under: Annotated[str | None, typer.Option(help="Show only this node's subtree.")] = None,
) -> None:
    """The org tree, drawn as a tree."""
    state = common.state_of(ctx)
    nodes = state.api().get("/v1/org/nodes", under=under)["data"]
    state.emit(nodes, lambda: output.stdout.print(tree(nodes)))


def tree(nodes: list[dict[str, Any]]) -> object:
    """Org nodes (``OrgNodePublic`` as JSON) drawn as trees from their roots."""
    from rich.console import Group
    from rich.markup import escape
    from rich.tree import Tree

    by_id = {node["id"]: node for node in nodes}

    def label(node: dict[str, Any]) -> str:
        return f"[bold]{escape(node['id'])}[/]  {escape(node['display_name'])}  [dim]{node['kind']}[/]"

    roots = [node for node in nodes if node["parent"] not in by_id]
    trees = []
    for root in roots:
        top = Tree(label(root))
        stack = [(top, root)]
        while stack:
            branch, node = stack.pop()
            for child_id in node["children"]:
                if child_id in by_id:
                    child = by_id[child_id]
                    stack.append((branch.add(label(child)), child))
        trees.append(top)
    return Group(*trees)


NodeArgument = Annotated[str, typer.Argument(metavar="ID", help="An org node's id, as `dept list` shows it.")]


@dept_app.command("show")
@common.handles_errors
def dept_show(ctx: typer.Context, node_id: NodeArgument) -> None:
    """One org node: its place in the tree, children and quota headroom."""
    state = common.state_of(ctx)
    api = state.api()
    node = api.get(f"/v1/org/nodes/{client.segment(node_id, field='node')}")
    quota = api.get("/v1/quota", department=node_id)

    def render() -> None:
        output.stdout.print(
            f"[bold]{node['id']}[/] {output.escape(node['display_name'])} — {node['kind']}, "
            f"path {' / '.join(node['path'])}",
            highlight=False,
        )
        output.stdout.print(f"children: {', '.join(node['children']) or 'none'}", highlight=False)
        render_quota(quota)

    state.emit({"node": node, "quota": quota}, render)


@dept_app.command("create")
@common.handles_errors
def dept_create(
    ctx: typer.Context,
    node_id: Annotated[str, typer.Argument(metavar="ID", help="ASCII id used in commands and URLs.")],
    name: Annotated[str, typer.Option("--name", help="Display name, e.g. 市南区卫生健康局.")],
    parent: Annotated[str, typer.Option("--parent", help="Id of the parent node.")],
    kind: Annotated[str, typer.Option("--kind", help="city, district, bureau or department.")] = "department",
) -> None:
    """Add an org node under a parent."""
    state = common.state_of(ctx)
    node = state.api().post(
        "/v1/org/nodes", {"id": node_id, "display_name": name, "parent": parent, "kind": kind}
    )
    state.emit(
        node,
        lambda: output.stdout.print(
            f"created {node['id']} ({node['display_name']}) under {parent}", highlight=False, markup=False
        ),
    )


@dept_app.command("delete")
@common.handles_errors
def dept_delete(
    ctx: typer.Context,
    node_id: NodeArgument,
    ignore_missing: Annotated[
        bool, typer.Option("--ignore-missing", help="Succeed when the node does not exist.")
    ] = False,
) -> None:
    """Delete an org node that has no children and nothing in use; its tokens are revoked."""
    state = common.state_of(ctx)
    result = state.api().delete(
        f"/v1/org/nodes/{client.segment(node_id, field='node')}", ignore_missing=ignore_missing
    )
    state.emit(
        result,
        lambda: output.stdout.print(
            f"deleted {node_id}" if result["deleted"] else f"{node_id} did not exist"
        ),
    )


# --- quota -----------------------------------------------------------------------------------------


def render_quota(quota: dict[str, Any]) -> None:
    """A quota (``QuotaPublic`` as JSON) as one table per center."""
    for center in quota["centers"]:
        scope = "all centers (sum)" if center["center"] == "all" else f"center {center['center']}"
        output.stdout.print(
            output.table(
                f"{quota['node']} on {scope}",
                ["resource", "limit", "used", "reserved", "headroom", "bound by"],
                [
                    [
                        item["resource"],
                        output.number(item["limit"]),
                        output.number(item["used"]),
                        output.number(item["reserved"]),
                        "unbounded" if item["headroom"] is None else output.number(item["headroom"]),
                        item["bounded_by"] or "–",
                    ]
                    for item in center["resources"]
                ],
            )
        )


QuotaNodeArgument = Annotated[str, typer.Argument(metavar="NODE", help="An org node's id.")]


@quota_app.command("show")
@common.handles_errors
def quota_show(
    ctx: typer.Context,
    node_id: QuotaNodeArgument,
    center: Annotated[str | None, typer.Option(help="One center, or 'all' for all-centers limits.")] = None,
) -> None:
    """Limits, usage and reservations per center, with the headroom the ancestors leave."""
    state = common.state_of(ctx)
    quota = state.api().get("/v1/quota", department=node_id, center=center)
    state.emit(quota, lambda: render_quota(quota))


ResourceOption = Annotated[int | None, typer.Option(min=0, show_default=False, metavar="N")]


def _amounts(**values: int | None) -> dict[str, int | None]:
    return {name: value for name, value in values.items() if value is not None}


@quota_app.command("set")
@common.handles_errors
def quota_set(
    ctx: typer.Context,
    node_id: QuotaNodeArgument,
    center: Annotated[str, typer.Option(help="A center name, or 'all' for the sum over every center.")],
    vcpu: ResourceOption = None,
    ram_gb: ResourceOption = None,
    volume_gb: ResourceOption = None,
    object_gb: ResourceOption = None,
    instances: ResourceOption = None,
    unset: Annotated[
        list[str] | None,
        typer.Option(metavar="RESOURCE", help="Remove the node's own limit for this resource (repeatable)."),
    ] = None,
) -> None:
    """Set limits of one node on one center (all or nothing; children never exceed parents)."""
    state = common.state_of(ctx)
    limits = _amounts(vcpu=vcpu, ram_gb=ram_gb, volume_gb=volume_gb, object_gb=object_gb, instances=instances)
    for name in unset or []:
        limits[name] = None
    quota = state.api().put(
        f"/v1/quota/{client.segment(node_id, field='node')}", {"center": center, "limits": limits}
    )
    state.emit(quota, lambda: render_quota(quota))


@quota_app.command("sync")
@common.handles_errors
def quota_sync(
    ctx: typer.Context,
    center: Annotated[str | None, typer.Option(help="One center (default: every cloud center).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the drift; correct nothing.")] = False,
) -> None:
    """Keep the centers' project quotas equal to the quota tree: show and correct drift."""
    from cloudctl.services import access, provisioning

    state = common.state_of(ctx)
    principal = state.operator()
    if not dry_run:  # showing the drift is reading; correcting it is setting quota
        access.authorize(
            state.context, principal=principal, action="quota.set", resource_type="Quota", resource_id="all"
        )
    results = provisioning.sync_quotas(state.context, center=center, dry_run=dry_run)
    data = [
        {
            "center": r.center,
            "projects": r.projects,
            "corrected": r.corrected,
            "error": r.error,
            "drift": [
                {"project": d.project, "resource": d.resource, "found": d.found, "wanted": d.wanted}
                for d in r.drift
            ],
        }
        for r in results
    ]

    def render() -> None:
        rows = [
            [r.center, d.project, d.resource, output.number(d.found), output.number(d.wanted)]
            for r in results
            for d in r.drift
        ]
        verb = "found" if dry_run else "corrected"
        output.stdout.print(
            output.table(f"Quota drift {verb}", ["center", "project", "resource", "found", "wanted"], rows)
        )
        for r in results:
            note = f" ({r.error})" if r.error else ""
            output.stdout.print(
                f"{r.center}: {r.projects} projects, {len(r.drift)} drift(s){note}", highlight=False
            )

    state.emit(data, render)


@quota_app.command("reserve")
@common.handles_errors
def quota_reserve(
    ctx: typer.Context,
    node_id: Annotated[str, typer.Argument(metavar="NODE")],
    center: Annotated[str, typer.Option(help="The center the resources will live in.")],
    vcpu: ResourceOption = None,
    ram_gb: ResourceOption = None,
    volume_gb: ResourceOption = None,
    object_gb: ResourceOption = None,
    instances: ResourceOption = None,
    purpose: Annotated[str, typer.Option(help="Why, for the record.")] = "",
) -> None:
    """Hold quota for a node on a center; refused with the ancestor and resource that ran out."""
    state = common.state_of(ctx)
    amounts = _amounts(
        vcpu=vcpu, ram_gb=ram_gb, volume_gb=volume_gb, object_gb=object_gb, instances=instances
    )
    body = {"node": node_id, "center": center, "amounts": amounts, "purpose": purpose}
    reservation = state.api().post("/v1/reservations", body)
    state.emit(reservation, lambda: _render_reservation(reservation))


ReservationArgument = Annotated[str, typer.Argument(metavar="RESERVATION")]


@quota_app.command("commit")
@common.handles_errors
def quota_commit(ctx: typer.Context, reservation_id: ReservationArgument) -> None:
    """Turn a reservation into usage (the resources exist now)."""
    _settle(ctx, reservation_id, "commit")


@quota_app.command("release")
@common.handles_errors
def quota_release(ctx: typer.Context, reservation_id: ReservationArgument) -> None:
    """Give a reservation (or the usage it became) back to the tree."""
    _settle(ctx, reservation_id, "release")


def _settle(ctx: typer.Context, reservation_id: str, verb: str) -> None:
    state = common.state_of(ctx)
    path = f"/v1/reservations/{client.segment(reservation_id, field='reservation')}/{verb}"
    reservation = state.api().post(path, {})
    state.emit(reservation, lambda: _render_reservation(reservation))


@quota_app.command("reservations")
@common.handles_errors
def quota_reservations(
    ctx: typer.Context,
    node_id: Annotated[str | None, typer.Argument(metavar="[NODE]")] = None,
    all_states: Annotated[bool, typer.Option("--all", help="Include released reservations.")] = False,
) -> None:
    """Live reservations (reserved or committed), of one node or of all."""
    state = common.state_of(ctx)
    page = state.api().get("/v1/reservations", node=node_id, all="true" if all_states else None)
    items = page["data"]
    state.emit(items, lambda: _render_reservations(items))


def _render_reservation(item: dict[str, Any]) -> None:
    output.stdout.print(
        f"{item['state']} {item['id']}: {item['node']} on {item['center']}: {_amounts_text(item)}",
        highlight=False,
    )


def _amounts_text(item: dict[str, Any]) -> str:
    return ", ".join(f"{name}={value}" for name, value in item["amounts"].items())


def _render_reservations(items: list[dict[str, Any]]) -> None:
    output.stdout.print(
        output.table(
            None,
            ["reservation", "node", "center", "amounts", "state", "purpose", "updated"],
            [
                [
                    item["id"],
                    item["node"],
                    item["center"],
                    _amounts_text(item),
                    item["state"],
                    item["purpose"],
                    item["updated_at"],
                ]
                for item in items
            ],
        )
    )
