"""The ``cloudctl`` command: global options, error handling and exit codes.

Invariants:
- Exit codes (DESIGN.md): 0 success; 1 the operation ran and failed; 2 bad input,
  with one line naming the field and the reason; 3 a backend or the store was
  unreachable after retries. Never a traceback for an error cloudctl understands.
- Heavy imports (SQLAlchemy, services, SDKs) happen inside commands, so that
  ``cloudctl --help`` starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cloudctl.cli import common, output

app = typer.Typer(
    name="cloudctl",
    help="Control plane of a two-sites-four-centers government cloud (两地四中心).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


@app.callback()
def main(
    ctx: typer.Context,
    home: Annotated[
        Path,
        typer.Option(envvar="CLOUDCTL_HOME", help="State directory (SQLite database, keys)."),
    ] = Path(".cloudctl"),
    database_url: Annotated[
        str | None,
        typer.Option(envvar="CLOUDCTL_DATABASE_URL", help="Database URL; default SQLite in --home."),
    ] = None,
    topology: Annotated[
        Path,
        typer.Option(envvar="CLOUDCTL_TOPOLOGY", help="Topology file read by `init`."),
    ] = Path("infra/topology.yaml"),
    policies: Annotated[
        Path,
        typer.Option(envvar="CLOUDCTL_POLICIES", help="Directory of the Cedar schema and policies."),
    ] = Path("policies"),
    output_format: Annotated[
        output.Format,
        typer.Option("--output", "-o", help="table for people; json or yaml for programs."),
    ] = output.Format.TABLE,
    simulated_time: Annotated[
        bool,
        typer.Option(
            "--simulated-time",
            envvar="CLOUDCTL_SIMULATED_TIME",
            help="Let waits (server boot, link transfers, drill phases) advance a simulated clock "
            "instead of real time: deterministic and instant, for CI and tests.",
        ),
    ] = False,
) -> None:
    ctx.obj = common.State(
        home=home,
        database_url=database_url,
        topology=topology,
        policies=policies,
        fmt=output_format,
        simulated_time=simulated_time,
    )
    ctx.call_on_close(ctx.obj.close)


def _register() -> None:
    from cloudctl.cli import (
        commands_core,
        commands_demo,
        commands_drill,
        commands_infra,
        commands_mgmt,
        commands_observability,
        commands_org,
        commands_recovery,
        commands_selfservice,
    )

    commands_core.register(app)
    commands_org.register(app)
    commands_selfservice.register(app)
    commands_recovery.register(app)
    commands_drill.register(app)
    commands_infra.register(app)
    commands_mgmt.register(app)
    commands_observability.register(app)
    commands_demo.register(app)


_register()


_GLOBAL_OPTIONS = {"--home", "--database-url", "--topology", "--policies", "--output", "-o"}
_GLOBAL_FLAGS = {"--simulated-time"}


def hoist_global_options(argv: list[str]) -> list[str]:
    """Let the global options stand anywhere: ``cloudctl status -o json`` as ``cloudctl -o json status``."""
    front: list[str] = []
    rest: list[str] = []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg == "--":
            rest.extend(argv[index:])
            break
        name = arg.split("=", 1)[0]
        if arg in _GLOBAL_FLAGS:
            front.append(arg)
        elif name in _GLOBAL_OPTIONS:
            if "=" in arg or index + 1 >= len(argv):
                front.append(arg)
            else:
                front.extend(argv[index : index + 2])
                index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


def run() -> None:
    import sys

    app(args=hoist_global_options(sys.argv[1:]), prog_name="cloudctl")
