"""The ``cloudctl`` command: global options, error handling and exit codes.

Invariants:
- Exit codes (DESIGN.md): 0 success; 1 the operation ran and failed; 2 bad input,
  with one line naming the field and the reason; 3 a backend or the store was
  unreachable after retries. Never a traceback for an error cloudctl understands.
- Heavy imports (SQLAlchemy, services, SDKs) happen inside commands, and a command
  module is imported only when one of its commands runs (``LazyGroup``), so that
  ``cloudctl --help`` starts fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import importlib
import math
import types
import typing
from pathlib import Path
from typing import Annotated, Any

import typer
import typer._coercion
import typer._param_types
import typer.core
import typer.main
from typer import _click as click

from cloudctl.cli import common, output

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("commands_core", "Create the state from the topology; running it again is safe."),
    "status": (
        "commands_core",
        "The centers with role, site, health and capacity, and the links between them.",
    ),
    "login": ("commands_login", "Log in to a management center: store its API URL and your token."),
    "config": ("commands_login", "Contexts (management centers and identities) in the client config file."),
    "serve": (
        "cloudctl.serve",
        "Run one replica of the management center: the HTTP API and /metrics; the reconcilers and "
        "periodic passes while the database elects it leader (Ctrl-C or SIGTERM stops cleanly).",
    ),
    "failback": (
        "commands_recovery",
        "Bring home every workload whose home uses a center: resync it, switch back, restore the tier's "
        "layout.",
    ),
    "metrics": (
        "commands_observability",
        "Print the Prometheus exposition of the state (the same series as /metrics).",
    ),
    "demo": ("commands_demo", "A guided end-to-end run on the simulator centers (safe to repeat)."),
    "centers": ("commands_core", "The centers of the topology: role, site, health, capacity."),
    "dept": ("commands_org", "The org tree: city → district or bureau → department."),
    "quota": ("commands_org", "Hierarchical quotas per org node and center, and reservations."),
    "token": ("commands_selfservice", "Bearer tokens for departments and operators."),
    "request": ("commands_selfservice", "Requests from the catalog: list, show, approve, reject."),
    "workload": ("commands_selfservice", "Workloads: placement per center and protection."),
    "audit": ("commands_selfservice", "The keyed, hash-chained audit log (the auditor's power)."),
    "replication": (
        "commands_recovery",
        "Replication streams: where every protected workload's data is copied.",
    ),
    "failover": (
        "commands_recovery",
        "Move workloads off a center (`failover run`), and find, inspect and finish runs.",
    ),
    "restore": (
        "commands_restore",
        "Restore a workload's volumes and data to the newest recovery point at or before a time.",
    ),
    "drill": (
        "commands_drill",
        "DR drills: plans and schedules, runs that measure RPO/RTO, and their reports.",
    ),
    "infra": (
        "commands_infra",
        "The centers' foundation (projects, networks, namespaces, quotas) as Pulumi code, "
        "one stack per center.",
    ),
    "sim": ("commands_demo", "The simulator centers: inject and clear faults."),
    "showback": (
        "commands_showback",
        "A month's showback and chargeback per department, bureau, district, center or tier (CNY).",
    ),
    "capacity": (
        "commands_capacity",
        "Capacity per center: the forecast of allocation against thresholds, and usage recording.",
    ),
    "data": (
        "commands_data",
        "Cross-department data sharing: published items and purpose-bound, expiring grants.",
    ),
    "mgmt": (
        "commands_mgmt",
        "The management database's standby in the DR site: status, promote, fence, failback.",
    ),
}
"""Every top-level command: the module whose ``register(app)`` adds it (a name under ``cloudctl.cli``,
or a dotted name: ``serve`` comes from the composition module, which may import the API), and
its one-line help (what ``cloudctl --help`` lists without importing that module)."""

RICH_MARKUP_MODE: typer.core.MarkupMode = None
"""Help is plain text: the rich help renderer costs more than the rest of ``--help`` together."""


class LazyGroup(typer.core.TyperGroup):
    """The root command: each command module is imported when one of its commands runs.

    Listing the commands (``cloudctl --help``) shows ``COMMANDS``' one-line help and imports
    nothing; running or asking for the help of one command imports its module only.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loaded: set[str] = set()
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            module, short_help = COMMANDS[cmd_name]
            if self._listing:
                return typer.core.TyperCommand(name=cmd_name, help=short_help, short_help=short_help)
            self.load(module)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def load(self, module_name: str) -> None:
        """Import ``cloudctl.cli.<module_name>`` (or the dotted ``module_name``) and add the commands
        its ``register`` declares."""
        if module_name in self._loaded:
            return
        dotted = module_name if "." in module_name else f"cloudctl.cli.{module_name}"
        module = importlib.import_module(dotted)
        declared = typer.Typer(rich_markup_mode=RICH_MARKUP_MODE, add_completion=False)
        module.register(declared)
        for name, command in typer.main.get_group(declared).commands.items():
            self.add_command(command, name)
        self._loaded.add(module_name)


