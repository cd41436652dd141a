"""The portal over HTTP (in process): sign-in, sessions, CSRF, escaping, role gating, the same services.

A browser drives the same pages in ``test_portal_browser.py``; here every answer is checked
at the HTTP level, and outcomes in the store are read with SQLAlchemy on the raw tables.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl.api import app as api_app
from cloudctl.api.ui import department, web
from cloudctl.api.ui import sessions as portal_sessions
from cloudctl.model import drills as drill_plans
from cloudctl.services import context as ctx_module
from cloudctl.services import drills, identity, orgs, recovery, setup
from cloudctl.services import requests as requests_service
from cloudctl.store import db
from tests.conftest import ROOT, make_context
from tests.ui.conftest import SECADMIN, csrf_of, issue, post_form, sign_in

XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'
ESCAPED = "&lt;script&gt;alert(&#34;xss&#34;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;"
Browser = Callable[..., TestClient]


def raw(ctx: ctx_module.Context, sql: str, **params: Any) -> list[Any]:
    """Rows of ``sql`` on the store's own tables, read without cloudctl's store layer."""
    engine = sa.create_engine(ctx.store.url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.text(sql), params))
    finally:
        engine.dispose()


def order(client: TestClient, **fields: str) -> Any:
    data = {"offering": "vm.small", "count": "1", "tier": "silver", "data_class": "internal", **fields}
    return post_form(client, "/ui/order", "/ui/order", data)


def test_pages_send_a_visitor_without_a_session_to_sign_in(browser_like: Browser) -> None:
    client = browser_like()
    for page in ("/ui/catalog", "/ui/requests/req-1", "/ui/audit"):
        answer = client.get(page, follow_redirects=False)
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/ui/login?next=")
    assert client.post("/ui/order", data={}, follow_redirects=False).status_code == 303


def test_signing_in_sets_a_strict_session_cookie_and_lands_on_the_role_page(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like()
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"token": issue(portal_ctx, "dept-admin", "hrss"), "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert (answer.status_code, answer.headers["location"]) == (303, "/ui/catalog")
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("cloudctl_session="))
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "path=/ui", "samesite=lax"} <= attributes
    assert "secure" not in attributes
    page = client.get("/ui/catalog")
    assert page.status_code == 200
    assert "vm.small" in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self'")
    signed_in = raw(portal_ctx, "SELECT role, outcome FROM audit_records WHERE action = 'portal.sign_in'")
    assert [tuple(row) for row in signed_in] == [("dept-admin", "success")]


def test_the_session_cookie_is_secure_over_tls(portal_ctx: ctx_module.Context, browser_like: Browser) -> None:
    client = browser_like(base_url="https://testserver")
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login",
        data={"token": issue(portal_ctx, "dept-user", "psb"), "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("cloudctl_session="))
    assert "secure" in {part.strip().lower() for part in cookie.split(";")}


@pytest.mark.parametrize(("peer", "secure"), [("10.0.0.5", True), ("192.0.2.9", False)])
def test_the_session_cookie_is_secure_behind_a_trusted_tls_proxy(
    portal_ctx: ctx_module.Context, peer: str, secure: bool
) -> None:
    # TLS ends at the proxy (docs/operations.md); the proxy says so in X-Forwarded-Proto.
    portal_ctx.settings.trusted_proxies = [ipaddress.ip_network("10.0.0.5/32")]
    forwarded = {"X-Forwarded-Proto": "https"}
    with TestClient(api_app.create_app(context=portal_ctx), client=(peer, 50000)) as client:
        form = client.get("/ui/login", headers=forwarded)
        login_cookie = form.headers["set-cookie"]
        answer = client.post(
            "/ui/login",
            data={"token": issue(portal_ctx, "dept-user", "psb"), "csrf_token": csrf_of(form.text)},
            headers={**forwarded, "Cookie": login_cookie.split(";")[0]},
            follow_redirects=False,
        )
    assert answer.status_code == 303, answer.text
    cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("cloudctl_session="))
    assert ("secure" in {part.strip().lower() for part in login_cookie.split(";")}) is secure
    assert ("secure" in {part.strip().lower() for part in cookie.split(";")}) is secure


def test_a_wrong_token_is_refused_audited_and_starts_no_session(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like()
    form = client.get("/ui/login")
    unknown = "cct_0123456789abcdef." + "s" * 32  # well formed, but no such token
    answer = client.post("/ui/login", data={"token": unknown, "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 401
    assert "unknown token" in answer.text
    assert "cloudctl_session" not in client.cookies
    denied = raw(portal_ctx, "SELECT outcome FROM audit_records WHERE action = 'auth.authenticate'")
    assert [row[0] for row in denied] == ["denied"]


def test_a_session_id_planted_before_sign_in_never_becomes_a_session(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    victim = browser_like()
    planted = "attacker-chosen-session-id"
    victim.cookies.set(portal_sessions.COOKIE, planted, domain="testserver.local", path="/ui")
    sign_in(victim, issue(portal_ctx, "dept-admin", "hrss"))
    issued = victim.cookies.get(portal_sessions.COOKIE, domain="testserver.local", path="/ui")
    assert issued and issued != planted

    attacker = browser_like()
    attacker.cookies.set(portal_sessions.COOKIE, planted, domain="testserver.local", path="/ui")
    assert attacker.get("/ui/catalog", follow_redirects=False).status_code == 303


def test_signing_in_again_replaces_the_session_id(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like()
    token = issue(portal_ctx, "dept-admin", "hrss")
    sign_in(client, token)
    first = client.cookies.get(portal_sessions.COOKIE)
    sign_in(client, token)
    second = client.cookies.get(portal_sessions.COOKIE)
    assert first != second
    stale = browser_like()
    stale.cookies.set(portal_sessions.COOKIE, str(first), domain="testserver.local", path="/ui")
    assert stale.get("/ui/catalog", follow_redirects=False).status_code == 303


def test_signing_out_ends_the_session(portal_ctx: ctx_module.Context, browser_like: Browser) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    session_id = str(client.cookies.get(portal_sessions.COOKIE))
    answer = post_form(client, "/ui/catalog", "/ui/logout", {})
    assert answer.status_code == 303
    replay = browser_like()
    replay.cookies.set(portal_sessions.COOKIE, session_id, domain="testserver.local", path="/ui")
    assert replay.get("/ui/catalog", follow_redirects=False).status_code == 303


@pytest.mark.parametrize(("between", "then"), [({}, 200), ({"X-Portal-Refresh": "1"}, 303)])
def test_a_session_idles_out_though_the_page_refreshes_itself(
    tmp_path: Path, between: dict[str, str], then: int
) -> None:
    # A live page (a request waiting for approval) refreshes itself every few seconds; that
    # is the script's doing, not the visitor's, so it must not keep the session alive.
    store = db.Store(db.sqlite_url(tmp_path))
    store.migrate()
    clock = clocks.ManualClock()
    ctx = make_context(store, clock, tmp_path)
    setup.initialise(ctx)
    try:
        with TestClient(api_app.create_app(context=ctx)) as client:
            sign_in(client, issue(ctx, "dept-admin", "hrss"))
            clock.advance(portal_sessions.IDLE_S * 2 / 3)
            assert client.get("/ui/requests", headers=between, follow_redirects=False).status_code == 200
            clock.advance(portal_sessions.IDLE_S * 2 / 3)
            assert client.get("/ui/requests", follow_redirects=False).status_code == then
    finally:
        store.dispose()


def test_a_revoked_token_ends_its_session_at_the_next_page(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    issued = identity.create_token(
        portal_ctx, principal=identity.local_operator("secadmin"), role="dept-user", department="hrss"
    )
    client = browser_like(token=issued.secret)
    assert client.get("/ui/catalog").status_code == 200
    identity.revoke_token(portal_ctx, principal=identity.local_operator("secadmin"), token_id=issued.token.id)
    answer = client.get("/ui/catalog", follow_redirects=False)
    assert answer.status_code == 303
    assert "revoked+token" in answer.headers["location"]


def test_the_sign_in_page_shows_only_notices_the_portal_wrote(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    spoofed = "令牌已过期 Token expired: mail it to helpdesk@evil.example for a new one"
    client = browser_like()
    assert "evil.example" not in client.get("/ui/login", params={"notice": spoofed}).text
    issued = identity.create_token(portal_ctx, principal=SECADMIN, role="dept-user", department="hrss")
    signed_out = browser_like(token=issued.secret)
    assert "已退出 Signed out" in post_form(signed_out, "/ui/catalog", "/ui/logout", {}, follow=True).text
    revoked = browser_like(token=issued.secret)
    identity.revoke_token(portal_ctx, principal=SECADMIN, token_id=issued.token.id)
    assert "revoked token" in revoked.get("/ui/catalog").text


def test_a_form_without_the_session_csrf_token_changes_nothing(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    body = {"offering": "vm.small", "count": "1", "tier": "silver", "data_class": "internal"}
    missing = client.post("/ui/order", data=body)
    forged = client.post("/ui/order", data={**body, "csrf_token": "forged"})
    other = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    someone_elses = client.post(
        "/ui/order", data={**body, "csrf_token": csrf_of(other.get("/ui/order").text)}
    )
    assert [missing.status_code, forged.status_code, someone_elses.status_code] == [403, 403, 403]
    assert "csrf_token" in forged.text
    assert raw(portal_ctx, "SELECT count(*) FROM requests")[0][0] == 0


def test_the_sign_in_form_needs_its_own_csrf_cookie(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like()
    answer = client.post(
        "/ui/login", data={"token": issue(portal_ctx, "dept-admin", "hrss"), "csrf_token": "x"}
    )
    assert answer.status_code == 403
    assert "cloudctl_session" not in client.cookies


def test_a_department_orders_and_follows_its_request(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    answer = order(client, tier="gold", name="social-insurance-portal", preferred_center="qd-a")
    assert answer.status_code == 303, answer.text
    location = answer.headers["location"]
    request_id = location.rsplit("/", 1)[-1]
    rows = raw(portal_ctx, "SELECT department, offering, tier, state, created_by FROM requests")
    assert [tuple(row)[:4] for row in rows] == [("hrss", "vm.small", "gold", "approved")]
    page = client.get(location)
    assert "social-insurance-portal" in page.text
    assert "quota-reserved" in page.text
    assert request_id in page.text
    workloads = client.get("/ui/workloads").text
    assert "social-insurance-portal" in workloads
    assert "qd-a · primary" in workloads
    quota = client.get("/ui/quota").text
    assert "qingdao" in quota and "青岛市人力资源和社会保障局" in quota


def test_an_order_the_quota_cannot_hold_shows_the_shortfall_and_holds_nothing(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-user", "hrss-employment"))
    answer = order(client, offering="vm.xlarge", count="2")
    assert answer.status_code == 409
    assert "hrss-employment" in answer.text and "vcpu" in answer.text
    assert raw(portal_ctx, "SELECT count(*) FROM requests")[0][0] == 0


def test_markup_in_an_order_is_refused_and_echoed_escaped(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    answer = order(client, name=XSS)
    assert answer.status_code == 422
    assert "name:" in answer.text
    assert XSS not in answer.text
    assert ESCAPED in answer.text


@pytest.mark.parametrize(
    ("page", "field", "value"),
    [
        ("/ui/login", "token", "x" * 501),
        ("/ui/login", "next", "/ui/" + "a" * 500),
        ("/ui/order", "idempotency_key", "k" * 201),
        ("/ui/order", "offering", "<b>vm</b>" * 10_000),
        ("/ui/order", "preferred_center", "qd-" * 10_000),
    ],
)
def test_an_oversized_form_field_is_named_on_a_portal_page_and_changes_nothing(
    portal_ctx: ctx_module.Context, browser_like: Browser, page: str, field: str, value: str
) -> None:
    client = browser_like(token=None if page == "/ui/login" else issue(portal_ctx, "dept-admin", "hrss"))
    signed_in_before = client.cookies.get(portal_sessions.COOKIE)
    answer = post_form(client, page, page, {"offering": "vm.small", "tier": "silver", field: value})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == web.CONTENT_SECURITY_POLICY
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert f"{field}: String should have at most" in answer.text
    assert value not in answer.text
    assert raw(portal_ctx, "SELECT count(*) FROM requests")[0][0] == 0
    assert client.cookies.get(portal_sessions.COOKIE) == signed_in_before


def test_an_oversized_query_on_a_portal_page_is_named_on_a_portal_page(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-user", "hrss"))
    answer = client.get("/ui/requests", params={"state": "s" * 41})
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["cache-control"] == "no-store"
    assert "state: String should have at most 40 characters" in answer.text


def test_markup_in_a_stored_workload_name_and_a_rejection_reason_is_escaped_everywhere(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    hrss = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    pending = order(hrss, count="5")
    request_id = pending.headers["location"].rsplit("/", 1)[-1]
    workload_id = raw(portal_ctx, "SELECT workload_id FROM requests WHERE id = :id", id=request_id)[0][0]
    # A name no API call can store (names are slugs): written straight into the table.
    engine = sa.create_engine(portal_ctx.store.url)
    with engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE workloads SET name = :name WHERE id = :id"), {"name": XSS, "id": workload_id}
        )
    engine.dispose()
    sysadmin = browser_like(token=issue(portal_ctx, "sysadmin"))
    listed = [hrss.get("/ui/workloads"), sysadmin.get("/ui/workloads")]  # listed while it waits
    rejected = post_form(sysadmin, "/ui/approvals", f"/ui/requests/{request_id}/reject", {"reason": XSS})
    assert rejected.status_code == 303
    auditor = browser_like(token=issue(portal_ctx, "auditor"))
    pages = [
        hrss.get(f"/ui/requests/{request_id}"),
        *listed,
        hrss.get(f"/ui/workloads/{workload_id}"),
        auditor.get("/ui/audit", params={"action": "request.reject"}),
    ]
    for page in pages:
        assert page.status_code == 200, page.url
        assert "<script>alert" not in page.text, page.url
        assert "<img src=x" not in page.text, page.url
    assert ESCAPED in pages[0].text  # the rejection reason, as the department sees it
    assert ESCAPED in pages[1].text  # the workload name in the listing
    assert ESCAPED in pages[3].text  # and on its own page, once rejected


def test_markup_in_an_org_node_name_is_escaped(portal_ctx: ctx_module.Context, browser_like: Browser) -> None:
    orgs.create_node(portal_ctx, node_id="hrss-probe", display_name=XSS, parent="hrss", kind="department")
    client = browser_like(token=issue(portal_ctx, "dept-user", "hrss-probe"))
    page = client.get("/ui/quota")
    assert page.status_code == 200
    assert XSS not in page.text
    assert ESCAPED in page.text


def test_another_departments_request_and_workload_are_not_found(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    hrss = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    location = order(hrss, name="hrss-private").headers["location"]
    request_id = location.rsplit("/", 1)[-1]
    workload_id = raw(portal_ctx, "SELECT workload_id FROM requests")[0][0]
    psb = browser_like(token=issue(portal_ctx, "dept-admin", "psb"))
    for page in (f"/ui/requests/{request_id}", f"/ui/workloads/{workload_id}", "/ui/quota?department=hrss"):
        answer = psb.get(page)
        assert answer.status_code == 404, page
        assert "hrss-private" not in answer.text
    deleted = post_form(psb, "/ui/workloads", f"/ui/workloads/{workload_id}/delete", {})
    assert deleted.status_code == 404
    assert "hrss-private" not in psb.get("/ui/requests").text
    assert raw(portal_ctx, "SELECT state FROM workloads")[0][0] == "approved"


@pytest.mark.parametrize(
    ("role", "department_id", "page", "status"),
    [
        ("dept-admin", "hrss", "/ui/centers", 403),
        ("dept-admin", "hrss", "/ui/runs", 403),
        ("dept-admin", "hrss", "/ui/drills", 403),
        ("dept-admin", "hrss", "/ui/audit", 403),
        ("sysadmin", None, "/ui/audit", 403),
        ("secadmin", None, "/ui/audit", 403),
        ("secadmin", None, "/ui/centers", 403),
        ("auditor", None, "/ui/centers", 403),
        ("auditor", None, "/ui/approvals", 403),
        ("sysadmin", None, "/ui/centers", 200),
        ("sysadmin", None, "/ui/runs", 200),
        ("sysadmin", None, "/ui/drills", 200),
        ("sysadmin", None, "/ui/approvals", 200),
        ("auditor", None, "/ui/audit", 200),
    ],
)
def test_operator_pages_are_gated_by_the_apis_policies(
    portal_ctx: ctx_module.Context,
    browser_like: Browser,
    role: str,
    department_id: str | None,
    page: str,
    status: int,
) -> None:
    client = browser_like(token=issue(portal_ctx, role, department_id))
    answer = client.get(page)
    assert answer.status_code == status, answer.text


def test_a_department_user_cannot_cancel_what_only_its_admin_may(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    admin = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    request_id = order(admin).headers["location"].rsplit("/", 1)[-1]
    user = browser_like(token=issue(portal_ctx, "dept-user", "hrss"))
    refused = post_form(user, f"/ui/requests/{request_id}", f"/ui/requests/{request_id}/cancel", {})
    assert refused.status_code == 403
    assert "request.cancel" in refused.text
    assert raw(portal_ctx, "SELECT state FROM requests")[0][0] == "approved"
    cancelled = post_form(admin, f"/ui/requests/{request_id}", f"/ui/requests/{request_id}/cancel", {})
    assert cancelled.status_code == 303
    assert raw(portal_ctx, "SELECT state FROM requests")[0][0] == "cancelled"
    audited = raw(
        portal_ctx, "SELECT action, outcome FROM audit_records WHERE action = 'request.cancel' ORDER BY seq"
    )
    # The refused attempt is audited too, as every refused write is.
    assert [tuple(row) for row in audited] == [("request.cancel", "denied"), ("request.cancel", "success")]


def test_sysadmin_approves_and_rejects_with_a_reason(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    hrss = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    first = order(hrss, count="5").headers["location"].rsplit("/", 1)[-1]
    second = order(hrss, count="5").headers["location"].rsplit("/", 1)[-1]
    sysadmin = browser_like(token=issue(portal_ctx, "sysadmin"))
    listing = sysadmin.get("/ui/approvals").text
    assert first in listing and second in listing
    assert "approval-size-threshold" in listing
    no_reason = post_form(sysadmin, "/ui/approvals", f"/ui/requests/{second}/reject", {"reason": "  "})
    assert no_reason.status_code == 303
    assert "reason" in sysadmin.get("/ui/approvals").text
    assert post_form(sysadmin, "/ui/approvals", f"/ui/requests/{first}/approve", {}).status_code == 303
    assert (
        post_form(
            sysadmin, "/ui/approvals", f"/ui/requests/{second}/reject", {"reason": "请改用内部数据分级"}
        ).status_code
        == 303
    )
    states = dict(tuple(row) for row in raw(portal_ctx, "SELECT id, state FROM requests"))
    assert states == {first: "approved", second: "rejected"}
    assert "请改用内部数据分级" in hrss.get(f"/ui/requests/{second}").text
    approvals = raw(portal_ctx, "SELECT actor, role FROM audit_records WHERE action = 'request.approve'")
    assert [row[1] for row in approvals] == ["sysadmin"]


def test_the_auditor_reads_and_verifies_the_log(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    auditor = browser_like(token=issue(portal_ctx, "auditor"))
    page = auditor.get("/ui/audit", params={"action": "token.create"})
    assert page.text.count("<code>token.create</code>") == 1
    verified = auditor.get("/ui/audit", params={"verify": "1"})
    assert "哈希链完整" in verified.text


def test_the_catalog_shows_prices_only_where_showback_gives_them(
    portal_ctx: ctx_module.Context, browser_like: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-user", "hrss"))
    assert "价格" not in client.get("/ui/catalog").text
    monkeypatch.setattr(department, "catalog_prices", lambda ctx, principal: {"vm.small": "¥0.35/小时"})
    priced = client.get("/ui/catalog").text
    assert "价格" in priced and "¥0.35/小时" in priced


def test_the_same_idempotency_key_orders_once(portal_ctx: ctx_module.Context, browser_like: Browser) -> None:
    client = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    body = {"offering": "vm.small", "count": "1", "tier": "silver", "data_class": "internal"}
    token = csrf_of(client.get("/ui/order").text)
    for _ in range(2):  # a double click, or the back button and submit again
        answer = client.post(
            "/ui/order", data={**body, "csrf_token": token, "idempotency_key": "k-1"}, follow_redirects=False
        )
        assert answer.status_code == 303
    assert raw(portal_ctx, "SELECT count(*) FROM requests")[0][0] == 1


def test_the_portal_calls_the_same_services_as_the_api(
    portal_ctx: ctx_module.Context, browser_like: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = requests_service.submit

    def spy(ctx: ctx_module.Context, **kwargs: Any) -> Any:
        calls.append(kwargs["principal"].department)
        return original(ctx, **kwargs)

    monkeypatch.setattr(requests_service, "submit", spy)
    client = browser_like(token=issue(portal_ctx, "dept-admin", "hrss"))
    assert order(client).status_code == 303
    assert calls == ["hrss"]


def test_the_portals_script_style_and_refusals_are_never_sniffed(browser_like: Browser) -> None:
    client = browser_like()
    answers = [
        client.get("/ui/static/portal.js"),
        client.get("/ui/static/portal.css"),
        client.get("/ui/requests/<script>alert(1)</script>"),  # no such page: the API's 404 problem
        client.get("/ui/logout"),  # 405
    ]
    assert [answer.headers.get("x-content-type-options") for answer in answers] == ["nosniff"] * 4


def test_the_api_reference_is_served_from_the_package(browser_like: Browser) -> None:
    client = browser_like()
    swagger = client.get("/docs").text
    redoc = client.get("/redoc").text
    for page in (swagger, redoc):
        assert "cdn.jsdelivr.net" not in page
        assert "fonts.googleapis.com" not in page
        assert "https://" not in page
    assert "/docs/static/swagger-ui/swagger-ui-bundle.js" in swagger
    assert "/docs/static/redoc/redoc.standalone.js" in redoc
    bundle = client.get("/docs/static/swagger-ui/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert "javascript" in bundle.headers["content-type"]
    assert client.get("/docs/static/redoc/redoc.standalone.js").status_code == 200
    assert client.get("/docs/static/swagger-ui/swagger-ui.css").status_code == 200
    assert client.get("/docs/oauth2-redirect").status_code == 200


def test_runs_and_drill_reports_show_what_the_services_hold(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    plan = drill_plans.parse((ROOT / "dr" / "drills" / "lose-qd-a.yaml").read_text(encoding="utf-8"))
    quick = plan.model_copy(
        # As short as the plan allows: the replication interval of its slowest tier measured.
        update={"canary": plan.canary.model_copy(update={"warmup_s": 60.0, "writes_per_s": 1.0}), "steps": ()}
    )
    report = drills.run_drill(portal_ctx, plan=quick)
    run_id = raw(portal_ctx, "SELECT id FROM drill_runs")[0][0]
    failover = recovery.plan_failover(
        portal_ctx, principal=identity.local_operator("sysadmin"), from_center="qd-b", planned=True
    )
    sysadmin = browser_like(token=issue(portal_ctx, "sysadmin"))

    runs = sysadmin.get("/ui/runs").text
    assert str(failover.run_id) in runs
    assert run_id in runs and "lose-qd-a" in runs
    assert f'href="/ui/drills/{run_id}"' in runs  # a done drill links to its report
    reports = sysadmin.get("/ui/drills").text
    assert f"/ui/drills/{run_id}" in reports
    page = sysadmin.get(f"/ui/drills/{run_id}")
    assert page.status_code == 200
    assert f'src="/ui/drills/{run_id}/report.html"' in page.text
    assert "sandbox" in page.text
    embedded = sysadmin.get(f"/ui/drills/{run_id}/report.html")
    assert embedded.status_code == 200
    assert embedded.headers["content-security-policy"].startswith("default-src 'none'")
    assert f"Drill <code>{report.plan}</code>" in embedded.text
    assert sysadmin.get("/ui/drills/drill-missing").status_code == 404
    auditor = browser_like(token=issue(portal_ctx, "auditor"))
    assert auditor.get(f"/ui/drills/{run_id}/report.html").status_code == 403


@pytest.mark.parametrize(
    ("next_url", "landing"),
    [
        ("/ui/quota", "/ui/quota"),
        ("https://evil.example/ui/", "/ui/catalog"),
        ("//evil.example/ui/", "/ui/catalog"),
        ("/v1/catalog", "/ui/catalog"),
    ],
)
def test_sign_in_returns_only_to_a_portal_page(
    portal_ctx: ctx_module.Context, browser_like: Browser, next_url: str, landing: str
) -> None:
    client = browser_like()
    form = client.get("/ui/login", params={"next": next_url})
    answer = client.post(
        "/ui/login",
        data={
            "token": issue(portal_ctx, "dept-admin", "hrss"),
            "csrf_token": csrf_of(form.text),
            "next": next_url,
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == landing


def test_guessing_tokens_at_the_sign_in_form_throttles_the_guesser_but_not_a_valid_token(
    portal_ctx: ctx_module.Context, browser_like: Browser
) -> None:
    client = browser_like()
    statuses = []
    for _ in range(portal_ctx.settings.lockout_failures):
        form = client.get("/ui/login")
        statuses.append(
            client.post(
                "/ui/login", data={"token": "cct_x.guess", "csrf_token": csrf_of(form.text)}
            ).status_code
        )
    form = client.get("/ui/login")
    right_token = client.post(
        "/ui/login",
        data={"token": issue(portal_ctx, "dept-admin", "hrss"), "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert statuses == [401] * (portal_ctx.settings.lockout_failures - 1) + [429]
    # The throttle refuses failing attempts only: a valid token still signs in from that source.
    assert right_token.status_code == 303
    form = client.get("/ui/login")
    again = client.post("/ui/login", data={"token": "cct_x.guess", "csrf_token": csrf_of(form.text)})
    assert again.status_code == 429
