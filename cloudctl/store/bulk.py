"""Many rows into one table (or many rows of it updated) in one round trip, at the least CPU
of this process.

SQLAlchemy sends the rows of one insert as one multi-row ``INSERT … VALUES (…), (…), …``
(``db``: ``use_insertmanyvalues_wo_returning``). On PostgreSQL that statement's text is new for
every number of rows and too long for psycopg's cache, so psycopg splits it at every
placeholder again each time (a regular expression over hundreds of them): in a batch of 24
admissions its five inserts were the largest share of the admission thread's CPU. Here
PostgreSQL gets one short statement per table and set of columns, sent for every row in one
pipeline (psycopg's ``executemany``: still one round trip); its text is parsed once. JSON
columns are serialised as SQLAlchemy serialises them (``json.dumps``). SQLite gets the same short
statement through ``sqlite3``'s ``executemany``, each value bound as SQLAlchemy would bind it
(its column type's processor), without SQLAlchemy building each row's parameters again (a
tenth of the admission thread's CPU on SQLite). A table whose left-out columns have defaults,
and other databases, keep SQLAlchemy's insert.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl.store import db


def insert_rows(tx: sa.Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys, column names) into ``table``, in order."""
    if not rows:
        return
    driver = _driver_insert(tx.dialect, table, tuple(rows[0])) if len(rows) > 1 else None
    if driver is None:
        tx.execute(table.insert(), list(rows))
        return
    statement, processors = driver
    if processors:
        rows = [{**row, **{name: process(row[name]) for name, process in processors}} for row in rows]
    tx.exec_driver_sql(statement, list(rows))


@functools.lru_cache(maxsize=64)
def _driver_insert(
    dialect: sa.Dialect, table: sa.Table, columns: tuple[str, ...]
) -> tuple[str, tuple[tuple[str, Callable[[Any], Any]], ...]] | None:
    """The statement (the driver's named placeholders) and each column's bind processor, or
    ``None`` where SQLAlchemy's insert must run: a column left out has a default of its own,
    or the database is neither PostgreSQL nor SQLite."""
    if dialect.name not in ("postgresql", "sqlite"):
        return None
    if any(column.default is not None for column in table.c if column.name not in columns):
        return None
    preparer = dialect.identifier_preparer
    processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    if dialect.name == "postgresql":  # JSON as text, cast by the server; psycopg adapts the rest
        json_columns = [name for name in columns if isinstance(table.c[name].type, sa.JSON)]
        processors = tuple((name, json.dumps) for name in json_columns)
        casts = {name: table.c[name].type.compile(dialect=dialect) for name in json_columns}
        values = [
            f"CAST(%({name})s AS {casts[name]})" if name in casts else f"%({name})s" for name in columns
        ]
    else:  # every value as SQLAlchemy would bind it (JSON serialised, booleans as 0/1, …)
        bound = ((name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in columns)
        processors = tuple((name, process) for name, process in bound if process is not None)
        values = [f":{name}" for name in columns]
    statement = (
        f"INSERT INTO {preparer.format_table(table)} ({', '.join(preparer.quote(name) for name in columns)})"
        f" VALUES ({', '.join(values)})"
    )
    return statement, processors


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
