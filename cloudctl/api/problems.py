"""Errors as RFC 9457 problem details (``application/problem+json``).

Invariants: every error the API returns has ``type``, ``title``, ``status`` and
``detail``; ``field`` names the input at fault where one is known; a quota
refusal lists every shortfall (node, center, resource, limit, in use, requested);
a policy refusal lists the deciding policy ids. No traceback ever leaves the server,
and neither does what an unreachable store or backend said (host, port, server
text): a 503 says only that it did not answer, with ``Retry-After``; the rest goes
to the log under the request's id.

A refused write (any error on a POST, PUT, PATCH or DELETE route) is audited here
when no service recorded it already (body validation happens before any service).
"""

from __future__ import annotations

import logging
from typing import Any

import pydantic
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException

from cloudctl import errors
from cloudctl.services import audit, identity

MEDIA_TYPE = "application/problem+json"


class Problem(BaseModel):
    """RFC 9457 problem details, as every error of the API is answered."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    field: str | None = None
    """The input at fault (a body field, a parameter, ``authorization``), where one is known."""


_DESCRIPTIONS = {
    401: "Missing, unknown, revoked or expired bearer token",
    403: "Refused by a policy (the deciding policy ids are in `policy_ids`)",
    404: "No such object, or not one the caller may see",
    409: "Conflicts with stored state; a quota refusal lists every `shortfalls` entry",
    413: "The body is larger than the limit (1 MiB unless configured)",
    422: "Invalid input: `field` names it (unknown fields and loosely typed values included)",
    429: "Locked out after repeated failed authentications (see `Retry-After`)",
    431: "Too many headers, or too large",
    503: "A backend or the store did not answer; try again after `Retry-After` seconds",
}


def documented_errors() -> dict[int | str, dict[str, Any]]:
    """The error answers every ``/v1`` operation may give, for the OpenAPI document."""
    schema = Problem.model_json_schema()
    return {
        status: {"description": description, "content": {MEDIA_TYPE: {"schema": schema}}}
        for status, description in _DESCRIPTIONS.items()
    }


log = logging.getLogger("cloudctl.api")

_STATUS: list[tuple[type[Exception], int, str]] = [
    (errors.LockedOut, 429, "locked-out"),
    (errors.AuthenticationFailed, 401, "unauthenticated"),
    (errors.NotFound, 404, "not-found"),
    (errors.PolicyDenied, 403, "denied-by-policy"),
    (errors.QuotaExceeded, 409, "quota-exceeded"),
    (errors.Conflict, 409, "conflict"),
    (errors.InvalidInput, 422, "invalid-input"),
    (errors.BackendUnavailable, 503, "backend-unavailable"),
    (errors.OperationFailed, 500, "operation-failed"),
]


MAX_TARGET_CHARS = 64
"""The longest id a refused write's audit record names; a path parameter is refused beyond it."""
MAX_INSTANCE_CHARS = 512
"""The longest request path a problem echoes as its ``instance``: ids are at most 64 characters."""


