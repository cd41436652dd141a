"""Calls to an AWS-style API (S3, Route 53) through botocore: clients, retries, error mapping.

Shared by ``drivers.s3`` and ``drivers.dns``, the two drivers that speak AWS APIs.

Invariants:

- Calls go through the shared ``drivers.calls.Caller`` with the rules here (``caller``).
- botocore's own retries are off (``total_max_attempts=1``): ``Caller`` retries with
  tenacity, a few attempts with short exponential waits and jitter, never less than the
  server's ``Retry-After``, sleeping through the injected clock, so tests never sleep and
  every wait is visible to them. A ``Retry-After`` longer than ``max_retry_after_s`` is not
  waited out: the call gives up at once with ``errors.BackendUnavailable``.
- Bodies are hashed once, by the caller: botocore computes no checksum of its own
  (``when_required``) and does not sign payloads, so Content-MD5 and the sha256
  metadata the S3 driver sets are the only digests of a body.
- Every request has a connect and a read timeout (``RetryPolicy``); a timeout is a
  connection error.
- Only retryable failures are retried: connection errors, timeouts, 5xx and
  throttling. Anything else is mapped at once.
- Nothing botocore raises leaves ``Caller.call``: a missing thing becomes
  ``errors.NotFound``, a clash ``errors.Conflict``, a refused request
  ``errors.InvalidInput``, denied credentials ``errors.OperationFailed``, and an
  endpoint that stays unreachable or failing ``errors.BackendUnavailable``.
"""

from __future__ import annotations

import dataclasses
import datetime
import email.utils
import functools
import os
import threading
from typing import Any

import botocore.config  # type: ignore[import-untyped]  # no stubs installed: Any at this boundary
import botocore.exceptions  # type: ignore[import-untyped]
import botocore.parsers  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import calls as shared
from cloudctl.drivers import pacing

NOT_FOUND_CODES = frozenset(
    {"404", "NotFound", "NoSuchBucket", "NoSuchKey", "NoSuchVersion", "NoSuchHostedZone"}
)
CONFLICT_CODES = frozenset(
    {
        "BucketAlreadyExists",
        "BucketAlreadyOwnedByYou",
        "BucketNotEmpty",
        "OperationAborted",
        "HostedZoneAlreadyExists",
        "ConflictingDomainExists",
        "HostedZoneNotEmpty",
    }
)
THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "SlowDown",
        "PriorRequestNotComplete",
        "RequestTimeout",
    }
)
DENIED_CODES = frozenset(
    {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidClientTokenId"}
)
CONNECTION_ERRORS = (
    botocore.exceptions.ConnectionError,
    botocore.exceptions.HTTPClientError,
    botocore.exceptions.IncompleteReadError,
)
"""What botocore raises when the endpoint did not answer (timeouts included)."""
HTTP_NOT_FOUND = 404
HTTP_CONFLICT = 409
HTTP_TOO_MANY_REQUESTS = 429
HTTP_SERVER_ERROR = 500


@dataclasses.dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a call is retried when the backend may recover."""

    attempts: int = 3
    initial_wait_s: float = 0.2
    max_wait_s: float = 2.0
    max_retry_after_s: float = 60.0
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 30.0


def make_client(
    service: str,
    *,
    endpoint_url: str,
    access_key: str,
    secret_key: str,
    region: str,
    retry: RetryPolicy,
    max_pool_connections: int = 32,
    s3_path_style: bool = False,
) -> Any:
    """A botocore client (what ``boto3.client`` returns) of ``service``; botocore's retries off."""
    s3_settings: dict[str, Any] = {"payload_signing_enabled": False}
    if s3_path_style:
        s3_settings["addressing_style"] = "path"
    config = botocore.config.Config(
        region_name=region,
        retries={"total_max_attempts": 1},
        connect_timeout=retry.connect_timeout_s,
        read_timeout=retry.read_timeout_s,
        max_pool_connections=max_pool_connections,
        # Each byte is hashed once, by the driver: bodies carry Content-MD5 (which the server
        # checks) and a sha256 in metadata, so botocore adds no CRC of its own, does not check
        # one on reads, and does not sign the payload (UNSIGNED-PAYLOAD, as over TLS).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3=s3_settings,
    )
    with _session_lock:
        return _shared_session().create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )


