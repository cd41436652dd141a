"""Calls to a Kubernetes API server through the official client: timeouts, retries, error mapping.

Invariants:

- Every call carries ``_request_timeout=(connect_timeout_s, read_timeout_s)``; the client's
  own retries are off (urllib3 ``retries=False``, client-go-style retries left disabled), so
  ``Caller`` is the only place a request is repeated.
- ``Caller.call`` retries only what may recover by itself: connection errors and timeouts,
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
import json
import math
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import kubernetes.client
import urllib3.exceptions

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import pacing

T = TypeVar("T")

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
    retry_after_s: float | None


def api_status(error: kubernetes.client.ApiException, *, now: float) -> ApiStatus:
    """The ``Status`` of a refused request, with the ``Retry-After`` header in seconds from ``now``."""
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
        retry_after_s=retry_after_s(error.headers, now=now),
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


class Caller:
    """Runs one API call with timeouts and retries, and maps whatever it raises to ``cloudctl.errors``."""

    def __init__(self, *, center: str, server_url: str, clock: clocks.Clock, retry: RetryPolicy) -> None:
        self.center = center
        self.server_url = server_url
        self.clock = clock
        self.retry = retry
        self._pacing = pacing.Pacing(
            retry,
            clock=clock,
            retryable=is_retryable,
            server_asks_s=lambda error: (
                retry_after_s(error.headers, now=clock.now())
                if isinstance(error, kubernetes.client.ApiException)
                else None
            ),
        )

    def call(self, operation: Callable[[tuple[float, float]], T], *, what: str) -> T:
        """``operation(request_timeout)``, retried and mapped; ``what`` names its subject."""
        try:
            return self._pacing.run(operation, self.retry.request_timeout)
        except kubernetes.client.ApiException as error:
            raise self.translate(error, what=what) from error
        except urllib3.exceptions.HTTPError as error:
            raise errors.BackendUnavailable(
                f"Kubernetes API of center {self.center} at {self.server_url} did not answer after "
                f"{self.retry.attempts} attempts: {type(error).__name__}: {error}",
                field="server",
            ) from error

    def translate(self, error: kubernetes.client.ApiException, *, what: str) -> errors.CloudctlError:
        status = api_status(error, now=self.clock.now())
        where = f"in center {self.center}"
        field = what.split(" ", 1)[0]
        explained = f"{status.message} ({status.reason or status.code})"
        if status.code == HTTP_NOT_FOUND:
            return errors.NotFound(f"no {what} {where}", field=field)
        if status.code == HTTP_CONFLICT:
            if status.reason == REASON_ALREADY_EXISTS:
                return AlreadyExists(f"{what} exists {where}: {explained}", field=field)
            return StaleResourceVersion(f"{what} {where}: {explained}", field=field)
        if status.code in (HTTP_BAD_REQUEST, HTTP_UNPROCESSABLE_ENTITY):
            named = status.cause_fields[0] if status.cause_fields else field
            return errors.InvalidInput(f"{what} {where} refused: {explained}", field=named)
        if status.code in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
            return errors.OperationFailed(
                f"Kubernetes API of center {self.center} refused the request on {what}: {explained}",
                field="credentials",
            )
        if is_retryable(error):
            if status.retry_after_s is not None and status.retry_after_s > self.retry.max_retry_after_s:
                waited = f"asked to retry after {math.ceil(status.retry_after_s)} s, more than allowed"
            else:
                waited = f"kept failing after {self.retry.attempts} attempts"
            return errors.BackendUnavailable(
                f"Kubernetes API of center {self.center} at {self.server_url} {waited}: {explained}",
                field="server",
            )
        if status.code == 0:
            return errors.BackendUnavailable(
                f"Kubernetes API of center {self.center} at {self.server_url} could not be reached: "
                f"{explained}",
                field="server",
            )
        return errors.OperationFailed(f"{what} {where}: {explained}", field=field)