def problem(
    *,
    status: int,
    kind: str,
    title: str,
    detail: str,
    instance: str = "",
    retry_after_s: float | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"https://cloudctl.example/problems/{kind}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance and len(instance) <= MAX_INSTANCE_CHARS:  # a longer path names nothing we hold
        body["instance"] = instance
    body.update({key: value for key, value in extra.items() if value is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if retry_after_s is not None:
        headers = {"Retry-After": str(max(int(retry_after_s + 0.999), 1))}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_ACTIONS = {
    "create_request": "request.create",
    "approve_request": "request.approve",
    "reject_request": "request.reject",
    "cancel_request": "request.cancel",
    "delete_workload": "workload.delete",
    "restore_workload": "workload.restore",
    "create_org_node": "org.create",
    "delete_org_node": "org.delete",
    "set_quota": "quota.set",
    "create_reservation": "quota.reserve",
    "commit_reservation": "quota.commit",
    "release_reservation": "quota.release",
    "create_token": "token.create",
    "revoke_token": "token.revoke",
    "start_drill": "drill.run",
    "resume_drill": "drill.resume",
    "start_failover": "failover.run",
    "start_failback": "failback.run",
    "resume_run": "failover.resume",
    "scrub_replicas": "replication.scrub",
    "publish_data_item": "data.item.publish",
    "request_data_grant": "data.grant.request",
    "approve_data_grant": "data.grant.approve",
    "revoke_data_grant": "data.grant.revoke",
    "use_data_grant": "data.grant.use",
}
"""Audit action of each write route (by endpoint name); other routes are ``api.<name>``."""


def audit_refused_write(request: Request, error: BaseException) -> None:
    """Record a refused write that no service recorded (once per request)."""
    route = request.scope.get("route")
    if request.method not in WRITE_METHODS or route is None or audit.is_recorded(error):
        return
    name = getattr(route, "name", "unknown")
    params = request.path_params
    target_type, target_id = next(
        ((key.removesuffix("_id").capitalize(), str(value)) for key, value in params.items()), ("Api", "-")
    )
    if len(target_id) > MAX_TARGET_CHARS:  # refused as no id: the record keeps its start, not 8 KB
        target_id = target_id[: MAX_TARGET_CHARS - 1] + "…"
    principal = getattr(request.state, "principal", None) or identity.ANONYMOUS
    if isinstance(error, RequestValidationError):
        field, message = field_and_reason(error)
        error = errors.InvalidInput(message, field=field or "body")
    context = request.app.state.context
    audit.record_refusal(
        context,
        principal=principal,
        action=_ACTIONS.get(name, f"api.{name}"),
        target_type=target_type,
        target_id=target_id,
        error=error,
        detail={"status": _status_of(error)},
        outcome="refused" if isinstance(error, RequestValidationError) else None,
    )


def _status_of(error: BaseException) -> int:
    if isinstance(error, RequestValidationError):
        return 422
    for error_type, error_status, _kind in _STATUS:
        if isinstance(error, error_type):
            return error_status
    return 500


def from_error(request: Request, error: errors.CloudctlError) -> JSONResponse:
    status, kind = 500, "error"
    for error_type, error_status, error_kind in _STATUS:
        if isinstance(error, error_type):
            status, kind = error_status, error_kind
            break
    if isinstance(error, errors.BackendUnavailable):
        log.warning("%s %s: %s", request.method, request.url.path, error.one_line())
        return problem(
            status=503,
            kind=kind,
            title="backend unavailable",
            detail="the store or a backend did not answer; try again later",
            instance=request.url.path,
            retry_after_s=request.app.state.context.settings.unavailable_retry_after_s,
        )
    audit_refused_write(request, error)
    extra: dict[str, Any] = {"field": error.field}
    if isinstance(error, errors.QuotaExceeded):
        extra["shortfalls"] = [
            {
                "node": s.node,
                "center": "all" if s.center == "*" else s.center,
                "resource": s.resource,
                "limit": s.limit,
                "in_use": s.in_use,
                "requested": s.requested,
            }
            for s in error.shortfalls
        ]
    if isinstance(error, errors.PolicyDenied):
        extra["policy_ids"] = list(error.policy_ids)
    if isinstance(error, errors.LockedOut):
        extra["retry_after_s"] = error.retry_after_s
    return problem(
        status=status,
        kind=kind,
        title=kind.replace("-", " "),
        detail=error.one_line(),
        instance=request.url.path,
        **extra,
    )


MAX_FIELD_PART_CHARS = 64
"""The most of one part of a field's path a problem names: a dict key is the caller's text (an 8 KB
resource name) and is cut, not echoed whole."""


def _part(part: Any) -> str:
    text = str(part)
    return text if len(text) <= MAX_FIELD_PART_CHARS else f"{text[:MAX_FIELD_PART_CHARS]}…"


def field_and_reason(error: RequestValidationError | pydantic.ValidationError) -> tuple[str | None, str]:
    """The input at fault and why, from the first validation error of a request or of a model
    (the portal's forms): a body that is not JSON, or not an object, is the ``body`` itself
    (FastAPI puts a character position in its location)."""
    found: list[Any] = list(error.errors())
    first: dict[str, Any] = dict(found[0]) if found else {"loc": (), "msg": "invalid request"}
    where = tuple(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        position = where[-1] if len(where) > 1 else "?"
        why = (first.get("ctx") or {}).get("error", "unreadable")
        return "body", f"not valid JSON ({why}, at character {position})"
    location = [_part(part) for part in where if part not in ("body", "query", "path", "header")]
    field = ".".join(location) or ("body" if where[:1] == ("body",) else None)
    return field, str(first.get("msg", "invalid"))


def from_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    audit_refused_write(request, error)
    field, message = field_and_reason(error)
    return problem(
        status=422,
        kind="invalid-input",
        title="invalid input",
        detail=f"{field}: {message}" if field else message,
        instance=request.url.path,
        field=field,
    )


def from_http(request: Request, error: HTTPException) -> JSONResponse:
    """Starlette's own answers (no such route, method not allowed, unreadable body) as problems."""
    kinds = {400: "bad-request", 404: "not-found", 405: "method-not-allowed"}
    kind = kinds.get(error.status_code, "error")
    response = problem(
        status=error.status_code,
        kind=kind,
        title=kind.replace("-", " "),
        detail=str(error.detail),
        instance=request.url.path,
    )
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


def from_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(
        status=500,
        kind="internal",
        title="internal error",
        detail="the server failed; the error is in its log under this request's id",
        instance=request.url.path,
    )
