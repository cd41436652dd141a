"""``cloudctl login`` and ``cloudctl config``: which management center to talk to, as whom.

Invariants:
- the token is read from ``--token-file``, from standard input when it is not a terminal, or
  from a prompt that does not echo; never from an argument (it would land in the shell's
  history and in ``ps``), and never printed;
- ``login`` stores nothing unless the API accepted the token (``GET /v1/whoami``);
- the config file is written by ``contexts.save`` only (mode 0600, atomic).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cloudctl import errors
from cloudctl.cli import client, common, contexts, output

config_app = typer.Typer(
    help="Contexts (management centers and identities) in the client config file.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.command("login")(login)
    app.add_typer(config_app, name="config")


def _read_token(token_file: Path | None, api: str) -> str:
    if token_file is not None:
        return common.read_token_file(token_file)
    if not sys.stdin.isatty():
        return contexts.check_token(sys.stdin.readline(common.TOKEN_FILE_MAX), field="stdin")
    import getpass

    return contexts.check_token(getpass.getpass(f"token for {api}: "), field="token")


@common.handles_errors
def login(
    ctx: typer.Context,
    api: Annotated[
        str, typer.Option("--api", metavar="URL", help="The management center's API, e.g. https://mgmt:8443.")
    ],
    name: Annotated[
        str | None,
        typer.Option("--name", metavar="NAME", help="The context's name (default: the API's host:port)."),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            metavar="FILE",
            help="Read the token from FILE; otherwise from standard input, or a prompt that does not echo.",
        ),
    ] = None,
) -> None:
    """Log in to a management center: store its API URL and your token.

    The token is checked there first; the context (~/.config/cloudctl/config.yaml, mode 0600)
    becomes the current one."""
    state = common.state_of(ctx)
    api = contexts.check_url(api)
    context_name = (
        contexts.default_name(api) if name is None else contexts.check_context_name(name, field="name")
    )
    config = contexts.load()
    token = _read_token(token_file or state.token_file, api)
    remote = client.Client(client.open_transport(api), token=token, api=api)
    try:
        who = remote.get("/v1/whoami")
    finally:
        remote.close()
    if not (isinstance(who, dict) and isinstance(who.get("id"), str) and isinstance(who.get("role"), str)):
        raise errors.OperationFailed(
            f"{api} is not a cloudctl API: /v1/whoami named no principal; nothing was stored", field="api"
        )
    config.contexts[context_name] = contexts.Context(name=context_name, api=api, token=token)
    config.current = context_name
    contexts.save(config)
    result = {"context": context_name, "api": api, "principal": who, "config": str(config.path)}
    state.emit(
        result,
        lambda: output.stdout.print(
            f"logged in to {api} as {who['id']} ({who['role']}"
            + (f", {who['department']}" if who.get("department") else "")
            + f"); context {context_name} is current ({config.path})",
            highlight=False,
            markup=False,
        ),
    )


@config_app.command("get-contexts")
@common.handles_errors
def get_contexts(ctx: typer.Context) -> None:
    """The contexts of the config file; the current one is marked with *. Tokens are never shown."""
    state = common.state_of(ctx)
    config = contexts.load()
    items = [
        {"name": c.name, "api": c.api, "current": c.name == config.current, "has_token": bool(c.token)}
        for c in sorted(config.contexts.values(), key=lambda c: c.name)
    ]
    state.emit_table(
        items,
        ["current", "name", "api"],
        lambda item: ["*" if item["current"] else "", item["name"], item["api"]],
    )


@config_app.command("current-context")
@common.handles_errors
def current_context(ctx: typer.Context) -> None:
    """The name of the current context (exit 2 when none is set)."""
    state = common.state_of(ctx)
    config = contexts.load()
    if config.current is None:
        raise errors.InvalidInput(common.NO_CONTEXT, field="context")
    state.emit(
        {"name": config.current}, lambda: output.stdout.print(config.current, highlight=False, markup=False)
    )


ContextArgument = Annotated[
    str, typer.Argument(metavar="NAME", help="A context `config get-contexts` lists.")
]


@config_app.command("use-context")
@common.handles_errors
def use_context(ctx: typer.Context, name: ContextArgument) -> None:
    """Make a context current: later commands talk to its management center as its identity."""
    state = common.state_of(ctx)
    config = contexts.load()
    config.context(name)
    config.current = name
    contexts.save(config)
    state.emit(
        {"name": name},
        lambda: output.stdout.print(f"switched to context {name}", highlight=False, markup=False),
    )


@config_app.command("delete-context")
@common.handles_errors
def delete_context(ctx: typer.Context, name: ContextArgument) -> None:
    """Forget a context and its token (the token stays valid at the server: a secadmin revokes it)."""
    state = common.state_of(ctx)
    config = contexts.load()
    config.context(name)
    del config.contexts[name]
    if config.current == name:
        config.current = None
    contexts.save(config)
    state.emit(
        {"name": name, "deleted": True},
        lambda: output.stdout.print(f"deleted context {name}", highlight=False, markup=False),
    )
