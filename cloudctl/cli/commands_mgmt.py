"""``cloudctl mgmt``: the management database's DR copy — status, promote, fence, failback.

Direct database commands: they act on the PostgreSQL servers themselves, so a promotion works
while the API (whose database is lost) is down. Each breaks glass as the sysadmin
(``--as sysadmin --reason TEXT``); promote, fence and failback record that use (OS user,
host, reason; ``cloudctl_break_glass_total``) and their action in the database that carries
on. ``--database-url`` names this site's management database, ``--standby-url`` (env
``CLOUDCTL_MGMT_STANDBY_URL``) the standby in the DR site.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudctl import errors
from cloudctl.cli import common, output

mgmt_app = typer.Typer(
    help="The management database's standby in the DR site: status, promote, fence, failback.",
    no_args_is_help=True,
)

StandbyOption = Annotated[
    str | None,
    typer.Option(
        "--standby-url",
        envvar="CLOUDCTL_MGMT_STANDBY_URL",
        help="PostgreSQL URL of the management database's standby (the DR site).",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(mgmt_app, name="mgmt")


def _break_glass(state: common.State) -> tuple[str, str]:
    """The break-glass operator's id and reason; refuses (exit 2) without ``--as sysadmin --reason``."""
    from cloudctl.services import access

    state.check_break_glass()
    if state.act_as != "sysadmin":
        raise errors.InvalidInput(
            "mgmt acts on the database servers, not through the API: break glass with "
            "`--as sysadmin --reason TEXT`",
            field="as",
        )
    return f"breakglass:{access.os_user()}", (state.reason or "").strip()


def _lag(value: int | None) -> str:
    return "–" if value is None else f"{value:,} B"


@mgmt_app.command("status")
@common.handles_errors
def status(ctx: typer.Context, standby_url: StandbyOption = None) -> None:
    """Both servers' roles and the standby's replication lag (WAL bytes, seconds)."""
    from cloudctl.services import mgmt

    state = common.state_of(ctx)
    _break_glass(state)  # reads the servers' roles only: nothing to record
    result = mgmt.status(state.context, standby=standby_url)

    def render() -> None:
        rows = [
            [name, server.url, server.role, server.timeline or "–", server.wal_lsn or server.error or "–"]
            for name, server in (("primary", result.primary), ("standby", result.standby))
            if server is not None
        ]
        output.stdout.print(
            output.table("Management database", ["site", "server", "role", "timeline", "WAL"], rows)
        )
        delay = "–" if result.replay_delay_s is None else f"{result.replay_delay_s:.1f} s"
        output.stdout.print(
            f"standby receiver: {result.receiver or 'not streaming'}; "
            f"lag: {_lag(result.lag_bytes)}; last replayed commit {delay} old",
            markup=False,
        )

    state.emit(result, render)


@mgmt_app.command("promote")
@common.handles_errors
def promote(
    ctx: typer.Context,
    standby_url: StandbyOption = None,
    old_primary: Annotated[
        str | None,
        typer.Option(help="URL of the old primary to fence (default: --database-url)."),
    ] = None,
) -> None:
    """Promote the DR standby; fence the old primary so it takes no writes, even after a restart."""
    from cloudctl.services import mgmt

    state = common.state_of(ctx)
    operator, why = _break_glass(state)
    result = mgmt.promote(
        state.context, standby=standby_url, old_primary=old_primary, operator=operator, why=why
    )

    def render() -> None:
        verb = "promoted" if result.promoted_now else "was already primary:"
        output.stdout.print(f"{verb} {result.promoted}", markup=False)
        if result.old_primary:
            fenced = "fenced (read-only)" if result.old_primary_fenced else "not fenced"
            output.stdout.print(
                f"old primary {result.old_primary}: {fenced}; {result.sessions_ended} session(s) ended; "
                f"lag at promotion {_lag(result.lag_bytes_at_promotion)}",
                markup=False,
            )
        output.stdout.print(result.note, markup=False)

    state.emit(result, render)


@mgmt_app.command("fence")
@common.handles_errors
def fence(
    ctx: typer.Context,
    url: Annotated[str, typer.Option(help="URL of the former primary that came back.")],
) -> None:
    """Make a former primary refuse writes for good (it came back after a promotion)."""
    from cloudctl.services import mgmt

    state = common.state_of(ctx)
    operator, why = _break_glass(state)
    ended = mgmt.fence(state.context, url=url, operator=operator, why=why)
    state.emit(
        {"fenced": url.split("@", 1)[-1], "sessions_ended": ended},
        lambda: output.stdout.print(
            f"fenced {url.split('@', 1)[-1]} (read-only); {ended} session(s) ended", markup=False
        ),
    )


@mgmt_app.command("failback")
@common.handles_errors
def failback(
    ctx: typer.Context,
    data_dir: Annotated[Path, typer.Option(help="The old primary's data directory (on this host).")],
    port: Annotated[int, typer.Option(help="Port the re-seeded standby listens on.")],
    from_url: Annotated[
        str, typer.Option("--from", help="URL of the promoted primary (the DR site) to seed from.")
    ],
) -> None:
    """Re-seed the old primary's site as the standby of the promoted one (its old data kept aside)."""
    from cloudctl.services import mgmt

    state = common.state_of(ctx)
    _, why = _break_glass(state)
    result = mgmt.failback(state.context, data_dir=data_dir, port=port, new_primary=from_url, why=why)

    def render() -> None:
        if result.kept_aside:
            output.stdout.print(f"kept the old data directory as {result.kept_aside}", markup=False)
        output.stdout.print(
            f"{result.data_dir} re-seeded from {result.seeded_from}: "
            f"{result.standby.url} is a {result.standby.role}",
            markup=False,
        )

    state.emit(result, render)
