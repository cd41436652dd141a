"""Fixtures shared by every test: stores on SQLite and on the real PostgreSQL, a manual clock,
and an initialised services context on the shipped topology.

The PostgreSQL server is the one ``scripts/ensure-postgres.sh`` made answer (its admin URL in
``CLOUDCTL_TEST_PG_URL``); when none answers, the PostgreSQL tests fail loudly instead of skipping.
"""

from __future__ import annotations

import os
import shutil
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

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist gives its workers COLUMNS=80, and the CLI's console (made once a process)
    # would keep a width it finds there for good; in one process, as a command runs, it
    # measures the terminal (or takes a test's COLUMNS) each time it prints.
    os.environ.pop("COLUMNS", None)

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGY = ROOT / "infra" / "topology.yaml"
POLICIES = ROOT / "policies"
DEFAULT_PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SHARED_STACK = (
    "tests/integration/openstack/",
    "tests/integration/test_fault_injection.py",
    "tests/integration/test_tuned_backends.py",
    "tests/contract/test_driver_contract.py",
    "tests/bench/test_smoke.py",
)
"""Files whose tests reach the one loopback OpenStack (its projects, quotas, networks and
servers are shared): ``scripts/check``'s workers run them one after another, on one worker."""


def worker_unit(nodeid: str) -> str:
    """The unit one worker runs, all its tests one after another: the tests of one file (a
    file's fixed ports, module-scoped servers and shared rows are never used by two workers at
    once), and every test on the loopback OpenStack together."""
    path = nodeid.split("::", 1)[0]
    return "openstack" if path.startswith(SHARED_STACK) else path


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """``scripts/check``'s ``--dist loadscope`` with ``worker_unit`` as the scope. (Marks that
    ``--dist loadgroup`` reads are no use here: xdist 3.8 adds the group to a test's node id by
    assigning ``_nodeid``, which pytest 9.2 no longer reads, so every test was handed out alone.)"""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByWorkerUnit(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return worker_unit(nodeid)

    return ByWorkerUnit(config, log)


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


class SqliteTemplates:
    """SQLite stores made once per run and copied for each test: a migrated empty store, and
    one initialised from the shipped topology at the manual clock's start. A copy is the same
    file that migrating (or initialising) again would write, in a millisecond instead of a
    third of a second; a test on its own clock still initialises its store itself."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._made: dict[str, Path] = {}
        self._copies: dict[Path, tuple[str, int, int]] = {}

    def _template(self, kind: str) -> Path:
        if kind not in self._made:
            home = self.directory / kind
            home.mkdir()
            template = db.Store(db.sqlite_url(home))
            template.migrate()
            if kind == "initialised":
                setup.initialise(make_context(template, clocks.ManualClock(), home))
            template.dispose()
            self._made[kind] = Path(sa.engine.make_url(template.url).database or "")
        return self._made[kind]

    def copy(self, kind: str, store: db.Store) -> None:
        """Make ``store``'s file hold what the ``kind`` template holds (mode 0600, as a new
        store is made); its connections are closed first."""
        store.dispose()
        target = Path(sa.engine.make_url(store.url).database or "")
        for leftover in (target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(self._template(kind), target)
        target.chmod(0o600)
        self._copies[target] = (kind, *self._stamp(target))

    def untouched(self, kind: str, store: db.Store) -> bool:
        """Whether ``store`` is a ``kind`` copy that nothing has written to since (its
        connections are closed first, so what its WAL held is in the file)."""
        store.dispose()
        target = Path(sa.engine.make_url(store.url).database or "")
        return target.exists() and self._copies.get(target) == (kind, *self._stamp(target))

    @staticmethod
    def _stamp(path: Path) -> tuple[int, int]:
        status = path.stat()
        return status.st_mtime_ns, status.st_size


class PostgresInitialised:
    """The rows initialising from the shipped topology writes, copied aside on the run's
    PostgreSQL database (a schema of its own that ``_empty`` leaves alone) the first time a
    test initialises it, and copied back by the server, in one transaction, for each later
    test: the same rows in a fraction of the time. Only an empty store is filled this way;
    anything else is initialised as before."""

    SCHEMA = "cloudctl_test_initialised"

    def __init__(self) -> None:
        self._restore: str | None = None

    def initialise(self, context: ctx_module.Context) -> None:
        store = context.store
        if not _holds_nothing(store):
            setup.initialise(context)
            return
        if self._restore is None:
            setup.initialise(context)
            self._restore = self._set_aside(store)
            return
        try:
            with store.transaction() as tx:
                tx.execute(sa.text(self._restore))
        except sa.exc.IntegrityError:
            # Something wrote between the emptiness check and the copy (a thread an earlier
            # test left running): initialise as before, which keeps what is there.
            setup.initialise(context)

    def _set_aside(self, store: db.Store) -> str:
        """Copy each table that initialising wrote into the side schema; the statement that
        copies them back."""
        restore = []
        with store.transaction() as tx:
            tx.execute(
                sa.text(f'DROP SCHEMA IF EXISTS "{self.SCHEMA}" CASCADE; CREATE SCHEMA "{self.SCHEMA}"')
            )
            for table in schema.metadata.sorted_tables:
                if tx.execute(sa.text(f'SELECT EXISTS (SELECT 1 FROM "{table.name}")')).scalar():
                    tx.execute(
                        sa.text(f'CREATE TABLE "{self.SCHEMA}"."{table.name}" AS TABLE "{table.name}"')
                    )
                    restore.append(f'INSERT INTO "{table.name}" SELECT * FROM "{self.SCHEMA}"."{table.name}"')
        return "; ".join(restore)


def _holds_nothing(store: db.Store) -> bool:
    tables = schema.metadata.sorted_tables
    anything = " OR ".join(f'EXISTS (SELECT 1 FROM "{table.name}")' for table in tables)
    with store.read() as connection:
        return not connection.execute(sa.text(f"SELECT {anything}")).scalar()


@pytest.fixture(scope="session")
def postgres_initialised() -> PostgresInitialised:
    return PostgresInitialised()


@pytest.fixture(scope="session")
def sqlite_templates(tmp_path_factory: pytest.TempPathFactory) -> SqliteTemplates:
    return SqliteTemplates(tmp_path_factory.mktemp("sqlite-templates"))


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[db.Store]:
    """An empty, migrated store on each backend."""
    if request.param == "sqlite":
        result = db.Store(db.sqlite_url(tmp_path))
        request.getfixturevalue("sqlite_templates").copy("migrated", result)
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
def ctx(
    request: pytest.FixtureRequest, store: db.Store, clock: clocks.ManualClock, tmp_path: Path
) -> ctx_module.Context:
    """A services context initialised from the shipped topology, on each store backend."""
    templates: SqliteTemplates = request.getfixturevalue("sqlite_templates")
    if (
        store.is_sqlite
        and clock.now() == clocks.ManualClock().now()
        and templates.untouched("migrated", store)
    ):
        templates.copy("initialised", store)
        return make_context(store, clock, tmp_path)
    context = make_context(store, clock, tmp_path)
    if not store.is_sqlite and clock.now() == clocks.ManualClock().now():
        request.getfixturevalue("postgres_initialised").initialise(context)
    else:
        setup.initialise(context)
    return context
