"""The HTTP API of the management center: ``create_app(settings)`` builds it, nothing at import time.

Departments order and watch their resources under ``/v1``; operators approve and
audit through the same services. Conventions: bearer tokens; errors as problem+json;
``Idempotency-Key`` honoured on every POST that creates something; lists as
``{data, count, next_cursor}`` paginated with ``limit`` and ``cursor``; every
response carries ``X-Request-ID``, the id also written into audit records.
Bodies are strict: an unknown field, or a number or flag sent as a string (or a
flag as a number), is a 422 naming the field. Limits, request ids and source
addresses are kept by ``api.hardening`` (plain ASGI, outermost).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.api import docs_assets, hardening, problems, ui
from cloudctl.services import audit, catalog, identity, workloads
from cloudctl.services import context as ctx_module
from cloudctl.services import quotas as quotas_service
from cloudctl.services import requests as requests_service
from cloudctl.services import status as status_service

T = TypeVar("T")
STRICT = ConfigDict(extra="forbid", strict=True)
"""Bodies: unknown fields and loose types (``"2"`` or ``true`` for a count) are refused."""


def _page_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A page's description, and its example: its item's first example, alone on the last page."""
    schema.setdefault("description", Page.__doc__)
    (item,) = model.__pydantic_generic_metadata__["args"] or (None,)
    shown = (
        item.model_json_schema().get("examples")
        if isinstance(item, type) and issubclass(item, BaseModel)
        else None
    )
    if shown:
        schema["examples"] = [{"data": [shown[0]], "count": 1, "next_cursor": None}]


class Page(BaseModel, Generic[T]):
    """One page of a list, oldest or newest first as the operation says."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra=_page_schema)

    data: list[T]
    """The items of this page."""
    count: int
    """How many items this page holds."""
    next_cursor: str | None
    """Pass as ``cursor`` to read the next page; ``null`` on the last page."""


class Health(BaseModel):
    """The process answers."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [{"status": "ok"}]}
    )

    status: str
    """Always ``ok`` when the process answers at all."""


class Rejection(BaseModel):
    model_config = STRICT

    reason: str = Field(
        min_length=1, max_length=1000, pattern=r"\S", description="Why; the department sees it"
    )


METRICS_EXAMPLE = """\
# HELP cloudctl_quota_limit Quota limit per org node, center and resource.
# TYPE cloudctl_quota_limit gauge
cloudctl_quota_limit{center="qd-a",node="hrss-insurance",resource="vcpu"} 64.0
# HELP cloudctl_replication_lag_seconds Seconds since the last copy reached each replica.
# TYPE cloudctl_replication_lag_seconds gauge
cloudctl_replication_lag_seconds{source="qd-a",target="dz-dr",tier="silver"} 212.0
"""


def _context(request: Request) -> ctx_module.Context:
    context = request.app.state.context
    assert isinstance(context, ctx_module.Context)
    return context


ContextDep = Annotated[ctx_module.Context, Depends(_context)]


class RequestCreateBody(requests_service.RequestCreate):
    """``RequestCreate`` as the API reads it: strictly."""

    model_config = ConfigDict(extra="forbid", strict=True, title="RequestCreate")


def _principal(request: Request, context: ContextDep) -> identity.Principal:
    source = request.scope.get("state", {}).get("source") or audit.current_scope().source
    principal = identity.authenticate(
        context, authorization=request.headers.get("authorization"), source=source
    )
    request.state.principal = principal
    return principal


async def _principal_async(request: Request) -> identity.Principal:
    """``_principal`` for async routes: one worker thread for authentication (it may read the
    store), and the context taken on the loop."""
    return await run_in_threadpool(_principal, request, _context(request))


def _acting_as(principal: identity.Principal) -> Callable[[Request], identity.Principal]:
    def acting(request: Request) -> identity.Principal:
        request.state.principal = principal
        return principal

    return acting


PrincipalDep = Annotated[identity.Principal, Depends(_principal)]
Limit = Annotated[int, Query(ge=1, le=200, description="Page size")]
Cursor = Annotated[str | None, Query(description="next_cursor of the previous page")]


