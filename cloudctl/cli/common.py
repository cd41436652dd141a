"""What every command shares: the global options' state, the API client, error handling, output.

How a command reaches the management center (docs/security.md, "Remote mode and break-glass"):

- **remote** (the default): through ``/v1`` with the person's token, from the current context
  of ``~/.config/cloudctl/config.yaml`` (``cloudctl login``) or ``CLOUDCTL_API`` and
  ``CLOUDCTL_TOKEN``. Nothing of the store, the drivers or the API is imported.
- **break-glass**: ``--as ROLE --reason TEXT``, or ``--break-glass --reason TEXT`` with a token
  (``--token-file`` or ``CLOUDCTL_TOKEN``). The database is opened directly, the use is
  recorded with the OS user, host and reason (``cloudctl_break_glass_total``, alert
  ``CloudctlBreakGlassUsed``), and the command runs through the same API in this process,
  as that identity.
- neither: an operator command refuses with one line saying how to log in or break glass
  (exit 2). ``init`` and ``serve`` open the database without an identity.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from cloudctl import errors
from cloudctl.cli import output

if TYPE_CHECKING:
    from cloudctl.cli import client as client_module

F = TypeVar("F", bound=Callable[..., Any])


class State:
    """What the global options decided, handed to every command through ``typer.Context.obj``."""

    def __init__(
        self,
        *,
        home: Path,
        database_url: str | None,
        topology: Path,
        fmt: output.Format,
        policies: Path = Path("policies"),
        simulated_time: bool = False,
        context_name: str | None = None,
        act_as: str | None = None,
        reason: str | None = None,
        break_glass: bool = False,
        token_file: Path | None = None,
    ) -> None:
        self.context_name = context_name
        self.act_as = act_as
        self.reason = reason
        self.break_glass = break_glass or act_as is not None
        self.token_file = token_file
        self._client: client_module.Client | None = None
        self._principal: Any = None
        self.simulated_time = simulated_time
        self.policies = policies
        self.home = home
        self.database_url = database_url
        self.topology = topology
        self.fmt = fmt
        self._context: Any = None

    @property
    def context(self) -> Any:
        """The services context (``cloudctl.services.context.Context``), opened on first use."""
        if self._context is None:
            from cloudctl import clock, settings
            from cloudctl.services import context

            chosen: clock.Clock = clock.SystemClock()
            if self.simulated_time:
                chosen = clock.ManualClock(start=clock.SystemClock().now())
            self._context = context.open_context(
                settings.Settings(
                    home=self.home,
                    database_url=self.database_url,
                    topology=self.topology,
                    policies=self.policies,
                ),
                clock=chosen,
            )
        return self._context

    @property
    def wants_data(self) -> bool:
        return self.fmt is not output.Format.TABLE

    def emit(self, value: Any, render: Callable[[], None]) -> None:
        """Print ``value`` as JSON/YAML, or call ``render`` to draw it for people."""
        if self.wants_data:
            output.emit_data(value, self.fmt)
        else:
            render()

    def emit_table(
        self, items: Sequence[Any], columns: Sequence[str], row: Callable[[Any], Sequence[Any]]
    ) -> None:
        """Print ``items`` as JSON/YAML, or for people as a table of ``columns``, one ``row`` an item."""
        self.emit(
            items, lambda: output.stdout.print(output.table(None, columns, [row(item) for item in items]))
        )

    # --- who acts, and how the API is reached -------------------------------------------------

    def token(self) -> str:
        """The token named on the command line (``--token-file``) or in ``CLOUDCTL_TOKEN``; else empty."""
        import os

        from cloudctl.cli import contexts

        if self.token_file is not None:
            return read_token_file(self.token_file)
        value = os.environ.get("CLOUDCTL_TOKEN", "").strip()
        return contexts.check_token(value, field="CLOUDCTL_TOKEN") if value else ""

    def operator(self) -> Any:
        """The identity a direct-database command acts as: break-glass only, recorded once.

        Refuses (exit 2) without ``--as ROLE --reason TEXT`` or ``--break-glass`` and a token.
        """
        if self._principal is not None:
            return self._principal
        token = self.check_break_glass()
        from cloudctl.services import audit, identity

        context = self.context
        context.require_initialised()
        if self.act_as is not None:
            self._principal = audit.record_break_glass(context, role=self.act_as, reason=self.reason or "")
        else:
            principal = identity.authenticate(
                context, authorization=f"Bearer {token}", source=audit.local_source()
            )
            audit.record_break_glass(
                context, role=principal.role, reason=self.reason or "", token_id=principal.id
            )
            self._principal = principal
        return self._principal

    def check_break_glass(self) -> str:
        """Refuse (exit 2) unless the global options break glass with an identity and a reason.

        Touches nothing: a command checks this before its other input, and records the use
        (``operator``) only once it is about to act. Returns the token named, if any.
        """
        if not self.break_glass:
            raise errors.InvalidInput(
                "this command acts on the database directly: break glass with `--as ROLE --reason TEXT` "
                "(or `--break-glass --reason TEXT` with your token)",
                field="as",
            )
        if not (self.reason or "").strip():
            raise errors.InvalidInput(
                "break-glass needs `--reason TEXT`: say why the API will not do", field="reason"
            )
        token = "" if self.act_as else (self.token() or self._context_token())
        if self.act_as is None and not token:
            raise errors.InvalidInput(
                "break-glass needs an identity: `--as ROLE`, or your token (`--token-file FILE`, "
                "CLOUDCTL_TOKEN, or the context `cloudctl login` kept)",
                field="as",
            )
        return token

    def _context_token(self) -> str:
        """The token of the context in use (``--context`` or the current one), if any."""
        from cloudctl.cli import contexts

        chosen = contexts.resolve(context_name=self.context_name)
        return chosen.token if chosen is not None else ""

    def api(self) -> client_module.Client:
        """The API client: remote with the current context, or in process when breaking glass."""
        if self._client is None:
            self._client = self._open_client()
        return self._client

    def _open_client(self) -> client_module.Client:
        from cloudctl.cli import client, contexts

        if self.break_glass:
            principal = self.operator()
            composition = importlib.import_module(COMPOSITION)
            transport = composition.local_api(self.context, principal)
            return client.Client(transport, token="", api="the local database (break-glass)")
        chosen = contexts.resolve(context_name=self.context_name)
        if chosen is None:
            raise errors.InvalidInput(NO_CONTEXT, field="context")
        token = self.token() if self.token_file is not None else chosen.token
        if not token:
            raise errors.InvalidInput(
                f"context {chosen.name!r} holds no token: `cloudctl login --api {chosen.api}`", field="token"
            )
        return client.Client(client.open_transport(chosen.api), token=token, api=chosen.api)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._context is not None:
            self._context.close()
            self._context = None


def handles_errors(command: F) -> F:
    """Turn cloudctl errors into one line on stderr and the documented exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except errors.CloudctlError as error:
            output.error(error.one_line())
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def state_of(ctx: typer.Context) -> State:
    state = ctx.find_root().obj
    assert isinstance(state, State)
    return state


COMPOSITION = "cloudctl.serve"
"""The module that assembles the API for ``serve`` and for break-glass (it imports ``api``; the
command line only names it, so ``cli`` never imports ``api``)."""

NO_CONTEXT = (
    "no management center chosen: log in with `cloudctl login --api URL` (or set CLOUDCTL_API and "
    "CLOUDCTL_TOKEN); at the console without the API, break glass with `--as ROLE --reason TEXT`"
)


TOKEN_FILE_MAX = 4096
"""The largest token file read: a token is one line of at most 200 characters."""


def read_token_file(path: Path) -> str:
    """The token in ``path`` (``--token-file``), once it is one, in a file its owner alone can read
    (a device or a file over ``TOKEN_FILE_MAX`` bytes is refused unread)."""
    import os

    from cloudctl.cli import contexts, files

    text = files.read_bounded(path, field="token-file", max_bytes=TOKEN_FILE_MAX)
    token = contexts.check_token(text, field="token-file")
    contexts.refuse_loose(path, os.stat(path), field="token-file")
    return token
