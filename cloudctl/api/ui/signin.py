"""Signing in and out of the portal with an API token, and the landing page of each role.

Sign-in checks the token with ``identity.authenticate`` (so failures count towards the
client's lockout and are audited exactly as on the API), then starts a new session whose id
replaces whatever id the browser sent (no session fixation). Sign-in and sign-out are audited.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, Response

from cloudctl import errors
from cloudctl.api.ui import sessions as sessions_module
from cloudctl.api.ui import web
from cloudctl.services import audit, identity

router = APIRouter(route_class=web.PortalRoute)

LOGIN_COOKIE_MAX_AGE_S = 30 * 60
LANDING = {
    "dept-admin": "/ui/catalog",
    "dept-user": "/ui/catalog",
    "sysadmin": "/ui/approvals",
    "auditor": "/ui/audit",
}


def _login_page(
    request: Request, *, next_url: str, notice: str = "", problem: str = "", status_code: int = 200
) -> Response:
    login_csrf = sessions_module.new_secret()
    response = web.render(
        request,
        None,
        "login.html",
        status_code=status_code,
        login_csrf=login_csrf,
        next_url=web.safe_next(next_url),
        notice=notice,
        problem=problem,
    )
    response.set_cookie(
        sessions_module.LOGIN_COOKIE,
        login_csrf,
        max_age=LOGIN_COOKIE_MAX_AGE_S,
        path=sessions_module.COOKIE_PATH,
        httponly=True,
        secure=web.secure_cookie(request),
        samesite="strict",
    )
    return response


@router.get("/login")
def login_page(
    request: Request,
    next_url: Annotated[str, Query(alias="next", max_length=500)] = "",
    notice: Annotated[str, Query(max_length=300)] = "",
    mac: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    own_notice = notice if web.session_store(request).is_own_notice(notice, mac) else ""
    return _login_page(request, next_url=next_url, notice=own_notice)


@router.post("/login")
def login_submit(
    request: Request,
    ctx: web.ContextDep,
    token: Annotated[str, Form(max_length=500)] = "",
    csrf_token: Annotated[str, Form(max_length=200)] = "",
    next_url: Annotated[str, Form(alias="next", max_length=500)] = "",
) -> Response:
    if not sessions_module.same_secret(request.cookies.get(sessions_module.LOGIN_COOKIE, ""), csrf_token):
        raise web.CsrfRejected()
    store = web.session_store(request)
    try:
        principal = identity.authenticate(
            ctx, authorization=f"Bearer {token.strip()}", source=web.client_of(request)
        )
    except (errors.AuthenticationFailed, errors.LockedOut) as failed:
        status = web.error_status(request, failed)
        return _login_page(request, next_url=next_url, problem=failed.one_line(), status_code=status)
    session = store.start(bearer=token.strip(), replacing=request.cookies.get(sessions_module.COOKIE))
    audit.record(
        ctx,
        principal=principal,
        action="portal.sign_in",
        target_type="Token",
        target_id=principal.id.removeprefix("token:"),
        outcome="success",
        detail={"client": web.client_of(request)},
    )
    target = web.safe_next(next_url)
    response = web.redirect(LANDING.get(principal.role, "/ui/home") if target == "/ui/" else target)
    response.set_cookie(
        sessions_module.COOKIE,
        session.id,
        path=sessions_module.COOKIE_PATH,
        httponly=True,
        secure=web.secure_cookie(request),
        samesite="lax",
    )
    response.delete_cookie(sessions_module.LOGIN_COOKIE, path=sessions_module.COOKIE_PATH)
    return response


@router.post("/logout")
def logout(request: Request, visitor: web.CheckedVisitorDep, ctx: web.ContextDep) -> Response:
    web.session_store(request).end(visitor.session.id)
    audit.record(
        ctx,
        principal=visitor.principal,
        action="portal.sign_out",
        target_type="Token",
        target_id=visitor.principal.id.removeprefix("token:"),
        outcome="success",
    )
    response = web.redirect(web.login_url(request, notice="已退出 Signed out"))
    response.delete_cookie(sessions_module.COOKIE, path=sessions_module.COOKIE_PATH)
    return response


@router.get("/")
def root(visitor: web.VisitorDep) -> Response:
    return web.redirect(LANDING.get(visitor.role, "/ui/home"))


@router.get("/home")
def home(request: Request, visitor: web.VisitorDep) -> Response:
    return web.render(request, visitor, "home.html")
