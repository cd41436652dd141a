"""Real S3 / Route 53 servers for the tests: one ``moto_server`` process per center, on loopback.

Separate processes, because threaded moto servers in one process share their state, and a
center must not see another center's buckets. ``start`` launches every process at once
(each on its own free port), then waits, with a bounded poll, until each answers HTTP;
a server that exits or stays silent raises ``ServerDidNotStart`` with the tail of its
log, so a broken environment fails loudly and is never skipped. ``stop`` ends exactly
the processes ``start`` made.

Run by hand to get servers for a shell session (Ctrl-C stops them)::

    .venv/bin/python -m tests.integration.moto_servers qd-a dz-dr
"""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

LOOPBACK = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
POLL_INTERVAL_S = 0.05
STOP_TIMEOUT_S = 10.0
ACCESS_KEY = "testing"
SECRET_KEY = "testing"  # moto accepts any credentials
REGION = "us-east-1"


class ServerDidNotStart(RuntimeError):
    """A moto server process exited or did not answer in time."""


@dataclasses.dataclass
class MotoServer:
    """One ``moto_server`` process serving one center's S3 and Route 53 APIs."""

    center: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def log_tail(self, *, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def moto_server_executable() -> Path:
    """The ``moto_server`` script next to this interpreter (the venv's)."""
    executable = Path(sys.executable).with_name("moto_server")
    if not executable.exists():
        raise ServerDidNotStart(f"no moto_server at {executable}: install moto[server] into the venv")
    return executable


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def closed_port() -> int:
    """A loopback port where connections are refused: an unreachable endpoint."""
    return free_port()


def start(
    centers: Sequence[str], *, log_dir: Path, startup_timeout_s: float = STARTUP_TIMEOUT_S
) -> list[MotoServer]:
    """One running server per center, each answering HTTP; ``ServerDidNotStart`` otherwise.

    If any server fails to start, the ones already launched are stopped before raising.
    """
    executable = moto_server_executable()
    log_dir.mkdir(parents=True, exist_ok=True)
    servers: list[MotoServer] = []
    try:
        ports: set[int] = set()
        for center in centers:
            port = free_port()
            while port in ports:
                port = free_port()
            ports.add(port)
            log_path = log_dir / f"moto-{center}-{port}.log"
            with log_path.open("wb") as log:
                process = subprocess.Popen(
                    [str(executable), "-H", LOOPBACK, "-p", str(port)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            servers.append(MotoServer(center=center, port=port, process=process, log_path=log_path))
        deadline = time.monotonic() + startup_timeout_s
        for server in servers:
            _wait_until_answering(server, deadline=deadline, timeout_s=startup_timeout_s)
    except BaseException:
        stop(servers)
        raise
    return servers


def stop(servers: Sequence[MotoServer]) -> None:
    """Terminate the given server processes (and only those), killing any that linger."""
    for server in servers:
        if server.process.poll() is None:
            server.process.terminate()
    for server in servers:
        try:
            server.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=STOP_TIMEOUT_S)


def _wait_until_answering(server: MotoServer, *, deadline: float, timeout_s: float) -> None:
    while True:
        if server.process.poll() is not None:
            raise ServerDidNotStart(
                f"moto_server for {server.center} on port {server.port} exited with "
                f"{server.process.returncode}:\n{server.log_tail()}"
            )
        if _answers(server.endpoint_url):
            return
        if time.monotonic() > deadline:
            raise ServerDidNotStart(
                f"moto_server for {server.center} on port {server.port} did not answer within "
                f"{timeout_s:g} s:\n{server.log_tail()}"
            )
        time.sleep(POLL_INTERVAL_S)  # waiting for a port to open: the one bounded poll allowed


def _answers(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=1.0):
            return True
    except urllib.error.HTTPError:
        return True  # it answered, if not with 200
    except OSError:
        return False


def raw_client(server: MotoServer, service: str = "s3") -> Any:
    """A plain boto3 client of the server, to act behind a driver's back in tests."""
    return boto3.client(
        service,
        endpoint_url=server.endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        region_name=REGION,
    )


def purge_bucket(server: MotoServer, bucket: str) -> None:
    """Delete a bucket with every version of every object in it, in a few requests; quiet if missing."""
    client = raw_client(server)
    try:
        pages = client.get_paginator("list_object_versions").paginate(Bucket=bucket)
        for page in pages:
            doomed = [
                {"Key": entry["Key"], "VersionId": entry["VersionId"]}
                for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if doomed:
                client.delete_objects(Bucket=bucket, Delete={"Objects": doomed, "Quiet": True})
        client.delete_bucket(Bucket=bucket)
    except client.exceptions.NoSuchBucket:
        return


def serve_for_session(request: pytest.FixtureRequest, *, centers: Sequence[str]) -> dict[str, MotoServer]:
    """Start one server per center for a session-scoped fixture and register their stop at once.

    A server that does not come up fails the tests that need it, loudly, never skips them.
    """
    log_dir = request.getfixturevalue("tmp_path_factory").mktemp("moto-logs")
    try:
        servers = start(centers, log_dir=log_dir)
    except ServerDidNotStart as error:
        pytest.fail(f"moto servers did not start: {error}", pytrace=False)
    request.addfinalizer(lambda: stop(servers))
    return {server.center: server for server in servers}


def main(argv: Sequence[str]) -> int:
    centers = list(argv) or ["center-a", "center-b"]
    servers = start(centers, log_dir=Path(".moto-logs"))
    try:
        for server in servers:
            print(f"{server.center}\t{server.endpoint_url}\tpid {server.process.pid}")
        print("Ctrl-C stops them.")
        while all(server.process.poll() is None for server in servers):
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        stop(servers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