def create_app(
    settings: settings_module.Settings | None = None,
    *,
    context: ctx_module.Context | None = None,
    acting_as: identity.Principal | None = None,
) -> FastAPI:
    """The API over ``context`` (or a new one from ``settings``).

    ``acting_as``: every request is answered as this principal, whatever it carries. Only for
    break-glass, in the process of the command that broke glass (``cloudctl.serve.local_api``);
    never served on a socket.
    """
    if context is None:
        context = ctx_module.open_context(settings or settings_module.Settings())
    app = FastAPI(
        title="cloudctl",
        version="1",
        summary="Self-service API of the government cloud's management center (两地四中心)",
        docs_url=None,  # served from the package by docs_assets: no CDN
        redoc_url=None,
    )
    app.state.context = context
    app.add_exception_handler(errors.CloudctlError, problems.from_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, problems.from_validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, problems.from_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, problems.from_unexpected)
    app.add_middleware(hardening.Hardening, settings=context.settings)
    if acting_as is not None:
        app.dependency_overrides[_principal] = _acting_as(acting_as)
        app.dependency_overrides[_principal_async] = _acting_as(acting_as)

    @app.get("/healthz", tags=["probes"])
    def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @app.get("/readyz", tags=["probes"])
    def readyz(ctx: ContextDep) -> status_service.ReadinessPublic:
        """The store answers and holds initialised state; the serve replicas and their roles."""
        return status_service.readiness(ctx)

    @app.get(
        "/metrics",
        tags=["probes"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"example": METRICS_EXAMPLE}}}},
    )
    def metrics_endpoint(ctx: ContextDep) -> Response:
        """Prometheus exposition of the control plane and the state it supervises."""
        from prometheus_client import CONTENT_TYPE_LATEST

        from cloudctl.services import observability

        return Response(observability.exposition(ctx), media_type=CONTENT_TYPE_LATEST)

    app.include_router(_v1(), prefix="/v1", responses=problems.documented_errors())
    from cloudctl.api import routes_showback

    app.include_router(routes_showback.router(), prefix="/v1", responses=problems.documented_errors())
    # Operator routes of other areas are included here, one line each.
    from cloudctl.api import (
        routes_audit,
        routes_drills,
        routes_org,
        routes_recovery,
        routes_replication,
        routes_tokens,
    )

    routers = (routes_recovery, routes_replication, routes_org, routes_tokens, routes_audit, routes_drills)
    for module in routers:
        app.include_router(module.router(), prefix="/v1", responses=problems.documented_errors())
    docs_assets.install(app)
    ui.install(app)
    return app


