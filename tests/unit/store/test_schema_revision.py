"""Whether a store is migrated is answered without Alembic, and agrees with Alembic."""

from __future__ import annotations

from pathlib import Path

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
