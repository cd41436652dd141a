"""The department's pages: catalog, ordering, quota along the org chain, requests, workloads.

Every page calls the same ``services`` function as the matching ``/v1`` operation, with
the visitor's principal: the policies decide what it may see and do, the services audit
what it changes. Operators reach the listing pages too, as far as the policies let them.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Form, Query, Request, Response

from cloudctl import errors
from cloudctl.api.ui import web
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.services import catalog, workloads
from cloudctl.services import quotas as quotas_service
from cloudctl.services import recovery as recovery_service
from cloudctl.services import requests as requests_service
from cloudctl.services.context import Context
from cloudctl.services.identity import Principal

router = APIRouter(route_class=web.PortalRoute)

LIFECYCLE = ("submitted", "policy-checked", "quota-reserved", "pending-approval", "approved", "provisioning")
FINAL_STATES = (
    states.WorkloadState.READY,
    states.WorkloadState.REJECTED,
    states.WorkloadState.CANCELLED,
    states.WorkloadState.FAILED,
    states.WorkloadState.DELETING,
    states.WorkloadState.DELETED,
)
REQUEST_STATES = (
    states.WorkloadState.PENDING_APPROVAL,
    states.WorkloadState.APPROVED,
    states.WorkloadState.PROVISIONING,
    states.WorkloadState.READY,
    states.WorkloadState.REJECTED,
    states.WorkloadState.CANCELLED,
    states.WorkloadState.FAILED,
)
DATA_CLASS_NAMES = {
    "public": ("公开", "public"),
    "internal": ("内部", "internal"),
    "sensitive": ("敏感", "sensitive"),
    "secret": ("涉密", "secret"),
}
PAGE_SIZE = 50
FIELD_MAX_CHARS = 100
"""The longest offering, tier, data class, center or name the order form takes: longer ones
are refused naming the field, before any lookup echoes them back."""
WORKLOADS_PAGE_SIZE = 20
"""Workload rows carry placements and copies: a shorter page keeps it within the render budget."""


def catalog_prices(ctx: Context, *, principal: Principal) -> dict[str, str] | None:
    """Prices per offering name, or ``None`` while no showback exists.

    The hook for showback: once a service prices the catalog, return its price per offering
    here (already formatted, e.g. ``¥1.20/小时``); the catalog and order pages show a price
    column whenever this returns a mapping, and none when it returns ``None``.
    """
    return None


@router.get("/catalog")
def catalog_page(request: Request, visitor: web.VisitorDep, ctx: web.ContextDep) -> Response:
    offered = catalog.catalog(ctx, principal=visitor.principal)
    return web.render(
        request,
        visitor,
        "catalog.html",
        catalog=offered,
        prices=catalog_prices(ctx, principal=visitor.principal),
        data_class_names=DATA_CLASS_NAMES,
    )


def _order_form(
    request: Request,
    visitor: web.Visitor,
    ctx: Context,
    *,
    values: dict[str, Any],
    problem: str = "",
    shortfalls: list[errors.Shortfall] | None = None,
    status_code: int = 200,
) -> Response:
    offered = catalog.catalog(ctx, principal=visitor.principal)
    local_centers = [c.name for c in ctx.topology.centers_with_role(topo.CenterRole.LOCAL)]
    return web.render(
        request,
        visitor,
        "order.html",
        status_code=status_code,
        catalog=offered,
        prices=catalog_prices(ctx, principal=visitor.principal),
        local_centers=local_centers,
        data_class_names=DATA_CLASS_NAMES,
        values=values,
        problem=problem,
        shortfalls=shortfalls or [],
    )


@router.get("/order")
def order_page(
    request: Request, visitor: web.VisitorDep, ctx: web.ContextDep, offering: str = "", tier: str = ""
) -> Response:
    values = {
        "offering": offering,
        "tier": tier,
        "count": 1,
        "data_class": "internal",
        "preferred_center": "",
        "name": "",
        "idempotency_key": secrets.token_urlsafe(16),
    }
    return _order_form(request, visitor, ctx, values=values)


@router.post("/order")
def order_submit(
    request: Request,
    visitor: web.CheckedVisitorDep,
    ctx: web.ContextDep,
    offering: Annotated[str, Form(max_length=FIELD_MAX_CHARS)] = "",
    count: Annotated[str, Form(max_length=FIELD_MAX_CHARS)] = "1",
    tier: Annotated[str, Form(max_length=FIELD_MAX_CHARS)] = "",
    data_class: Annotated[str, Form(max_length=FIELD_MAX_CHARS)] = "internal",
    preferred_center: Annotated[str, Form(max_length=FIELD_MAX_CHARS)] = "",
    name: Annotated[str, Form(max_length=FIELD_MAX_CHARS)] = "",
    idempotency_key: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    values = {
        "offering": offering,
        "count": count,
        "tier": tier,
        "data_class": data_class,
        "preferred_center": preferred_center,
        "name": name,
        "idempotency_key": idempotency_key or secrets.token_urlsafe(16),
    }
    try:
        body = requests_service.RequestCreate.model_validate(
            {
                "offering": offering,
                "count": count,
                "tier": tier,
                "data_class": data_class,
                "preferred_center": preferred_center or None,
                "name": name,
            }
        )
    except pydantic.ValidationError as invalid:
        field, message = web.validation_message(invalid)
        return _order_form(
            request, visitor, ctx, values=values, problem=f"{field}: {message}", status_code=422
        )
    try:
        created, _ = requests_service.submit(
            ctx, principal=visitor.principal, body=body, idempotency_key=idempotency_key or None
        )
    except errors.CloudctlError as refused:
        shortfalls = refused.shortfalls if isinstance(refused, errors.QuotaExceeded) else []
        return _order_form(
            request,
            visitor,
            ctx,
            values=values,
            problem=refused.one_line(),
            shortfalls=shortfalls,
            status_code=web.error_status(request, refused),
        )
    web.flash(visitor, "ok", f"申请已提交 Request submitted: {created.id}")
    return web.redirect(f"/ui/requests/{created.id}")


@router.get("/requests")
def requests_page(
    request: Request,
    visitor: web.VisitorDep,
    ctx: web.ContextDep,
    state: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    items, next_cursor = requests_service.list_requests(
        ctx, principal=visitor.principal, state=state or None, limit=PAGE_SIZE, cursor=cursor or None
    )
    live = any(item.state not in FINAL_STATES for item in items)
    return web.render(
        request,
        visitor,
        "requests.html",
        requests=items,
        next_cursor=next_cursor,
        state=state,
        states=REQUEST_STATES,
        live=live,
    )


def _lifecycle(shown: requests_service.RequestPublic) -> list[tuple[str, str | None]]:
    """The steps done (with their times), then, while the request lives, the steps to come."""
    steps: list[tuple[str, str | None]] = [(step.step, step.at) for step in shown.steps]
    if shown.state in FINAL_STATES:
        return steps
    done = {name for name, _ in steps}
    to_come = [
        name
        for name in (*LIFECYCLE, "ready")
        if name not in done and (name != states.WorkloadState.PENDING_APPROVAL or shown.needs_approval)
    ]
    return steps + [(name, None) for name in to_come]


@router.get("/requests/{request_id}")
def request_page(request: Request, visitor: web.VisitorDep, ctx: web.ContextDep, request_id: str) -> Response:
    shown = requests_service.get(ctx, principal=visitor.principal, request_id=request_id)
    return web.render(
        request,
        visitor,
        "request.html",
        shown=shown,
        lifecycle=_lifecycle(shown),
        live=shown.state not in FINAL_STATES,
        cancellable=shown.state in (states.WorkloadState.PENDING_APPROVAL, states.WorkloadState.APPROVED),
    )


@router.post("/requests/{request_id}/cancel")
def request_cancel(visitor: web.CheckedVisitorDep, ctx: web.ContextDep, request_id: str) -> Response:
    requests_service.cancel(ctx, principal=visitor.principal, request_id=request_id)
    web.flash(visitor, "ok", f"申请已撤销 Request cancelled: {request_id}")
    return web.redirect(f"/ui/requests/{request_id}")


def _current_rpo(ctx: Context, items: list[workloads.WorkloadPublic]) -> dict[str, list[Any]]:
    """Copies of the listed workloads (ready or being deleted) with their current RPO, by workload id."""
    wanted = [
        item.id for item in items if item.state in (states.WorkloadState.READY, states.WorkloadState.DELETING)
    ]
    return dict(recovery_service.current_rpo(ctx, workload_ids=wanted))


@router.get("/workloads")
def workloads_page(
    request: Request,
    visitor: web.VisitorDep,
    ctx: web.ContextDep,
    state: Annotated[str, Query(max_length=40)] = "",
    cursor: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    items, next_cursor = workloads.list_workloads(
        ctx,
        principal=visitor.principal,
        state=state or None,
        limit=WORKLOADS_PAGE_SIZE,
        cursor=cursor or None,
    )
    return web.render(
        request,
        visitor,
        "workloads.html",
        workloads=items,
        streams=_current_rpo(ctx, items),
        next_cursor=next_cursor,
        state=state,
        live=any(
            item.state
            in (
                states.WorkloadState.APPROVED,
                states.WorkloadState.PROVISIONING,
                states.WorkloadState.DELETING,
            )
            for item in items
        ),
    )


@router.get("/workloads/{workload_id}")
def workload_page(
    request: Request, visitor: web.VisitorDep, ctx: web.ContextDep, workload_id: str
) -> Response:
    shown = workloads.get(ctx, principal=visitor.principal, workload_id=workload_id)
    return web.render(
        request,
        visitor,
        "workload.html",
        shown=shown,
        streams=_current_rpo(ctx, [shown]).get(shown.id, []),
        deletable=shown.state in workloads.DELETABLE_STATES,
        live=shown.state
        in (states.WorkloadState.APPROVED, states.WorkloadState.PROVISIONING, states.WorkloadState.DELETING),
    )


@router.post("/workloads/{workload_id}/delete")
def workload_delete(visitor: web.CheckedVisitorDep, ctx: web.ContextDep, workload_id: str) -> Response:
    workloads.delete(ctx, principal=visitor.principal, workload_id=workload_id)
    web.flash(visitor, "ok", f"资源删除中 Workload being deleted: {workload_id}")
    return web.redirect(f"/ui/workloads/{workload_id}")


@router.get("/quota")
def quota_page(
    request: Request,
    visitor: web.VisitorDep,
    ctx: web.ContextDep,
    department: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    if not visitor.is_department and not department:
        return web.render(request, visitor, "quota.html", quota=None, department="")
    quota = quotas_service.department_quota(ctx, principal=visitor.principal, department=department or None)
    return web.render(request, visitor, "quota.html", quota=quota, department=department)
