"""Calls to an OpenStack cloud through openstacksdk: retries and the mapping of SDK errors.

Invariants:

- Calls go through the shared ``drivers.calls.Caller`` with the rules here (``caller``).
- A call is retried only when it may recover by itself: connection failures and
  timeouts (keystoneauth's ``ConnectionError``; every request times out after
  ``api_timeout_s``), HTTP 5xx and 429. It makes a few attempts with short exponential
  waits and jitter, never less than the cloud's ``Retry-After``, sleeping through the
  injected clock, so tests never sleep and every wait is visible to them. A ``Retry-After``
  longer than ``max_retry_after_s`` is not waited out: the call gives up at once with
  ``errors.BackendUnavailable``.
- Nothing the SDK (or keystoneauth under it) raises leaves ``Caller.call``: 404 becomes
  ``errors.NotFound``; 409 ``errors.Conflict``; Nova's 403 "Quota exceeded" and Cinder's
  413 become ``errors.QuotaExceeded`` naming cloudctl's resource (``vcpu``, ``ram_gb``,
  ``instances``, ``volume_gb``); Nova's 403 "Maximum number of ports exceeded" is an
  ``errors.Conflict`` on ``network.ports`` (Neutron's quota, derived from the tree); a fixed
  address another port holds (Nova's 400, Neutron's 409) an ``errors.Conflict`` on ``address``;
  400 ``errors.InvalidInput``; refused credentials (401, other 403) ``errors.OperationFailed``;
  a cloud that stays unreachable or failing ``errors.BackendUnavailable``.
- ``what`` names the subject of the call (``"server 1234"``); its first word becomes the
  error's field.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re

import keystoneauth1.exceptions
import openstack.exceptions

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import calls as shared
from cloudctl.drivers import pacing

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
_NOVA_PORT_LIMIT = "Maximum number of ports exceeded"
"""Nova's 403 when the project's Neutron port quota is used up (it gives no numbers)."""
_ADDRESS_HELD = re.compile(
    r"Fixed IP address \S+ is already in use|IP address \S+ already allocated in subnet"
)
"""Nova's 400 and Neutron's 409 when a fixed address asked for is held by another port."""


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a call is retried when the cloud may recover, and its timeout."""

    attempts: int = 3
    initial_wait_s: float = 0.5
    max_wait_s: float = 4.0
    max_retry_after_s: float = 60.0
    api_timeout_s: float = 60.0


def http_status(error: BaseException) -> int:
    """The HTTP status of an SDK or keystoneauth error; 0 when there was no response."""
    if isinstance(error, openstack.exceptions.HttpException):
        return int(error.status_code or 0)
    if isinstance(error, keystoneauth1.exceptions.HttpError):
        return int(error.http_status or 0)
    return 0


def retry_after_s(error: BaseException, *, now: float) -> float | None:
    """The ``Retry-After`` of a refused request in seconds (delta-seconds or an HTTP date from
    ``now``); ``None`` when the answer had none."""
    if not isinstance(error, openstack.exceptions.HttpException | keystoneauth1.exceptions.HttpError):
        return None
    response = error.response
    value = response.headers.get("Retry-After") if response is not None else None
    return pacing.retry_after_s(value, now=now)


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


def translate(error: BaseException, failed: shared.Failed, *, cloud_name: str) -> errors.CloudctlError:
    """What the last error of a call on a cloud named ``cloud_name`` means in cloudctl."""
    status = http_status(error)
    subject, field = failed.subject, failed.field
    project = failed.project or "?"
    if isinstance(error, openstack.exceptions.ResourceNotFound) or status == HTTP_NOT_FOUND:
        return failed.not_found()
    shortfall = quota_shortfall(error, project=project, center=failed.center)
    if shortfall is not None:
        return errors.QuotaExceeded([shortfall])
    if status == HTTP_FORBIDDEN and _NOVA_PORT_LIMIT in details(error):
        return errors.Conflict(
            f"{subject}: the Neutron port quota of project {project} is used up "
            "(it drifted from the quota tree; `cloudctl quota sync` restores it)",
            field="network.ports",
        )
    if status in (HTTP_BAD_REQUEST, HTTP_CONFLICT) and _ADDRESS_HELD.search(details(error)):
        return errors.Conflict(f"{subject}: {details(error)}", field="address")
    if isinstance(error, openstack.exceptions.ConflictException) or status == HTTP_CONFLICT:
        return errors.Conflict(f"{subject}: {details(error)}", field=field)
    cloud = f"cloud {cloud_name} of center {failed.center}"
    if is_retryable(error):
        return errors.BackendUnavailable(
            f"{cloud} {failed.gave_up('did not answer')}: {details(error)}", field="endpoint"
        )
    if status in (HTTP_UNAUTHORIZED, HTTP_FORBIDDEN):
        return errors.OperationFailed(
            f"{cloud} refused the request on {failed.what}: {details(error)}", field="credentials"
        )
    if status == HTTP_BAD_REQUEST:
        return errors.InvalidInput(f"{subject}: {details(error)}", field=field)
    return errors.OperationFailed(f"{subject}: {details(error)}", field=field)


def caller(
    *, center: str, cloud_name: str, clock: clocks.Clock, retry: RetryPolicy
) -> shared.Caller[RetryPolicy]:
    """The caller of one center's cloud: ``call(operation, what=..., project=...)``."""
    rules = shared.Rules(
        raises=(openstack.exceptions.SDKException, keystoneauth1.exceptions.ClientException),
        retryable=is_retryable,
        retry_after_s=retry_after_s,
        translate=functools.partial(translate, cloud_name=cloud_name),
    )
    return shared.Caller(rules, center=center, clock=clock, retry=retry)
