"""A reverse proxy on loopback that forwards to one real server and injects faults on demand.

Tests put it between a driver and a real server (a ``moto_server``, an OpenStack API) and
program what goes wrong, in order::

    proxy = fault_proxy.FaultProxy("http://127.0.0.1:8774")
    proxy.fail(status=500, times=2)                   # the next two requests get a 500
    proxy.throttle(retry_after_s=7)                   # the one after gets 429, Retry-After: 7
    proxy.delay(seconds=0.5, path="/v2.1/servers")    # a request under that path waits 0.5 s
    proxy.drop()                                      # a connection is closed unanswered
    proxy.refuse() ... proxy.resume()                 # nothing listens: connections refused

Invariants:

- A request takes the first programmed fault that matches it (``method``; ``path``, a prefix
  of the request's path without its query) and has uses left. A request that no fault
  matches is forwarded unchanged, its ``Host`` header included, so signed requests (AWS
  SigV4) stay valid and servers that build links from ``Host`` keep clients on the proxy.
- Every request that reaches the proxy is recorded in ``requests``, before its answer is
  sent, so that once a client has its answer a test can count exactly how many attempts it
  made. A refused connection reaches nothing and records nothing.
- A delay is a real hold, meant to be short and paired with a client read timeout below it;
  ``close`` ends every hold at once, so closing the proxy never waits one out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import email.utils
import http.client
import http.server
import socket
import threading
import urllib.parse
from types import TracebackType
from typing import Any

LOOPBACK = "127.0.0.1"
UPSTREAM_TIMEOUT_S = 30.0
SERVE_POLL_INTERVAL_S = 0.05
"""How often the accept loop checks for ``refuse`` / ``close``: what stopping it waits at most."""
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED_HEADERS = HOP_BY_HOP_HEADERS | {"content-length", "expect"}
"""The proxy reads the whole body (answering any ``Expect: 100-continue`` itself) and frames it anew."""
BODILESS_STATUSES = frozenset({204, 304})
BAD_GATEWAY = 502


@dataclasses.dataclass(frozen=True)
class Seen:
    """One request that reached the proxy, and what became of it."""

    method: str
    path: str
    """The request target as sent, query included (``/v2.1/servers/detail?all_tenants=True``)."""
    fault: str | None
    """``fail``, ``throttle``, ``delay`` or ``drop``; ``None`` when forwarded unchanged."""
    status: int | None
    """The status the client was sent; ``None`` for a dropped connection or one still held."""


@dataclasses.dataclass
class _Fault:
    kind: str
    times: int
    method: str | None
    path: str | None
    status: int = 0
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hold_s: float = 0.0

    def matches(self, *, method: str, target: str) -> bool:
        return (
            self.times > 0
            and (self.method is None or self.method == method)
            and (self.path is None or urllib.parse.urlsplit(target).path.startswith(self.path))
        )


class FaultProxy:
    """An HTTP reverse proxy on an ephemeral loopback port in front of ``upstream_url``."""

    def __init__(self, upstream_url: str) -> None:
        upstream = urllib.parse.urlsplit(upstream_url)
        if upstream.scheme != "http" or upstream.hostname is None or upstream.path not in ("", "/"):
            raise ValueError(f"an upstream is http://host:port, not {upstream_url!r}")
        self.upstream_host = upstream.hostname
        self.upstream_port = upstream.port or 80
        self._faults: list[_Fault] = []
        self._requests: list[Seen] = []
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server: _Server | None = None
        self._serving: threading.Thread | None = None
        self.port = self._listen(port=0)

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # --- programming faults ------------------------------------------------------------

    def fail(
        self,
        *,
        status: int = 500,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
        body: bytes = b"",
        content_type: str = "text/plain",
    ) -> None:
        """Answer the next ``times`` matching requests with ``status`` (and ``body``), unforwarded."""
        answer = body or f"fault proxy: injected {status}".encode()
        self._program(
            _Fault(
                "fail",
                times,
                method,
                path,
                status=status,
                headers=(("Content-Type", content_type),),
                body=answer,
            )
        )

    def throttle(
        self,
        *,
        retry_after_s: int | None = None,
        until: datetime.datetime | None = None,
        times: int = 1,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with 429 and a ``Retry-After`` of
        ``retry_after_s`` seconds or, given ``until`` instead, of that moment as an HTTP date."""
        if (retry_after_s is None) == (until is None):
            raise ValueError("give either retry_after_s or until")
        retry_after = str(retry_after_s) if until is None else email.utils.format_datetime(until, usegmt=True)
        headers = (("Content-Type", "text/plain"), ("Retry-After", retry_after))
        self._program(
            _Fault(
                "throttle", times, method, path, status=429, headers=headers, body=b"fault proxy: slow down"
            )
        )

    def delay(
        self, seconds: float, *, times: int = 1, method: str | None = None, path: str | None = None
    ) -> None:
        """Hold the next ``times`` matching requests for ``seconds``, then forward and answer them."""
        self._program(_Fault("delay", times, method, path, hold_s=seconds))

    def drop(self, *, times: int = 1, method: str | None = None, path: str | None = None) -> None:
        """Close the connection of the next ``times`` matching requests without an answer."""
        self._program(_Fault("drop", times, method, path))

    def refuse(self) -> None:
        """Stop listening and close every open connection: new connections are refused."""
        self._stop_listening()

    def resume(self) -> None:
        """Listen again, on the same port, after ``refuse``."""
        if self._server is None:
            self._listen(port=self.port)

    def faults_left(self) -> int:
        """How many programmed fault uses no request has taken yet."""
        with self._lock:
            return sum(fault.times for fault in self._faults)

    @property
    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self._requests)

    def close(self) -> None:
        self._closing.set()
        self._stop_listening()

    # --- serving -----------------------------------------------------------------------

    def _program(self, fault: _Fault) -> None:
        if fault.times < 1:
            raise ValueError(f"a fault is used at least once, not {fault.times} times")
        with self._lock:
            self._faults.append(fault)

    def _listen(self, *, port: int) -> int:
        server = _Server((LOOPBACK, port), self)
        self._server = server
        self._serving = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": SERVE_POLL_INTERVAL_S},
            name=f"fault-proxy-{server.server_address[1]}",
            daemon=True,
        )
        self._serving.start()
        return int(server.server_address[1])

    def _stop_listening(self) -> None:
        server, serving = self._server, self._serving
        self._server = self._serving = None
        if server is not None and serving is not None:
            server.shutdown()
            server.server_close()
            serving.join()
        with self._lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            with contextlib.suppress(OSError):  # the client closed it first
                connection.shutdown(socket.SHUT_RDWR)

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)

    def _arrived(self, *, method: str, target: str) -> tuple[int, _Fault | None]:
        """Record a request and take the fault it gets; the index of its record."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(method=method, target=target)), None)
            if fault is not None:
                fault.times -= 1
            self._requests.append(
                Seen(method=method, path=target, fault=fault.kind if fault else None, status=None)
            )
            return len(self._requests) - 1, fault

    def _answered(self, index: int, status: int) -> None:
        with self._lock:
            self._requests[index] = dataclasses.replace(self._requests[index], status=status)


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], proxy: FaultProxy) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.proxy._opened(self.connection)

    def finish(self) -> None:
        self.server.proxy._closed(self.connection)
        with contextlib.suppress(OSError):  # the client went away; nothing is left to flush to it
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads ``FaultProxy.requests``, not a log."""

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except OSError:
            self.close_connection = True  # the client hung up (a timeout on its side, or a refuse)

    def proxy_request(self) -> None:
        proxy = self.server.proxy
        body = self._read_body()
        index, fault = proxy._arrived(method=self.command, target=self.path)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind in ("fail", "throttle"):
            self._answer(index, fault.status, list(fault.headers), fault.body)
            return
        if fault is not None and proxy._closing.wait(fault.hold_s):
            self.close_connection = True  # closed during the hold: nobody waits for the answer
            return
        status, headers, answer = self._forward(body)
        self._answer(index, status, headers, answer)

    # http.server dispatches a request to the handler's do_<METHOD>.
    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = proxy_request  # noqa: N815

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked_body()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_chunked_body(self) -> bytes:
        chunks = []
        while size := int(self.rfile.readline().split(b";", 1)[0], 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        upstream = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=UPSTREAM_TIMEOUT_S
        )
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in NOT_FORWARDED_HEADERS:
                    upstream.putheader(name, value)
            if body or "Content-Length" in self.headers or "Transfer-Encoding" in self.headers:
                upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body or None)
            response = upstream.getresponse()
            return response.status, response.getheaders(), response.read()
        except (OSError, http.client.HTTPException) as error:
            message = f"fault proxy: upstream {proxy.upstream_host}:{proxy.upstream_port}: {error}"
            return BAD_GATEWAY, [("Content-Type", "text/plain")], message.encode()
        finally:
            upstream.close()

    def _answer(self, index: int, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.server.proxy._answered(index, status)
        keeps_framing = self.command == "HEAD" or status in BODILESS_STATUSES
        self.send_response_only(status)
        for name, value in headers:
            lowered = name.lower()
            if lowered in HOP_BY_HOP_HEADERS or (lowered == "content-length" and not keeps_framing):
                continue
            self.send_header(name, value)
        if not keeps_framing:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if not keeps_framing:
            self.wfile.write(body)
