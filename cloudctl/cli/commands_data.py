"""``cloudctl data``: cross-department data sharing — published items and purpose-bound grants.

Every command is a client of ``/v1/data/...``; the service authorises, audits and enforces.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cloudctl.cli import client, common, output

HELP = "Cross-department data sharing: published items and purpose-bound, expiring grants."

data_app = typer.Typer(help=HELP, no_args_is_help=True)
items_app = typer.Typer(help="Data items departments publish for sharing.", no_args_is_help=True)
grants_app = typer.Typer(
    help="Grants: a consumer's purpose-bound, expiring access to an item.", no_args_is_help=True
)
data_app.add_typer(items_app, name="items")
data_app.add_typer(grants_app, name="grants")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")


def _items_table(items: list[dict[str, Any]]) -> None:
    rows = [
        (
            item["id"],
            item["owner"],
            item["kind"],
            f"{item['workload_id']}/{item['prefix']}" if item["kind"] == "bucket-prefix" else item["dataset"],
            item["data_class"],
            item["grants_active"],
        )
        for item in items
    ]
    output.stdout.print(output.table(None, ("id", "owner", "kind", "where", "class", "active grants"), rows))


def _grants_table(found: list[dict[str, Any]]) -> None:
    rows = [
        (g["id"], g["item_id"], g["provider"], g["consumer"], g["purpose"], g["state"], g["expires_at"])
        for g in found
    ]
    columns = ("id", "item", "provider", "consumer", "purpose", "state", "expires")
    output.stdout.print(output.table(None, columns, rows))


ItemArgument = Annotated[
    str, typer.Argument(metavar="ITEM", help="A data item's id, as `data items list` shows it.")
]
GrantArgument = Annotated[
    str, typer.Argument(metavar="GRANT", help="A grant's id, as `data grants list` shows it.")
]


@items_app.command("list")
@common.handles_errors
def items_list(ctx: typer.Context) -> None:
    """The shared data catalog: the items you may see."""
    state = common.state_of(ctx)
    items = state.api().get("/v1/data/items")["data"]
    state.emit(items, lambda: _items_table(items))


@items_app.command("show")
@common.handles_errors
def items_show(ctx: typer.Context, item_id: ItemArgument) -> None:
    """One data item."""
    state = common.state_of(ctx)
    item = state.api().get(f"/v1/data/items/{client.segment(item_id, field='item')}")
    state.emit(item, lambda: _items_table([item]))


@items_app.command("publish")
@common.handles_errors
def items_publish(
    ctx: typer.Context,
    item_id: Annotated[str, typer.Argument(metavar="ID", help="The new item's id (a-z, 0-9, '-').")],
    data_class: Annotated[
        str,
        typer.Option("--class", help="A data class of the topology (public, internal, sensitive, secret)."),
    ],
    description: Annotated[str, typer.Option("--description", help="What the data is.")],
    workload: Annotated[
        str | None, typer.Option("--workload", help="Your bucket workload holding the data (with --prefix).")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="The prefix shared, e.g. households/2026/.")
    ] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="A dataset's name (instead of a prefix).")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="The owning department (default: yours).")
    ] = None,
) -> None:
    """Publish a bucket prefix of one of your workloads, or a dataset, for other departments."""
    state = common.state_of(ctx)
    body: dict[str, Any] = {
        "id": item_id,
        "kind": "dataset" if dataset is not None else "bucket-prefix",
        "data_class": data_class,
        "description": description,
        "owner": owner,
        "workload_id": workload,
        "prefix": prefix,
        "dataset": dataset,
    }
    item = state.api().post("/v1/data/items", {k: v for k, v in body.items() if v is not None})
    state.emit(item, lambda: output.stdout.print(f"published {item['id']} ({item['data_class']})"))


@grants_app.command("list")
@common.handles_errors
def grants_list(
    ctx: typer.Context,
    grant_state: Annotated[
        str | None, typer.Option("--state", help="requested, active, expired or revoked.")
    ] = None,
) -> None:
    """The grants you may see: as provider, consumer, the big-data bureau or sysadmin."""
    state = common.state_of(ctx)
    found = state.api().get("/v1/data/grants", state=grant_state)["data"]
    state.emit(found, lambda: _grants_table(found))


@grants_app.command("show")
@common.handles_errors
def grants_show(ctx: typer.Context, grant_id: GrantArgument) -> None:
    """One grant: its approvals, state and where it is enforced."""
    state = common.state_of(ctx)
    grant = state.api().get(f"/v1/data/grants/{client.segment(grant_id, field='grant')}")
    state.emit(grant, lambda: _grants_table([grant]))


@grants_app.command("request")
@common.handles_errors
def grants_request(
    ctx: typer.Context,
    item_id: ItemArgument,
    purpose: Annotated[str, typer.Option("--purpose", help="social-assistance, statistics, ... (what for).")],
    expires: Annotated[str, typer.Option("--expires", help="When it ends, ISO 8601 (e.g. 2027-06-30).")],
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="For this department (default: yours).")
    ] = None,
    holding_class: Annotated[
        str | None, typer.Option("--holding-class", help="The data class you hold the data under.")
    ] = None,
) -> None:
    """Ask for a grant on an item, with a purpose and an expiry."""
    state = common.state_of(ctx)
    body: dict[str, Any] = {"item_id": item_id, "purpose": purpose, "expires_at": expires}
    if consumer is not None:
        body["consumer"] = consumer
    if holding_class is not None:
        body["consumer_data_class"] = holding_class
    grant = state.api().post("/v1/data/grants", body)
    state.emit(grant, lambda: output.stdout.print(f"requested {grant['id']} ({grant['state']})"))


@grants_app.command("approve")
@common.handles_errors
def grants_approve(ctx: typer.Context, grant_id: GrantArgument) -> None:
    """Approve a grant: as the provider, then as the big-data bureau where needed."""
    state = common.state_of(ctx)
    grant = state.api().post(f"/v1/data/grants/{client.segment(grant_id, field='grant')}/approve", None)
    state.emit(grant, lambda: output.stdout.print(f"{grant['id']} is {grant['state']}"))


@grants_app.command("use")
@common.handles_errors
def grants_use(ctx: typer.Context, grant_id: GrantArgument) -> None:
    """Record a use of an active grant (audited), as the consumer; prints where to read."""
    state = common.state_of(ctx)
    grant = state.api().post(f"/v1/data/grants/{client.segment(grant_id, field='grant')}/use", None)

    def show() -> None:
        places = ", ".join(f"bucket {e['bucket']} in {e['center']}" for e in grant["enforced_in"])
        output.stdout.print(f"{grant['id']} ({grant['item_id']}): read {places or 'nothing yet'}")

    state.emit(grant, show)


@grants_app.command("revoke")
@common.handles_errors
def grants_revoke(
    ctx: typer.Context,
    grant_id: GrantArgument,
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
) -> None:
    """Revoke a grant now; its bucket policies are taken away."""
    state = common.state_of(ctx)
    grant = state.api().post(
        f"/v1/data/grants/{client.segment(grant_id, field='grant')}/revoke", {"reason": reason}
    )
    state.emit(grant, lambda: output.stdout.print(f"{grant['id']} is {grant['state']}"))
