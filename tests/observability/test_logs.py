"""Structured logs: JSON lines off a terminal, context on every record, one request id end to end."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cloudctl import logs
from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.store import audit

log = logging.getLogger("cloudctl.test")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """What ``logs.configure`` writes, JSON lines into a buffer; the root logger restored afterwards."""
    root = logging.getLogger()
    level = root.level
    stream = io.StringIO()
    handler = logs.configure(stream=stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_records_are_json_lines_with_the_bound_context_when_not_on_a_terminal(captured: io.StringIO) -> None:
    with logs.bind(request_id="r-1", department="hrss"), logs.bind(center="qd-a", reconcile_id="rc-7"):
        log.info("placed %s", "vm.small", extra={"tier": "gold"})
    log.warning("outside")

    inside, outside = lines(captured)
    assert inside == {
        "ts": inside["ts"],
        "level": "info",
        "logger": "cloudctl.test",
        "message": "placed vm.small",
        "request_id": "r-1",
        "department": "hrss",
        "center": "qd-a",
        "reconcile_id": "rc-7",
        "tier": "gold",
    }
    assert str(inside["ts"]).endswith("Z")
    assert outside["request_id"] == ""
    assert "department" not in outside


def test_an_exception_travels_in_the_json_line(captured: io.StringIO) -> None:
    try:
        raise RuntimeError("backend said no")
    except RuntimeError:
        log.exception("reconcile failed")
    (line,) = lines(captured)
    assert line["level"] == "error"
    assert "RuntimeError: backend said no" in str(line["exception"])


def test_a_terminal_gets_one_readable_line() -> None:
    root = logging.getLogger()
    level = root.level
    terminal = Terminal()
    handler = logs.configure(stream=terminal)
    try:
        with logs.bind(request_id="r-2", center="dz-dr"):
            log.info("copied %d objects", 3)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    (line,) = terminal.getvalue().splitlines()
    assert line.endswith("INFO  cloudctl.test copied 3 objects  request_id=r-2 center=dz-dr")


def test_configure_again_replaces_its_handler_instead_of_adding_one(captured: io.StringIO) -> None:
    second = io.StringIO()
    handler = logs.configure(json=False, stream=second)
    log.info("once")
    assert captured.getvalue() == ""
    assert second.getvalue().count("once") == 1
    assert [h for h in logging.getLogger().handlers if isinstance(h, type(handler))] == [handler]


def test_bound_context_ends_with_its_block_and_stays_in_its_thread() -> None:
    seen: list[dict[str, str]] = []
    with logs.bind(request_id="outer"):
        with logs.bind(department="ga"):
            worker = threading.Thread(target=lambda: seen.append(dict(logs.bound())))
            worker.start()
            worker.join()
            assert logs.bound() == {"request_id": "outer", "department": "ga"}
        assert logs.bound() == {"request_id": "outer"}
    assert logs.bound() == {}
    assert seen == [{}]


def test_a_request_s_log_line_audit_record_and_response_header_share_one_request_id(
    ctx: ctx_module.Context, captured: io.StringIO
) -> None:
    with TestClient(api_app.create_app(context=ctx)) as client:
        response = client.get("/v1/catalog", headers={"Authorization": "Bearer cct_nobody.guess"})
        chosen = client.get("/v1/catalog", headers={"X-Request-ID": "ops-ticket-4711"})

    assert response.status_code == 401
    request_id = response.headers["X-Request-ID"]
    with ctx.read() as tx:
        records = audit.list_records(tx, action="auth.authenticate")
    assert [record.request_id for record in records] == [request_id, "ops-ticket-4711"]
    access = [line for line in lines(captured) if line["logger"] == "cloudctl.api.access"]
    assert [(line["request_id"], line["status"], line["message"]) for line in access] == [
        (request_id, 401, "GET /v1/catalog 401"),
        ("ops-ticket-4711", 401, "GET /v1/catalog 401"),
    ]
    assert all(str(line["route"]).endswith("/catalog") for line in access)  # the metrics' route template
    assert chosen.headers["X-Request-ID"] == "ops-ticket-4711"