@dataclasses.dataclass(frozen=True)
class _PlainCoercion(typer._coercion.RuntimeParam):
    """Typer's coercion of one option, without importing pydantic for a value that needs none.

    Typer builds a pydantic ``TypeAdapter`` for every option it reads, defaults included:
    importing pydantic costs more than the rest of a remote command's start. A value already
    of the option's type, a string for a ``str`` option, a path for a ``Path`` one and one of
    an enum's choices, each checked by typer's own rules, need no adapter; anything else (a
    wrong choice: typer words the error) goes to typer's.
    """

    plain: type

    def _coerce_value(self, value: Any, param: Any, ctx: click.Context) -> Any:
        if self.plain is Path and isinstance(value, str | Path):
            return typer._param_types.coerce_cli_path(
                Path(value), self.parameter_info, path_type=Path, param=param, ctx=ctx
            )
        if isinstance(value, self.plain) and (self.plain is bool or not isinstance(value, bool)):
            return value
        if issubclass(self.plain, enum.Enum) and isinstance(value, str):
            with contextlib.suppress(ValueError):  # typer's own coercion words the error
                return typer._param_types.coerce_cli_choice(
                    value,
                    choices=list(self.plain),
                    case_sensitive=self.parameter_info.case_sensitive,
                    ctx=ctx,
                )
        return typer._coercion.build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)


def _without_none(annotation: Any) -> Any:
    """``X`` for ``X | None``; any other annotation as it is."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        others = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        return others[0] if len(others) == 1 else annotation
    return annotation


def _plain_type(annotation: Any) -> type | None:
    """``str``, ``bool``, ``Path`` or an enum, alone or ``| None``: the types ``_PlainCoercion`` reads."""
    annotation = _without_none(annotation)
    if annotation in (str, bool, Path) or (
        isinstance(annotation, type) and issubclass(annotation, enum.Enum)
    ):
        return typing.cast(type, annotation)
    return None


def _runtime_param(param: Any) -> typer._coercion.RuntimeParam:
    """``_TyperParameter.get_runtime_param`` with ``_PlainCoercion`` where it applies."""
    if param._runtime_param is None:
        descriptor = param.type_descriptor
        info = descriptor.parameter_info
        plain = _plain_type(descriptor.annotation)
        custom = info.parser is not None or info.path_type is not None
        if plain is None or custom or param.multiple or param.nargs != 1:
            param._runtime_param = typer._coercion.build_runtime_param(descriptor)
        else:
            param._runtime_param = _PlainCoercion(
                parameter_info=info, annotation=descriptor.annotation, plain=plain
            )
    return typing.cast(typer._coercion.RuntimeParam, param._runtime_param)


def usage_line(error: click.exceptions.UsageError) -> str:
    """A usage error as bad input is said everywhere else: ``error: <field>: <reason>``, one line,
    with the command's help named instead of its usage printed."""
    see = f" (see '{error.ctx.command_path} --help')" if error.ctx is not None else ""
    param = getattr(error, "param", None)
    field = "usage"
    if param is not None and param.param_type_name == "option":
        field = param.opts[0].lstrip("-")  # as typed: --ram-gb is ram-gb
    elif param is not None:
        field = param.get_error_hint().strip("'").lower()  # as the usage shows it: NODE is node
    if isinstance(error, click.exceptions.MissingParameter) and param is not None:
        reason = "required"
    elif isinstance(error, click.exceptions.BadParameter) and param is not None:
        reason = error.message
    else:
        reason = error.format_message()
    return f"error: {field}: {reason.rstrip('.')}{see}"


_click_parse_args = click.core.Command.parse_args


def _refuse_undecodable(ctx: click.Context, param: typer.core._TyperParameter, value: Any) -> None:
    """Refuse a text value holding bytes that are not UTF-8 (``$'\\xff'``: Python keeps them as lone
    surrogates, which no request can carry). A path may hold them: it names a file as it is."""
    if _plain_type(param.type_descriptor.annotation) is Path:
        return
    for text in value if isinstance(value, list | tuple) else [value]:
        if isinstance(text, str) and not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise click.exceptions.BadParameter(
                    f"not UTF-8 text (byte 0x{ord(text[error.start]) & 0xFF:02x} at {error.start})",
                    ctx=ctx,
                    param=param,
                ) from None


def _refuse_not_finite(ctx: click.Context, param: typer.core._TyperParameter, value: Any) -> None:
    """Refuse ``nan`` and ``inf`` for a number of seconds, days or a rate: a wait of ``nan`` seconds
    never ends, and none passes a range check (``nan < 1`` is false)."""
    if _without_none(param.type_descriptor.annotation) is not float or not isinstance(value, str):
        return
    try:
        number = float(value)
    except ValueError:
        return  # typer's coercion words the error
    if not math.isfinite(number):
        raise click.exceptions.BadParameter(f"must be a finite number, not {value!r}", ctx=ctx, param=param)


