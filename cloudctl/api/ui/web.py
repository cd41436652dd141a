"""What every portal page shares: who is visiting, CSRF checks, rendering, errors as pages.

Invariants:
- A page knows its visitor only through the session cookie, and the visitor's principal
  only through ``identity.authenticate`` (the API's own token check, lockouts and audit
  included); without a live session a page redirects to the sign-in page.
- A POST changes something only after its form's ``csrf_token`` matched the session's.
- Templates escape everything they are given (Jinja2 autoescape); no page marks user
  data safe. Every answer carries a Content-Security-Policy that allows no inline script
  and no other origin.
- A refusal by the services is shown as a page with the status the API would answer
  (``problems.from_error``), never a traceback; so is a form or query field the route
  itself refuses (too long, say): a 422 page naming the field, with the same headers.
"""

from __future__ import annotations

import dataclasses
import json
import urllib.parse
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import jinja2
import pydantic
from fastapi import Depends, Form, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from cloudctl import errors
from cloudctl.api import problems
from cloudctl.api.ui import sessions as sessions_module
from cloudctl.model import states
from cloudctl.services import context as ctx_module
from cloudctl.services import identity

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(
    env=jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True)
)
STATE_NAMES: dict[str, tuple[str, str]] = {
    "submitted": ("已提交", "submitted"),
    "policy-checked": ("策略检查通过", "policy checked"),
    "quota-reserved": ("配额已预留", "quota reserved"),
    states.WorkloadState.PENDING_APPROVAL: ("待审批", "pending approval"),
    states.WorkloadState.APPROVED: ("已批准", "approved"),
    states.WorkloadState.PROVISIONING: ("开通中", "provisioning"),
    states.WorkloadState.READY: ("可用", "ready"),
    states.WorkloadState.REJECTED: ("已驳回", "rejected"),
    states.WorkloadState.CANCELLED: ("已撤销", "cancelled"),
    states.WorkloadState.FAILED: ("失败", "failed"),
    states.WorkloadState.DELETING: ("删除中", "deleting"),
    states.WorkloadState.DELETED: ("已删除", "deleted"),
    states.PlacementState.RESERVED: ("已预留", "reserved"),
    states.RunState.RUNNING: ("进行中", "running"),
    states.RunState.DONE: ("已完成", "done"),
    "passed": ("通过", "passed"),
    states.CenterHealth.UP: ("正常", "up"),
    states.CenterHealth.DOWN: ("故障", "down"),
    states.LinkState.DEGRADED: ("降级", "degraded"),
    states.LinkState.CUT: ("中断", "cut"),
    "success": ("成功", "success"),
    "denied": ("拒绝", "denied"),
    "refused": ("拒绝", "refused"),
}
templates.env.globals["state_names"] = STATE_NAMES
templates.env.globals["DrillRunState"] = states.DrillRunState
templates.env.filters["compact_json"] = lambda value: json.dumps(value, ensure_ascii=False, sort_keys=True)

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; frame-ancestors 'self'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ROLE_NAMES = {
    "dept-admin": ("部门管理员", "department admin"),
    "dept-user": ("部门用户", "department user"),
    "sysadmin": ("系统管理员", "system administrator"),
    "secadmin": ("安全管理员", "security administrator"),
    "auditor": ("审计员", "auditor"),
}


class SignedOut(Exception):
    """No live session: the visitor is sent to the sign-in page."""

    def __init__(self, notice: str = "") -> None:
        super().__init__(notice)
        self.notice = notice


class CsrfRejected(Exception):
    """A form came without the CSRF token of its session."""


@dataclasses.dataclass
class Visitor:
    session: sessions_module.Session
    principal: identity.Principal

    @property
    def is_department(self) -> bool:
        return identity.is_department(self.principal)

    @property
    def role(self) -> str:
        return self.principal.role


def context_of(request: Request) -> ctx_module.Context:
    context = request.app.state.context
    assert isinstance(context, ctx_module.Context)
    return context


def session_store(request: Request) -> sessions_module.SessionStore:
    store = request.app.state.portal_sessions
    assert isinstance(store, sessions_module.SessionStore)
    return store


def client_of(request: Request) -> str:
    """The caller's address after the trusted-proxy rule (set by the API's hardening middleware)."""
    source = request.scope.get("state", {}).get("source")
    if source:
        return str(source)
    return request.client.host if request.client else "unknown"


