"""The simulator's document stores keep the ``StateBackend`` contract, in memory and in the store."""

from __future__ import annotations

import threading

import pytest

from cloudctl.drivers import simulator as sim


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
    for key in ("a/b", "a/B", "a/%x", "a_b", "ab", "a/b/2", "a/b/1"):
        backend.put("east", "object", key, {"key": key})
    backend.put("west", "object", "a/b", {"key": "elsewhere"})

    def keys(prefix: str) -> list[str]:
        return [doc["key"] for doc in backend.list("east", "object", key_prefix=prefix)]

    assert keys("") == ["a/%x", "a/B", "a/b", "a/b/1", "a/b/2", "a_b", "ab"]
    assert keys("a/b") == ["a/b", "a/b/1", "a/b/2"]
    assert keys("a/B") == ["a/B"]
    assert keys("a_") == ["a_b"]
    assert keys("a/%") == ["a/%x"]
    assert keys("zzz") == []


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
