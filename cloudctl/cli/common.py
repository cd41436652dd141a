"""What every command shares: the global options' state, error handling, output choice."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from cloudctl import errors
from cloudctl.cli import output

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
    ) -> None:
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

    def close(self) -> None:
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