def certificate_verification() -> bool | str:
    """How a client made by ``make_client`` checks TLS certificates, as botocore decides it: the
    ``ca_bundle`` setting (``AWS_CA_BUNDLE``), else ``REQUESTS_CA_BUNDLE``, else the default bundle."""
    with _session_lock:
        bundle = _shared_session().get_config_variable("ca_bundle")
    if bundle:
        return str(bundle)
    return os.environ.get("REQUESTS_CA_BUNDLE") or True


_session_lock = threading.Lock()
_session: Any = None


def _shared_session() -> Any:
    """One botocore session per process, so that service models are loaded once (~0.15 s each).

    It holds no credentials or endpoints (every client gets its own); botocore sessions
    are not thread-safe, so clients are created under ``_session_lock``.
    """
    global _session  # noqa: PLW0603 - a cache of loaded service models, nothing else
    if _session is None:
        _session = botocore.session.get_session()
        factory = _session.get_component("response_parser_factory")
        factory.set_parser_defaults(timestamp_parser=parse_timestamp)
    return _session


def parse_timestamp(text: str) -> datetime.datetime:
    """A timestamp of an answer (ISO 8601 in listings, an HTTP date in headers), aware, in UTC.

    botocore's default parser (dateutil) costs about as much per listed object as the rest
    of the listing; these two formats are what S3 and Route 53 send, anything else goes to it.
    """
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return botocore.parsers.DEFAULT_TIMESTAMP_PARSER(text)  # type: ignore[no-any-return]
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment


def error_code(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def http_status(error: botocore.exceptions.ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def retry_after_s(error: BaseException, *, now: float) -> float | None:
    """The ``Retry-After`` of a refused request in seconds (delta-seconds or an HTTP date from
    ``now``); ``None`` when the answer had none."""
    if not isinstance(error, botocore.exceptions.ClientError):
        return None
    headers = error.response.get("ResponseMetadata", {}).get("HTTPHeaders") or {}
    value = next((value for name, value in headers.items() if name.lower() == "retry-after"), None)
    return pacing.retry_after_s(value, now=now)


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, CONNECTION_ERRORS):
        return True
    if isinstance(error, botocore.exceptions.ClientError):
        status = http_status(error)
        return (
            status >= HTTP_SERVER_ERROR
            or status == HTTP_TOO_MANY_REQUESTS
            or error_code(error) in THROTTLING_CODES
        )
    return False


def translate(
    error: BaseException, failed: shared.Failed, *, service: str, endpoint_url: str
) -> errors.CloudctlError:
    """What the last error of a call to ``service`` at ``endpoint_url`` means in cloudctl."""
    named = f"{service} of center {failed.center}"
    if not isinstance(error, botocore.exceptions.ClientError):
        return errors.BackendUnavailable(
            f"{named} at {endpoint_url} {failed.gave_up('did not answer')}: {error}",
            field="endpoint_url",
        )
    code = error_code(error)
    status = http_status(error)
    message = error.response.get("Error", {}).get("Message") or code
    subject, field = failed.subject, failed.field
    if code in NOT_FOUND_CODES or status == HTTP_NOT_FOUND:
        return failed.not_found()
    if code in CONFLICT_CODES or status == HTTP_CONFLICT:
        return errors.Conflict(f"{subject}: {message} ({code})", field=field)
    if is_retryable(error):
        return errors.BackendUnavailable(
            f"{named} {failed.gave_up('kept failing')}: {message} ({code or status})",
            field="endpoint_url",
        )
    if code in DENIED_CODES:
        return errors.OperationFailed(
            f"{named} refused the credentials: {message} ({code})", field="credentials"
        )
    return errors.InvalidInput(f"{subject}: {message} ({code or status})", field=field)


def caller(
    *, center: str, service: str, endpoint_url: str, clock: clocks.Clock, retry: RetryPolicy
) -> shared.Caller[RetryPolicy]:
    """The caller of ``service`` (named in errors: ``"object storage"``) at ``endpoint_url``."""
    rules = shared.Rules(
        raises=(botocore.exceptions.ClientError, *CONNECTION_ERRORS),
        retryable=is_retryable,
        retry_after_s=retry_after_s,
        translate=functools.partial(translate, service=service, endpoint_url=endpoint_url),
    )
    return shared.Caller(rules, center=center, clock=clock, retry=retry)
