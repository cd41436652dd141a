"""Whether a store is migrated is answered without Alembic, and agrees with Alembic."""

from __future__ import annotations

import stat
from pathlib import Path

import sqlalchemy as sa

from cloudctl.store import db, migrations


def test_the_newest_revision_read_from_the_files_is_alembics_head() -> None:
    assert migrations.script_head() == migrations.head_revision()


def test_a_fresh_database_is_not_current_and_a_migrated_one_is(tmp_path: Path) -> None:
    store = db.Store(db.sqlite_url(tmp_path))
    try:
        assert not store.is_migrated()
        store.migrate()
        assert store.is_migrated()
        assert migrations.current_revision(store.engine) == migrations.head_revision()
    finally:
        store.dispose()


def test_a_database_one_revision_behind_is_not_current(tmp_path: Path) -> None:
    store = db.Store(db.sqlite_url(tmp_path))
    try:
        migrations.upgrade(store.engine, "0004")
        assert not store.is_migrated()
    finally:
        store.dispose()


def test_a_new_sqlite_store_and_its_write_ahead_log_are_readable_by_their_owner_alone(tmp_path: Path) -> None:
    store = db.Store(db.sqlite_url(tmp_path))
    try:
        store.migrate()
        with store.transaction() as tx:
            tx.execute(sa.text("CREATE TABLE probe (id INTEGER)"))
        assert (tmp_path / "state.db-wal").exists()  # the pool keeps a connection open
        for name in ("state.db", "state.db-wal", "state.db-shm"):
            assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    finally:
        store.dispose()
