"""Portal pages: server-side render time of each main page against the JSON API answer it mirrors.

At the shipped (default) topology on a throwaway SQLite home, one department orders ``size``
workloads through the services (provisioned on an instant simulator and protected), a few
more wait for approval, and three visitors sign in (the department, sysadmin, the auditor).
Each main page of the portal is then requested in process, interleaved with the ``/v1``
operation that returns the same data (baseline, page, baseline, page ...). The time is the
server's own: the API's access log measures each request from its middleware to the response,
so the client's share is left out. Figures: the median page time, its baseline's, their ratio;
the notes hold the slowest page's p95 against the 200 ms budget.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from bench import common
from cloudctl.api import app as api_app
from cloudctl.api.ui import department as portal_department
from cloudctl.services import identity, provisioning
from cloudctl.services import recovery as recovery_service
from cloudctl.services import requests as requests_service
from cloudctl.store import db

NAME = "portal"
DEFAULT_SIZE = 50
SMOKE_SIZE = 3
DEFAULT_ROUNDS = 3
CALLS_PER_ROUND = 10
PENDING = 3
BUDGET_MS = 200.0
WORKLOADS_PAGE = portal_department.WORKLOADS_PAGE_SIZE
DEPARTMENT = "hrss"
OBJECT_ID = re.compile(r"/(?:req|wl)-[0-9a-f]+")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class _ServerTimes(logging.Handler):
    """The ``duration_ms`` the API's access log gives each request, in order."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.durations_ms: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.durations_ms.append(float(getattr(record, "duration_ms", "nan")))


