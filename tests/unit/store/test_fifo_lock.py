"""The SQLite writers' queue: turns in the order asked, re-entry by the holder, a bounded wait."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cloudctl import errors
from cloudctl.store import db

DEADLINE_S = 30.0


def _wait_until(predicate: object) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


def test_waiters_get_the_lock_in_the_order_they_asked() -> None:
    lock = db.FifoLock()
    order: list[int] = []
    lock.__enter__()
    threads = []
    for index in range(8):

        def take(index: int = index) -> None:
            with lock:
                order.append(index)

        thread = threading.Thread(target=take)
        thread.start()
        threads.append(thread)
        _wait_until(lambda index=index: lock._next_ticket == index + 2)  # this one is queued
    lock.__exit__(None, None, None)
    for thread in threads:
        thread.join(DEADLINE_S)
    assert order == list(range(8))


def test_the_holder_may_take_it_again() -> None:
    lock = db.FifoLock()
    with lock, lock:
        pass
    with lock:  # released fully: free again
        pass


def test_a_waiter_gives_up_after_the_timeout_and_the_queue_moves_on() -> None:
    lock = db.FifoLock(timeout_s=0)
    taken = threading.Event()
    lock.__enter__()
    failures: list[BaseException] = []

    def impatient() -> None:
        try:
            with lock:
                pass
        except db.WriterQueueTimeout as error:
            failures.append(error)

    thread = threading.Thread(target=impatient)
    thread.start()
    thread.join(DEADLINE_S)
    lock.__exit__(None, None, None)

    def patient() -> None:
        with lock:
            taken.set()

    later = threading.Thread(target=patient)
    later.start()
    later.join(DEADLINE_S)
    assert len(failures) == 1
    assert taken.is_set()


def test_a_store_writer_that_waits_too_long_is_told_the_store_did_not_answer(tmp_path: Path) -> None:
    store = db.Store(db.sqlite_url(tmp_path))
    store._writers = db.FifoLock(timeout_s=0)
    errors_seen: list[str] = []
    try:
        with store.transaction():
            worker = threading.Thread(target=lambda: _try_write(store, errors_seen))
            worker.start()
            worker.join(DEADLINE_S)
    finally:
        store.dispose()
    assert len(errors_seen) == 1
    assert errors_seen[0].startswith("database: the store did not answer")


def _try_write(store: db.Store, seen: list[str]) -> None:
    with pytest.raises(errors.BackendUnavailable) as raised, store.transaction():
        pass
    seen.append(raised.value.one_line())
