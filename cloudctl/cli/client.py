"""The command line as a client of the management center's API (``/v1``).

A ``Client`` sends JSON over a ``Transport`` and turns the API's problem+json answers
back into the errors the command line knows, so a remote command exits exactly as the
same command did in process (2 bad input or refused, 1 failed, 3 unreachable).

Invariants:
- standard library only (``http.client``): a remote command imports neither SQLAlchemy,
  nor the drivers, nor an HTTP library heavier than the interpreter's own;
- the bearer token is sent in a header and never printed: errors quote the API's
  problem detail, never the request;
- every call has a timeout; an API that does not answer is exit 3 naming the URL.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from cloudctl import errors

TIMEOUT_S = 60.0


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes


class Transport(Protocol):
    def request(self, method: str, target: str, *, headers: dict[str, str], body: bytes | None) -> Reply: ...

    def close(self) -> None: ...


class HttpTransport:
    """HTTP/1.1 over one kept-alive connection to ``base_url`` (``http`` or ``https``)."""

    def __init__(self, base_url: str, *, timeout_s: float = TIMEOUT_S) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self._scheme = parts.scheme
        self._host = parts.hostname or ""
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._timeout_s = timeout_s
        self._connection: Any = None

    def _connect(self) -> Any:
        import http.client

        if self._connection is None:
            if self._scheme == "https":
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout_s
                )
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        return self._connection

    def request(self, method: str, target: str, *, headers: dict[str, str], body: bytes | None) -> Reply:
        import http.client

        for attempt in (1, 2):  # a kept-alive connection the server closed is opened once more
            connection = self._connect()
            sent = False
            try:
                connection.request(method, self._prefix + target, body=body, headers=headers)
                sent = True
                response = connection.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt == 2 or method not in SAFE_METHODS:
                    raise errors.BackendUnavailable(
                        f"{self.base_url} closed the connection{_unanswered(method, sent=sent)}", field="api"
                    ) from None
                continue
            except TimeoutError:
                self.close()
                waited = f"{self.base_url} did not answer within {self._timeout_s:g} s"
                raise errors.BackendUnavailable(
                    waited + _unanswered(method, sent=sent), field="api"
                ) from None
            except OSError as error:
                self.close()
                reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                raise errors.BackendUnavailable(
                    f"cannot reach {self.base_url}: {reason}", field="api"
                ) from None
            except http.client.HTTPException:  # not HTTP, a cut-off body, a header line past 64 KB
                self.close()
                raise errors.BackendUnavailable(
                    f"{self.base_url} did not answer as an HTTP server{_unanswered(method, sent=sent)}",
                    field="api",
                ) from None
            return Reply(
                status=response.status,
                headers={name.lower(): value for name, value in response.getheaders()},
                body=data,
            )
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


SAFE_METHODS = ("GET", "HEAD")
"""Methods that change nothing: one cut short is asked again, and says nothing may have happened."""


def _unanswered(method: str, *, sent: bool) -> str:
    """What a person must know of a change sent that got no answer: it may have been made."""
    if not sent or method in SAFE_METHODS:
        return ""
    return "; the request was sent and may have been carried out: look before you retry"


_ERRORS: dict[int, type[errors.CloudctlError]] = {
    400: errors.InvalidInput,
    401: errors.AuthenticationFailed,
    403: errors.PolicyDenied,
    404: errors.NotFound,
    409: errors.Conflict,
    413: errors.InvalidInput,
    422: errors.InvalidInput,
    429: errors.AuthenticationFailed,
    431: errors.InvalidInput,
    502: errors.BackendUnavailable,
    503: errors.BackendUnavailable,
    504: errors.BackendUnavailable,
}


@dataclasses.dataclass(frozen=True)
class _Decision:
    """A policy refusal as the API reported it (``errors.PolicyDecision``)."""

    policy_ids: tuple[str, ...]
    reason: str

    def one_line(self) -> str:
        return self.reason


# The API's names of fields the CLI spells otherwise: an error names the option a person typed.
OPTION_OF_FIELD = {
    "department": "dept",
    "data_class": "class",  # data items publish --class
    "expires_at": "expires",  # data grants request --expires
    "consumer_data_class": "holding-class",
    "workload_id": "workload",  # data items publish --workload
}


def _error(reply: Reply, *, api: str) -> errors.CloudctlError:
    """The error a problem+json answer stands for; its one line is the API's detail."""
    try:
        problem = json.loads(reply.body)
    except ValueError:
        problem = None
    if not isinstance(problem, dict):
        problem = {"detail": f"{api} answered {reply.status} without a problem document"}
    field = problem.get("field") if isinstance(problem.get("field"), str) else None
    detail = str(problem.get("detail") or problem.get("title") or f"HTTP {reply.status}")
    if field and detail.startswith(f"{field}: "):
        detail = detail[len(field) + 2 :]
    field = OPTION_OF_FIELD.get(field, field) if field else field
    if reply.status == 401:
        detail = f"{detail} (log in again: `cloudctl login --api {api}`)"
    if reply.status == 429:
        detail = f"{detail}; try again after {reply.headers.get('retry-after', 'a while')} s"
    if reply.status == 403:
        policy_ids = problem.get("policy_ids")
        if not (isinstance(policy_ids, list) and all(isinstance(one, str) for one in policy_ids)):
            policy_ids = []
        decision = _Decision(policy_ids=tuple(policy_ids), reason=detail)
        return errors.PolicyDenied(decision, action=field or "action")
    shortfalls = _shortfalls(problem.get("shortfalls")) if reply.status == 409 else []
    if shortfalls:
        return errors.QuotaExceeded(shortfalls)
    error_type = _ERRORS.get(reply.status, errors.OperationFailed)
    return error_type(detail, field=field)


