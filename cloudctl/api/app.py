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

import json
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cloudctl import errors
from cloudctl import settings as settings_module
from cloudctl.api import docs_assets, hardening, problems
from cloudctl.services import audit, catalog, identity, workloads
from cloudctl.services import context as ctx_module
from cloudctl.services import quotas as quotas_service
from cloudctl.services import requests as requests_service
from cloudctl.services import status as status_service

T = TypeVar("T")
IDEMPOTENCY_KEY_MAX = 200
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


def _nullable(schema: dict[str, Any]) -> bool:
    return schema.get("type") == "null" or any(o.get("type") == "null" for o in schema.get("anyOf", []))


def _restore_nulls(spec: dict[str, Any]) -> dict[str, Any]:
    """Put back the ``null`` of required fields in the schemas' examples (in place).

    FastAPI leaves every ``null`` out of the document, the examples' too; an example without
    ``next_cursor`` (the last page) or a follower's ``epoch`` would not be one the API gives.
    """
    schemas: dict[str, Any] = spec.get("components", {}).get("schemas", {})

    def fill(value: Any, schema: dict[str, Any]) -> None:
        while "$ref" in schema:
            schema = schemas.get(schema["$ref"].rsplit("/", 1)[-1], {})
        for option in schema.get("anyOf", []):
            fill(value, option)
        if isinstance(value, list) and isinstance(schema.get("items"), dict):
            for item in value:
                fill(item, schema["items"])
        if not isinstance(value, dict):
            return
        properties: dict[str, Any] = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value and _nullable(properties.get(name, {})):
                value[name] = None
        for name, item in value.items():
            if name in properties:
                fill(item, properties[name])
            elif isinstance(schema.get("additionalProperties"), dict):
                fill(item, schema["additionalProperties"])

    for schema in schemas.values():
        for example in schema.get("examples", []):
            fill(example, schema)
    return spec


def _catalog_limits(spec: dict[str, Any], context: ctx_module.Context) -> dict[str, Any]:
    """Document the topology's data classes and count limit on an order's body (in place).

    The body model leaves both to the topology, which admission checks them against; the schema
    lists what this deployment accepts. A topology that cannot be read leaves the schema as it is.
    """
    schemas = spec.get("components", {}).get("schemas", {})
    body = schemas.get(RequestCreateBody.__name__, {}).get("properties", {})
    if not body:
        return spec
    try:
        topology = context.topology
    except errors.CloudctlError:
        return spec
    body.get("data_class", {})["enum"] = list(topology.data_classes)
    body.get("count", {})["maximum"] = topology.catalog_limits.max_count
    return spec


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
    """Why an operator rejects a request."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {"reason": "Order vm.large instead: two vm.xlarge exceed the bureau's budget for 2026."}
            ]
        },
    )

    reason: str = Field(min_length=1, max_length=1000, pattern=r"\S")
    """Why, 1 to 1000 characters, not only blanks; added to the request's ``reasons`` for the department."""


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
    """An order from the catalog: an offering, how many, the protection tier and the data class.

    Read strictly: an unknown field, or ``count`` sent as a string, is a 422 naming the field.
    """

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        title="RequestCreate",
        json_schema_extra={
            "examples": [
                {
                    "offering": "vm.medium",
                    "count": 2,
                    "tier": "gold",
                    "data_class": "internal",
                    "name": "social-insurance-portal",
                },
                {
                    "offering": "bucket.1t",
                    "count": 1,
                    "tier": "silver",
                    "data_class": "sensitive",
                    "preferred_center": "qd-b",
                    "name": "traffic-camera-archive",
                },
            ]
        },
    )


def _source(request: Request) -> str:
    """The caller's address after the trusted-proxy rule (``api.hardening``)."""
    return str(request.scope.get("state", {}).get("source") or audit.current_scope().source)


def _principal(request: Request, context: ContextDep) -> identity.Principal:
    principal = identity.authenticate(
        context, authorization=request.headers.get("authorization"), source=_source(request)
    )
    request.state.principal = principal
    return principal


