"""Fixtures of the portal's tests: an initialised SQLite home, the app over it, signed-in clients.

The portal's pages read and write through the same services as the API; the store backend
makes no difference to them (the services' own tests cover both), so they run on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, setup
from cloudctl.store import db
from tests.conftest import make_context

SECADMIN = identity.local_operator("secadmin")
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def portal_ctx(tmp_path: Path) -> Iterator[ctx_module.Context]:
    store = db.Store(db.sqlite_url(tmp_path))
    store.migrate()
    context = make_context(store, clocks.SystemClock(), tmp_path)
    setup.initialise(context)
    yield context
    store.dispose()


def issue(ctx: ctx_module.Context, role: str, department: str | None = None) -> str:
    """A new bearer token of ``role`` (for ``department``), issued by the security administrator."""
    return identity.create_token(ctx, principal=SECADMIN, role=role, department=department).secret


def csrf_of(html: str) -> str:
    found = CSRF_FIELD.search(html)
    assert found is not None, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(client: TestClient, token: str) -> None:
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login", data={"token": token, "csrf_token": csrf_of(form.text)}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text


def post_form(
    client: TestClient, page: str, action: str, data: dict[str, str], *, follow: bool = False
) -> httpx.Response:
    """Submit a form as a browser does: take the CSRF token from ``page``, POST to ``action``."""
    token = csrf_of(client.get(page).text)
    return client.post(action, data={**data, "csrf_token": token}, follow_redirects=follow)


@pytest.fixture
def browser_like(portal_ctx: ctx_module.Context) -> Iterator[Callable[..., TestClient]]:
    """New clients of one app, each with its own cookie jar, like separate browsers."""
    app = api_app.create_app(context=portal_ctx)
    opened: list[TestClient] = []

    def open_client(*, token: str | None = None, base_url: str = "http://testserver") -> TestClient:
        client = TestClient(app, base_url=base_url)
        client.__enter__()
        opened.append(client)
        if token is not None:
            sign_in(client, token)
        return client

    yield open_client
    for client in opened:
        client.__exit__(None, None, None)