def _shortfalls(listed: Any) -> list[errors.Shortfall]:
    """The shortfalls of a quota refusal; none when the problem's are not as the API documents them
    (the refusal is then said by its detail alone)."""
    if not isinstance(listed, list):
        return []
    try:
        return [
            errors.Shortfall(
                node=str(s["node"]),
                center="*" if s["center"] == "all" else str(s["center"]),
                resource=str(s["resource"]),
                limit=int(s["limit"]),
                in_use=int(s["in_use"]),
                requested=int(s["requested"]),
            )
            for s in listed
        ]
    except (KeyError, TypeError, ValueError):
        return []


class Client:
    """JSON calls on ``/v1`` (and ``/metrics``) with the person's bearer token."""

    def __init__(self, transport: Transport, *, token: str, api: str) -> None:
        self._transport = transport
        self._token = token
        self.api = api

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        accept: str = "application/json",
    ) -> Reply:
        query = {key: _param(value) for key, value in (params or {}).items() if value is not None}
        target = path + (f"?{urlencode(query, doseq=True)}" if query else "")
        headers = {"Accept": accept, "User-Agent": "cloudctl"}
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        data = None
        if body is not None:
            data = json.dumps(body, ensure_ascii=False).encode("utf-8")
            headers["Content-Type"] = "application/json"
        reply = self._transport.request(method, target, headers=headers, body=data)
        if reply.status >= 400:
            raise _error(reply, api=self.api)
        if not 200 <= reply.status < 300:  # a redirect is not followed: the request was not carried out
            moved = reply.headers.get("location")
            raise errors.InvalidInput(
                f"{self.api} answered {reply.status}"
                + (f", pointing to {moved[:200]!r}" if moved else "")
                + ": nothing was done; log in with the API's own URL (`cloudctl login --api URL`)",
                field="api",
            )
        return reply

    def get(self, path: str, **params: Any) -> Any:
        return _json(self.call("GET", path, params=params))

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return _json(self.call("POST", path, params=params, body=body))

    def put(self, path: str, body: Any = None, **params: Any) -> Any:
        return _json(self.call("PUT", path, params=params, body=body))

    def delete(self, path: str, **params: Any) -> Any:
        return _json(self.call("DELETE", path, params=params))

    def pages(
        self, path: str, *, page_size: int = 200, start: str | None = None, **params: Any
    ) -> Iterator[Any]:
        """Every item of a paginated list (``{data, next_cursor}``) from cursor ``start``, page by page."""
        cursor = start
        while True:
            page = self.get(path, limit=page_size, cursor=cursor, **params)
            if not (isinstance(page, dict) and isinstance(page.get("data"), list)):
                raise errors.OperationFailed(f"the API answered {path} without a page of `data`", field="api")
            yield from page["data"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def close(self) -> None:
        self._transport.close()


def segment(value: str, *, field: str) -> str:
    """An id as one path segment (the rest escaped); refused naming ``field`` when it cannot be
    one (empty, or with a ``/``, which the API would read as a path of its own)."""
    if not value.strip() or "/" in value:
        raise errors.InvalidInput(f"{value!r} is not an id", field=field)
    return quote(value, safe="")


def _param(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _json(reply: Reply) -> Any:
    if not reply.body:
        return None
    try:
        return json.loads(reply.body)
    except ValueError:
        raise errors.OperationFailed(
            "the API answered with something that is not JSON", field="api"
        ) from None


def wait_for(
    poll: Callable[[], Any],
    *,
    done: Callable[[Any], bool],
    deadline_s: float,
    what: str,
    on_poll: Callable[[Any], None] | None = None,
    interval_s: float = 0.5,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Poll until ``done`` or the deadline; past it, or when the person stops waiting (Ctrl-C), exit 1
    naming what did not finish: it goes on in the management center, whatever the client does."""
    give_up_at = monotonic() + deadline_s
    try:
        while True:
            current = poll()
            if on_poll is not None:
                on_poll(current)
            if done(current):
                return current
            if monotonic() >= give_up_at:
                raise errors.OperationFailed(
                    f"{what} did not finish within {deadline_s:g} s; it goes on in the management center",
                    field="timeout",
                )
            sleep(interval_s)
    except KeyboardInterrupt:
        raise errors.OperationFailed(
            f"stopped waiting for {what}; it was not stopped and goes on in the management center",
            field="interrupted",
        ) from None


def open_transport(api: str) -> Transport:
    """The transport to a management center's URL (tests replace this to reach an app in process)."""
    return HttpTransport(api)
