"""Calls to a Kubernetes API server through the official client: timeouts, retries, error mapping.

Invariants:

- Calls go through the shared ``drivers.calls.Caller`` with the rules here (``caller``).
- Every call carries ``_request_timeout=(connect_timeout_s, read_timeout_s)`` (the driver
  passes ``RetryPolicy.request_timeout`` to each); the client's own retries are off (urllib3
  ``retries=False``, client-go-style retries left disabled), so ``Caller`` is the only place
  a request is repeated.
- A call is retried only when it may recover by itself: connection errors and timeouts,
  HTTP 5xx and 429. It waits with exponential backoff and jitter, never less than the
  server's ``Retry-After``, sleeping through the injected clock, so tests never sleep and
  every wait is visible to them. A ``Retry-After`` longer than ``max_retry_after_s`` is not
  waited out: the call gives up at once with ``errors.BackendUnavailable``.
- Nothing the client (or urllib3 under it) raises leaves ``Caller.call``. The API's
  ``Status`` body decides the mapping: 404 → ``errors.NotFound``; 409 ``AlreadyExists`` →
  ``AlreadyExists`` and 409 on a stale ``resourceVersion`` → ``StaleResourceVersion`` (both
  ``errors.Conflict``); 400 / 422 → ``errors.InvalidInput`` whose field is the first
  ``details.causes[].field`` (``spec.hard[requests.cpu]``); 401 / 403 →
  ``errors.OperationFailed(field="credentials")``; what stays unreachable or failing →
  ``errors.BackendUnavailable``.
- ``what`` names the subject of the call (``"namespace dept-a"``); its first word is the
  error's field when the API names none.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Mapping
from typing import Any

import kubernetes.client
import urllib3.exceptions

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import calls as shared
from cloudctl.drivers import pacing

HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_UNPROCESSABLE_ENTITY = 422
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500
REASON_ALREADY_EXISTS = "AlreadyExists"


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a call is retried when the API server may recover, and its timeouts."""

    attempts: int = 4
    initial_wait_s: float = 0.5
    max_wait_s: float = 8.0
    max_retry_after_s: float = 60.0
    connect_timeout_s: float = 5.0
    read_timeout_s: float = 30.0

    @property
    def request_timeout(self) -> tuple[float, float]:
        """The ``_request_timeout`` every call passes: (connect, read) seconds."""
        return (self.connect_timeout_s, self.read_timeout_s)


class AlreadyExists(errors.Conflict):
    """The object to create exists already (HTTP 409, reason ``AlreadyExists``)."""


class StaleResourceVersion(errors.Conflict):
    """An update carried a ``resourceVersion`` that is no longer current (HTTP 409 ``Conflict``)."""


@dataclasses.dataclass(frozen=True)
class ApiStatus:
    """What a failed request's ``Status`` body says; empty fields when the body was not a Status."""

    code: int
    reason: str
    message: str
    cause_fields: tuple[str, ...]


def api_status(error: kubernetes.client.ApiException) -> ApiStatus:
    """The ``Status`` of a refused request."""
    body: Any = None
    if error.body:
        try:
            body = json.loads(error.body)
        except ValueError:
            body = None
    if not isinstance(body, dict):
        body = {}
    details: Any = body.get("details")
    causes: Any = details.get("causes") if isinstance(details, dict) else None
    if not isinstance(causes, list):
        causes = []
    fields = tuple(str(cause["field"]) for cause in causes if isinstance(cause, dict) and cause.get("field"))
    message = body.get("message") or error.reason or ""
    return ApiStatus(
        code=int(error.status or 0),
        reason=str(body.get("reason") or ""),
        message=" ".join(str(message).split()),
        cause_fields=fields,
    )


def retry_after_s(headers: Mapping[str, str] | None, *, now: float) -> float | None:
    """The ``Retry-After`` header in seconds (delta-seconds or an HTTP date); ``None`` if absent."""
    return pacing.retry_after_s(headers.get("Retry-After") if headers else None, now=now)


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, urllib3.exceptions.HTTPError):
        return True
    if isinstance(error, kubernetes.client.ApiException):
        status = int(error.status or 0)
        return status >= HTTP_SERVER_ERROR or status == HTTP_TOO_MANY_REQUESTS
    return False


def translate(error: BaseException, failed: shared.Failed, *, server_url: str) -> errors.CloudctlError:
    """What the last error of a call to the API server at ``server_url`` means in cloudctl."""
    api = f"Kubernetes API of center {failed.center}"
    if not isinstance(error, kubernetes.client.ApiException):
        return errors.BackendUnavailable(
            f"{api} at {server_url} {failed.gave_up('did not answer')}: {type(error).__name__}: {error}",
            field="server",
        )
    status = api_status(error)
    subject, field = failed.subject, failed.field
    explained = f"{status.message} ({status.reason or status.code})"
    if status.code == HTTP_NOT_FOUND:
        return failed.not_found()
    if status.code == HTTP_CONFLICT:
        if status.reason == REASON_ALREADY_EXISTS:
            return AlreadyExists(f"{failed.what} exists {failed.where}: {explained}", field=field)
        return StaleResourceVersion(f"{subject}: {explained}", field=field)
    if status.code in (HTTP_BAD_REQUEST, HTTP_UNPROCESSABLE_ENTITY):
        named = status.cause_fields[0] if status.cause_fields else field
        return errors.InvalidInput(f"{subject} refused: {explained}", field=named)
    if status.code in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
        return errors.OperationFailed(
            f"{api} refused the request on {failed.what}: {explained}", field="credentials"
        )
    if is_retryable(error):
        return errors.BackendUnavailable(
            f"{api} at {server_url} {failed.gave_up('kept failing')}: {explained}",
            field="server",
        )
    if status.code == 0:
        return errors.BackendUnavailable(
            f"{api} at {server_url} could not be reached: {explained}", field="server"
        )
    return errors.OperationFailed(f"{subject}: {explained}", field=field)


def asked_wait_s(error: BaseException, *, now: float) -> float | None:
    """The ``Retry-After`` of a refused request in seconds from ``now``; ``None`` if it had none."""
    if not isinstance(error, kubernetes.client.ApiException):
        return None
    return retry_after_s(error.headers, now=now)


def caller(
    *, center: str, server_url: str, clock: clocks.Clock, retry: RetryPolicy
) -> shared.Caller[RetryPolicy]:
    """The caller of one center's API server; each operation passes ``retry.request_timeout``."""
    rules = shared.Rules(
        raises=(kubernetes.client.ApiException, urllib3.exceptions.HTTPError),
        retryable=is_retryable,
        retry_after_s=asked_wait_s,
        translate=functools.partial(translate, server_url=server_url),
    )
    return shared.Caller(rules, center=center, clock=clock, retry=retry)