@contextmanager
def _server_times() -> Iterator[_ServerTimes]:
    logger = logging.getLogger("cloudctl.api.access")
    handler = _ServerTimes()
    saved = (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def _populate(ctx: Any, *, workloads: int) -> tuple[str, str]:
    """``workloads`` ready, protected workloads of the department and a few pending requests."""
    common.use_instant_simulator(ctx)
    with ctx.transaction() as tx:
        common.grant_like_root(tx, node_id=DEPARTMENT, topology=ctx.topology)
    owner = identity.Principal(
        id="bench:portal",
        role="dept-admin",
        department=DEPARTMENT,
        department_path=identity.department_path(ctx, DEPARTMENT),
    )
    centers = common.local_centers(ctx.topology)
    tiers = [tier.name for tier in ctx.topology.tiers]
    created = requests_service.submit_many(
        ctx,
        principal=owner,
        bodies=[
            requests_service.RequestCreate(
                offering="vm.small",
                tier=tiers[index % len(tiers)],
                preferred_center=centers[index % len(centers)],
                name=f"bench-portal-{index}",
            )
            for index in range(workloads)
        ],
    )
    for _ in range(20):
        if not provisioning.run_pending(ctx):
            break
    recovery_service.run_due(ctx)
    requests_service.submit_many(
        ctx,
        principal=owner,
        bodies=[
            requests_service.RequestCreate(
                offering="vm.small", count=5, tier=tiers[-1], name=f"bench-big-{n}"
            )
            for n in range(PENDING)
        ],
    )
    return created[0].id, str(created[0].workload_id)


def _signed_in(app: Any, ctx: Any, role: str, department: str | None = None) -> TestClient:
    operator = identity.local_operator("secadmin")
    token = identity.create_token(ctx, principal=operator, role=role, department=department).secret
    client = TestClient(app)
    form = client.get("/ui/login").text
    found = CSRF.search(form)
    assert found is not None
    answer = client.post(
        "/ui/login", data={"token": token, "csrf_token": found.group(1)}, follow_redirects=False
    )
    if answer.status_code != 303:
        raise RuntimeError(f"signing in as {role} failed: {answer.status_code}")
    client.headers["Authorization"] = f"Bearer {token}"  # for the /v1 baseline; pages use the cookie
    return client


def _serve_once(client: TestClient, path: str, times: _ServerTimes) -> float:
    answer = client.get(path)
    if answer.status_code != 200:
        raise RuntimeError(f"GET {path} answered {answer.status_code}: {answer.text[:200]}")
    return times.durations_ms[-1]


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    workloads = size or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    rounds = rounds or (1 if smoke else DEFAULT_ROUNDS)
    calls = 2 if smoke else CALLS_PER_ROUND
    result = common.BenchResult(
        name=NAME,
        size=workloads,
        smoke=smoke,
        baseline="the /v1 operation returning the same data (JSON), same app, same visitor, interleaved",
    )
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-portal-") as directory:
        home = Path(directory)
        ctx = common.open_context(db.sqlite_url(home), home=home, topology_file=common.SHIPPED_TOPOLOGY)
        request_id, workload_id = _populate(ctx, workloads=workloads)
        app = api_app.create_app(context=ctx)
        visitors = {
            "department": _signed_in(app, ctx, "dept-admin", DEPARTMENT),
            "sysadmin": _signed_in(app, ctx, "sysadmin"),
            "auditor": _signed_in(app, ctx, "auditor"),
        }
        pages = [
            ("department", "catalog", "/ui/catalog", "/v1/catalog"),
            ("department", "order", "/ui/order", "/v1/catalog"),
            ("department", "requests", "/ui/requests", "/v1/requests"),
            ("department", "request", f"/ui/requests/{request_id}", f"/v1/requests/{request_id}"),
            ("department", "workloads", "/ui/workloads", f"/v1/workloads?limit={WORKLOADS_PAGE}"),
            ("department", "workload", f"/ui/workloads/{workload_id}", f"/v1/workloads/{workload_id}"),
            ("department", "quota", "/ui/quota", "/v1/quota"),
            ("sysadmin", "approvals", "/ui/approvals", "/v1/requests?state=pending-approval"),
            ("sysadmin", "centers", "/ui/centers", "/v1/status"),
            ("sysadmin", "runs", "/ui/runs", "/v1/status"),
            ("auditor", "audit", "/ui/audit", "/v1/audit?limit=50"),
        ]
        samples: dict[str, dict[str, list[float]]] = {
            name: {"page": [], "api": []} for _, name, _, _ in pages
        }
        with _server_times() as times:
            for visitor, _name, page, api in pages:  # warm caches (policies, templates) once
                _serve_once(visitors[visitor], page, times)
                _serve_once(visitors[visitor], api, times)
            for _round in range(rounds):
                for visitor, name, page, api in pages:
                    client = visitors[visitor]
                    for _call in range(calls):
                        samples[name]["api"].append(_serve_once(client, api, times))
                        samples[name]["page"].append(_serve_once(client, page, times))
        for client in visitors.values():
            client.close()
        ctx.close()
    result.details["server_ms"] = {
        name: {side: [round(v, 3) for v in values] for side, values in sides.items()}
        for name, sides in samples.items()
    }
    slowest_name, slowest_p95 = "", 0.0
    for _visitor, name, _page, api in pages:
        page_ms = samples[name]["page"]
        p95 = common.percentile(page_ms, 0.95) or 0.0
        if p95 > slowest_p95:
            slowest_name, slowest_p95 = name, p95
        result.add(
            f"/ui {name} vs {OBJECT_ID.sub('/{id}', api.split('?')[0])}",
            unit="ms (server)",
            subject=common.median(page_ms),
            baseline=common.median(samples[name]["api"]),
            meaning="times the JSON answer's server time",
        )
    verdict = "within" if slowest_p95 < BUDGET_MS else "OVER"
    result.notes.append(
        f"slowest page p95 {slowest_p95:.1f} ms ({slowest_name}): {verdict} the {BUDGET_MS:.0f} ms budget; "
        f"{workloads} workloads of {DEPARTMENT} on the shipped topology, SQLite, "
        f"{rounds} rounds × {calls} interleaved calls per page"
    )
    result.details["slowest_p95_ms"] = {
        "page": slowest_name,
        "ms": round(slowest_p95, 3),
        "budget_ms": BUDGET_MS,
    }
    return result
