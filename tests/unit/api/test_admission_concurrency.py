"""200 concurrent POST /v1/requests against a quota that fits 50: exactly 50 are granted.

A real uvicorn server on loopback and 32 client threads, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import concurrent.futures
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
import uvicorn

from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, orgs
from cloudctl.services import quotas as quotas_service

REQUESTS = 200
CLIENTS = 32
FITS = 50


@pytest.fixture
def server_url(ctx: ctx_module.Context) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(
        api_app.create_app(context=ctx), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(500):
        if server.started:
            started.set()
            break
        started.wait(0.01)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_two_hundred_concurrent_requests_get_exactly_what_fits(
    ctx: ctx_module.Context, server_url: str
) -> None:
    orgs.create_node(ctx, node_id="load-test", display_name="压力测试办公室", parent="qingdao", kind="bureau")
    quotas_service.set_quota(ctx, "load-test", center="qd-a", limits={"vcpu": 2 * FITS})
    operator = identity.local_operator("secadmin")
    secret = identity.create_token(ctx, principal=operator, role="dept-user", department="load-test").secret
    headers = {"Authorization": f"Bearer {secret}"}
    body = {"offering": "vm.small", "count": 1, "tier": "silver", "preferred_center": "qd-a"}

    def order(index: int) -> httpx.Response:
        with httpx.Client(base_url=server_url, timeout=120) as client:
            return client.post(
                "/v1/requests", json=body, headers={**headers, "Idempotency-Key": f"load-{index}"}
            )

    with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        responses = list(pool.map(order, range(REQUESTS)))

    statuses = [response.status_code for response in responses]
    assert statuses.count(201) == FITS
    assert statuses.count(409) == REQUESTS - FITS
    for refused in (r for r in responses if r.status_code == 409):
        problem = refused.json()
        assert refused.headers["content-type"] == "application/problem+json"
        assert problem["shortfalls"][0]["node"] == "load-test"
        assert problem["shortfalls"][0]["resource"] == "vcpu"
    view = quotas_service.show_quota(ctx, "load-test", center="qd-a")
    vcpu = next(item for item in view.centers[0].resources if item.resource == "vcpu")
    assert (vcpu.reserved, vcpu.limit) == (2 * FITS, 2 * FITS)
