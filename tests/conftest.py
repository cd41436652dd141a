"""Fixtures shared by every test: stores on SQLite and on the real PostgreSQL, a manual clock,
and an initialised services context on the shipped topology.

The PostgreSQL server is the one ``scripts/ensure-postgres.sh`` made answer (its admin URL in
``CLOUDCTL_TEST_PG_URL``); when none answers, the PostgreSQL tests fail loudly instead of skipping.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.services import context as ctx_module
from cloudctl.services import setup
from cloudctl.store import db, schema

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = ROOT / "infra" / "topology.yaml"
POLICIES = ROOT / "policies"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    url = os.environ.get("CLOUDCTL_TEST_PG_URL", DEFAULT_PG_ADMIN_URL)
    engine = sa.create_engine(db.normalise_url(url), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as error:
        pytest.fail(
            f"PostgreSQL does not answer at {url} ({error.orig}); run scripts/ensure-postgres.sh "
            "or set CLOUDCTL_TEST_PG_URL",
            pytrace=False,
        )
    finally:
        engine.dispose()
    return url


@pytest.fixture(scope="session")
def pg_database_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh database for this test run, migrated once, dropped at the end."""
    name = f"cloudctl_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(db.normalise_url(pg_admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    store = db.Store(url)
    store.migrate()
    store.dispose()
    yield url
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _empty(store: db.Store) -> None:
    names = ", ".join(f'"{table.name}"' for table in reversed(schema.metadata.sorted_tables))
    with store.transaction() as tx:
        tx.execute(sa.text(f"TRUNCATE {names} CASCADE"))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[db.Store]:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        result = db.Store(db.sqlite_url(tmp_path))
        result.migrate()
    else:
        result = db.Store(request.getfixturevalue("pg_database_url"))
        _empty(result)
    yield result
    result.dispose()


@pytest.fixture
def clock() -> clocks.ManualClock:
    return clocks.ManualClock()


def make_context(store: db.Store, clock: clocks.Clock, home: Path) -> ctx_module.Context:
    settings = settings_module.Settings(
        home=home, database_url=store.url, topology=TOPOLOGY, policies=POLICIES
    )
    return ctx_module.Context(settings=settings, clock=clock, _store=store)


@pytest.fixture
def ctx(store: db.Store, clock: clocks.ManualClock, tmp_path: Path) -> ctx_module.Context:
    """A services context initialised from the shipped topology, on each store backend."""
    context = make_context(store, clock, tmp_path)
    setup.initialise(context)
    return context
