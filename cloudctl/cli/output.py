"""Rendering for people (rich tables and trees) and for programs (JSON, YAML).

Invariants: JSON and YAML print exactly the documented model (``model_dump``
in JSON mode), nothing else on stdout; tables are for people and may change.
Errors go to stderr as one line.
"""

from __future__ import annotations

import enum
import functools
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


class Format(enum.StrEnum):
    TABLE = "table"
    JSON = "json"
    YAML = "yaml"
    CSV = "csv"
    """Offered by the commands in ``CSV_COMMANDS`` only (flat rows)."""


CSV_COMMANDS = frozenset({"showback", "capacity"})


@functools.cache
def _consoles() -> tuple[Console, Console]:
    from rich.console import Console

    return Console(soft_wrap=False), Console(stderr=True, soft_wrap=True)


def __getattr__(name: str) -> Any:
    """``stdout`` and ``stderr``, the rich consoles, made on first use: importing rich costs
    more than the rest of ``cloudctl --help``."""
    if name == "stdout":
        return _consoles()[0]
    if name == "stderr":
        return _consoles()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_data(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_data(item) for item in value]
    if isinstance(value, dict):
        return {key: to_data(item) for key, item in value.items()}
    if hasattr(value, "as_json"):
        return value.as_json()
    return value


def emit_data(value: Any, fmt: Format) -> None:
    data = to_data(value)
    if fmt is Format.JSON:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))


NUMERIC_COLUMNS = frozenset(
    {
        "total",
        "limit",
        "used",
        "reserved",
        "allocated",
        "headroom",
        "free",
        "allocated %",
        "allocated CNY",
        "%",
        "threshold %",
        "trend/day",
        "days left",
        "R²",
        "consumed CNY",
        "vCPU·h",
        "RAM GB·h",
        "rtt ms",
        "bandwidth Mbps",
    }
)


def table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]], **options: Any) -> Table:
    """A table of ``rows``: a cell is shown as its text, never read as markup (names hold ``[``);
    a rich ``Text`` cell keeps its style."""
    from rich.table import Table
    from rich.text import Text

    result = Table(title=title, title_justify="left", header_style="bold", **options)
    for column in columns:
        numeric = column in NUMERIC_COLUMNS
        result.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        result.add_row(
            *[cell if isinstance(cell, Text) else Text("–" if cell is None else str(cell)) for cell in row]
        )
    return result


def escape(text: Any) -> str:
    """``text`` as it reads, in a line printed with markup: a name may hold ``[``."""
    from rich.markup import escape as markup_escape

    return markup_escape(str(text))


def error(message: str) -> None:
    from rich.markup import escape

    _consoles()[1].print(f"[bold red]error:[/] {escape(message)}", highlight=False)


def number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"
