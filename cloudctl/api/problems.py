"""Errors as RFC 9457 problem details (``application/problem+json``).

Invariants: every error the API returns has ``type``, ``title``, ``status`` and
``detail``; ``field`` names the input at fault where one is known; a quota
refusal lists every shortfall (node, center, resource, limit, in use, requested);
a policy refusal lists the deciding policy ids. No traceback ever leaves the server.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from cloudctl import errors
from cloudctl.services import identity

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
    422: "Invalid input: `field` names it",
    429: "Locked out after repeated failed authentications (see `Retry-After`)",
    503: "A backend or the store did not answer",
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
    (identity.LockedOut, 429, "locked-out"),
    (identity.AuthenticationFailed, 401, "unauthenticated"),
    (errors.NotFound, 404, "not-found"),
    (errors.PolicyDenied, 403, "denied-by-policy"),
    (errors.QuotaExceeded, 409, "quota-exceeded"),
    (errors.Conflict, 409, "conflict"),
    (errors.InvalidInput, 422, "invalid-input"),
    (errors.BackendUnavailable, 503, "backend-unavailable"),
    (errors.OperationFailed, 500, "operation-failed"),
]


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
    if instance:
        body["instance"] = instance
    body.update({key: value for key, value in extra.items() if value is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    if retry_after_s is not None:
        headers = {"Retry-After": str(int(retry_after_s))}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)


def from_error(request: Request, error: errors.CloudctlError) -> JSONResponse:
    status, kind = 500, "error"
    for error_type, error_status, error_kind in _STATUS:
        if isinstance(error, error_type):
            status, kind = error_status, error_kind
            break
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
    if isinstance(error, identity.LockedOut):
        extra["retry_after_s"] = request.app.state.context.settings.lockout_s
    return problem(
        status=status,
        kind=kind,
        title=kind.replace("-", " "),
        detail=error.one_line(),
        instance=request.url.path,
        **extra,
    )


def from_validation(request: Request, error: RequestValidationError) -> JSONResponse:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid request"}
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(location) or None
    message = str(first.get("msg", "invalid"))
    return problem(
        status=422,
        kind="invalid-input",
        title="invalid input",
        detail=f"{field}: {message}" if field else message,
        instance=request.url.path,
        field=field,
    )


def from_unexpected(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=error)
    return problem(
        status=500,
        kind="internal",
        title="internal error",
        detail="the server failed; the error is in its log under this request's id",
        instance=request.url.path,
    )
