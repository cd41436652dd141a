"""The simulator's document stores keep the ``StateBackend`` contract, in memory and in the store."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from cloudctl.drivers import simulator as sim
from cloudctl.store import db, simulator_state


def test_a_put_document_is_read_back_as_a_copy(backend: sim.StateBackend) -> None:
    backend.put("east", "server", "s1", {"name": "web", "tags": ["a"], "size": 2, "ok": True})

    doc = backend.get("east", "server", "s1")
    assert doc == {"name": "web", "tags": ["a"], "size": 2, "ok": True}
    assert doc is not None
    doc["tags"].append("changed")
    assert backend.get("east", "server", "s1") == {
        "name": "web",
        "tags": ["a"],
        "size": 2,
        "ok": True,
    }


def test_put_replaces_and_addresses_are_separate(backend: sim.StateBackend) -> None:
    backend.put("east", "server", "s1", {"v": 1})
    backend.put("east", "server", "s1", {"v": 2})
    backend.put("west", "server", "s1", {"v": 3})
    backend.put("east", "volume", "s1", {"v": 4})

    assert backend.get("east", "server", "s1") == {"v": 2}
    assert backend.get("west", "server", "s1") == {"v": 3}
    assert backend.get("east", "volume", "s1") == {"v": 4}
    assert backend.get("east", "server", "s2") is None


def test_delete_says_whether_there_was_a_document(backend: sim.StateBackend) -> None:
    backend.put("east", "server", "s1", {"v": 1})

    assert backend.delete("east", "server", "s1") is True
    assert backend.delete("east", "server", "s1") is False
    assert backend.get("east", "server", "s1") is None


def test_list_matches_the_prefix_exactly_and_sorts_by_key(backend: sim.StateBackend) -> None:
    for key in (
        "a/b",
        "a/B",
        "a/%x",
        "a_b",
        "ab",
        "a/b/2",
        "a/b/1",
        "a/bc",
        "a/b\u00ff",
        "a/b\U0001f600",
        "a/c",
    ):
        backend.put("east", "object", key, {"key": key})
    backend.put("west", "object", "a/b", {"key": "elsewhere"})

    def keys(prefix: str) -> list[str]:
        return [doc["key"] for doc in backend.list("east", "object", key_prefix=prefix)]

    assert keys("") == [
        "a/%x", "a/B", "a/b", "a/b/1", "a/b/2", "a/bc", "a/b\u00ff", "a/b\U0001f600", "a/c", "a_b", "ab",
    ]  # fmt: skip
    assert keys("a/b") == ["a/b", "a/b/1", "a/b/2", "a/bc", "a/b\u00ff", "a/b\U0001f600"]
    assert keys("a/b/") == ["a/b/1", "a/b/2"]
    assert keys("a/b\u00ff") == ["a/b\u00ff"]
    assert keys("a/B") == ["a/B"]
    assert keys("a_") == ["a_b"]
    assert keys("a/%") == ["a/%x"]
    assert keys("zzz") == []
    assert backend.keys("east", "object", key_prefix="a/b/") == ["a/b/1", "a/b/2"]
    assert backend.keys("east", "object", key_prefix="a/b\u00ff") == ["a/b\u00ff"]


def test_find_by_returns_the_first_exact_match_by_key_as_a_copy(backend: sim.StateBackend) -> None:
    backend.put("east", "server", "b", {"name": "web", "n": 2})
    backend.put("east", "server", "a", {"name": "web", "n": 1})
    backend.put("east", "server", "c", {"name": "Web", "n": 3})
    backend.put("east", "server", "d", {"name": 7, "n": 4})
    backend.put("west", "server", "e", {"name": "db", "n": 5})

    found = backend.find_by("east", "server", field="name", value="web")
    assert found == {"name": "web", "n": 1}
    assert found is not None
    found["n"] = 99
    assert backend.find_by("east", "server", field="name", value="web") == {"name": "web", "n": 1}
    assert backend.find_by("east", "server", field="name", value="Web") == {"name": "Web", "n": 3}
    assert backend.find_by("east", "server", field="name", value="7") is None  # not the number 7
    assert backend.find_by("east", "server", field="name", value="db") is None  # other center
    with backend.transaction() as transaction:
        transaction.delete("east", "server", "a")
        transaction.put("east", "server", "0", {"name": "db", "n": 6})
        assert transaction.find_by("east", "server", field="name", value="web") == {"name": "web", "n": 2}
        assert transaction.find_by("east", "server", field="name", value="db") == {"name": "db", "n": 6}
    assert backend.find_by("east", "server", field="name", value="web") == {"name": "web", "n": 2}


def test_a_transaction_commits_its_writes_together(backend: sim.StateBackend) -> None:
    backend.put("east", "usage", "center", {"vcpu": 1})
    with backend.transaction() as transaction:
        transaction.put("east", "server", "s1", {"v": 1})
        transaction.put("east", "usage", "center", {"vcpu": 2})
        assert transaction.delete("east", "usage", "missing") is False
        assert transaction.get("east", "server", "s1") == {"v": 1}
        assert [doc["v"] for doc in transaction.list("east", "server")] == [1]

    assert backend.get("east", "server", "s1") == {"v": 1}
    assert backend.get("east", "usage", "center") == {"vcpu": 2}


def test_a_failed_transaction_changes_nothing(backend: sim.StateBackend) -> None:
    backend.put("east", "usage", "center", {"vcpu": 1})
    with pytest.raises(RuntimeError), backend.transaction() as transaction:
        transaction.put("east", "server", "s1", {"v": 1})
        transaction.put("east", "usage", "center", {"vcpu": 2})
        transaction.delete("east", "usage", "center")
        raise RuntimeError("abort")

    assert backend.get("east", "server", "s1") is None
    assert backend.get("east", "usage", "center") == {"vcpu": 1}


def test_concurrent_read_modify_write_transactions_lose_no_update(
    shared_backend: sim.StateBackend,
) -> None:
    backend = shared_backend
    backend.put("east", "usage", "center", {"count": 0})
    threads_count, increments = 4, 15

    def increment() -> None:
        for _ in range(increments):
            with backend.transaction() as transaction:
                doc = transaction.get("east", "usage", "center")
                assert doc is not None
                transaction.put("east", "usage", "center", {"count": doc["count"] + 1})

    threads = [threading.Thread(target=increment) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert backend.get("east", "usage", "center") == {"count": threads_count * increments}


def test_insert_creates_but_never_replaces(backend: sim.StateBackend) -> None:
    assert backend.insert("east", "usage", "center", {"vcpu": 1}) is True
    assert backend.insert("east", "usage", "center", {"vcpu": 2}) is False
    with backend.transaction() as transaction:
        assert transaction.insert("east", "usage", "center", {"vcpu": 3}) is False
        assert transaction.insert("east", "usage", "other", {"vcpu": 4}) is True
        assert transaction.get("east", "usage", "other") == {"vcpu": 4}

    assert backend.get("east", "usage", "center") == {"vcpu": 1}
    assert backend.get("east", "usage", "other") == {"vcpu": 4}


def test_get_many_returns_the_keys_that_exist_as_copies(backend: sim.StateBackend) -> None:
    backend.put("*", "fault", "center-down:east", {"id": "center-down:east", "tags": ["a"]})
    backend.put("*", "fault", "center-down:west", {"id": "center-down:west"})
    backend.put("east", "fault", "api-error-rate:east", {"id": "elsewhere"})

    found = backend.get_many("*", "fault", ["center-down:east", "api-error-rate:east"])
    assert found == {"center-down:east": {"id": "center-down:east", "tags": ["a"]}}
    found["center-down:east"]["tags"].append("changed")
    assert backend.get("*", "fault", "center-down:east") == {"id": "center-down:east", "tags": ["a"]}
    assert backend.get_many("*", "fault", []) == {}

    with backend.transaction() as transaction:
        transaction.delete("*", "fault", "center-down:east")
        transaction.put("*", "fault", "api-error-rate:east", {"id": "api-error-rate:east"})
        seen = transaction.get_many("*", "fault", ["center-down:east", "api-error-rate:east"])
        assert seen == {"api-error-rate:east": {"id": "api-error-rate:east"}}
    with backend.reading() as snapshot:
        assert snapshot.get_many("*", "fault", ["center-down:east", "center-down:west"]) == {
            "center-down:west": {"id": "center-down:west"}
        }
        assert snapshot.get("*", "fault", "api-error-rate:east") == {"id": "api-error-rate:east"}
        assert [doc["id"] for doc in snapshot.list("*", "fault")] == [
            "api-error-rate:east",
            "center-down:west",
        ]


def test_a_write_transaction_reads_what_it_holds_back_from_itself(backend: sim.StateBackend) -> None:
    backend.put("east", "usage", "center", {"vcpu": 1, "tags": []})
    with backend.transaction() as transaction:
        first = transaction.get("east", "usage", "center")
        assert first == {"vcpu": 1, "tags": []}
        first["tags"].append("not stored")
        assert transaction.get("east", "usage", "center") == {"vcpu": 1, "tags": []}
        transaction.put("east", "usage", "center", {"vcpu": 2, "tags": []})
        assert transaction.get("east", "usage", "center") == {"vcpu": 2, "tags": []}
        transaction.delete("east", "usage", "center")
        assert transaction.get("east", "usage", "center") is None
        assert transaction.insert("east", "usage", "center", {"vcpu": 3}) is True
        assert transaction.get("east", "usage", "center") == {"vcpu": 3}

    assert backend.get("east", "usage", "center") == {"vcpu": 3}


def test_a_row_a_write_transaction_holds_is_read_from_the_database_once(
    stored_backend: simulator_state.StoreBackedState,
) -> None:
    stored_backend.put("east", "usage", "center", {"vcpu": 1})
    statements: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements.append(statement)

    engine = stored_backend.store.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with stored_backend.transaction() as transaction:
            transaction.get("east", "usage", "center")
            transaction.get("east", "usage", "center")
            transaction.put("east", "usage", "center", {"vcpu": 2})
            assert transaction.get("east", "usage", "center") == {"vcpu": 2}
            transaction.get_many("*", "fault", ["center-down:east", "api-error-rate:east"])
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    selects = [statement for statement in statements if statement.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 2  # the usage row once, the two faults together once


def test_get_many_inside_a_write_transaction_locks_no_row(pg_database_url: str) -> None:
    store = db.Store(pg_database_url)
    backend = simulator_state.StoreBackedState(store)
    backend.put("*", "fault", "center-down:east", {"id": "center-down:east"})
    cleared = threading.Event()

    def clear() -> None:
        backend.delete("*", "fault", "center-down:east")
        cleared.set()

    try:
        with backend.transaction() as transaction:
            assert transaction.get_many("*", "fault", ["center-down:east"]) != {}
            other = threading.Thread(target=clear)
            other.start()
            other.join(timeout=30)
            assert cleared.is_set()  # the other writer did not wait for this transaction
    finally:
        backend.delete("*", "fault", "center-down:east")
        store.dispose()


def test_keys_are_those_list_returns_without_the_documents(backend: sim.StateBackend) -> None:
    for key in ("net-a/10.0.0.3", "net-a/10.0.0.2", "net-ab/10.0.0.9", "NET-A/10.0.0.4"):
        backend.put("*", "port", key, {"key": key})

    assert backend.keys("*", "port", key_prefix="net-a/") == ["net-a/10.0.0.2", "net-a/10.0.0.3"]
    with backend.transaction() as transaction:
        transaction.delete("*", "port", "net-a/10.0.0.2")
        transaction.put("*", "port", "net-a/10.0.0.1", {"key": "net-a/10.0.0.1"})
        assert transaction.keys("*", "port", key_prefix="net-a/") == ["net-a/10.0.0.1", "net-a/10.0.0.3"]
        assert transaction.keys("*", "port") == [doc["key"] for doc in transaction.list("*", "port")]
    assert backend.keys("*", "server") == []


def test_the_puts_of_a_write_transaction_are_written_together_and_read_back(
    stored_backend: simulator_state.StoreBackedState,
) -> None:
    writes: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("INSERT"):
            writes.append(statement)

    engine = stored_backend.store.engine
    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        with stored_backend.transaction() as transaction:
            transaction.put("east", "usage", "center", {"vcpu": 1})
            transaction.put("east", "server", "s1", {"name": "web"})
            assert writes == []
            assert transaction.find_by("east", "server", field="name", value="web") == {"name": "web"}
            assert len(writes) == 1  # both, before the servers were read
            transaction.put("east", "server", "s2", {"name": "db"})
            transaction.put("*", "port", "net/10.0.0.2", {"address": "10.0.0.2"})
            assert transaction.insert("east", "server", "s2", {"name": "other"}) is False
            assert transaction.keys("*", "port") == ["net/10.0.0.2"]
            transaction.put("east", "usage", "center", {"vcpu": 2})
            assert transaction.delete("east", "usage", "center") is True
            transaction.put("east", "usage", "center", {"vcpu": 3})
        assert len(writes) == 3
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)

    assert stored_backend.get("east", "usage", "center") == {"vcpu": 3}
    assert [doc["name"] for doc in stored_backend.list("east", "server")] == ["web", "db"]
    with pytest.raises(RuntimeError), stored_backend.transaction() as transaction:
        transaction.put("east", "server", "s3", {"name": "lost"})
        raise RuntimeError("abort")
    assert stored_backend.get("east", "server", "s3") is None


def test_find_by_follows_a_document_whose_name_changes(backend: sim.StateBackend) -> None:
    backend.put("east", "server", "a", {"name": "web", "status": "BUILD"})
    backend.put("east", "server", "a", {"name": "api", "status": "ACTIVE"})
    backend.put("east", "server", "b", {"name": "db", "status": "ACTIVE"})
    with backend.transaction() as transaction:
        transaction.put("east", "server", "b", {"status": "ACTIVE"})

    assert backend.find_by("east", "server", field="name", value="web") is None
    assert backend.find_by("east", "server", field="name", value="api") == {"name": "api", "status": "ACTIVE"}
    assert backend.find_by("east", "server", field="name", value="db") is None
    # A field other than the name is compared too.
    assert backend.find_by("east", "server", field="status", value="ACTIVE") == {
        "name": "api",
        "status": "ACTIVE",
    }
    assert backend.find_by("east", "server", field="status", value="BUILD") is None


def test_find_all_by_returns_every_match_in_key_order_as_copies(backend: sim.StateBackend) -> None:
    backend.put("east", "volume", "v3", {"name": "wl-1-0", "project": "p", "attached_to": "s1"})
    backend.put("east", "volume", "v1", {"name": "replica-wl-1-0", "project": "p", "attached_to": "s1"})
    backend.put("east", "volume", "v2", {"name": "wl-10-0", "project": "q", "attached_to": "s2"})
    backend.put("east", "volume", "v4", {"name": "wl_1%0", "project": "p", "attached_to": None})
    backend.put("east", "volume", "v5", {"name": "WL-1-0", "project": 7, "attached_to": "s1"})
    backend.put("east", "volume", "v7", {"name": "wl-1\u00ff", "project": "p"})
    backend.put("east", "volume", "v8", {"name": 3, "project": "p"})
    backend.put("west", "volume", "v6", {"name": "wl-1-0", "project": "p", "attached_to": "s1"})

    def names(*, where: dict[str, str], name_prefixes: tuple[str, ...] = ()) -> list[object]:
        found = backend.find_all_by("east", "volume", where=where, name_prefixes=name_prefixes)
        return [doc["name"] for doc in found]

    # A field kept in a column, one compared in the JSON, both, and the start of the name.
    assert names(where={"attached_to": "s1"}) == ["replica-wl-1-0", "wl-1-0", "WL-1-0"]
    assert names(where={"project": "p"}) == ["replica-wl-1-0", "wl-1-0", "wl_1%0", "wl-1\u00ff", 3]
    assert names(where={"project": "p", "attached_to": "s1"}) == ["replica-wl-1-0", "wl-1-0"]
    owned = ("wl-1-", "replica-wl-1-")
    assert names(where={"project": "p"}, name_prefixes=owned) == ["replica-wl-1-0", "wl-1-0"]
    assert names(where={}, name_prefixes=owned) == ["replica-wl-1-0", "wl-1-0"]  # exact case
    assert names(where={}, name_prefixes=("wl_1%",)) == ["wl_1%0"]  # LIKE's wildcards are plain text
    assert names(where={}, name_prefixes=("wl-1\u00ff",)) == ["wl-1\u00ff"]
    assert names(where={}, name_prefixes=("wl-1",)) == ["wl-10-0", "wl-1-0", "wl-1\u00ff"]  # by key
    assert names(where={"project": "7"}) == []  # not the number 7
    assert names(where={"attached_to": "s9"}) == []

    found = backend.find_all_by("east", "volume", where={"attached_to": "s2"})
    found[0]["project"] = "changed"
    assert backend.find_all_by("east", "volume", where={"attached_to": "s2"})[0]["project"] == "q"

    with backend.transaction() as transaction:
        transaction.delete("east", "volume", "v1")
        transaction.put("east", "volume", "v3", {"name": "wl-1-0", "project": "p", "attached_to": None})
        transaction.put("east", "volume", "v0", {"name": "rp-wl-1-0-3", "project": "p", "attached_to": "s1"})
        seen = transaction.find_all_by(
            "east", "volume", where={"attached_to": "s1"}, name_prefixes=("rp-wl-1-", "wl-1-")
        )
        assert [doc["name"] for doc in seen] == ["rp-wl-1-0-3"]
    assert names(where={"attached_to": "s1"}) == ["rp-wl-1-0-3", "WL-1-0"]
    assert names(where={"attached_to": "s1"}, name_prefixes=("rp-wl-1-",)) == ["rp-wl-1-0-3"]


def test_a_search_in_a_unit_sees_what_the_unit_holds_back_and_a_savepoint_rolled_back_loses_nothing_else(
    stored_backend: simulator_state.StoreBackedState,
) -> None:
    store = stored_backend.store

    def names() -> list[str]:
        return [
            doc["name"] for doc in stored_backend.find_all_by("east", "volume", where={"attached_to": "s1"})
        ]

    with store.unit_of_work():
        stored_backend.put("east", "volume", "v1", {"name": "a", "attached_to": "s1"})
        stored_backend.put("east", "volume", "v4", {"name": "d", "attached_to": "s1"})
        with pytest.raises(RuntimeError), store.transaction():  # a store savepoint
            stored_backend.put("east", "volume", "v2", {"name": "b", "attached_to": "s1"})
            stored_backend.delete("east", "volume", "v4")
            assert names() == ["a", "b"]
            raise RuntimeError("rolled back")
        assert names() == ["a", "d"]  # held back before the savepoint: neither lost nor changed
        stored_backend.delete("east", "volume", "v4")
        stored_backend.put("east", "volume", "v3", {"name": "c", "attached_to": "s1"})
        assert names() == ["a", "c"]
        stored_backend.put("east", "volume", "v3", {"name": "c", "attached_to": "s2"})
        assert names() == ["a"]
    assert names() == ["a"]
    assert stored_backend.get("east", "volume", "v3") == {"name": "c", "attached_to": "s2"}
    assert stored_backend.get("east", "volume", "v2") is None
