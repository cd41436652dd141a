"""Fixtures of the observability tests: Prometheus' tools, a live API server, the exposition parsed.

``promtool`` and ``prometheus`` come from ``CLOUDCTL_PROMTOOL``/``CLOUDCTL_PROMETHEUS`` or PATH
(``scripts/ensure-prometheus.sh`` installs Debian's package and prints both paths). When either
is missing the tests fail loudly, naming the script: a misconfigured environment never skips.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from prometheus_client import metrics_core, parser

from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.services import observability

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"


def _tool(name: str, variable: str) -> str:
    path = os.environ.get(variable) or shutil.which(name)
    if not path or not Path(path).exists():
        pytest.fail(
            f"{name} not found (env {variable} or PATH); run scripts/ensure-prometheus.sh, which installs "
            "Debian's prometheus package and prints the paths",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _tool("promtool", "CLOUDCTL_PROMTOOL")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return _tool("prometheus", "CLOUDCTL_PROMETHEUS")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def families(ctx: ctx_module.Context) -> dict[str, metrics_core.Metric]:
    """The exposition of ``ctx`` parsed, by family name."""
    text = observability.exposition(ctx).decode()
    return {family.name: family for family in parser.text_string_to_metric_families(text)}


def samples(ctx: ctx_module.Context, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """The samples of one family, keyed by their sorted labels."""
    family = families(ctx)[name]
    return {tuple(sorted(sample.labels.items())): sample.value for sample in family.samples}


@pytest.fixture
def server_url(ctx: ctx_module.Context) -> Iterator[str]:
    """``cloudctl serve``'s API (without the reconcile loop) on a free loopback port."""
    port = free_port()
    config = uvicorn.Config(
        api_app.create_app(context=ctx), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    started = threading.Event()
    for _ in range(1000):  # bounded wait for the server, 10 s at most
        if server.started:
            break
        started.wait(0.01)
    assert server.started, "uvicorn did not start"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
