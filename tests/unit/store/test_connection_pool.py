"""The store bounds its own connections: many threads share one pool of a configured size.

A caller that finds every connection in use waits a bounded time and then gets a
``BackendUnavailable`` that says so; the pool's bounds and use are metrics.
"""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.services import context as ctx_module
from cloudctl.store import db
from tests.observability import conftest as observability


def _server_connections(admin_url: str, database: str) -> int:
    """How many sessions the PostgreSQL server itself counts on ``database`` (not the pool's own view)."""
    engine = sa.create_engine(db.normalise_url(admin_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            count = connection.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"), {"name": database}
            ).scalar_one()
    finally:
        engine.dispose()
    return int(count)


def test_sixty_four_threads_share_a_pool_of_four_connections_on_postgresql(
    pg_admin_url: str, pg_database_url: str
) -> None:
    store = db.Store(pg_database_url, pool=db.PoolSettings(size=2, max_overflow=2, timeout_s=120))
    database = pg_database_url.rsplit("/", 1)[1]
    seen: list[int] = []
    inside = threading.Barrier(4)
    lock = threading.Lock()

    def work(index: int) -> int:
        with store.transaction() as tx:
            if index < 4:
                # The first four hold their connections together, so the server sees the pool full.
                inside.wait(timeout=120)
                if index == 0:
                    with lock:
                        seen.append(_server_connections(pg_admin_url, database))
                inside.wait(timeout=120)
            return int(tx.execute(sa.text("SELECT :n"), {"n": index}).scalar_one())

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            results = list(pool.map(work, range(64)))
        assert sorted(results) == list(range(64))
        assert seen == [4]
        assert _server_connections(pg_admin_url, database) <= 4
        assert store.pool_status().in_use == 0
    finally:
        store.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_an_exhausted_pool_makes_the_caller_wait_a_bounded_time_then_says_so(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = db.sqlite_url(tmp_path) if backend == "sqlite" else request.getfixturevalue("pg_database_url")
    store = db.Store(url, pool=db.PoolSettings(size=1, max_overflow=0, timeout_s=0.2))
    try:
        with store.read():
            assert store.pool_status().in_use == 1
            outcome: list[BaseException] = []

            def second_caller() -> None:
                try:
                    with store.read():
                        pass
                except BaseException as error:
                    outcome.append(error)

            caller = threading.Thread(target=second_caller)
            caller.start()
            caller.join(timeout=120)
            assert not caller.is_alive()
        assert len(outcome) == 1
        assert isinstance(outcome[0], errors.BackendUnavailable)
        assert str(outcome[0]) == "database: all 1 store connections stayed in use for 0.2 s"
        # Once the connection is back, the store answers again.
        with store.read() as tx:
            assert tx.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        store.dispose()


def test_the_pool_settings_come_from_the_environment_and_bad_ones_name_themselves(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLOUDCTL_DB_POOL_SIZE", "3")
    monkeypatch.setenv("CLOUDCTL_DB_POOL_MAX_OVERFLOW", "5")
    monkeypatch.setenv("CLOUDCTL_DB_POOL_TIMEOUT_S", "7.5")
    context = ctx_module.Context(settings=settings_module.Settings(home=tmp_path))
    try:
        assert context.store.pool == db.PoolSettings(size=3, max_overflow=5, timeout_s=7.5)
    finally:
        context.close()
    monkeypatch.setenv("CLOUDCTL_DB_POOL_SIZE", "0")
    with pytest.raises(errors.InvalidInput) as refused:
        settings_module.Settings(home=tmp_path)
    assert refused.value.field == "db_pool_size"


def test_the_pool_bounds_and_the_connections_in_use_are_metrics(ctx: ctx_module.Context) -> None:
    assert observability.samples(ctx, "cloudctl_store_pool_size") == {(): 10.0}
    assert observability.samples(ctx, "cloudctl_store_pool_max_overflow") == {(): 10.0}
    with ctx.read():
        # The scrape reads through its own connection; the one held here shows as well.
        assert observability.samples(ctx, "cloudctl_store_pool_in_use")[()] >= 1.0


def _backend_pid(store: db.Store) -> int:
    with store.read() as tx:
        return int(tx.execute(sa.text("SELECT pg_backend_pid()")).scalar_one())


def _terminate(admin_url: str, pid: int) -> None:
    engine = sa.create_engine(db.normalise_url(admin_url), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
    finally:
        engine.dispose()


def test_an_idle_connection_the_server_dropped_is_replaced_before_it_is_handed_out(
    pg_admin_url: str, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = db.Store(pg_database_url, pool=db.PoolSettings(size=1, max_overflow=0, timeout_s=30))
    try:
        dropped = _backend_pid(store)
        _terminate(pg_admin_url, dropped)
        monkeypatch.setattr(db, "IDLE_PING_AFTER_S", 0.0)  # every pooled connection counts as idle
        assert _backend_pid(store) != dropped  # pinged, found dead, replaced: the caller saw nothing
    finally:
        store.dispose()


def test_a_connection_dropped_while_busy_fails_one_caller_and_the_next_gets_a_fresh_one(
    pg_admin_url: str, pg_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = db.Store(pg_database_url, pool=db.PoolSettings(size=1, max_overflow=0, timeout_s=30))
    try:
        dropped = _backend_pid(store)
        _terminate(pg_admin_url, dropped)
        monkeypatch.setattr(db, "IDLE_PING_AFTER_S", float("inf"))  # just back from use: not pinged
        with pytest.raises(errors.BackendUnavailable) as refused:
            _backend_pid(store)
        assert refused.value.field == "database"
        assert _backend_pid(store) != dropped
    finally:
        store.dispose()
