"""Calls to an OpenStack cloud through openstacksdk: retries and the mapping of SDK errors.

Invariants:

- ``Caller.call`` retries only what may recover by itself: connection failures and
  timeouts (keystoneauth's ``ConnectionError``), HTTP 5xx and 429. It makes a few attempts
  with short exponential waits and jitter, sleeping through the injected clock, so tests
  never sleep and every wait is visible to them.
- Nothing the SDK (or keystoneauth under it) raises leaves ``Caller.call``: 404 becomes
  ``errors.NotFound``; 409 ``errors.Conflict``; Nova's 403 "Quota exceeded" and Cinder's
  413 become ``errors.QuotaExceeded`` naming cloudctl's resource (``vcpu``, ``ram_gb``,
  ``instances``, ``volume_gb``); 400 ``errors.InvalidInput``; refused credentials (401,
  other 403) ``errors.OperationFailed``; a cloud that stays unreachable or failing
  ``errors.BackendUnavailable``.
- ``what`` names the subject of the call (``"server 1234"``); its first word becomes the
  error's field.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import TypeVar

import keystoneauth1.exceptions
import openstack.exceptions
import tenacity

from cloudctl import clock as clocks
from cloudctl import errors

T = TypeVar("T")

HTTP_BAD_REQUEST = 400
HTTP_UNAUTHORIZED = 401
HTTP_FORBIDDEN = 403
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_REQUEST_ENTITY_TOO_LARGE = 413
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500
MIB_PER_GB = 1024

_NOVA_QUOTA = re.compile(
    r"Quota exceeded for (?P<resource>\w+): Requested (?P<requested>\d+), "
    r"but already used (?P<used>\d+) of (?P<limit>\d+)"
)
_CINDER_QUOTA = re.compile(
    r"Requested (?P<requested>\d+)G, quota is (?P<limit>\d+)G and (?P<used>\d+)G has been consumed"
)
_NOVA_RESOURCES = {"cores": "vcpu", "ram": "ram_gb", "instances": "instances"}


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a call is retried when the cloud may recover, and its timeout."""

    attempts: int = 3
    initial_wait_s: float = 0.5
    max_wait_s: float = 4.0
    api_timeout_s: float = 60.0


def http_status(error: BaseException) -> int:
    """The HTTP status of an SDK or keystoneauth error; 0 when there was no response."""
    if isinstance(error, openstack.exceptions.HttpException):
        return int(error.status_code or 0)
    if isinstance(error, keystoneauth1.exceptions.HttpError):
        return int(error.http_status or 0)
    return 0


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, keystoneauth1.exceptions.ConnectionError):
        return True
    status = http_status(error)
    return status >= HTTP_SERVER_ERROR or status == HTTP_TOO_MANY_REQUESTS


def details(error: BaseException) -> str:
    """The cloud's own explanation of a failed request, on one line."""
    if isinstance(error, openstack.exceptions.HttpException) and error.details:
        return " ".join(str(error.details).split())
    return " ".join(str(error).split())


def quota_shortfall(error: BaseException, *, project: str, center: str) -> errors.Shortfall | None:
    """The quota a refused request ran into, from Nova's or Cinder's message; ``None`` if not one."""
    status = http_status(error)
    message = details(error)
    if status == HTTP_FORBIDDEN and (match := _NOVA_QUOTA.search(message)):
        resource = _NOVA_RESOURCES.get(match["resource"], match["resource"])
        amounts = {key: int(match[key]) for key in ("requested", "used", "limit")}
        if resource == "ram_gb":
            amounts = {key: math.ceil(value / MIB_PER_GB) for key, value in amounts.items()}
        return errors.Shortfall(
            node=project,
            center=center,
            resource=resource,
            limit=amounts["limit"],
            in_use=amounts["used"],
            requested=amounts["requested"],
        )
    if status == HTTP_REQUEST_ENTITY_TOO_LARGE and (match := _CINDER_QUOTA.search(message)):
        return errors.Shortfall(
            node=project,
            center=center,
            resource="volume_gb",
            limit=int(match["limit"]),
            in_use=int(match["used"]),
            requested=int(match["requested"]),
        )
    return None


class Caller:
    """Runs one API call with retries and maps whatever it raises to ``cloudctl.errors``."""

    def __init__(self, *, center: str, cloud_name: str, clock: clocks.Clock, retry: RetryPolicy) -> None:
        if retry.attempts < 1:
            raise errors.InvalidInput(f"must be at least 1, not {retry.attempts}", field="retry.attempts")
        self.center = center
        self.cloud_name = cloud_name
        self.clock = clock
        self.retry = retry

    def call(self, operation: Callable[[], T], *, what: str, project: str | None = None) -> T:
        """``operation()``, retried and mapped; ``project`` names the quota holder in a refusal."""
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.retry.attempts),
            wait=tenacity.wait_exponential_jitter(
                multiplier=self.retry.initial_wait_s,
                jitter=self.retry.initial_wait_s,
                max=self.retry.max_wait_s,
            ),
            retry=tenacity.retry_if_exception(is_retryable),
            sleep=self.clock.sleep,
            reraise=True,
        )
        try:
            return retrying(operation)
        except (openstack.exceptions.SDKException, keystoneauth1.exceptions.ClientException) as error:
            raise self.translate(error, what=what, project=project) from error

    def translate(
        self, error: BaseException, *, what: str, project: str | None = None
    ) -> errors.CloudctlError:
        status = http_status(error)
        where = f"in center {self.center}"
        field = what.split(" ", 1)[0]
        if isinstance(error, openstack.exceptions.ResourceNotFound) or status == HTTP_NOT_FOUND:
            return errors.NotFound(f"no {what} {where}", field=field)
        shortfall = quota_shortfall(error, project=project or "?", center=self.center)
        if shortfall is not None:
            return errors.QuotaExceeded([shortfall])
        if isinstance(error, openstack.exceptions.ConflictException) or status == HTTP_CONFLICT:
            return errors.Conflict(f"{what} {where}: {details(error)}", field=field)
        if is_retryable(error):
            return errors.BackendUnavailable(
                f"cloud {self.cloud_name} of center {self.center} did not answer after "
                f"{self.retry.attempts} attempts: {details(error)}",
                field="endpoint",
            )
        if status in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
            return errors.OperationFailed(
                f"cloud {self.cloud_name} of center {self.center} refused the request on {what}: "
                f"{details(error)}",
                field="credentials",
            )
        if status == HTTP_BAD_REQUEST:
            return errors.InvalidInput(f"{what} {where}: {details(error)}", field=field)
        return errors.OperationFailed(f"{what} {where}: {details(error)}", field=field)
