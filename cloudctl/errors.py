"""The errors cloudctl raises, and the exit code each one maps to.

The exception tree, drawn once::

    CloudctlError                      any failure cloudctl understands
    ├── InvalidInput          (exit 2) bad input: names the field and the reason
    │   ├── TopologyError              topology file invalid (field = path in the file)
    │   ├── NotFound                   an unknown name or id
    │   ├── Conflict                   the request contradicts stored state
    │   │   └── QuotaExceeded          a reservation does not fit an ancestor's limit
    │   └── PolicyDenied               a policy refused the action; carries the deciding policy ids
    ├── AuthenticationFailed  (exit 2) a bearer token missing, malformed, unknown, revoked or expired
    │   └── LockedOut                  too many failures for this token or source; carries retry_after_s
    ├── OperationFailed       (exit 1) the operation ran and did not succeed
    └── BackendUnavailable    (exit 3) a backend or the store did not answer after retries
        └── InjectedFault              the simulator refused on purpose (fault injection)

Every error renders as one line: ``<field>: <reason>`` when a field is known; a file the
user names is read by ``read_input_file``, so that a missing or unreadable one is such a line too.
Nothing here imports anything but the standard library, so every layer may use it.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class CloudctlError(Exception):
    """Base of every error cloudctl raises on purpose."""

    exit_code = 1

    def __init__(self, reason: str, *, field: str | None = None) -> None:
        self.reason = reason
        self.field = field
        super().__init__(self.one_line())

    def one_line(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class InvalidInput(CloudctlError):
    """Input that cannot be accepted as given; nothing was changed."""

    exit_code = 2


def named_path(path: Path) -> str:
    """``path`` as an error names it: quoted, and where a relative path was looked for."""
    if path.is_absolute():
        return repr(str(path))
    return f"{str(path)!r} (relative to {str(Path.cwd())!r})"


INPUT_FILE_MAX_BYTES = 16 << 20
"""The largest file a user names that is read (a topology, a drill plan): more is no input of ours."""


def read_input_file(path: Path, *, field: str, max_bytes: int = INPUT_FILE_MAX_BYTES) -> str:
    """The text (UTF-8) of a file the user named; missing, unreadable, not UTF-8, a device
    (``/dev/zero`` never ends) or over ``max_bytes`` bytes: ``InvalidInput`` of ``field``, the
    last two refused unread. A pipe (``<(…)``) is read, up to the same bound."""
    try:
        info = path.stat()
        if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) or info.st_size > max_bytes:
            raise InvalidInput(
                f"{named_path(path)} is a device, or over {max_bytes} bytes: not a file to read", field=field
            )
        with path.open("rb") as handle:
            data = handle.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise InvalidInput(
                f"{named_path(path)} is over {max_bytes} bytes: not a file to read", field=field
            )
        return data.decode("utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"no such file {named_path(path)}", field=field) from None
    except OSError as error:
        reason = f"cannot read {named_path(path)}: {error.strerror or error}"
        raise InvalidInput(reason, field=field) from None
    except UnicodeDecodeError as error:
        byte = error.object[error.start]
        reason = f"cannot read {named_path(path)}: not UTF-8 text (byte 0x{byte:02x} at offset {error.start})"
        raise InvalidInput(reason, field=field) from None


class TopologyError(InvalidInput):
    """The topology file is invalid; ``field`` is the path inside the file."""


class NotFound(InvalidInput):
    """An unknown name or id."""


class Conflict(InvalidInput):
    """The request contradicts what is stored (exists already, still in use, ...)."""


@dataclass(frozen=True)
class Shortfall:
    """One ancestor quota that a reservation would overrun."""

    node: str
    center: str
    resource: str
    limit: int
    in_use: int
    requested: int

    @property
    def available(self) -> int:
        return max(self.limit - self.in_use, 0)

    def describe(self) -> str:
        scope = "all centers" if self.center == "*" else f"center {self.center}"
        return (
            f"{self.node} has {self.available} of {self.limit} available on {scope}, "
            f"{self.requested} requested"
        )


class QuotaExceeded(Conflict):
    """A reservation would overrun the limit of the node or one of its ancestors."""

    def __init__(self, shortfalls: list[Shortfall]) -> None:
        self.shortfalls = shortfalls
        first = shortfalls[0]
        more = f" (and {len(shortfalls) - 1} more)" if len(shortfalls) > 1 else ""
        super().__init__(first.describe() + more, field=f"quota.{first.resource}")


class AuthenticationFailed(CloudctlError):
    """The bearer token is missing, malformed, unknown, revoked or expired (HTTP 401)."""

    exit_code = 2


class LockedOut(AuthenticationFailed):
    """Too many failed authentications for this token, or from this source (HTTP 429).

    ``retry_after_s`` is how long the lockout still lasts.
    """

    def __init__(self, reason: str, *, retry_after_s: float, field: str | None = "authorization") -> None:
        self.retry_after_s = retry_after_s
        super().__init__(reason, field=field)


class OperationFailed(CloudctlError):
    """The operation ran and did not succeed (a drill missed, a verify found tampering)."""

    exit_code = 1


class BackendUnavailable(CloudctlError):
    """A backend or the store did not answer, after retries where retrying made sense."""

    exit_code = 3


class InjectedFault(BackendUnavailable):
    """The simulator refused an operation because a fault was injected."""


class PolicyDecision(Protocol):
    """What ``PolicyDenied`` needs of a decision (``cloudctl.policy.engine.Decision`` fits)."""

    @property
    def policy_ids(self) -> tuple[str, ...]: ...

    def one_line(self) -> str: ...


class PolicyDenied(InvalidInput):
    """A policy refused the action; ``field`` is the action, ``policy_ids`` the deciding policies.

    An empty ``policy_ids`` means no policy permitted the action (Cedar's default deny).
    """

    def __init__(self, decision: PolicyDecision, *, action: str) -> None:
        self.decision = decision
        self.policy_ids = decision.policy_ids
        self.action = action
        super().__init__(decision.one_line(), field=action)
