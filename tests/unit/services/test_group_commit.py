"""The provisioner's group commit: last steps (and a center's create steps) handed in while a
batch commits are committed together in the next one, one that fails fails alone, and the
create steps of another center do not wait for the batch of the first."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import provisioning, setup
from cloudctl.store import db, schema
from tests.conftest import _empty, make_context
from tests.unit.services.test_leader_loops import poll


def _mark(tx: db.Transaction, key: str) -> None:
    tx.execute(
        sa.insert(schema.sim_objects).values(
            center="test", kind="mark", key=key, doc={"key": key}, updated_at=0.0, name=None
        )
    )


def _marks(ctx: ctx_module.Context) -> set[str]:
    with ctx.store.read() as tx:
        rows = tx.execute(sa.select(schema.sim_objects.c.key).where(schema.sim_objects.c.kind == "mark"))
        return {str(key) for key in rows.scalars()}


def _in_thread(work: Callable[[], None], errors: dict[str, BaseException], name: str) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as error:  # handed to the test's assertions
            errors[name] = error

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_last_steps_handed_in_during_a_commit_are_committed_together(ctx: ctx_module.Context) -> None:
    finisher = provisioning.GroupFinisher(ctx)
    release = threading.Event()
    running = threading.Event()
    transactions: dict[str, int] = {}
    errors: dict[str, BaseException] = {}

    def step(name: str, *, hold: bool = False) -> provisioning.provisioning.LastStep:
        def last_step(tx: db.Transaction) -> list[str]:
            if hold:
                running.set()
                release.wait()
            transactions[name] = id(tx)
            _mark(tx, name)
            return []

        return last_step

    first = _in_thread(lambda: finisher(step("a", hold=True)), errors, "a")
    running.wait()
    others = [_in_thread(lambda name=name: finisher(step(name)), errors, name) for name in ("b", "c", "d")]
    poll(lambda: finisher.waiting == 3, what="three last steps queued behind the first")
    release.set()
    for thread in [first, *others]:
        thread.join()

    assert errors == {}
    assert finisher.batches == 2
    assert transactions["b"] == transactions["c"] == transactions["d"]
    assert _marks(ctx) == {"a", "b", "c", "d"}


def test_a_last_step_that_fails_in_a_batch_fails_alone(ctx: ctx_module.Context) -> None:
    finisher = provisioning.GroupFinisher(ctx)
    release = threading.Event()
    running = threading.Event()
    errors: dict[str, BaseException] = {}

    def holding(tx: db.Transaction) -> list[str]:
        running.set()
        release.wait()
        _mark(tx, "a")
        return []

    def failing(tx: db.Transaction) -> list[str]:
        _mark(tx, "b")
        raise ValueError("the order's records are gone")

    def fine(tx: db.Transaction) -> list[str]:
        _mark(tx, "c")
        return []

    first = _in_thread(lambda: finisher(holding), errors, "a")
    running.wait()
    others = [_in_thread(lambda: finisher(failing), errors, "b")]
    poll(lambda: finisher.waiting == 1, what="the failing step queued")
    others.append(_in_thread(lambda: finisher(fine), errors, "c"))
    poll(lambda: finisher.waiting == 2, what="both steps queued")
    release.set()
    for thread in [first, *others]:
        thread.join()

    assert set(errors) == {"b"}
    assert isinstance(errors["b"], ValueError)
    assert _marks(ctx) == {"a", "c"}


def test_a_last_step_alone_commits_at_once_and_its_error_is_its_callers(ctx: ctx_module.Context) -> None:
    finisher = provisioning.GroupFinisher(ctx)

    def alone(tx: db.Transaction) -> list[str]:
        _mark(tx, "alone")
        return []

    def failing(tx: db.Transaction) -> list[str]:
        _mark(tx, "failing")
        raise ValueError("boom")

    finisher(alone)
    with pytest.raises(ValueError, match="boom"):
        finisher(failing)

    assert finisher.batches == 1
    assert _marks(ctx) == {"alone"}


@pytest.fixture
def pg_ctx(pg_database_url: str, tmp_path: Path) -> Iterator[ctx_module.Context]:
    """A context on PostgreSQL alone: on SQLite every unit of work takes the database's one write
    lock, so two centers' units never run side by side there."""
    store = db.Store(pg_database_url)
    _empty(store)
    context = make_context(store, clocks.ManualClock(), tmp_path)
    setup.initialise(context)
    yield context
    store.dispose()


def test_create_steps_of_one_center_queued_behind_a_batch_share_one_unit_and_other_centers_do_not_wait(
    pg_ctx: ctx_module.Context,
) -> None:
    ctx = pg_ctx
    creator = provisioning.GroupCreator(ctx)
    release = threading.Event()
    running = threading.Event()
    units: dict[str, int] = {}
    errors: dict[str, BaseException] = {}

    def step(name: str, *, hold: bool = False) -> provisioning.provisioning.CreateStep:
        def create_step() -> provisioning.provisioning.Created:
            if hold:
                running.set()
                release.wait()
            unit = ctx.store.current_unit()
            assert unit is not None
            units[name] = id(unit)
            with ctx.store.transaction() as tx:
                _mark(tx, name)
            return {"kind": "server", "name": name, "id": name}, None

        return create_step

    first = _in_thread(lambda: creator("qd-a", step("a", hold=True)), errors, "a")
    running.wait()
    queued = [_in_thread(lambda name=name: creator("qd-a", step(name)), errors, name) for name in ("b", "c")]
    poll(lambda: creator.waiting("qd-a") == 2, what="two create steps of qd-a queued")
    creator("qd-b", step("other"))  # runs, and commits, while qd-a's batch is held
    assert _marks(ctx) == {"other"}
    release.set()
    for thread in [first, *queued]:
        thread.join()

    assert errors == {}
    assert creator.batches == 3
    assert units["b"] == units["c"]
    assert _marks(ctx) == {"a", "b", "c", "other"}