def _visitor(request: Request) -> Visitor:
    store = session_store(request)
    session = store.find(
        request.cookies.get(sessions_module.COOKIE),
        used=sessions_module.REFRESH_HEADER not in request.headers,
    )
    if session is None:
        raise SignedOut()
    try:
        principal = identity.authenticate(
            context_of(request), authorization=f"Bearer {session.bearer}", source=client_of(request)
        )
    except (errors.AuthenticationFailed, errors.LockedOut) as failed:
        store.end(session.id)
        raise SignedOut(failed.one_line()) from None
    visitor = Visitor(session=session, principal=principal)
    request.state.visitor = visitor
    return visitor


VisitorDep = Annotated[Visitor, Depends(_visitor)]
ContextDep = Annotated[ctx_module.Context, Depends(context_of)]


def _checked_visitor(visitor: VisitorDep, csrf_token: Annotated[str, Form()] = "") -> Visitor:
    if not sessions_module.same_secret(visitor.session.csrf, csrf_token):
        raise CsrfRejected()
    return visitor


CheckedVisitorDep = Annotated[Visitor, Depends(_checked_visitor)]
"""The visitor of a POST whose CSRF token matched: only such a visitor may change anything."""


def render(
    request: Request, visitor: Visitor | None, template: str, *, status_code: int = 200, **data: Any
) -> HTMLResponse:
    flashes: list[tuple[str, str]] = []
    if visitor is not None:
        flashes, visitor.session.flashes = visitor.session.flashes, []
    return templates.TemplateResponse(
        request,
        template,
        {
            "visitor": visitor,
            "csrf_token": visitor.session.csrf if visitor else "",
            "flashes": flashes,
            "role_name": ROLE_NAMES.get(visitor.role, (visitor.role, visitor.role)) if visitor else None,
            **data,
        },
        status_code=status_code,
    )


def redirect(url: str) -> RedirectResponse:
    """After a POST: the browser GETs ``url`` (303 See Other)."""
    return RedirectResponse(url, status_code=303)


def flash(visitor: Visitor, kind: str, text: str) -> None:
    visitor.session.flashes.append((kind, text))


def secure_cookie(request: Request) -> bool:
    return request.url.scheme == "https"


def login_url(request: Request, *, next_url: str = "", notice: str = "") -> str:
    """The sign-in page's address, returning to ``next_url``, showing ``notice`` (signed here)."""
    query = {"next": next_url} if next_url else {}
    if notice:
        query |= {"notice": notice, "mac": session_store(request).notice_mac(notice)}
    return "/ui/login" + (f"?{urllib.parse.urlencode(query)}" if query else "")


def safe_next(value: str | None) -> str:
    """A local portal path to go to after sign-in; anything else (another host) is ignored."""
    if not value:
        return "/ui/"
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme or parsed.netloc or not parsed.path.startswith("/ui/") or "\\" in value:
        return "/ui/"
    return value


def error_status(request: Request, error: errors.CloudctlError) -> int:
    """The HTTP status the API answers for ``error``."""
    return problems.from_error(request, error).status_code


def validation_message(error: pydantic.ValidationError | RequestValidationError) -> tuple[str, str]:
    """The first problem of a form as (field, message), named as the API names it."""
    field, message = problems.field_and_reason(error)
    return field or "form", message


def _error_page(request: Request, error: errors.CloudctlError) -> Response:
    status = error_status(request, error)
    visitor = getattr(request.state, "visitor", None)
    return render(
        request,
        visitor,
        "error.html",
        status_code=status,
        status=status,
        detail=error.one_line(),
        error=error,
    )


class PortalRoute(APIRoute):
    """A portal route: errors become pages, a missing session a redirect, every answer secured."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def portal_handler(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignedOut as signed_out:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = RedirectResponse(
                    login_url(
                        request,
                        next_url=target if request.method == "GET" else "",
                        notice=signed_out.notice,
                    ),
                    status_code=303,
                )
                response.delete_cookie(sessions_module.COOKIE, path=sessions_module.COOKIE_PATH)
            except RequestValidationError as invalid:
                problems.audit_refused_write(request, invalid)
                field, message = validation_message(invalid)
                response = render(
                    request,
                    getattr(request.state, "visitor", None),
                    "error.html",
                    status_code=422,
                    status=422,
                    detail=f"{field}: {message}",
                    error=None,
                )
            except CsrfRejected:
                response = render(
                    request,
                    None,
                    "error.html",
                    status_code=403,
                    status=403,
                    detail="csrf_token: the form is stale or did not come from this portal; reload and retry",
                    error=None,
                )
            except errors.CloudctlError as error:
                response = _error_page(request, error)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response

        return portal_handler
