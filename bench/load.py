"""An HTTP load generator in a process of its own: ``python -m bench.load`` (driven by ``LoadProcess``).

The admission benchmark's clients used to be 32 threads of httpx in the benchmark's own
process, on the same two cores as the server: the client's CPU was part of what was measured.
This process is a lean client instead — asyncio streams, keep-alive connections, each request's
bytes encoded once — so it needs a small share of a core, and it reports the share it used.

Protocol: one JSON command per line on stdin, one JSON answer per line on stdout.
A command is ``{"url": ..., "path": ..., "requests": [{"headers": {...}, "body": {...}}, ...],
"connections": N, "count": N, "time_limit_s": S}``; connection ``i`` sends ``requests[i mod
len]`` over and over until ``count`` calls were made or ``time_limit_s`` passed. The answer has
``elapsed_s``, ``latencies_s`` (one per call), ``statuses`` (count per HTTP status, or the
error's name) and ``cpu_s``, the CPU this process spent in the burst (user + system).

Invariants:
- The clock starts once every connection is open, and stops when the last call answered.
- Each connection has one call in flight at a time (like a client thread).
- Only ``Content-Length`` responses are read (what uvicorn sends for JSON); anything else
  is counted as an error for that call and the connection is reopened.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any
from urllib.parse import urlsplit


class ProtocolError(Exception):
    """A response this client does not read (no Content-Length, malformed status line)."""


def encode_request(*, host: str, path: str, headers: dict[str, str], body: Any) -> bytes:
    payload = json.dumps(body, separators=(",", ":")).encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        *[f"{name}: {value}" for name, value in headers.items()],
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response off the connection; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, _, header_block = head.partition(b"\r\n")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ProtocolError(f"bad status line {status_line[:80]!r}")
    length = None
    for line in header_block.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length is None:
        raise ProtocolError("no Content-Length")
    if length:
        await reader.readexactly(length)
    return int(parts[1])


async def burst(command: dict[str, Any]) -> dict[str, Any]:
    target = urlsplit(command["url"])
    host, port = target.hostname or "127.0.0.1", target.port or 80
    encoded = [
        encode_request(host=f"{host}:{port}", path=command["path"], headers=r["headers"], body=r["body"])
        for r in command["requests"]
    ]
    connections = int(command["connections"])
    count = int(command["count"])
    streams = [await asyncio.open_connection(host, port) for _ in range(connections)]
    issued = 0
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    cpu_started = time.process_time()
    started = time.perf_counter()
    deadline = started + float(command["time_limit_s"])

    async def work(index: int) -> None:
        nonlocal issued
        reader, writer = streams[index]
        request = encoded[index % len(encoded)]
        while issued < count and time.perf_counter() < deadline:
            issued += 1
            began = time.perf_counter()
            try:
                writer.write(request)
                status = str(await read_response(reader))
            except (OSError, EOFError, asyncio.IncompleteReadError, ProtocolError, ValueError) as error:
                status = type(error).__name__
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                streams[index] = (reader, writer)
            latencies.append(time.perf_counter() - began)
            statuses[status] = statuses.get(status, 0) + 1

    await asyncio.gather(*(work(index) for index in range(connections)))
    elapsed_s = time.perf_counter() - started
    cpu_s = time.process_time() - cpu_started
    for _reader, writer in streams:
        writer.close()
    return {"elapsed_s": elapsed_s, "latencies_s": latencies, "statuses": statuses, "cpu_s": cpu_s}


def main() -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        answer = asyncio.run(burst(json.loads(line)))
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