async def _principal_async(request: Request) -> identity.Principal:
    """``_principal`` for async routes: on the loop when the token cache answers (no store, no
    thread hop), else one worker thread (authentication may read the store or audit a failure)."""
    context = _context(request)
    principal = identity.authenticate_cached(context, authorization=request.headers.get("authorization"))
    if principal is None:
        return await run_in_threadpool(_principal, request, context)
    request.state.principal = principal
    return principal


ADMISSION_PATH = "/v1/requests"
ADMISSION_ROUTE_NAME = "create_request"


class _AdmissionRoute:
    """The scope's ``route`` on the fast path: what labels metrics (``api.hardening``) and names
    the action of a refusal no service audited (``problems.audit_refused_write``)."""

    path = ADMISSION_PATH
    name = ADMISSION_ROUTE_NAME


class AdmissionFastPath:
    """``POST /v1/requests`` in its common case without FastAPI's routing and dependencies (plain ASGI).

    The order endpoint is the API's busiest; on the event loop, FastAPI's routing, dependency
    solving and exception layers cost about as much as everything else of a call. This
    middleware, inside ``api.hardening``, answers an order only when it is the plain case: a
    JSON body the route's own model accepts (``RequestCreateBody``, validated as FastAPI
    validates it), an ``Idempotency-Key`` within its bound, and a bearer token the token cache
    answers (``identity.authenticate_cached``). It then does what the route does
    (``requests.submit_async``) and answers with the same response, or with the same problem
    for a refusal (``problems.from_error``). Anything else goes to the route with the body
    replayed, so its validation errors, authentication failures and documentation stay the
    route's own.
    """

    def __init__(self, app: ASGIApp, *, context: ctx_module.Context) -> None:
        self.app = app
        self.context = context

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") != ADMISSION_PATH:
            await self.app(scope, receive, send)
            return
        authorization: str | None = None
        content_type: bytes | None = None
        idempotency_key: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization" and authorization is None:
                authorization = value.decode("latin-1")
            elif name == b"content-type" and content_type is None:
                content_type = value
            elif name == b"idempotency-key" and idempotency_key is None:
                idempotency_key = value.decode("latin-1")
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", message, receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        body = self._plain_order(raw, content_type, idempotency_key)
        principal = None
        if body is not None:
            principal = identity.authenticate_cached(self.context, authorization=authorization)
        if body is None or principal is None:
            await self.app(scope, _replay(raw, None, receive), send)
            return
        await self._admit(scope, _replay(raw, None, receive), send, body, principal, idempotency_key)

    async def _admit(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        body: RequestCreateBody,
        principal: identity.Principal,
        idempotency_key: str | None,
    ) -> None:
        """What the route does with a checked order, and its answer."""
        scope["route"] = _AdmissionRoute
        scope["path_params"] = {}
        scope.setdefault("state", {})["principal"] = principal
        try:
            admitted, created = await requests_service.submit_async(
                self.context, principal=principal, body=body, idempotency_key=idempotency_key
            )
        except errors.CloudctlError as error:
            response: Response = problems.from_error(Request(scope, receive), error)
        else:
            response = _admission_response(admitted, created=created)
        await response(scope, receive, send)

    @staticmethod
    def _plain_order(
        raw: bytes, content_type: bytes | None, idempotency_key: str | None
    ) -> RequestCreateBody | None:
        """The order when the route would accept this body and key; ``None``: leave it to the route."""
        if content_type != b"application/json" or not raw:
            return None
        if idempotency_key is not None and len(idempotency_key) > IDEMPOTENCY_KEY_MAX:
            return None
        try:
            return RequestCreateBody.model_validate(json.loads(raw))
        except (ValueError, ValidationError):  # JSONDecodeError is a ValueError
            return None


