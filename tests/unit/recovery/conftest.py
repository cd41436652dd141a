"""What the recovery tests share: a store of their own for drills run on the services."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import setup
from cloudctl.store import db
from tests.conftest import make_context


@pytest.fixture
def sqlite_ctx(tmp_path: Path) -> Iterator[ctx_module.Context]:
    """An initialised SQLite store on a manual clock (drills run on their own clock over it)."""
    store = db.Store(db.sqlite_url(tmp_path))
    store.migrate()
    context = make_context(store, clocks.ManualClock(), tmp_path)
    setup.initialise(context)
    yield context
    store.dispose()
