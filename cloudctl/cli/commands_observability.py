"""``cloudctl metrics``: the ``/metrics`` exposition, for cron jobs and textfile collectors.

Invariant: prints exactly what the management center's ``/metrics`` serves (breaking glass:
the API in this process over the same store, whose process counters are zero);
``--write FILE`` replaces the file atomically (write beside it, flushed to disk, then rename), so a
collector never reads half a file, nor an empty one after a power cut.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from cloudctl import errors
from cloudctl.cli import common


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
        _check_destination(write)
    text = state.api().call("GET", "/metrics", accept="text/plain").body
    if write is None:
        sys.stdout.buffer.write(text)
        sys.stdout.flush()
        return
    try:
        _write_atomically(path=write, data=text)
    except OSError as error:
        raise errors.InvalidInput(f"cannot write {str(write)!r}: {error.strerror}", field="write") from None


def _check_destination(path: Path) -> None:
    """Refuse, before the state is read (or glass broken), a file that cannot be written there."""
    directory = path.parent if str(path.parent) else Path(".")
    problem = None
    if path.is_dir():
        problem = errno.EISDIR
    elif not directory.is_dir():
        nearest = next((above for above in (directory, *directory.parents) if above.exists()), None)
        problem = errno.ENOTDIR if nearest is not None and not nearest.is_dir() else errno.ENOENT
    if problem is not None:
        reason = f"cannot write {str(path)!r}: {os.strerror(problem)}"
        raise errors.InvalidInput(reason, field="write")


def _write_atomically(*, path: Path, data: bytes) -> None:
    directory = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())  # a power cut leaves the old file or the new one, never an empty one
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
        directory_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_fd)  # and the rename itself is durable
        finally:
            os.close(directory_fd)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
