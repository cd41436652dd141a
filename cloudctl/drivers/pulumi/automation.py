"""Preview, update and refresh one center's stack of the ``infra/`` Pulumi program.

Invariants:
- The engine (the ``pulumi`` command) is looked up on ``PATH`` before the Automation API is
  imported or called; when it is missing, ``errors.BackendUnavailable`` says how to install it,
  in one line. Nothing waits on a prompt: the Automation API runs the engine non-interactively.
- One stack per center, named after the center; its config names the center and the absolute
  path of the topology file, so the program declares exactly what ``cloudctl.model.foundation``
  computes from that file.
- The backend is a local file backend unless told otherwise (``file://<home>/pulumi``); its
  directory is created on first use. The stack config holds no secrets, so without a passphrase
  in the environment an empty one is used.
- Returns ``StackRun`` dataclasses, never Automation API objects; failures become
  ``cloudctl.errors`` (engine failed to run: ``BackendUnavailable``; the operation ran and
  failed: ``OperationFailed``), each one line.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cloudctl import errors

if TYPE_CHECKING:
    from pulumi import automation as auto

ENGINE_COMMAND = "pulumi"
INSTALL_HINT = (
    "the Pulumi engine is not installed: install it from https://www.pulumi.com/docs/install/ "
    "(not available from this machine's registries)"
)
PASSPHRASE_VARIABLES = ("PULUMI_CONFIG_PASSPHRASE", "PULUMI_CONFIG_PASSPHRASE_FILE")


class Operation(enum.StrEnum):
    PREVIEW = "preview"
    UP = "up"
    REFRESH = "refresh"


@dataclasses.dataclass(frozen=True)
class StackTarget:
    """Where one center's stack lives and what it reads."""

    center: str
    program_dir: Path
    topology_file: Path
    backend_url: str

    @property
    def stack_name(self) -> str:
        return self.center


@dataclasses.dataclass(frozen=True)
class StackRun:
    operation: Operation
    center: str
    stack: str
    backend_url: str
    outcome: str
    """``succeeded`` for every run that returns; failures raise."""
    changes: dict[str, int]
    """Resources per operation kind (``create``, ``update``, ``same``, ``delete`` ...)."""


def local_backend_url(directory: Path) -> str:
    return directory.resolve().as_uri()


def require_engine() -> str:
    """The path of the ``pulumi`` command, or ``BackendUnavailable`` saying how to install it."""
    found = shutil.which(ENGINE_COMMAND)
    if found is None:
        raise errors.BackendUnavailable(INSTALL_HINT)
    return found


def preview(*, target: StackTarget) -> StackRun:
    return _run(Operation.PREVIEW, target=target)


def up(*, target: StackTarget) -> StackRun:
    return _run(Operation.UP, target=target)


def refresh(*, target: StackTarget) -> StackRun:
    return _run(Operation.REFRESH, target=target)


def _run(operation: Operation, *, target: StackTarget) -> StackRun:
    require_engine()
    from pulumi import automation as auto

    try:
        stack = _select_stack(auto, target=target)
        if operation is Operation.PREVIEW:
            changes = stack.preview(color="never").change_summary
        elif operation is Operation.UP:
            changes = stack.up(color="never").summary.resource_changes or {}
        else:
            changes = stack.refresh(color="never").summary.resource_changes or {}
    except auto.errors.InvalidVersionError as error:
        raise errors.BackendUnavailable(f"the Pulumi engine is too old: {error}", field="pulumi") from None
    except (OSError, subprocess.CalledProcessError) as error:
        raise errors.BackendUnavailable(f"the Pulumi engine did not run: {error}", field="pulumi") from None
    except auto.errors.CommandError as error:
        raise errors.OperationFailed(
            f"{operation.value} of stack {target.stack_name!r} failed: {_last_line(error)}", field="pulumi"
        ) from None
    return StackRun(
        operation=operation,
        center=target.center,
        stack=target.stack_name,
        backend_url=target.backend_url,
        outcome="succeeded",
        changes=change_counts(changes),
    )


def _select_stack(auto_module: Any, *, target: StackTarget) -> auto.Stack:
    if target.backend_url.startswith("file://"):
        Path(target.backend_url.removeprefix("file://")).mkdir(parents=True, exist_ok=True)
    env = {"PULUMI_BACKEND_URL": target.backend_url, "PULUMI_SKIP_UPDATE_CHECK": "true"}
    if not any(name in os.environ for name in PASSPHRASE_VARIABLES):
        env["PULUMI_CONFIG_PASSPHRASE"] = ""
    options = auto_module.LocalWorkspaceOptions(work_dir=str(target.program_dir), env_vars=env)
    stack: auto.Stack = auto_module.create_or_select_stack(
        stack_name=target.stack_name, work_dir=str(target.program_dir), opts=options
    )
    stack.set_config("cloudctl:center", auto_module.ConfigValue(value=target.center))
    stack.set_config("cloudctl:topology", auto_module.ConfigValue(value=str(target.topology_file.resolve())))
    return stack


def change_counts(changes: Mapping[Any, int]) -> dict[str, int]:
    """Automation API change maps (keyed by ``OpType``) as plain ``{"create": 3, ...}``."""
    return {str(getattr(kind, "value", kind)): int(count) for kind, count in sorted(changes.items(), key=str)}


def _last_line(error: Exception) -> str:
    """The engine's last word: the last line of its stderr, else of its stdout."""
    text = str(error)
    stdout, _, stderr = text.partition(" stderr: ")
    for part in (stderr, stdout.partition(" stdout: ")[2]):
        lines = [line.strip() for line in part.splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return type(error).__name__
