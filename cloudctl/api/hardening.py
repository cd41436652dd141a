"""The API's outer layer, as plain ASGI middleware: limits, request ids, source addresses, metrics.

It runs before any route, on every request, so it is written against the ASGI interface
itself (no per-request ``Request`` objects, no extra tasks) to stay cheap on the admission
path.

Invariants:
- A request with more than ``max_headers`` headers or ``max_header_bytes`` of them is
  answered 431; a body larger than ``max_body_bytes`` 413, without reading more of it than
  the limit (a ``Content-Length`` over the limit is refused before any byte is read).
- A JSON body nested deeper than ``MAX_JSON_DEPTH`` is answered 422 before it is parsed.
- A NUL character (U+0000) in the path, a query parameter or a string of a JSON body is
  answered 422 naming where (``path``, the parameter, the body field): PostgreSQL's text
  cannot hold one, so no route must pass it on to the store. A lone surrogate (U+D800 to U+DFFF,
  written ``\\ud800`` in JSON with no partner) in a string of a JSON body is answered so too: no
  UTF-8 text holds one, so neither the store, the audit chain nor an answer echoing it could.
- ``X-Request-ID`` is kept when it is 1 to 64 characters of ``[A-Za-z0-9._:-]``, otherwise
  replaced by a fresh id; the response carries the id in force, and every audit record and
  log line of the request is tagged with it.
- The source address is the peer's. ``X-Forwarded-For`` is believed only when the peer is a
  trusted proxy (``settings.trusted_proxies``); then the source is the nearest address in the
  header that is not itself a trusted proxy. From a trusted proxy, ``X-Forwarded-Proto``
  (its nearest value, ``http`` or ``https``) is also the request's scheme: TLS that ends at
  the proxy still makes the portal's cookies ``Secure``.
- Every answer carries ``X-Content-Type-Options: nosniff``: no browser reads a JSON problem
  that echoes a path, or a static script, as anything but its declared type.
- Every answer is counted in ``cloudctl_api_requests_total`` by route template and logged.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from cloudctl import logs, metrics
from cloudctl import settings as settings_module
from cloudctl.api import problems
from cloudctl.model import ids
from cloudctl.services import audit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,64}")
MAX_JSON_DEPTH = 32
MAX_FORWARDED_HOPS = 16
OWN_HEADERS = (b"x-request-id", b"x-content-type-options")
access_log = logging.getLogger("cloudctl.api.access")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def source_address(peer: str, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str:
    """The caller's address: the peer, or, when the peer is a trusted proxy, the nearest
    address of ``X-Forwarded-For`` (read right to left) that is not a trusted proxy."""
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    hops = [hop.strip() for value in forwarded_for for hop in value.split(",")][-MAX_FORWARDED_HOPS:]
    source = peer
    for hop in reversed(hops):
        try:
            address = ipaddress.ip_address(hop)
        except ValueError:
            return source  # garbage beyond the trusted hops: the last trusted hop is all we know
        source = str(address)
        if not any(address in network for network in trusted):
            return source
    return source


def _is_trusted(address: str, trusted: Sequence[Network]) -> bool:
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(parsed in network for network in trusted)


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether brackets nest deeper than ``limit`` outside strings (counted without parsing)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    in_string = escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


NUL_ESCAPE = b"\\u0000"
"""How a NUL character is written in JSON text (a raw one is not valid JSON)."""


def nul_character_at(path: str, query_string: bytes, body: bytes) -> str | None:
    """Where the request holds a NUL character: ``path``, a query parameter's name, or a JSON
    body field's dotted path (``from_centers.0``); ``None`` when nowhere."""
    if "\x00" in path:
        return "path"
    if b"%00" in query_string:
        for name, value in urllib.parse.parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
            if "\x00" in name or "\x00" in value:
                return name.replace("\x00", "") or "query"
    if NUL_ESCAPE in body:
        try:
            document = json.loads(body)
        except ValueError:
            return None  # not JSON: the route names what is wrong with it
        return _nul_character_in(document, ())
    return None


def _nul_character_in(value: Any, where: tuple[str, ...]) -> str | None:
    """The dotted path of the first string holding a NUL (of the object, for a key holding one)."""
    return _first_string_holding(value, where, lambda text: "\x00" in text)


SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89abcdefABCDEF]")
"""How a surrogate is written in JSON text (raw, it is not UTF-8, so not valid JSON)."""
SURROGATE = re.compile("[\ud800-\udfff]")
"""A surrogate left in a decoded string: JSON decodes a pair into the one character it stands for."""


def lone_surrogate_at(body: bytes) -> str | None:
    """The dotted path of the first JSON body string holding a lone surrogate; ``None`` when none."""
    if SURROGATE_ESCAPE.search(body) is None:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None  # not JSON: the route names what is wrong with it
    return _first_string_holding(document, (), lambda text: SURROGATE.search(text) is not None)


def _first_string_holding(value: Any, where: tuple[str, ...], holds: Callable[[str], bool]) -> str | None:
    """The dotted path of the first string that ``holds`` (of the object, for such a key)."""
    if isinstance(value, str):
        return (".".join(where) or "body") if holds(value) else None
    children = (
        value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    )
    for key, item in children:
        if holds(str(key)):
            return ".".join(where) or "body"
        found = _first_string_holding(item, (*where, str(key)), holds)
        if found is not None:
            return found
    return None


