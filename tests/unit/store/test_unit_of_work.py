"""``Store.unit_of_work``: many small transactions of one thread as one, on SQLite and PostgreSQL.

A simulated drill runs each tick (a write to every canary and the replication passes
due) in one unit; these tests hold the unit to what the rest of the store promises:
savepoints undo only their own writes, nothing is visible to others before the unit
commits, and the simulator's documents held back in the unit are written at commit,
or not at all.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from cloudctl import errors
from cloudctl.store import db, schema, simulator_state


def _names(store: db.Store) -> list[str]:
    with store.read() as tx:
        return [row.key for row in tx.execute(sa.select(schema.sim_objects.c.key).order_by("key"))]


def _row(tx: db.Transaction, key: str) -> None:
    tx.execute(
        schema.sim_objects.insert().values(center="east", kind="probe", key=key, doc={}, updated_at=0.0)
    )


def test_a_failed_transaction_inside_a_unit_undoes_only_its_own_writes(store: db.Store) -> None:
    with store.unit_of_work():
        with store.transaction() as tx:
            _row(tx, "kept")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            _row(tx, "undone")
            raise RuntimeError("refused half-way")
        with store.read() as tx:  # a read inside the unit sees the unit's own writes
            assert tx.execute(sa.select(sa.func.count()).select_from(schema.sim_objects)).scalar() == 1

    assert _names(store) == ["kept"]


def test_an_error_that_leaves_the_unit_rolls_all_of_it_back(store: db.Store) -> None:
    with pytest.raises(RuntimeError), store.unit_of_work():
        with store.transaction() as tx:
            _row(tx, "first")
        simulator_state.StoreBackedState(store).put("east", "usage", "center", {"vcpu": 1})
        raise RuntimeError("the tick failed")

    assert _names(store) == []


def test_nothing_a_unit_writes_is_seen_by_another_thread_before_it_commits(store: db.Store) -> None:
    state = simulator_state.StoreBackedState(store)
    seen: list[object] = []

    def look() -> None:
        seen.append(simulator_state.StoreBackedState(store).get("east", "usage", "center"))

    with store.unit_of_work():
        state.put("east", "usage", "center", {"vcpu": 2})
        assert state.get("east", "usage", "center") == {"vcpu": 2}
        if not store.is_sqlite:  # on SQLite the reader would wait for the unit's lock
            reader = threading.Thread(target=look)
            reader.start()
            reader.join()
            assert seen == [None]

    look()
    assert seen[-1] == {"vcpu": 2}


def test_a_store_savepoint_that_rolls_back_takes_the_simulator_writes_inside_it_along(
    store: db.Store,
) -> None:
    state = simulator_state.StoreBackedState(store)
    with store.unit_of_work():
        state.put("east", "usage", "center", {"vcpu": 1})
        with pytest.raises(RuntimeError), store.transaction():
            state.put("east", "usage", "center", {"vcpu": 5})
            state.put("east", "object", "bucket/new", {"size": 1})
            raise RuntimeError("the reconciliation around it failed")
        assert state.get("east", "usage", "center") == {"vcpu": 1}
        assert state.list("east", "object") == []

    assert state.get("east", "usage", "center") == {"vcpu": 1}
    assert _names(store) == ["center"]


@pytest.fixture
def statements(store: db.Store) -> Iterator[list[str]]:
    """Every SQL statement the store sends while the test runs."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    event.listen(store.engine, "before_cursor_execute", record)
    yield sent
    event.remove(store.engine, "before_cursor_execute", record)


def test_a_unit_writes_its_documents_back_in_a_few_statements(store: db.Store, statements: list[str]) -> None:
    state = simulator_state.StoreBackedState(store)
    with store.unit_of_work():
        for number in range(200):
            with state.transaction() as transaction:
                usage = transaction.get("east", "usage", "center") or {"objects": 0}
                transaction.put("east", "object", f"bucket/{number:03d}", {"n": number})
                transaction.put("east", "usage", "center", {"objects": usage["objects"] + 1})

    writes = [s for s in statements if s.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]
    assert len(writes) <= 2  # one bulk upsert (executemany counts once per batch at most twice)
    assert len(statements) < 20
    assert state.get("east", "usage", "center") == {"objects": 200}
    assert len(state.list("east", "object", key_prefix="bucket/")) == 200


def test_an_insert_that_another_process_made_first_fails_the_unit_and_replaces_nothing(
    pg_database_url: str,
) -> None:
    """PostgreSQL only: SQLite holds the database lock for the whole unit, so no one gets in."""
    store, other = db.Store(pg_database_url), db.Store(pg_database_url)
    with store.transaction() as tx:
        tx.execute(sa.delete(schema.sim_objects))
    state = simulator_state.StoreBackedState(store)
    try:
        with pytest.raises(errors.Conflict, match="another process"), store.unit_of_work():
            assert state.insert("east", "lock", "failover-qd-a", {"owner": "this unit"}) is True
            simulator_state.StoreBackedState(other).insert(
                "east", "lock", "failover-qd-a", {"owner": "the other process"}
            )
        assert simulator_state.StoreBackedState(other).get("east", "lock", "failover-qd-a") == {
            "owner": "the other process"
        }
    finally:
        other.dispose()
        store.dispose()
