"""The portal in a real browser: Debian's chromium, driven by Playwright, against `cloudctl serve`.

A real ``cloudctl serve`` (API, portal and reconcile loop) runs on loopback over an initialised
SQLite home; chromium (``scripts/ensure-browser.sh`` installs it, never Playwright) signs in as
a department, orders and watches the request become ready, is refused another department's
pages; sysadmin approves; the auditor reads the log; a token guesser at the sign-in form is
throttled however it fills ``X-Forwarded-For``. axe-core (npm, injected into the page)
finds no WCAG 2 A/AA violation — labels and contrast among them — on the main pages. The test
only polls (bounded), it never sleeps for time.

``CLOUDCTL_PORTAL_SCREENSHOTS=DIR`` saves screenshots of the main pages into DIR (how the
ones in ``docs/`` were made).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright

from cloudctl import clock as clocks
from cloudctl.services import identity, setup
from cloudctl.store import db
from tests.conftest import POLICIES, ROOT, TOPOLOGY, make_context
from tests.e2e.test_serve_crash import free_port, poll
from tests.ui.conftest import csrf_of

CHROMIUM = Path(os.environ.get("CLOUDCTL_CHROMIUM", "/usr/bin/chromium"))
AXE = Path(
    os.environ.get("CLOUDCTL_AXE", ROOT / ".cache" / "npm-axe" / "node_modules" / "axe-core" / "axe.min.js")
)
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 120_000
expect.set_options(timeout=WAIT_MS)  # its own default is 5 s: under load a page takes longer
SCREENSHOTS = os.environ.get("CLOUDCTL_PORTAL_SCREENSHOTS")
XSS = '<script>alert("xss")</script><img src=x onerror=alert(1)>'


class Portal:
    """A running ``cloudctl serve`` and a way to issue tokens on its store."""

    def __init__(self, home: Path, port: int) -> None:
        self.home = home
        self.url = f"http://127.0.0.1:{port}"
        self.store = db.Store(db.sqlite_url(home))
        self.ctx = make_context(self.store, clocks.SystemClock(), home)

    def token(self, role: str, department: str | None = None) -> str:
        operator = identity.local_operator("secadmin")
        return identity.create_token(self.ctx, principal=operator, role=role, department=department).secret


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    home = tmp_path_factory.mktemp("portal-home")
    store = db.Store(db.sqlite_url(home))
    setup.initialise(make_context(store, clocks.SystemClock(), home))
    store.dispose()
    port = free_port()
    env = {
        **os.environ,
        "CLOUDCTL_HOME": str(home),
        "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
        "CLOUDCTL_POLICIES": str(POLICIES),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cloudctl", "serve", "--port", str(port), "--reconcile-interval-s", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    served = Portal(home, port)

    def answers() -> bool:
        try:
            return httpx.get(f"{served.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        poll(answers, what="cloudctl serve to answer", deadline_s=60)
        yield served
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        served.store.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no chromium at {CHROMIUM}; run scripts/ensure-browser.sh", pytrace=False)
    with sync_playwright() as playwright:
        launched = _launch(playwright)
        yield launched
        launched.close()


def _launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    opened: list[BrowserContext] = []

    def open_context(**options: Any) -> BrowserContext:
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900}, **options)
        context.set_default_timeout(WAIT_MS)
        opened.append(context)
        return context

    yield open_context
    for context in opened:
        context.close()


def sign_in(page: Page, portal: Portal, token: str) -> None:
    page.goto(f"{portal.url}/ui/login")
    page.get_by_label("API 令牌").fill(token)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出")).to_be_visible()


def assert_accessible(page: Page, name: str) -> None:
    """axe-core finds no WCAG 2 A/AA violation (labels, contrast, names ...) on the page."""
    if not AXE.exists():
        pytest.fail(f"no axe-core at {AXE}; run scripts/ensure-browser.sh", pytrace=False)
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate(
        """async () => {
            const result = await axe.run(document, {runOnly: {type: "tag", values: ["wcag2a", "wcag2aa"]}});
            return result.violations.map(v => ({id: v.id, nodes: v.nodes.map(n => n.target.join(" "))}));
        }"""
    )
    assert violations == [], f"{name}: {violations}"
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"portal-{name}.png"), full_page=True)


def order(page: Page, portal: Portal, *, name: str, count: int = 1, tier: str = "gold") -> str:
    """Order vm.small through the form; the id of the request the portal shows next."""
    page.goto(f"{portal.url}/ui/order?offering=vm.small")
    page.get_by_label("数量").fill(str(count))
    page.get_by_label("保护等级").select_option(tier)
    page.get_by_label("数据分级").select_option("internal")
    page.get_by_label("名称").fill(name)
    page.get_by_role("button", name="提交申请").click()
    expect(page.get_by_role("heading", name="申请 Request")).to_be_visible()
    request_id = page.url.rsplit("/", 1)[-1]
    assert request_id.startswith("req-")
    return request_id


def test_a_department_orders_watches_it_become_ready_and_is_refused_others(
    portal: Portal, new_context: Callable[..., BrowserContext]
) -> None:
    psb = httpx.post(
        f"{portal.url}/v1/requests",
        json={"offering": "vm.small", "tier": "silver", "name": "psb-private"},
        headers={"Authorization": f"Bearer {portal.token('dept-admin', 'psb')}"},
        timeout=30,
    ).json()
    page = new_context(bypass_csp=True).new_page()
    page.goto(f"{portal.url}/ui/login")
    assert_accessible(page, "sign-in")
    sign_in(page, portal, portal.token("dept-admin", "hrss"))
    assert page.url.endswith("/ui/catalog")
    assert_accessible(page, "catalog")
    page.goto(f"{portal.url}/ui/order?offering=vm.small")
    assert_accessible(page, "order")

    request_id = order(page, portal, name="social-insurance-portal")
    live = page.locator("#request-live")
    expect(live.locator(".badge-ready")).to_be_visible(timeout=WAIT_MS)  # refreshed in place, no reload
    assert page.url.endswith(f"/ui/requests/{request_id}")
    expect(live.locator("ol.steps li.todo")).to_have_count(0)
    assert_accessible(page, "request")

    page.goto(f"{portal.url}/ui/workloads")
    row = page.get_by_role("row").filter(has_text="social-insurance-portal")
    expect(row).to_contain_text("qd-")
    expect(row).to_contain_text("primary")
    assert_accessible(page, "workloads")
    page.goto(f"{portal.url}/ui/quota")
    expect(page.locator("ol.chain")).to_contain_text("qingdao")
    assert_accessible(page, "quota")

    for path in (f"/ui/requests/{psb['id']}", f"/ui/workloads/{psb['workload_id']}", "/ui/centers"):
        answer = page.goto(f"{portal.url}{path}")
        assert answer is not None
        assert answer.status in (403, 404), path
        assert "psb-private" not in page.content()
    page.goto(f"{portal.url}/ui/requests")
    expect(page.get_by_text("social-insurance-portal")).to_be_visible()
    assert "psb-private" not in page.content()


def test_sysadmin_approves_and_the_department_sees_it_provisioned(
    portal: Portal, new_context: Callable[..., BrowserContext]
) -> None:
    department = new_context().new_page()
    sign_in(department, portal, portal.token("dept-admin", "hrss"))
    request_id = order(department, portal, name="big-batch", count=5, tier="silver")
    expect(department.locator("#request-live .badge-pending-approval")).to_be_visible()

    operator = new_context(bypass_csp=True).new_page()
    sign_in(operator, portal, portal.token("sysadmin"))
    assert operator.url.endswith("/ui/approvals")
    assert_accessible(operator, "approvals")
    card = operator.locator("article.approval").filter(has_text=request_id)
    card.get_by_role("button", name="批准").click()
    expect(operator.get_by_role("status").filter(has_text=request_id)).to_be_visible()
    expect(operator.locator("article.approval").filter(has_text=request_id)).to_have_count(0)

    expect(department.locator("#request-live .badge-ready")).to_be_visible(timeout=WAIT_MS)
    operator.goto(f"{portal.url}/ui/centers")
    expect(operator.locator("article.center")).to_have_count(4)
    assert_accessible(operator, "centers")
    operator.goto(f"{portal.url}/ui/runs")
    assert_accessible(operator, "runs")


def test_the_auditor_reads_the_audit_log_and_no_one_else_does(
    portal: Portal, new_context: Callable[..., BrowserContext]
) -> None:
    sysadmin = new_context().new_page()
    sign_in(sysadmin, portal, portal.token("sysadmin"))
    answer = sysadmin.goto(f"{portal.url}/ui/audit")
    assert answer is not None and answer.status == 403

    auditor = new_context(bypass_csp=True).new_page()
    sign_in(auditor, portal, portal.token("auditor"))
    assert auditor.url.endswith("/ui/audit")
    auditor.get_by_label("操作").fill("portal.sign_in")
    auditor.get_by_role("button", name="筛选").click()
    expect(auditor.locator("table.audit tbody tr").first).to_contain_text("portal.sign_in")
    auditor.get_by_role("button", name="校验哈希链").click()
    expect(auditor.get_by_role("status")).to_contain_text("哈希链完整")
    assert_accessible(auditor, "audit")


def test_every_form_works_without_javascript(
    portal: Portal, new_context: Callable[..., BrowserContext]
) -> None:
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, portal, portal.token("dept-admin", "hrss"))
    request_id = order(page, portal, name="no-script-order", tier="bronze")
    expect(page.get_by_role("status")).to_contain_text(request_id)

    def ready() -> bool:
        if page.locator("#request-live .badge-ready").count() == 1:
            return True
        page.get_by_role("link", name="刷新").click()  # no script: the refresh link reloads
        return False

    poll(ready, what="the request to become ready")
    page.get_by_role("link", name="wl-", exact=False).first.click()
    page.get_by_role("button", name="删除资源").click()
    expect(page.locator("#workload-live").get_by_text("删除中").first).to_be_visible()
    page.get_by_role("button", name="退出").click()
    expect(page.get_by_label("API 令牌")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text("已退出 Signed out")


def test_markup_in_a_rejection_reason_runs_nowhere(
    portal: Portal, new_context: Callable[..., BrowserContext]
) -> None:
    dialogs: list[str] = []
    department = new_context().new_page()
    department.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(department, portal, portal.token("dept-admin", "hrss"))
    request_id = order(department, portal, name="probe", count=5, tier="silver")

    operator = new_context().new_page()
    operator.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    sign_in(operator, portal, portal.token("sysadmin"))
    card = operator.locator("article.approval").filter(has_text=request_id)
    card.get_by_label("驳回原因").fill(XSS)
    card.get_by_role("button", name="驳回").click()
    expect(operator.get_by_role("status").filter(has_text=request_id)).to_be_visible()

    department.goto(f"{portal.url}/ui/requests/{request_id}")
    expect(department.locator("ul.reasons")).to_contain_text(XSS)  # shown as text
    expect(department.locator("ul.reasons img")).to_have_count(0)
    assert dialogs == []


def test_a_guesser_at_the_served_sign_in_form_cannot_forward_its_way_out_of_the_throttle(
    portal: Portal,
) -> None:
    # No CLOUDCTL_TRUSTED_PROXIES: X-Forwarded-For is no one's word, not even a loopback peer's.
    statuses = []
    with httpx.Client(base_url=portal.url) as client:
        for hop in range(6):
            form = client.get("/ui/login")
            answer = client.post(
                "/ui/login",
                data={"token": f"cct_{hop:016x}.{'g' * 43}", "csrf_token": csrf_of(form.text)},
                headers={"X-Forwarded-For": f"198.51.100.{hop}"},
            )
            statuses.append(answer.status_code)
    assert statuses[-1] == 429, statuses


def test_the_api_reference_renders_with_nothing_from_outside(
    portal: Portal, new_context: Callable[..., BrowserContext]
) -> None:
    outside: list[str] = []
    context = new_context()

    def only_loopback(route: Any) -> None:
        if route.request.url.startswith(portal.url):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", only_loopback)
    page = context.new_page()
    page.goto(f"{portal.url}/docs")
    expect(page.locator(".opblock").first).to_be_visible()
    assert page.locator(".opblock").count() >= 10
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / "portal-api-reference.png"))
    page.goto(f"{portal.url}/redoc")
    expect(page.get_by_role("heading", level=1, name="cloudctl")).to_be_visible()
    expect(page.get_by_text("/v1/requests").first).to_be_attached()
    assert outside == []
    answer = page.goto(f"{portal.url}/redoc")
    assert answer is not None
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")
