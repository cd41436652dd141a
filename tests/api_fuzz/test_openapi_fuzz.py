"""Schemathesis against ``/openapi.json``: every operation, as a department and as a sysadmin.

No generated request may get a 5xx answer or an answer that violates the documented schema
(status codes, content types, headers, bodies). Bounded: a few examples per operation. The
operations are driven through Hypothesis directly (schemathesis' pytest plugin does not run
under pytest 9).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from cloudctl import clock as clocks
from cloudctl.api import app as api_app
from cloudctl.services import identity, setup
from cloudctl.store import db
from tests.conftest import make_context

EXAMPLES_PER_OPERATION = 15


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, dict[str, str], dict[str, str]]]:
    home = tmp_path_factory.mktemp("fuzz")
    store = db.Store(db.sqlite_url(home))
    store.migrate()
    ctx = make_context(store, clocks.ManualClock(), Path(home))
    setup.initialise(ctx)
    secadmin = identity.local_operator("secadmin")
    department = identity.create_token(ctx, principal=secadmin, role="dept-admin", department="hrss").secret
    operator = identity.create_token(ctx, principal=secadmin, role="sysadmin").secret
    yield (
        api_app.create_app(context=ctx),
        {"Authorization": f"Bearer {department}"},
        {"Authorization": f"Bearer {operator}"},
    )
    store.dispose()


def fuzz(app: object, headers: dict[str, str]) -> list[str]:
    """Run every operation's strategy; the operations checked (a failure raises with its case)."""
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    checked = []
    for result in loaded.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            # A schema-valid body may still name a tier that does not exist or ask for more
            # than the quota: a documented 4xx, not a failure. Everything else is checked.
            case.call_and_validate(headers=headers, excluded_checks=[checks.positive_data_acceptance])

        check()
        checked.append(operation.label)
    return checked


def test_a_department_never_gets_a_server_error_or_an_undocumented_answer(
    api: tuple[object, dict[str, str], dict[str, str]],
) -> None:
    checked = fuzz(api[0], api[1])
    assert "POST /v1/requests" in checked
    assert len(checked) >= 15


def test_a_sysadmin_never_gets_a_server_error_or_an_undocumented_answer(
    api: tuple[object, dict[str, str], dict[str, str]],
) -> None:
    assert "POST /v1/requests/{request_id}/approve" in fuzz(api[0], api[2])