def _replay(body: bytes, first: Message | None, receive: Receive) -> Receive:
    """A receive that gives the body read already (or the message that ended it), then ``receive``'s."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if not given:
            given = True
            return first if first is not None else {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


def _admission_response(admitted: requests_service.RequestPublic, *, created: bool) -> Response:
    """The answer to an order: 201 and ``Location`` when admitted now, 200 for a replay."""
    return Response(
        admitted.model_dump_json(),
        status_code=201 if created else 200,
        media_type="application/json",
        headers={"Location": f"/v1/requests/{admitted.id}"},
    )


def _acting_as(principal: identity.Principal) -> Callable[[Request], identity.Principal]:
    def acting(request: Request) -> identity.Principal:
        request.state.principal = principal
        return principal

    return acting


def _metrics_reader(request: Request, context: ContextDep) -> None:
    """``/metrics`` for the scrape token or a person allowed ``center.read`` (``services.scrape``)."""
    from cloudctl.services import scrape

    scrape.authorize(context, authorization=request.headers.get("authorization"), source=_source(request))


def _metrics_reading_as(principal: identity.Principal) -> Callable[[Request, ContextDep], None]:
    def reading(request: Request, context: ContextDep) -> None:
        request.state.principal = principal
        status_service.authorize_supervision(context, principal=principal)

    return reading


PrincipalDep = Annotated[identity.Principal, Depends(_principal)]
Limit = Annotated[int, Query(ge=1, le=200, description="Items per page, 1 to 200", examples=[50])]
QUERY_NAME_MAX = 40
"""The longest node, center, state or tier name a query parameter takes (org node ids are at most 40)."""
Cursor = Annotated[str | None, Query(max_length=64, description="next_cursor of the previous page")]
RequestCursor = Annotated[
    str | None,
    Query(
        max_length=64,
        description="``next_cursor`` of the previous page (a request id); leave out for the first page",
        examples=["req-001a2433a99553b7d04e9"],
    ),
]
WorkloadCursor = Annotated[
    str | None,
    Query(
        max_length=64,
        description="``next_cursor`` of the previous page (a workload id); leave out for the first page",
        examples=["wl-001a2433a995562feca1c"],
    ),
]
AuditCursor = Annotated[
    str | None,
    Query(
        max_length=20,
        description="``next_cursor`` of the previous page (the last seq it held); leave out at first",
        examples=["48200"],
    ),
]
Department = Annotated[
    str | None,
    Query(
        max_length=QUERY_NAME_MAX,
        description=(
            "Only this org node (a department sees its own subtree; an operator any node); "
            "leave out for all the caller may see"
        ),
        examples=["hrss-insurance"],
    ),
]
RequestId = Annotated[
    str,
    Path(
        max_length=64,
        description="The request's id, as ``POST /v1/requests`` returned it",
        examples=["req-001a2433a99553b7d04e9"],
    ),
]
WorkloadId = Annotated[
    str,
    Path(
        max_length=64,
        description="The workload's id (a request's ``workload_id``)",
        examples=["wl-001a2433a995562feca1c"],
    ),
]


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
    openapi = app.openapi

    def openapi_with_nulls() -> dict[str, Any]:
        return _catalog_limits(_restore_nulls(openapi()), context)

    app.openapi = openapi_with_nulls  # type: ignore[method-assign]
    app.add_exception_handler(errors.CloudctlError, problems.from_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, problems.from_validation)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, problems.from_http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, problems.from_unexpected)
    if acting_as is None:
        app.add_middleware(AdmissionFastPath, context=context)  # inside Hardening: added first
    app.add_middleware(hardening.Hardening, settings=context.settings)
    if acting_as is not None:
        app.dependency_overrides[_principal] = _acting_as(acting_as)
        app.dependency_overrides[_principal_async] = _acting_as(acting_as)
        app.dependency_overrides[_metrics_reader] = _metrics_reading_as(acting_as)

    @app.get("/healthz", tags=["probes"])
    def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @app.get(
        "/readyz",
        tags=["probes"],
        response_model=status_service.ReadinessPublic,
        responses={503: {"description": "Not ready: the store does not answer or holds no state"}},
    )
    def readyz(request: Request, ctx: ContextDep) -> Any:
        """The store answers and holds initialised state; the serve replicas and their roles.

        Needs no token. Answers 503 (with ``Retry-After``) while the store does not answer or holds
        no initialised state yet (run ``cloudctl init``): a load balancer or systemd sends no
        traffic to this replica until it is ready.
        """
        try:
            return status_service.readiness(ctx)
        except errors.InvalidInput as error:
            if error.field != "home":
                raise
            return problems.problem(
                status=503,
                kind="not-initialised",
                title="not ready",
                detail="the store holds no cloudctl state yet: run `cloudctl init`",
                instance=request.url.path,
                retry_after_s=ctx.settings.unavailable_retry_after_s,
            )

    @app.get(
        "/metrics",
        tags=["probes"],
        response_class=Response,
        responses={
            200: {"content": {"text/plain": {"example": METRICS_EXAMPLE}}},
            **problems.documented_errors(),
        },
    )
    def metrics_endpoint(ctx: ContextDep, _reader: Annotated[None, Depends(_metrics_reader)]) -> Response:
        """Prometheus exposition of the control plane and the state it supervises.

        For the scrape token (``Authorization: Bearer`` the secret of ``metrics_token_file``,
        default ``<home>/metrics.token``) or a person the policies let read the centers
        (``center.read``); 401 or 403 otherwise: it holds every department's quota."""
        from prometheus_client import CONTENT_TYPE_LATEST

        from cloudctl.services import observability

        return Response(observability.exposition(ctx), media_type=CONTENT_TYPE_LATEST)

    app.include_router(_v1(), prefix="/v1", responses=problems.documented_errors())
    from cloudctl.api import routes_showback

    app.include_router(routes_showback.router(), prefix="/v1", responses=problems.documented_errors())
    # Operator routes of other areas are included here, one line each.
    from cloudctl.api import (
        routes_audit,
        routes_data,
        routes_drills,
        routes_org,
        routes_recovery,
        routes_replication,
        routes_tokens,
    )

    routers = (
        routes_recovery,
        routes_replication,
        routes_org,
        routes_tokens,
        routes_audit,
        routes_drills,
        routes_data,
    )
    for module in routers:
        app.include_router(module.router(), prefix="/v1", responses=problems.documented_errors())
    docs_assets.install(app)
    if acting_as is None:  # break-glass commands call /v1 only: no portal to build for them
        from cloudctl.api import ui

        ui.install(app)
    return app


