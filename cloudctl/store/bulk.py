"""Many rows into one table (or many rows of it updated) in one round trip, at the least CPU
of this process.

SQLAlchemy sends the rows of one insert as one multi-row ``INSERT … VALUES (…), (…), …``
(``db``: ``use_insertmanyvalues_wo_returning``). On PostgreSQL that statement's text is new for
every number of rows and too long for psycopg's cache, so psycopg splits it at every
placeholder again each time (a regular expression over hundreds of them): in a batch of 24
admissions its five inserts were the largest share of the admission thread's CPU. Here
PostgreSQL gets one short statement per table and set of columns, sent for every row in one
pipeline (psycopg's ``executemany``: still one round trip); its text is parsed once. JSON
columns are serialised as SQLAlchemy serialises them (``json.dumps``). Other databases keep
SQLAlchemy's insert.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl.store import db


def insert_rows(tx: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys, column names) into ``table``, in order."""
    if not rows:
        return
    if tx.dialect.name != "postgresql" or len(rows) == 1:
        tx.execute(table.insert(), list(rows))
        return
    statement, json_columns = _postgres_insert(tx.dialect, table, tuple(rows[0]))
    if json_columns:
        rows = [{**row, **{name: json.dumps(row[name]) for name in json_columns}} for row in rows]
    tx.exec_driver_sql(statement, list(rows))


@functools.lru_cache(maxsize=64)
def _postgres_insert(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]
) -> tuple[str, tuple[str, ...]]:
    """The statement (psycopg's named placeholders) and the JSON columns among ``columns``."""
    preparer = dialect.identifier_preparer
    json_columns = tuple(name for name in columns if isinstance(table.c[name].type, sa.JSON))
    values = [
        f"CAST(%({name})s AS {table.c[name].type.compile(dialect=dialect)})"
        if name in json_columns
        else f"%({name})s"
        for name in columns
    ]
    statement = (
        f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.quote(name) for name in columns)})"
        f" VALUES ({', '.join(values)})"
    )
    return statement, json_columns


def update_rows(
    tx: sa.Connection, table: sa.Table, rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
) -> int:
    """Set the ``values`` of the row each ``(where, values)`` pair names by equality (every pair
    with the same keys and the same columns); how many rows matched in all.

    On PostgreSQL one statement for them all (``UPDATE … FROM json_array_elements(…)``: the
    pairs as one JSON parameter, each row reached by its key, typed as its column; JSON columns
    take the value as it is), else one statement executed for each pair.
    """
    if not rows:
        return 0
    where, values = rows[0]
    if tx.dialect.name != "postgresql" or len(rows) == 1:
        params = [
            {**{f"key_{k}": v for k, v in where.items()}, **{f"set_{c}": v for c, v in values.items()}}
            for where, values in rows
        ]
        statement = db.update_where(table, tuple(where), tuple(values))
        return int(tx.execute(statement, params[0] if len(params) == 1 else params).rowcount)
    together = _postgres_update(tx.dialect, table, tuple(where), tuple(values))
    records = [[*where.values(), *values.values()] for where, values in rows]
    return int(tx.execute(together, {"rows": json.dumps(records)}).rowcount)


@functools.lru_cache(maxsize=64)
def _postgres_update(
    dialect: sa.Dialect, table: sa.Table, keys: tuple[str, ...], columns: tuple[str, ...]
) -> sa.TextClause:
    preparer = dialect.identifier_preparer
    names = [*keys, *columns]
    fields = ", ".join(
        f"(r ->> {index})::{table.c[name].type.compile(dialect=dialect)}"
        if not isinstance(table.c[name].type, sa.JSON)
        else f"(r -> {index})::{table.c[name].type.compile(dialect=dialect)}"
        for index, name in enumerate(names)
    )
    aliases = ", ".join(f"v{index}" for index in range(len(names)))
    assignments = ", ".join(f"{preparer.quote(name)} = d.v{len(keys) + i}" for i, name in enumerate(columns))
    matches = " AND ".join(f"t.{preparer.quote(name)} = d.v{index}" for index, name in enumerate(keys))
    return sa.text(
        f"UPDATE {preparer.format_table(table)} AS t SET {assignments}"
        f" FROM (SELECT {fields} FROM json_array_elements(CAST(:rows AS json)) AS r) AS d({aliases})"
        f" WHERE {matches}"
    )
