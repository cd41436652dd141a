"""The operators' pages: approvals, centers and links, failover and drill runs, drill reports, audit.

Role-gated exactly as the API: each page calls the service (and so the policy) the matching
``/v1`` operation or CLI command uses — approvals ``request.approve``/``request.reject``
(sysadmin), centers, runs and drill reports ``center.read`` (sysadmin, as ``/v1/status``),
the audit log ``audit.read`` (the auditor alone). A refused visitor gets the API's answer
as a page (403, or 404 for what a department may not know exists).
"""

from __future__ import annotations

from typing import Annotated

import pydantic
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import HTMLResponse

from cloudctl import errors
from cloudctl.api.ui import web
from cloudctl.model import drill_formats, states
from cloudctl.services import audit, drills
from cloudctl.services import recovery as recovery_service
from cloudctl.services import requests as requests_service
from cloudctl.services import status as status_service
from cloudctl.services.context import Context
from cloudctl.services.identity import Principal

router = APIRouter(route_class=web.PortalRoute)

PAGE_SIZE = 50
AUDIT_OUTCOMES = ("success", "denied", "failed", "refused")
REPORT_CONTENT_SECURITY_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
)
"""A stored drill report is shown in a sandboxed frame: its own styles, no script, nothing fetched."""


@router.get("/approvals")
def approvals_page(
    request: Request,
    visitor: web.VisitorDep,
    ctx: web.ContextDep,
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    pending, next_cursor = requests_service.list_requests(
        ctx,
        principal=visitor.principal,
        state=states.WorkloadState.PENDING_APPROVAL,
        limit=PAGE_SIZE,
        cursor=cursor or None,
    )
    return web.render(request, visitor, "approvals.html", pending=pending, next_cursor=next_cursor)


@router.post("/requests/{request_id}/approve")
def request_approve(visitor: web.CheckedVisitorDep, ctx: web.ContextDep, request_id: str) -> Response:
    requests_service.approve(ctx, principal=visitor.principal, request_id=request_id)
    web.flash(visitor, "ok", f"已批准 Approved: {request_id}")
    return web.redirect("/ui/approvals")


@router.post("/requests/{request_id}/reject")
def request_reject(
    request: Request,
    visitor: web.CheckedVisitorDep,
    ctx: web.ContextDep,
    request_id: str,
    reason: Annotated[str, Form()] = "",
) -> Response:
    from cloudctl.api import app as api_app  # the API's own rule for a reason

    try:
        rejection = api_app.Rejection(reason=reason)
    except pydantic.ValidationError as invalid:
        field, message = web.validation_message(invalid)
        web.flash(visitor, "error", f"{request_id}: {field}: {message}")
        return web.redirect("/ui/approvals")
    requests_service.reject(ctx, principal=visitor.principal, request_id=request_id, reason=rejection.reason)
    web.flash(visitor, "ok", f"已驳回 Rejected: {request_id}")
    return web.redirect("/ui/approvals")


@router.get("/centers")
def centers_page(request: Request, visitor: web.VisitorDep, ctx: web.ContextDep) -> Response:
    overview = status_service.overview_for(ctx, principal=visitor.principal)
    return web.render(request, visitor, "centers.html", overview=overview)


def failover_runs(ctx: Context, *, principal: Principal, run_id: str) -> list[recovery_service.RunPublic]:
    """The failover and failback runs to show: every unfinished one, and the one asked for.

    The services list unfinished runs only; when they list finished ones too, show those here.
    """
    status_service.authorize_supervision(ctx, principal=principal)
    runs = recovery_service.unfinished_runs(ctx)
    if run_id and all(run.id != run_id for run in runs):
        runs.append(recovery_service.get_run(ctx, run_id))
    return runs


@router.get("/runs")
def runs_page(
    request: Request,
    visitor: web.VisitorDep,
    ctx: web.ContextDep,
    run: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    runs = failover_runs(ctx, principal=visitor.principal, run_id=run)
    drill_runs = drills.recent_drill_runs(ctx, principal=visitor.principal)
    live = any(r.state == states.RunState.RUNNING for r in runs) or any(
        d.state == states.DrillRunState.RUNNING for d in drill_runs
    )
    return web.render(request, visitor, "runs.html", runs=runs, drill_runs=drill_runs, run=run, live=live)


@router.get("/drills")
def drill_reports_page(request: Request, visitor: web.VisitorDep, ctx: web.ContextDep) -> Response:
    finished = [
        d
        for d in drills.recent_drill_runs(ctx, principal=visitor.principal)
        if d.state == states.DrillRunState.DONE
    ]
    latest: dict[str, drills.DrillRunSummary] = {}
    for summary in finished:
        latest.setdefault(summary.plan, summary)
    return web.render(request, visitor, "drills.html", latest=list(latest.values()), finished=finished)


@router.get("/drills/{run_id}")
def drill_report_page(
    request: Request, visitor: web.VisitorDep, ctx: web.ContextDep, run_id: str
) -> Response:
    report = drills.drill_run_report(ctx, principal=visitor.principal, run_id=run_id)
    return web.render(
        request, visitor, "drill.html", report=report, run_id=run_id, misses=drill_formats.missed(report)
    )


@router.get("/drills/{run_id}/report.html")
def drill_report_html(visitor: web.VisitorDep, ctx: web.ContextDep, run_id: str) -> Response:
    report = drills.drill_run_report(ctx, principal=visitor.principal, run_id=run_id)
    return HTMLResponse(
        drill_formats.to_html(report), headers={"Content-Security-Policy": REPORT_CONTENT_SECURITY_POLICY}
    )


@router.get("/audit")
def audit_page(
    request: Request,
    visitor: web.VisitorDep,
    ctx: web.ContextDep,
    action: Annotated[str, Query(max_length=100)] = "",
    outcome: Annotated[str, Query(max_length=20)] = "",
    after: Annotated[str, Query(max_length=20)] = "",
    verify: Annotated[str, Query(max_length=1)] = "",
) -> Response:
    if after and not after.isdigit():
        raise errors.InvalidInput("must be a record number", field="after")
    items = audit.list_records(
        ctx,
        principal=visitor.principal,
        after_seq=int(after or 0),
        limit=PAGE_SIZE + 1,
        action=action or None,
        outcome=outcome or None,
    )
    page = items[:PAGE_SIZE]
    verification = audit.verify(ctx, principal=visitor.principal) if verify else None
    return web.render(
        request,
        visitor,
        "audit.html",
        records=page,
        next_after=page[-1].seq if len(items) > PAGE_SIZE else None,
        action=action,
        outcome=outcome,
        outcomes=AUDIT_OUTCOMES,
        verification=verification,
    )