def _v1() -> APIRouter:
    router = APIRouter()

    @router.get("/catalog", tags=["catalog"])
    def get_catalog(ctx: ContextDep, principal: PrincipalDep) -> catalog.CatalogPublic:
        """Offerings, protection tiers and data classes a department can order.

        The catalog is the topology's: nothing outside it can be requested (policy
        ``catalog-only``). Departments and the sysadmin read it (policy ``catalog-read``).
        """
        return catalog.catalog(ctx, principal=principal)

    @router.post(
        "/requests",
        name=ADMISSION_ROUTE_NAME,
        status_code=201,
        tags=["requests"],
        response_model=requests_service.RequestPublic,
        responses={
            201: {"description": "Admitted now; ``Location`` names the new request"},
            200: {
                "description": "A replay: the request this Idempotency-Key created earlier, as it is now",
                "model": requests_service.RequestPublic,
            },
        },
    )
    async def create_request(
        request: Request,
        principal: Annotated[identity.Principal, Depends(_principal_async)],
        body: RequestCreateBody,
        idempotency_key: Annotated[
            str | None,
            Header(
                max_length=IDEMPOTENCY_KEY_MAX,
                description=(
                    "Any string up to 200 characters, unique per order: a retry with the same key and "
                    "body answers the request created first (200); with another body, 409"
                ),
                examples=["3f1c9a7e-2b4d-4e8a-9c1f-5d6e7a8b9c0d"],
            ),
        ] = None,
    ) -> Response:
        """Order from the catalog: admitted against policies and quota in one step.

        Admission checks the body, the policies (``request.create``, placement by data class) and
        reserves the quota of every placement the tier needs, or refuses and changes nothing (403
        naming the policy, 409 naming the quota that ran out). An admitted request is ``approved``,
        or ``pending-approval`` when the approval policies want an operator; it answers 201 with
        ``Location``. Departments (``dept-admin``, ``dept-user``) order for their own node.
        """
        # Checks and the write happen on the admission thread; the loop parses and answers.
        # Most orders are answered by AdmissionFastPath in the same way; this route answers the rest.
        admitted, created = await requests_service.submit_async(
            _context(request), principal=principal, body=body, idempotency_key=idempotency_key
        )
        return _admission_response(admitted, created=created)

    @router.get("/requests", tags=["requests"])
    def list_requests(
        ctx: ContextDep,
        principal: PrincipalDep,
        limit: Limit = 50,
        cursor: RequestCursor = None,
        state: Annotated[
            str | None,
            Query(
                max_length=QUERY_NAME_MAX,
                description=(
                    "Only requests in this state: ``pending-approval``, ``approved``, ``provisioning``, "
                    "``ready``, ``rejected``, ``cancelled`` or ``failed``"
                ),
                examples=["pending-approval"],
            ),
        ] = None,
        department: Department = None,
    ) -> Page[requests_service.RequestPublic]:
        """The requests the caller may see, oldest first: a department its subtree's, operators all.

        Operators use ``state=pending-approval`` to find the requests waiting for them.
        """
        items, next_cursor = requests_service.list_requests(
            ctx, principal=principal, state=state, department=department, limit=limit, cursor=cursor
        )
        return Page(data=items, count=len(items), next_cursor=next_cursor)

    @router.get("/requests/{request_id}", tags=["requests"])
    def get_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: RequestId
    ) -> requests_service.RequestPublic:
        """One request with its lifecycle, step by step.

        A department sees only its own subtree's requests; any other id answers 404, as a missing one.
        """
        return requests_service.get(ctx, principal=principal, request_id=request_id)

    @router.post("/requests/{request_id}/approve", tags=["operators"])
    def approve_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: RequestId
    ) -> requests_service.RequestPublic:
        """Approve a request waiting for an operator (sysadmin); provisioning then starts.

        Only a ``pending-approval`` request can be approved (409 otherwise). Audited.
        """
        return requests_service.approve(ctx, principal=principal, request_id=request_id)

    @router.post("/requests/{request_id}/reject", tags=["operators"])
    def reject_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: RequestId, body: Rejection
    ) -> requests_service.RequestPublic:
        """Reject a request waiting for an operator, saying why; the quota it held is released.

        The sysadmin only. Only a ``pending-approval`` request can be rejected (409 otherwise). The
        reason is added to the request's ``reasons`` and to the audit record.
        """
        return requests_service.reject(ctx, principal=principal, request_id=request_id, reason=body.reason)

    @router.post("/requests/{request_id}/cancel", tags=["requests"])
    def cancel_request(
        ctx: ContextDep, principal: PrincipalDep, request_id: RequestId
    ) -> requests_service.RequestPublic:
        """Withdraw a request before provisioning starts; the quota it held is released.

        Department admins only. Only a ``pending-approval`` or ``approved`` request can be cancelled
        (409 otherwise); a provisioned one is removed by deleting its workload.
        """
        return requests_service.cancel(ctx, principal=principal, request_id=request_id)

    @router.get("/quota", tags=["quota"])
    def get_quota(
        ctx: ContextDep,
        principal: PrincipalDep,
        department: Annotated[
            str | None,
            Query(
                max_length=QUERY_NAME_MAX,
                description=(
                    "The org node whose quota to show; leave out for the caller's own department "
                    "(operators must name one). A department may name nodes of its own subtree"
                ),
                examples=["hrss-insurance"],
            ),
        ] = None,
        center: Annotated[
            str | None,
            Query(
                max_length=QUERY_NAME_MAX,
                description="Only this center, or ``all`` for the limits on the sum; leave out for every one",
                examples=["qd-a"],
            ),
        ] = None,
    ) -> quotas_service.QuotaPublic:
        """Limits, usage and reservations per center, with the headroom the tree leaves.

        ``headroom`` is what the node could still reserve: the least free amount along its chain of
        ancestors, and ``bounded_by`` names the node whose limit sets it.
        """
        return quotas_service.department_quota(ctx, principal=principal, department=department, center=center)

    @router.get("/workloads", tags=["workloads"])
    def list_workloads(
        ctx: ContextDep,
        principal: PrincipalDep,
        limit: Limit = 50,
        cursor: WorkloadCursor = None,
        state: Annotated[
            str | None,
            Query(
                max_length=QUERY_NAME_MAX,
                description=(
                    "Only workloads in this state: ``pending-approval``, ``approved``, ``provisioning``, "
                    "``ready``, ``failed``, ``deleting``, ``deleted``, ``rejected`` or ``cancelled``"
                ),
                examples=["ready"],
            ),
        ] = None,
        tier: Annotated[
            str | None,
            Query(
                max_length=QUERY_NAME_MAX,
                description="Only workloads of this tier: ``platinum``, ``gold``, ``silver`` or ``bronze``",
                examples=["gold"],
            ),
        ] = None,
        department: Department = None,
    ) -> Page[workloads.WorkloadPublic]:
        """The workloads the caller may see, oldest first, with their placements and protection.

        A department sees its own subtree's; operators see all.
        """
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
    def get_workload(
        ctx: ContextDep, principal: PrincipalDep, workload_id: WorkloadId
    ) -> workloads.WorkloadPublic:
        """Placement per center and protection of one workload.

        A department sees only its own subtree's workloads; any other id answers 404, as a missing one.
        """
        return workloads.get(ctx, principal=principal, workload_id=workload_id)

    @router.delete("/workloads/{workload_id}", status_code=202, tags=["workloads"])
    def delete_workload(
        ctx: ContextDep, principal: PrincipalDep, workload_id: WorkloadId
    ) -> workloads.WorkloadPublic:
        """Delete: resources go first, then the quota is released (poll the workload).

        Department admins only. Answers 202 with the workload ``deleting``; it becomes ``deleted``
        once its resources are gone. Only a ``ready``, ``failed``, ``pending-approval`` or
        ``approved`` workload can be deleted (409 otherwise); deleting one already ``deleting`` or
        ``deleted`` changes nothing.
        """
        return workloads.delete(ctx, principal=principal, workload_id=workload_id)

    @router.get("/audit", tags=["audit"])
    def list_audit(
        ctx: ContextDep,
        principal: PrincipalDep,
        limit: Limit = 100,
        cursor: AuditCursor = None,
        action: Annotated[
            str | None,
            Query(max_length=100, description="Only records of this action", examples=["request.create"]),
        ] = None,
        outcome: Annotated[
            str | None,
            Query(
                max_length=QUERY_NAME_MAX,
                description="Only this outcome: ``success``, ``denied``, ``refused`` or ``failed``",
                examples=["denied"],
            ),
        ] = None,
    ) -> Page[audit.AuditRecordPublic]:
        """The audit log (auditors only), oldest first: every write, refusal and failed authentication."""
        page, next_cursor = audit.list_page(
            ctx, principal=principal, cursor=cursor, limit=limit, action=action, outcome=outcome
        )
        return Page(data=page, count=len(page), next_cursor=next_cursor)

    @router.get("/audit/verify", tags=["audit"])
    def verify_audit(ctx: ContextDep, principal: PrincipalDep) -> audit.VerificationPublic:
        """Recompute the whole audit chain under the key ring and check it against the newest checkpoint.

        Auditors only. A changed, removed or re-ordered record, or a log cut short behind the
        newest signed checkpoint, shows as ``ok: false`` with the first bad record and the problem.
        """
        return audit.verify(ctx, principal=principal)

    @router.get("/status", tags=["operators"])
    def get_status(ctx: ContextDep, principal: PrincipalDep) -> status_service.StatusPublic:
        """The four centers and their links, as ``cloudctl status -o json``.

        Health, drivers and capacity (total, allocated as quota, used) per center, the state of
        each link, and the ``cloudctl serve`` replicas. The sysadmin only (action ``center.read``).
        """
        return status_service.overview_for(ctx, principal=principal)

    return router
