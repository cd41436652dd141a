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
from collections.abc import Iterable, Sequence
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


_CONTROLS = (*(code for code in range(0x20) if code != 0x0A), 0x7F, *range(0x80, 0xA0))
"""C0 control characters but the line break, DEL and C1: a terminal acts on them (moves the
cursor, sets the title, clears the screen)."""
_BIDI_OVERRIDES = (*range(0x202A, 0x202F), *range(0x2066, 0x206A))
"""The bidirectional embeddings, overrides and isolates: they reorder the text a line shows."""

_SPELLED_OUT = {
    **{code: f"\\x{code:02x}" for code in _CONTROLS},
    **{code: f"\\u{code:04x}" for code in _BIDI_OVERRIDES},
}
"""Each character a terminal would obey, spelled as its escape."""
_JSON_ESCAPED = {code: f"\\u{code:04x}" for code in (*_CONTROLS, *_BIDI_OVERRIDES) if code >= 0x7F}
"""What ``json.dumps(ensure_ascii=False)`` writes raw of those (it escapes C0 itself), as JSON
escapes: they occur only in strings, so the document reads the same to a program."""


def visible(text: str) -> str:
    """``text`` as it reads: nothing in it reaches the terminal as an instruction."""
    return text.translate(_SPELLED_OUT)


@functools.cache
def _consoles() -> tuple[Console, Console]:
    from rich.console import Console
    from rich.segment import Segment

    class VisibleConsole(Console):
        """A console whose text is shown, never obeyed: what it prints holds no escape sequence
        but its own styles and cursor moves (names, reasons and errors come from the API, or
        from whoever wrote to it)."""

        def _render_buffer(self, buffer: Iterable[Segment]) -> str:
            return super()._render_buffer(
                segment if segment.control else Segment(visible(segment.text), segment.style)
                for segment in buffer
            )

    return VisibleConsole(soft_wrap=False), VisibleConsole(stderr=True, soft_wrap=True)


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
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2).translate(_JSON_ESCAPED) + "\n")
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
    """A table of ``rows``: the title and a cell are shown as their text, never read as markup
    (names and paths hold ``[``); a rich ``Text`` cell keeps its style."""
    from rich.table import Table
    from rich.text import Text

    shown_title = None if title is None else Text(visible(title), style="table.title")
    result = Table(title=shown_title, title_justify="left", header_style="bold", **options)
    for column in columns:
        numeric = column in NUMERIC_COLUMNS
        result.add_column(column, justify="right" if numeric else "left")
    for row in rows:
        add_row(result, row)
    return result


def add_row(table: Table, cells: Sequence[Any], **options: Any) -> None:
    """Add a row of ``cells`` to ``table``, each shown as its text (``None`` as a dash), never read
    as markup: object keys, errors and names hold ``[``. A rich ``Text`` cell keeps its style;
    ``options`` are ``Table.add_row``'s (``style``, ``end_section``)."""
    from rich.text import Text

    table.add_row(
        *[
            cell if isinstance(cell, Text) else Text("–" if cell is None else visible(str(cell)))
            for cell in cells
        ],
        **options,
    )


_FORMULA_FIRST = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A name as a cell of a CSV file: one a spreadsheet would run as a formula (``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return first) is kept as text by a leading ``'``."""
    return f"'{value}" if value.startswith(_FORMULA_FIRST) else value


def escape(text: Any) -> str:
    """``text`` as it reads, in a line printed with markup: a name may hold ``[``."""
    from rich.markup import escape as markup_escape

    return markup_escape(str(text))


ERROR_MAX = 1000
"""The most of an error's message printed: a value echoed whole (a 64 KB name) tells nothing more."""


def error(message: str) -> None:
    """``message`` as one line on stderr: line breaks and control characters spelled out, cut
    at ``ERROR_MAX`` characters."""
    from rich.markup import escape

    line = visible(message).replace("\n", "\\n")
    if len(line) > ERROR_MAX:
        line = f"{line[:ERROR_MAX]}… ({len(line) - ERROR_MAX} more characters)"
    _consoles()[1].print(f"[bold red]error:[/] {escape(line)}", highlight=False)


def number(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"