def _parse_args_once(self: click.Command, ctx: click.Context, args: list[str]) -> list[str]:
    """``Command.parse_args``, refusing an option given twice (``--center qd-a --center qd-b``),
    text that is not UTF-8 and a number that is not finite.

    Click keeps the last value silently; for a command that acts on a center, the operator who
    typed two must say which one they meant. Options made to repeat, counts and ``--help``
    are not checked."""
    if args and not ctx.resilient_parsing:
        given, _rest, order = self.make_parser(ctx).parse_args(args=list(args))
        for param in self.get_params(ctx):
            named = typing.cast(typer.core._TyperParameter, param)
            _refuse_undecodable(ctx, named, given.get(param.name))
            _refuse_not_finite(ctx, named, given.get(param.name))
        seen: set[int] = set()
        for param in order:
            if param.param_type_name != "option" or param.multiple or param.is_eager:
                continue
            if getattr(param, "count", False):
                continue
            if id(param) in seen:
                named = typing.cast(typer.core._TyperParameter, param)
                raise click.exceptions.BadParameter("given more than once: say it once", ctx=ctx, param=named)
            seen.add(id(param))
    return _click_parse_args(self, ctx, args)


click.core.Command.parse_args = _parse_args_once  # type: ignore[method-assign]


def _show_usage_error(self: click.exceptions.UsageError, file: typing.IO[Any] | None = None) -> None:
    click.utils.echo(usage_line(self), file=file, err=file is None)


# A usage error (a missing or malformed argument, an unknown option or command) is one line,
# however the command is run (``run``, or ``app`` under a test runner).
click.exceptions.UsageError.show = _show_usage_error  # type: ignore[method-assign]


app = typer.Typer(
    name="cloudctl",
    cls=LazyGroup,
    help="Control plane of a two-sites-four-centers government cloud (两地四中心).",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=RICH_MARKUP_MODE,
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
        typer.Option(
            "--output", "-o", help="table for people; json or yaml for programs (csv: showback, capacity)."
        ),
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
    context_name: Annotated[
        str | None,
        typer.Option(
            "--context", metavar="NAME", help="Talk to this context of the config file, not the current one."
        ),
    ] = None,
    act_as: Annotated[
        str | None,
        typer.Option(
            "--as",
            metavar="ROLE",
            help="Break glass: open the database directly as ROLE (sysadmin, secadmin or auditor); "
            "needs --reason. Recorded with your OS user and host, counted, and alerted on.",
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", metavar="TEXT", help="Why you break glass (recorded).")
    ] = None,
    break_glass: Annotated[
        bool,
        typer.Option(
            "--break-glass",
            help="Break glass as the owner of your token (--token-file or CLOUDCTL_TOKEN); needs --reason.",
        ),
    ] = False,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", metavar="FILE", help="Read the bearer token from FILE (instead of the context's)."
        ),
    ] = None,
) -> None:
    if output_format is output.Format.CSV and ctx.invoked_subcommand not in output.CSV_COMMANDS:
        output.error(f"output: csv is offered by {', '.join(sorted(output.CSV_COMMANDS))} only")
        raise typer.Exit(2)
    ctx.obj = common.State(
        home=home,
        database_url=database_url,
        topology=topology,
        policies=policies,
        fmt=output_format,
        simulated_time=simulated_time,
        context_name=context_name,
        act_as=act_as,
        reason=reason,
        break_glass=break_glass,
        token_file=token_file,
    )
    ctx.call_on_close(ctx.obj.close)


def load_all() -> None:
    """Register every command now (tests and tools that walk the whole command tree)."""
    for module in dict.fromkeys(module for module, _help in COMMANDS.values()):
        command().load(module)


_GLOBAL_OPTIONS = {
    "--home",
    "--database-url",
    "--topology",
    "--policies",
    "--output",
    "-o",
    "--context",
}
_GLOBAL_FLAGS = {"--simulated-time"}
"""Options that may follow the command. The break-glass options (``--as``, ``--reason``,
``--break-glass``, ``--token-file``) stand before it, where nothing can mistake them for a
command's own (``request reject --reason``, ``login --token-file``)."""
_GLOBAL_ATTACHED = {f"-o{choice}" for choice in output.Format}
"""``-o`` with its value attached (``-ojson``); another text (``--reason -ops``) is a command's."""


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
        if arg in _GLOBAL_FLAGS or arg in _GLOBAL_ATTACHED:
            front.append(arg)
        elif name in _GLOBAL_OPTIONS:
            if "=" in arg:
                front.append(arg)
            elif index + 1 >= len(argv):
                return [*front, arg]  # its value is missing: said so, not read from the command's name
            else:
                front.extend(argv[index : index + 2])
                index += 1
        else:
            rest.append(arg)
        index += 1
    return front + rest


@functools.cache
def command() -> LazyGroup:
    """The root click command of ``app`` (built once), whose commands load on demand."""
    built = typer.main.get_command(app)
    assert isinstance(built, LazyGroup)
    # Every option of every command, the help options included, reads through ``_PlainCoercion``.
    typer.core._TyperParameter.get_runtime_param = _runtime_param  # type: ignore[method-assign,assignment]
    return built


def run() -> None:
    import sys

    command().main(args=hoist_global_options(sys.argv[1:]), prog_name="cloudctl")
