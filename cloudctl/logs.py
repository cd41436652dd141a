"""Structured logs: JSON lines for machines, one readable line for people, with context on every record.

``configure()`` installs one handler on the root logger: JSON lines when stderr is not a
terminal (journald, a log shipper, CI), human lines when it is. ``bind(...)`` sets
context — ``request_id``, ``department``, ``center``, ``reconcile_id`` — for everything
logged inside it, in this thread or task (context variables, so concurrent requests
never see each other's values).

Invariants:
- Every record the handler writes carries ``request_id`` (empty outside a request);
  ``department``, ``center`` and ``reconcile_id`` appear when bound.
- The API binds the request id it puts in the ``X-Request-ID`` header and in audit
  records, so one id joins a response, its audit records and its log lines.
- ``configure`` is idempotent: calling it again replaces the handler it installed,
  never stacks a second one; handlers installed by others are left alone.
- Standard library only: every layer may import this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import json as json_module
import logging
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

CONTEXT_FIELDS = ("request_id", "department", "center", "reconcile_id")
"""The context a record can carry, in the order the human format prints it."""

_context: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "cloudctl_log_context", default=None
)

# Attributes every LogRecord has; anything else on a record came from ``extra=`` and is logged as a field.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__.keys() | {"message", "asctime"}
)


@contextlib.contextmanager
def bind(
    *,
    request_id: str | None = None,
    department: str | None = None,
    center: str | None = None,
    reconcile_id: str | None = None,
) -> Iterator[Mapping[str, str]]:
    """Add context to every record logged inside the block; arguments left ``None`` keep their value."""
    given = {
        "request_id": request_id,
        "department": department,
        "center": center,
        "reconcile_id": reconcile_id,
    }
    merged = {**bound(), **{name: value for name, value in given.items() if value is not None}}
    token = _context.set(merged)
    try:
        yield merged
    finally:
        _context.reset(token)


def bound() -> Mapping[str, str]:
    """The context bound here and now."""
    return _context.get() or {}


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record (``record.request_id`` and friends)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = bound()
        for name in CONTEXT_FIELDS:
            if not hasattr(record, name):  # a value given with ``extra=`` wins
                setattr(record, name, context.get(name, ""))
        return True


def _timestamp(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {
        name: value
        for name, value in record.__dict__.items()
        if name not in _RECORD_ATTRIBUTES and name not in CONTEXT_FIELDS and not name.startswith("_")
    }


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, the context, the extras."""

    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", ""),
        }
        for name in CONTEXT_FIELDS[1:]:
            value = getattr(record, name, "")
            if value:
                document[name] = value
        document.update(_extras(record))
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            document["stack"] = self.formatStack(record.stack_info)
        return json_module.dumps(document, ensure_ascii=False, default=str)


class HumanFormatter(logging.Formatter):
    """``2026-01-01T00:00:00.000Z INFO  cloudctl.api message  request_id=… center=…``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = {name: getattr(record, name, "") for name in CONTEXT_FIELDS}
        fields.update(_extras(record))
        tail = " ".join(f"{name}={value}" for name, value in fields.items() if value not in ("", None))
        line = f"{_timestamp(record.created)} {record.levelname:<5} {record.name} {record.getMessage()}"
        if tail:
            line = f"{line}  {tail}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


class _Handler(logging.StreamHandler[IO[str]]):
    """The handler ``configure`` owns (so a second ``configure`` can find and replace it)."""


def configure(
    *, json: bool | None = None, level: int | str = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """Send log records to ``stream`` (stderr): JSON lines when ``json`` (default: stream not a tty)."""
    target = stream if stream is not None else sys.stderr
    if json is None:
        isatty = getattr(target, "isatty", None)
        json = not (callable(isatty) and isatty())
    handler = _Handler(target)
    handler.setFormatter(JsonFormatter() if json else HumanFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    for existing in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