def _v1() -> APIRouter:
    router = APIRouter()

    @router.get("/catalog", tags=["catalog"])
    def get_catalog(ctx: ContextDep, principal: PrincipalDep) -> catalog.CatalogPublic:
        """Offerings, protection tiers and data classes a department can order."""
        return catalog.catalog(ctx, principal=principal)

    @router.post(
        "/requests", status_code=201, tags=["requests"], response_model=requests_service.RequestPublic
    )
    async def create_request(
        request: Request,
        principal: Annotated[identity.Principal, Depends(_principal_async)],
        body: RequestCreateBody,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Response:
        """Order from the catalog: admitted against policies and quota in one step."""
        # Checks and the write happen on the admission thread; the loop parses and answers.
        admitted, created = await requests_service.submit_async(
            _context(request), principal=principal, body=body, idempotency_key=idempotency_key
        )
        return Response(
            admitted.model_dump_json(),
            status_code=201 if created else 200,
            media_type="application/json",
            headers={"Location": f"/v1/requests/{admitted.id}"},
        )

    @router.get("/requests", tags=["requests"])
    def list_requests(
        ctx: ContextDep,
        principal: PrincipalDep,
        limit: Limit = 50,
        cursor: Cursor = None,
        state: str | None = None,
        department: str | None = None,
    ) -> Page[requests_service.RequestPublic]:
        items, next_cursor = requests_service.list_requests(
            ctx, principal=principal, state=state, department=department, limit=limit, cursor=cursor
        )
        return Page(data=items, count=len(items), next_cursor=next_cursor)

    @router.get("/requests/{request_id}", tags=["requests"])
    def get_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: str
    ) -> requests_service.RequestPublic:
        """One request with its lifecycle, step by step."""
        return requests_service.get(ctx, principal=principal, request_id=request_id)

    @router.post("/requests/{request_id}/approve", tags=["operators"])
    def approve_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: str
    ) -> requests_service.RequestPublic:
        return requests_service.approve(ctx, principal=principal, request_id=request_id)

    @router.post("/requests/{request_id}/reject", tags=["operators"])
    def reject_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: str, body: Rejection
    ) -> requests_service.RequestPublic:
        return requests_service.reject(ctx, principal=principal, request_id=request_id, reason=body.reason)

    @router.post("/requests/{request_id}/cancel", tags=["requests"])
    def cancel_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: str
    ) -> requests_service.RequestPublic:
        return requests_service.cancel(ctx, principal=principal, request_id=request_id)

    @router.get("/quota", tags=["quota"])
    def get_quota(
        ctx: ContextDep, principal: PrincipalDep, department: str | None = None, center: str | None = None
    ) -> quotas_service.QuotaPublic:
        """Limits, usage and reservations per center, with the headroom the tree leaves."""
        return quotas_service.department_quota(ctx, principal=principal, department=department, center=center)

    @router.get("/workloads", tags=["workloads"])
    def list_workloads(
        ctx: ContextDep,
        principal: PrincipalDep,
        limit: Limit = 50,
        cursor: Cursor = None,
        state: str | None = None,
        tier: str | None = None,
        department: str | None = None,
    ) -> Page[workloads.WorkloadPublic]:
        items, next_cursor = workloads.list_workloads(
            ctx,
            principal=principal,
            department=department,
            state=state,
            tier=tier,
            limit=limit,
            cursor=cursor,
        )
        return Page(data=items, count=len(items), next_cursor=next_cursor)

    @router.get("/workloads/{workload_id}", tags=["workloads"])
    def get_workload(ctx: ContextDep, principal: PrincipalDep, workload_id: str) -> workloads.WorkloadPublic:
        """Placement per center and protection of one workload."""
        return workloads.get(ctx, principal=principal, workload_id=workload_id)

    @router.delete("/workloads/{workload_id}", status_code=202, tags=["workloads"])
    def delete_workload(
        ctx: ContextDep, principal: PrincipalDep, workload_id: str
    ) -> workloads.WorkloadPublic:
        """Delete: resources go first, then the quota is released (poll the workload)."""
        return workloads.delete(ctx, principal=principal, workload_id=workload_id)

    @router.get("/audit", tags=["audit"])
    def list_audit(
        ctx: ContextDep,
        principal: PrincipalDep,
        limit: Limit = 100,
        cursor: Cursor = None,
        action: str | None = None,
        outcome: str | None = None,
    ) -> Page[audit.AuditRecordPublic]:
        """The audit log (auditors only)."""
        page, next_cursor = audit.list_page(
            ctx, principal=principal, cursor=cursor, limit=limit, action=action, outcome=outcome
        )
        return Page(data=page, count=len(page), next_cursor=next_cursor)

    @router.get("/audit/verify", tags=["audit"])
    def verify_audit(ctx: ContextDep, principal: PrincipalDep) -> audit.VerificationPublic:
        return audit.verify(ctx, principal=principal)

    @router.get("/status", tags=["operators"])
    def get_status(ctx: ContextDep, principal: PrincipalDep) -> status_service.StatusPublic:
        """The four centers and their links, as ``cloudctl status -o json``."""
        identity.authorize(
            ctx,
            principal=principal,
            action="center.read",
            resource_type="Center",
            resource_id="all",
            attributes={"name": "all", "role": "all", "site": "all"},
        )
        return status_service.overview(ctx)

    return router
