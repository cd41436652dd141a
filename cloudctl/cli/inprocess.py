"""A ``Transport`` that hands each request to an ASGI application in this process.

Break-glass runs a command through the very API a remote command calls, over this transport
instead of a socket, so both paths share every route, check and audit record. The application
runs on a thread of its own per request: the reply returns as soon as the response is sent,
while work the route left for after the response (a failover run, a drill) goes on, and the
command follows it by polling as it would a remote server. ``close`` waits for that work.

Plain ASGI (a scope, ``receive`` and ``send``): nothing of FastAPI is imported here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from cloudctl import errors
from cloudctl.cli import client

Asgi = Callable[..., Any]
REPLY_DEADLINE_S = 3600.0


class AsgiTransport:
    def __init__(self, app: Asgi, *, client_host: str) -> None:
        self._app = app
        self._client_host = client_host
        self._threads: list[threading.Thread] = []

    def request(
        self, method: str, target: str, *, headers: dict[str, str], body: bytes | None
    ) -> client.Reply:
        path, _, query = target.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": unquote(path),
            "raw_path": path.encode("ascii"),
            "query_string": query.encode("ascii"),
            "root_path": "",
            "headers": [
                (b"host", b"cloudctl.local"),
                (b"content-length", str(len(body or b"")).encode()),
                *(
                    (name.lower().encode("latin-1"), value.encode("latin-1"))
                    for name, value in headers.items()
                ),
            ],
            "client": (self._client_host, 0),
            "server": ("cloudctl.local", 80),
        }
        answered = threading.Event()
        reply: dict[str, Any] = {"status": 500, "headers": {}, "body": bytearray()}
        failure: list[BaseException] = []
        sent: list[asyncio.Event] = []  # the response's last body is sent (made on the app's loop)

        async def receive() -> dict[str, Any]:
            if not reply.get("received"):
                reply["received"] = True
                return {"type": "http.request", "body": body or b"", "more_body": False}
            # The client stays until the answer is whole: a streamed response (the audit export)
            # listens for the disconnect while it sends, and stops at it.
            if not sent:
                sent.append(asyncio.Event())
            await sent[0].wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                reply["status"] = message["status"]
                reply["headers"] = {
                    name.decode("latin-1").lower(): value.decode("latin-1")
                    for name, value in message.get("headers", [])
                }
            elif message["type"] == "http.response.body":
                reply["body"].extend(message.get("body", b""))
                if not message.get("more_body", False):
                    answered.set()
                    if not sent:
                        sent.append(asyncio.Event())
                    sent[0].set()

        def run() -> None:
            try:
                asyncio.run(self._app(scope, receive, send))
            except BaseException as error:  # reported to the caller if no answer was sent
                failure.append(error)
            finally:
                answered.set()

        thread = threading.Thread(target=run, name=f"cloudctl-local {method} {path}", daemon=False)
        self._threads.append(thread)
        thread.start()
        if not answered.wait(REPLY_DEADLINE_S):
            raise errors.BackendUnavailable("the local API did not answer", field="api")
        if failure and not reply["body"]:
            raise errors.OperationFailed(f"the local API failed: {failure[0]}", field="api")
        return client.Reply(status=reply["status"], headers=reply["headers"], body=bytes(reply["body"]))

    def close(self) -> None:
        """Wait for the work the API left running after its answers (runs, drills)."""
        for thread in self._threads:
            thread.join()
        self._threads.clear()
