"""Many rows into one table in one round trip, at the least CPU of this process.

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
