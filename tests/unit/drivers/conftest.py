"""Fixtures of the driver tests: the simulator's state backends, each one empty.

``backend`` runs a test on ``InMemoryState`` and on ``StoreBackedState`` over a
migrated SQLite file and over the real PostgreSQL (the session database of
``tests/conftest.py``; it fails loudly when PostgreSQL does not answer), and once
more on each database with the whole test inside one ``Store.unit_of_work()``,
where documents are written back at the end instead of through.
``shared_backend`` leaves out the unit of work, for tests whose threads must see
each other's writes while they run; ``stored_backend`` is ``StoreBackedState`` alone
on each database, for tests that count or race its statements.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl.drivers import simulator as sim
from cloudctl.store import db, schema, simulator_state


def _open(request: pytest.FixtureRequest, tmp_path: Path, database: str) -> db.Store:
    if database == "sqlite":
        store = db.Store(db.sqlite_url(tmp_path))
        store.migrate()
        return store
    store = db.Store(request.getfixturevalue("pg_database_url"))
    with store.transaction() as connection:
        connection.execute(sa.delete(schema.sim_objects))
    return store


@pytest.fixture(params=["memory", "sqlite", "postgres", "sqlite-unit", "postgres-unit"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sim.StateBackend]:
    if request.param == "memory":
        yield sim.InMemoryState()
        return
    database, _, unit = str(request.param).partition("-")
    store = _open(request, tmp_path, database)
    if unit:
        with store.unit_of_work():
            yield simulator_state.StoreBackedState(store)
    else:
        yield simulator_state.StoreBackedState(store)
    store.dispose()


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def shared_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sim.StateBackend]:
    if request.param == "memory":
        yield sim.InMemoryState()
        return
    store = _open(request, tmp_path, str(request.param))
    yield simulator_state.StoreBackedState(store)
    store.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def stored_backend(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[simulator_state.StoreBackedState]:
    """``StoreBackedState`` on each database, outside a unit of work."""
    store = _open(request, tmp_path, str(request.param))
    yield simulator_state.StoreBackedState(store)
    store.dispose()
