"""Fixtures of the driver tests: the simulator's state backends, each one empty.

``backend`` runs a test on ``InMemoryState`` and on ``StoreBackedState`` over a
migrated SQLite file and over the real PostgreSQL (the session database of
``tests/conftest.py``; it fails loudly when PostgreSQL does not answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl.drivers import simulator as sim
from cloudctl.store import db, schema, simulator_state


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sim.StateBackend]:
    if request.param == "memory":
        yield sim.InMemoryState()
        return
    if request.param == "sqlite":
        store = db.Store(db.sqlite_url(tmp_path))
        store.migrate()
    else:
        store = db.Store(request.getfixturevalue("pg_database_url"))
        with store.transaction() as connection:
            connection.execute(sa.delete(schema.sim_objects))
    yield simulator_state.StoreBackedState(store)
    store.dispose()