class _TooLarge(Exception):
    pass


class Hardening:
    """Plain ASGI middleware around the whole app (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, settings: settings_module.Settings) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.max_header_bytes = settings.max_header_bytes
        self.max_headers = settings.max_headers
        self.trusted: list[Network] = list(settings.trusted_proxies)
        self._counted: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        """The metric children of each (method, route, status) answered, looked up once."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        request_id = ""
        forwarded: list[str] = []
        forwarded_proto = ""
        content_length: int | None = None
        header_bytes = 0
        for name, value in headers:
            header_bytes += len(name) + len(value) + 4
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                request_id = candidate if REQUEST_ID.fullmatch(candidate) else ""
            elif name == b"x-forwarded-for":
                forwarded.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                forwarded_proto = value.decode("latin-1").rsplit(",", 1)[-1].strip().lower()
            elif name == b"content-length":
                content_length = int(value) if value.isdigit() else None
        request_id = request_id or ids.random_hex(32)
        field = "body"
        client = scope.get("client")
        peer = client[0] if client else "unknown"
        source = source_address(peer, forwarded, self.trusted)
        if forwarded_proto in ("http", "https") and _is_trusted(peer, self.trusted):
            scope["scheme"] = forwarded_proto
        scope.setdefault("state", {})["source"] = source
        status_holder = [500]

        async def send_tagged(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder[0] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *[(k, v) for k, v in message["headers"] if k.lower() not in OWN_HEADERS],
                    (b"x-request-id", request_id.encode()),
                    (b"x-content-type-options", b"nosniff"),
                ]
            await send(message)

        with audit.request_scope(request_id, source=source), logs.bind(request_id=request_id):
            try:
                refusal = self._refusal(len(headers), header_bytes, content_length)
                if refusal is None:
                    body_receive = await self._bounded_receive(scope, receive)
                    if body_receive is None:
                        refusal = ("body-too-large", 413, f"the body is larger than {self.max_body} bytes")
                    else:
                        receive_next, body = body_receive
                        nul_at = nul_character_at(scope.get("path", ""), scope.get("query_string", b""), body)
                        if json_depth_exceeds(body, MAX_JSON_DEPTH):
                            refusal = ("too-deep", 422, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
                        elif nul_at is not None:
                            refusal = ("nul-character", 422, "must not contain the NUL character (U+0000)")
                            field = nul_at
                        elif (surrogate_at := lone_surrogate_at(body)) is not None:
                            refusal = (
                                "lone-surrogate",
                                422,
                                "must not contain a lone surrogate (U+D800 to U+DFFF)",
                            )
                            field = surrogate_at
                if refusal is not None:
                    await self._refuse(scope, send_tagged, *refusal, field=field)
                else:
                    await self.app(scope, receive_next, send_tagged)
            finally:
                self._measure(scope, status_holder[0], time.perf_counter() - started)

    def _refusal(self, count: int, size: int, content_length: int | None) -> tuple[str, int, str] | None:
        if count > self.max_headers or size > self.max_header_bytes:
            return (
                "headers-too-large",
                431,
                f"at most {self.max_headers} headers of {self.max_header_bytes} bytes in all",
            )
        if content_length is not None and content_length > self.max_body:
            return "body-too-large", 413, f"the body is larger than {self.max_body} bytes"
        return None

    async def _bounded_receive(self, scope: Scope, receive: Receive) -> tuple[Receive, bytes] | None:
        """Read the whole body, up to the limit; a receive that replays it (``None``: too large)."""
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return receive, b""
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return receive, b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay, body

    async def _refuse(
        self, scope: Scope, send: Send, reason: str, status: int, detail: str, *, field: str = "body"
    ) -> None:
        metrics.API_REFUSED_EARLY.labels(reason=reason).inc()
        kind = {413: "payload-too-large", 431: "headers-too-large"}.get(status, "invalid-input")
        body = {
            "type": f"https://cloudctl.example/problems/{kind}",
            "title": kind.replace("-", " "),
            "status": status,
            "detail": f"{field}: {detail}" if status == 422 else detail,
            "instance": scope.get("path", ""),
        }
        if status == 422:
            body["field"] = field
        encoded = json.dumps(body).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", problems.MEDIA_TYPE.encode()),
                    (b"content-length", str(len(encoded)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": encoded})

    def _measure(self, scope: Scope, status: int, elapsed_s: float) -> None:
        route = scope.get("route")
        path = scope.get("path", "")
        template = getattr(route, "path", "unmatched")
        if path.startswith("/v1/") and not template.startswith("/v1") and template != "unmatched":
            template = "/v1" + template  # routers are mounted lazily: the prefix is not on the route
        method = scope.get("method", "")
        key = (method, template, str(status))
        children = self._counted.get(key)
        if children is None:
            children = self._counted[key] = (
                metrics.API_REQUESTS.labels(method=method, route=template, status=key[2]),
                metrics.API_LATENCY.labels(method=method, route=template),
            )
        children[0].inc()
        children[1].observe(elapsed_s)
        access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={"route": template, "status": status, "duration_ms": round(elapsed_s * 1e3, 3)},
        )
