"""``cloudctl infra``: the centers' foundation as Pulumi code, and its drift against the store.

Every ``infra`` command acts on the backends and the store directly: break-glass
(``--as sysadmin --reason TEXT``). ``preview|up|refresh --center C`` run that center's stack of
the ``infra/`` program through the Pulumi Automation API (exit 3 with an install hint where
the engine is missing); ``diff`` needs no engine: it compares what ``infra/`` declares with
what the store holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudctl import errors
from cloudctl.cli import common, output

if TYPE_CHECKING:
    from cloudctl.services import infra as infra_service

infra_app = typer.Typer(
    help="The centers' foundation (projects, networks, namespaces, quotas) as Pulumi code, one stack "
    "per center.",
    no_args_is_help=True,
)

CenterOption = Annotated[str, typer.Option("--center", help="The center whose stack to run.")]
ProgramOption = Annotated[
    Path | None,
    typer.Option("--program", help="The Pulumi program (default: beside the topology file, else ./infra)."),
]
BackendOption = Annotated[
    str | None,
    typer.Option("--backend-url", help="Pulumi state backend (default: file://<home>/pulumi)."),
]


def register(app: typer.Typer) -> None:
    app.add_typer(infra_app, name="infra")


def _run(
    ctx: typer.Context, *, operation: str, center: str, program: Path | None, backend_url: str | None
) -> None:
    from cloudctl.services import infra as infra_service

    state = common.state_of(ctx)
    state.check_break_glass()
    result = infra_service.run(
        state.context,
        operation=infra_service.parse_operation(operation),
        center=center,
        program_dir=program,
        backend_url=backend_url,
        before_acting=state.operator,
    )
    state.emit(result, lambda: render_run(result))


def render_run(result: infra_service.InfraRunPublic) -> None:
    output.stdout.print(
        f"{result.operation} of stack [bold]{output.escape(result.stack)}[/] "
        f"({output.escape(result.backend_url)}): {result.outcome}",
        highlight=False,
    )
    output.stdout.print(
        output.table(None, ["change", "resources"], [[kind, count] for kind, count in result.changes.items()])
    )


@infra_app.command("preview")
@common.handles_errors
def preview(
    ctx: typer.Context,
    center: CenterOption,
    program: ProgramOption = None,
    backend_url: BackendOption = None,
) -> None:
    """What `up` would change in the center's stack."""
    _run(ctx, operation="preview", center=center, program=program, backend_url=backend_url)


@infra_app.command("up")
@common.handles_errors
def up(
    ctx: typer.Context,
    center: CenterOption,
    program: ProgramOption = None,
    backend_url: BackendOption = None,
) -> None:
    """Create or update the center's foundation."""
    _run(ctx, operation="up", center=center, program=program, backend_url=backend_url)


@infra_app.command("refresh")
@common.handles_errors
def refresh(
    ctx: typer.Context,
    center: CenterOption,
    program: ProgramOption = None,
    backend_url: BackendOption = None,
) -> None:
    """Read the center's real resources back into the stack's state."""
    _run(ctx, operation="refresh", center=center, program=program, backend_url=backend_url)


@infra_app.command("diff")
@common.handles_errors
def diff(
    ctx: typer.Context,
    center: Annotated[str | None, typer.Option("--center", help="Compare only this center.")] = None,
    fail_on_drift: Annotated[
        bool, typer.Option("--fail-on-drift", help="Exit 1 when anything differs (for CI).")
    ] = False,
) -> None:
    """What infra/ declares against what the store holds; runs no engine."""
    from cloudctl.services import infra as infra_service

    state = common.state_of(ctx)
    state.operator()
    result = infra_service.diff(state.context, center=center)
    state.emit(result, lambda: render_diff(result))
    if fail_on_drift and result.differences:
        raise errors.OperationFailed(
            f"{_differences(len(result.differences))} between {result.topology_file} and the store",
            field="infra",
        )


def _differences(count: int) -> str:
    return f"{count} difference" if count == 1 else f"{count} differences"


def render_diff(result: infra_service.InfraDiffPublic) -> None:
    centers = ", ".join(result.centers) or "none"
    if not result.differences:
        output.stdout.print(
            f"no drift: the store matches the {result.resources_declared} resources "
            f"{result.topology_file} declares in {centers}",
            highlight=False,
            markup=False,
        )
        return
    title = f"{_differences(len(result.differences))} between {result.topology_file} (declared) and the store"
    output.stdout.print(
        output.table(
            title,
            ["center", "kind", "name", "field", "declared", "stored"],
            [[d.center, d.kind, d.name, d.field, d.declared, d.stored] for d in result.differences],
        )
    )
