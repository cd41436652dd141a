"""``cloudctl metrics``: the ``/metrics`` exposition, for cron jobs and textfile collectors.

Invariant: prints exactly what the management center's ``/metrics`` serves (breaking glass:
the API in this process over the same store, whose process counters are zero);
``--write FILE`` replaces the file atomically (write beside it, flushed to disk, then rename), so a
collector never reads half a file, nor an empty one after a power cut.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from cloudctl import errors
from cloudctl.cli import common, files


def register(app: typer.Typer) -> None:
    app.command("metrics")(metrics)


@common.handles_errors
def metrics(
    ctx: typer.Context,
    write: Annotated[
        Path | None,
        typer.Option(
            "--write",
            metavar="FILE",
            help="Write the exposition to FILE atomically (e.g. node_exporter's textfile directory, "
            "name ending in .prom) instead of printing it.",
        ),
    ] = None,
) -> None:
    """Print the Prometheus exposition of the state (the same series as /metrics)."""
    state = common.state_of(ctx)
    if state.wants_data:  # a program asking for JSON must not be handed another format
        raise errors.InvalidInput(
            "metrics prints the Prometheus text exposition only: leave out -o", field="output"
        )
    if write is not None:
        files.check_writable(write, field="write")
    text = state.api().call("GET", "/metrics", accept="text/plain").body
    if write is None:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return
    files.write_replacing(write, text, mode=0o644, field="write")  # the collector reads it
