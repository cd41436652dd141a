"""``bulk.insert_rows``: many rows in one statement, stored exactly as SQLAlchemy's insert stores them.

The driver's own statement binds each value itself (JSON serialised, booleans, floats), so
what it stores is compared byte for byte, by the database's own view of each value (its text
and, on SQLite, its storage class), with the same rows inserted one at a time by SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from cloudctl.store import bulk, db, schema

ROWS: list[dict[str, Any]] = [
    {
        "id": f"req-{index}",
        "department": "dept-civil-affairs",
        "offering": "vm.small",
        "count": index + 1,
        "tier": "gold",
        "data_class": "internal",
        "preferred_center": None if index % 2 else "local-a",
        "name": "名册 ' \" % :x ?",
        "state": "pending",
        "needs_approval": bool(index % 2),
        "approval_policy_ids": [] if index % 2 else ["p-1", "p-2"],
        "reasons": None if index == 0 else {"why": ["a", {"nested": index}], "ok": True, "n": None},
        "steps": [{"at": 1.5, "state": "pending"}],
        "workload_id": None,
        "created_by": "alice",
        "created_at": 1_700_000_000.123456 + index,
        "updated_at": 1_700_000_000 + index,
        "resource_version": 1,
    }
    for index in range(3)
]


def _stored(tx: db.Transaction, prefix: str) -> list[tuple[Any, ...]]:
    table = schema.requests
    if tx.dialect.name == "sqlite":
        columns = [sa.func.typeof(column).label(f"type_{column.name}") for column in table.c]
        columns += [sa.cast(column, sa.Text).label(column.name) for column in table.c]
    else:
        columns = [sa.cast(column, sa.Text).label(column.name) for column in table.c]
    rows = tx.execute(sa.select(*columns).where(table.c.id.like(f"{prefix}%")).order_by(table.c.id)).all()
    plain = [
        [value.removeprefix(prefix) if isinstance(value, str) else value for value in row] for row in rows
    ]
    return [tuple(row) for row in plain]


def test_rows_are_stored_as_sqlalchemy_stores_them(store: db.Store) -> None:
    with store.transaction() as tx:
        for row in ROWS:
            tx.execute(schema.requests.insert(), {**row, "id": "one-" + row["id"]})
        bulk.insert_rows(tx, schema.requests, [{**row, "id": "many-" + row["id"]} for row in ROWS])
    with store.read() as tx:
        one, many = _stored(tx, "one-"), _stored(tx, "many-")
        read_back = tx.execute(sa.select(schema.requests).where(schema.requests.c.id.like("many-%"))).all()
    assert len(one) == len(ROWS)
    assert many == one
    read_back = sorted(read_back, key=lambda row: row.id)
    assert [row.reasons for row in read_back] == [row["reasons"] for row in ROWS]


def test_columns_left_out_get_their_defaults(store: db.Store) -> None:
    probe = sa.Table(
        "bulk_probe",
        sa.MetaData(),
        sa.Column("id", sa.String(10), primary_key=True),
        sa.Column("by_python", sa.String(20), default="python default"),
        sa.Column("by_server", sa.String(20), server_default="server default"),
    )
    with store.transaction() as tx:
        probe.create(tx)
    try:
        with store.transaction() as tx:
            bulk.insert_rows(tx, probe, [{"id": "a"}, {"id": "b"}])
        with store.read() as tx:
            rows = tx.execute(sa.select(probe).order_by(probe.c.id)).all()
        assert [tuple(row) for row in rows] == [
            ("a", "python default", "server default"),
            ("b", "python default", "server default"),
        ]
    finally:
        with store.transaction() as tx:
            probe.drop(tx)
