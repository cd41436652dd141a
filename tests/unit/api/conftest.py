"""What the API's tests share: a client of the app over the test's context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module


@pytest.fixture
def client(ctx: ctx_module.Context) -> Iterator[TestClient]:
    with TestClient(api_app.create_app(context=ctx)) as test_client:
        yield test_client
