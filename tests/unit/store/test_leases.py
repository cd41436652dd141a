"""The leader lease: one holder per epoch, taken over only after it expires, and a fenced store
that writes nothing once its epoch is gone — on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from cloudctl.store import db, leases, schema

NOW = 1_767_225_600.0
TTL_S = 8.0


def take(store: db.Store, holder: str, *, now: float) -> leases.Lease:
    with store.transaction() as tx:
        return leases.acquire(tx, name=leases.LEADER, holder=holder, ttl_s=TTL_S, now=now)


MIGRATED_KEYS = ("audit_legacy_through",)
"""Settings the migrations write themselves (the keyed audit chain's marker)."""


def settings_rows(store: db.Store) -> dict[str, str]:
    with store.read() as tx:
        rows = tx.execute(sa.select(schema.settings).where(schema.settings.c.key.not_in(MIGRATED_KEYS)))
        return {row.key: row.value for row in rows}


@pytest.fixture
def fenced(store: db.Store) -> Iterator[tuple[leases.Fence, leases.FencedStore]]:
    fence = leases.Fence(name=leases.LEADER, holder="a")
    result = leases.FencedStore(store.url, fence=fence)
    yield fence, result
    result.dispose()


def test_the_first_replica_to_ask_takes_the_lease_with_epoch_one(store: db.Store) -> None:
    assert take(store, "a", now=NOW) == leases.Lease(
        name=leases.LEADER, holder="a", epoch=1, acquired_at=NOW, expires_at=NOW + TTL_S
    )


def test_a_held_lease_is_renewed_by_its_holder_and_refused_to_others(store: db.Store) -> None:
    take(store, "a", now=NOW)
    renewed = take(store, "a", now=NOW + 5)
    assert (renewed.holder, renewed.epoch, renewed.expires_at) == ("a", 1, NOW + 5 + TTL_S)
    refused = take(store, "b", now=NOW + 12)
    assert (refused.holder, refused.epoch) == ("a", 1)


def test_an_expired_lease_goes_to_the_next_replica_with_the_next_epoch(store: db.Store) -> None:
    take(store, "a", now=NOW)
    taken = take(store, "b", now=NOW + TTL_S)
    assert (taken.holder, taken.epoch) == ("b", 2)
    late = take(store, "a", now=NOW + TTL_S + 1)
    assert (late.holder, late.epoch) == ("b", 2)


def test_a_released_lease_is_taken_at_once(store: db.Store) -> None:
    take(store, "a", now=NOW)
    with store.transaction() as tx:
        assert leases.release(tx, name=leases.LEADER, holder="a", epoch=1, now=NOW + 1)
    assert take(store, "b", now=NOW + 1).epoch == 2


def test_a_release_by_a_former_holder_changes_nothing(store: db.Store) -> None:
    take(store, "a", now=NOW)
    take(store, "b", now=NOW + TTL_S)
    with store.transaction() as tx:
        assert not leases.release(tx, name=leases.LEADER, holder="a", epoch=1, now=NOW + TTL_S)
    assert take(store, "c", now=NOW + TTL_S + 1).holder == "b"


def test_the_fenced_store_writes_while_its_epoch_holds_the_lease(
    store: db.Store, fenced: tuple[leases.Fence, leases.FencedStore]
) -> None:
    fence, fenced_store = fenced
    lease = take(store, "a", now=NOW)
    fence.grant(epoch=lease.epoch, valid_for_s=60, since_monotonic=time.monotonic())
    with fenced_store.transaction() as tx:
        tx.execute(schema.settings.insert().values(key="written", value="by a"))
    assert settings_rows(store) == {"written": "by a"}


def test_a_former_leader_writes_nothing_after_another_took_the_lease(
    store: db.Store, fenced: tuple[leases.Fence, leases.FencedStore]
) -> None:
    fence, fenced_store = fenced
    lease = take(store, "a", now=NOW)
    # Paused: its local deadline still says it leads, but the lease expired and changed hands.
    fence.grant(epoch=lease.epoch, valid_for_s=3600, since_monotonic=time.monotonic())
    assert take(store, "b", now=NOW + TTL_S).holder == "b"
    with (
        pytest.raises(leases.LeaseLost, match="b \\(epoch 2\\) holds it now"),
        fenced_store.transaction() as tx,
    ):
        tx.execute(schema.settings.insert().values(key="written", value="by a"))
    assert settings_rows(store) == {}


def test_a_leader_whose_renewal_is_overdue_stops_writing_by_itself(
    store: db.Store, fenced: tuple[leases.Fence, leases.FencedStore]
) -> None:
    fence, fenced_store = fenced
    lease = take(store, "a", now=NOW)
    fence.grant(epoch=lease.epoch, valid_for_s=5, since_monotonic=time.monotonic() - 6)
    with pytest.raises(leases.LeaseLost, match="renewal is overdue"), fenced_store.transaction() as tx:
        tx.execute(schema.settings.insert().values(key="written", value="by a"))
    assert settings_rows(store) == {}


def test_a_unit_of_work_is_fenced_once_when_it_begins(
    store: db.Store, fenced: tuple[leases.Fence, leases.FencedStore]
) -> None:
    fence, fenced_store = fenced
    fence.grant(epoch=take(store, "a", now=NOW).epoch, valid_for_s=60, since_monotonic=time.monotonic())
    with fenced_store.unit_of_work():
        for key in ("one", "two"):
            with fenced_store.transaction() as tx:
                tx.execute(schema.settings.insert().values(key=key, value="x"))
    assert settings_rows(store) == {"one": "x", "two": "x"}


@pytest.fixture
def held_by_a(pg_database_url: str) -> Iterator[tuple[db.Store, leases.FencedStore]]:
    """A plain store and a fenced one whose fence ``a`` holds (epoch 1) on an empty lease table;
    the leases and the ``fence-*`` settings rows are removed again after."""
    store = db.Store(pg_database_url)

    def clean() -> None:
        with store.transaction() as tx:
            tx.execute(schema.leases.delete())
            tx.execute(schema.settings.delete().where(schema.settings.c.key.like("fence-%")))

    clean()
    fence = leases.Fence(name=leases.LEADER, holder="a")
    fenced_store = leases.FencedStore(pg_database_url, fence=fence)
    fence.grant(epoch=take(store, "a", now=NOW).epoch, valid_for_s=3600, since_monotonic=time.monotonic())
    try:
        yield store, fenced_store
    finally:
        fenced_store.dispose()
        clean()
        store.dispose()


WAIT_DEADLINE_S = 60.0


def wait_until_it_waits_for_a_lock(store: db.Store, thread: threading.Thread, failure: str) -> None:
    """Return once a session of the test's database waits for a lock (PostgreSQL says so), while
    ``thread`` is still running; fail if the thread ends first. However slow the machine, a thread
    that does not wait ends, and one that waits is seen waiting."""
    deadline = time.monotonic() + WAIT_DEADLINE_S
    while True:
        with store.read() as tx:
            waiting = tx.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting:
            assert thread.is_alive(), failure
            return
        assert thread.is_alive(), failure
        assert time.monotonic() < deadline, f"{failure} (nor ended, in {WAIT_DEADLINE_S:.0f} s)"
        time.sleep(0.01)  # polling a condition, with the deadline above


@pytest.mark.postgres
def test_a_takeover_waits_for_the_fenced_write_in_flight_to_commit(
    held_by_a: tuple[db.Store, leases.FencedStore],
) -> None:
    """The fence check holds the epoch lock shared: the write that passed it commits before
    another replica's epoch begins, and every write after that fails."""
    store, fenced_store = held_by_a
    taken: list[leases.Lease] = []
    with fenced_store.transaction() as tx:
        tx.execute(schema.settings.insert().values(key="fence-in-flight", value="by a"))
        takeover = threading.Thread(target=lambda: taken.append(take(store, "b", now=NOW + TTL_S)))
        takeover.start()
        wait_until_it_waits_for_a_lock(store, takeover, "the takeover did not wait for the fenced write")
    takeover.join(60)
    assert [(lease.holder, lease.epoch) for lease in taken] == [("b", 2)]
    with pytest.raises(leases.LeaseLost), fenced_store.transaction() as tx:
        tx.execute(schema.settings.insert().values(key="fence-after", value="by a"))
    with store.read() as tx:
        keys = set(tx.execute(sa.select(schema.settings.c.key)).scalars())
    assert "fence-in-flight" in keys
    assert "fence-after" not in keys


@pytest.mark.postgres
def test_a_fenced_write_begun_during_a_takeover_fails_once_the_takeover_commits(
    held_by_a: tuple[db.Store, leases.FencedStore],
) -> None:
    """A fenced transaction that begins while a takeover holds the epoch lock waits for it, then
    reads the lease as the takeover left it (not as it stood when its check began), and fails."""
    store, fenced_store = held_by_a
    failures: list[BaseException] = []

    def write() -> None:
        try:
            with fenced_store.transaction() as tx:
                tx.execute(schema.settings.insert().values(key="fence-during", value="by a"))
        except BaseException as error:  # handed to the test's assertions
            failures.append(error)

    with store.transaction() as tx:
        taken = leases.acquire(tx, name=leases.LEADER, holder="b", ttl_s=TTL_S, now=NOW + TTL_S)
        assert (taken.holder, taken.epoch) == ("b", 2)
        writer = threading.Thread(target=write)
        writer.start()
        wait_until_it_waits_for_a_lock(store, writer, "the fenced transaction did not wait for the takeover")
    writer.join(60)
    assert len(failures) == 1 and isinstance(failures[0], leases.LeaseLost), failures
    assert "b (epoch 2) holds it now" in str(failures[0])
    with store.read() as tx:
        keys = set(tx.execute(sa.select(schema.settings.c.key)).scalars())
    assert "fence-during" not in keys


def test_replica_rows_are_upserted_and_forgotten_when_silent(store: db.Store) -> None:
    record = leases.ReplicaRecord(
        id="host:1:abc",
        host="host",
        pid=1,
        api_url="http://127.0.0.1:8080",
        role="follower",
        epoch=None,
        started_at=NOW,
        heartbeat_at=NOW,
    )
    with store.transaction() as tx:
        leases.upsert_replica(tx, record)
        leases.upsert_replica(tx, record.__class__(**{**record.__dict__, "role": "leader", "epoch": 3}))
    with store.read() as tx:
        assert [(r.role, r.epoch) for r in leases.list_replicas(tx)] == [("leader", 3)]
    with store.transaction() as tx:
        assert leases.delete_replicas(tx, heartbeat_before=NOW + 1) == 1
    with store.read() as tx:
        assert leases.list_replicas(tx) == []
