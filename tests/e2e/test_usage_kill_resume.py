"""The usage pass killed with SIGKILL part-way, then run again: every hour recorded exactly once.

A real ``cloudctl capacity record`` backfills months of hours on a SQLite store; the test polls
the raw tables (bounded) until part of the hours are in, kills the process outright, checks that
no hour is half-written, and runs the command again to the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import sqlalchemy as sa

from cloudctl import clock as clocks
from cloudctl.model import pricing
from cloudctl.services import quotas as quotas_service
from cloudctl.services import setup
from cloudctl.store import db, schema
from tests.conftest import make_context
from tests.e2e.test_kill_resume import cloudctl, killed
from tests.e2e.test_serve_crash import poll

HOURS = 24 * 90


def counts(engine: sa.Engine) -> tuple[list[int], list[int], int]:
    with engine.connect() as connection:
        passes = [
            int(h) for (h,) in connection.execute(sa.select(schema.usage_passes.c.hour).order_by("hour"))
        ]
        lines = [
            int(h)
            for (h,) in connection.execute(
                sa.select(schema.usage_hours.c.hour).where(schema.usage_hours.c.node_id == "hrss-insurance")
            )
        ]
        audited = connection.execute(
            sa.select(sa.func.count()).where(schema.audit_records.c.action == "usage.record")
        ).scalar_one()
    return passes, lines, int(audited)


def test_a_killed_usage_pass_resumes_and_records_every_hour_once(tmp_path: Path) -> None:
    began = pricing.hour_floor(time.time()) - HOURS * 3600
    store = db.Store(db.sqlite_url(tmp_path))
    context = make_context(store, clocks.ManualClock(start=began + 60), tmp_path)
    setup.initialise(context)
    quotas_service.reserve(context, "hrss-insurance", center="qd-a", amounts={"vcpu": 4})
    store.dispose()
    engine = sa.create_engine(db.sqlite_url(tmp_path))
    start = cloudctl(tmp_path)

    first = start("capacity", "record", "--max-hours", str(HOURS + 10))
    poll(lambda: len(counts(engine)[0]) >= 50, what="50 recorded hours")
    killed(first)

    passes, lines, audited = counts(engine)
    assert 50 <= len(passes) < HOURS, "killed part-way"
    assert passes == [began + i * 3600 for i in range(len(passes))]
    assert sorted(lines) == passes  # no line of an unclaimed hour, none twice
    assert audited == len(passes)

    second = start("capacity", "record", "--max-hours", str(HOURS + 10))
    assert second.wait(300) == 0, second.stdout.read().decode() if second.stdout else ""
    if second.stdout is not None:
        second.stdout.close()

    passes, lines, audited = counts(engine)
    ended = pricing.hour_floor(time.time()) - 3600
    assert passes[0] == began
    assert passes == list(range(began, passes[-1] + 1, 3600))
    assert passes[-1] >= ended - 3600  # up to the last ended hour (a new one may end meanwhile)
    assert sorted(lines) == passes
    assert audited == len(passes)
    engine.dispose()
