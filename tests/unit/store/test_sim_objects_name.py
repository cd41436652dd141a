"""Migrations 0012 and 0013 copy the name, and what a document is a member of, of every simulator
document already stored into their columns."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl.store import db, migrations, schema, simulator_state

_ROWS = [
    ("east", "server", "a", {"name": "web", "n": 1}),
    ("east", "server", "b", {"name": 7, "n": 2}),
    ("east", "server", "c", {"n": 3}),
    ("east", "server", "d", {"name": None, "n": 4}),
    ("west", "server", "e", {"name": "web", "n": 5}),
]


@pytest.fixture(params=["sqlite", "postgres"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database with no tables yet, on each backend."""
    if request.param == "sqlite":
        yield db.sqlite_url(tmp_path)
        return
    admin_url = request.getfixturevalue("pg_admin_url")
    name = f"cloudctl_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(db.normalise_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_documents_stored_before_the_migration_are_found_by_name_after_it(empty_url: str) -> None:
    store = db.Store(empty_url)
    try:
        migrations.upgrade(store.engine, "0011")
        before = sa.table(
            "sim_objects",
            sa.column("center"),
            sa.column("kind"),
            sa.column("key"),
            sa.column("doc", sa.JSON()),
            sa.column("updated_at"),
        )
        with store.engine.begin() as connection:
            connection.execute(
                before.insert(),
                [
                    {"center": center, "kind": kind, "key": key, "doc": doc, "updated_at": 0.0}
                    for center, kind, key, doc in _ROWS
                ],
            )

        migrations.upgrade(store.engine)

        with store.read() as connection:
            names = dict(
                connection.execute(sa.select(schema.sim_objects.c.key, schema.sim_objects.c.name)).all()
            )
        assert names == {"a": "web", "b": None, "c": None, "d": None, "e": "web"}
        state = simulator_state.StoreBackedState(store)
        assert state.find_by("east", "server", field="name", value="web") == {"name": "web", "n": 1}
        assert state.find_by("east", "server", field="name", value="7") is None
        assert state.get("east", "server", "b") == {"name": 7, "n": 2}
    finally:
        store.dispose()


def test_documents_stored_before_0013_are_found_by_what_they_are_members_of_after_it(empty_url: str) -> None:
    store = db.Store(empty_url)
    try:
        migrations.upgrade(store.engine, "0012")
        rows = [
            ("east", "volume", "v1", {"name": "a", "attached_to": "s1"}),
            ("east", "volume", "v2", {"name": "b", "attached_to": None}),
            ("east", "volume", "v3", {"name": "c", "attached_to": 5}),
            ("east", "snapshot", "n1", {"name": "d", "volume_id": "v1"}),
            ("east", "snapshot", "n2", {"name": "e"}),
        ]
        before = sa.table(
            "sim_objects",
            *(sa.column(name) for name in ("center", "kind", "key", "updated_at", "name")),
            sa.column("doc", sa.JSON()),
        )
        with store.engine.begin() as connection:
            connection.execute(
                before.insert(),
                [
                    {"center": c, "kind": k, "key": key, "doc": doc, "updated_at": 0.0, "name": doc["name"]}
                    for c, k, key, doc in rows
                ],
            )

        migrations.upgrade(store.engine)

        table = schema.sim_objects
        with store.read() as connection:
            columns = connection.execute(
                sa.select(table.c.key, table.c.attached_to, table.c.volume_id).order_by(table.c.key)
            ).all()
        assert [tuple(row) for row in columns] == [
            ("n1", None, "v1"),
            ("n2", None, None),
            ("v1", "s1", None),
            ("v2", None, None),
            ("v3", None, None),
        ]
        state = simulator_state.StoreBackedState(store)
        assert state.find_all_by("east", "volume", where={"attached_to": "s1"}) == [
            {"name": "a", "attached_to": "s1"}
        ]
        assert state.find_all_by("east", "snapshot", where={"volume_id": "v1"}) == [
            {"name": "d", "volume_id": "v1"}
        ]
        assert state.find_all_by("east", "volume", where={"attached_to": "5"}) == []
    finally:
        store.dispose()
