"""A real Prometheus on loopback scrapes a running cloudctl API and answers with the expected series.

The API runs in uvicorn on a free port (as ``cloudctl serve`` does, without the reconcile loop);
Prometheus scrapes it every second and evaluates the shipped alert rules. The test waits by
polling Prometheus' HTTP API with a deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl import metrics
from cloudctl.services import context as ctx_module
from cloudctl.services import housekeeping, identity, scrape
from tests.observability import conftest

T = TypeVar("T")
DEADLINE_S = 60.0


def wait_for(what: str, probe: Callable[[], T | None], *, process: subprocess.Popen[bytes], log: Path) -> T:
    """Poll ``probe`` until it returns something, Prometheus exits, or the deadline passes."""
    deadline = time.monotonic() + DEADLINE_S
    pause = threading.Event()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prometheus exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        result = probe()
        if result is not None:
            return result
        pause.wait(0.2)
    pytest.fail(f"no {what} within {DEADLINE_S:.0f} s; prometheus log:\n{log.read_text()[-3000:]}")


@pytest.fixture
def prometheus(
    prometheus_binary: str, server_url: str, ctx: ctx_module.Context, tmp_path: Path
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """Prometheus scraping ``server_url`` every second with the shipped rules and the API's scrape
    token (from its file, as ``dashboards/prometheus.yml`` reads it); its URL, process, log."""
    rules = conftest.DASHBOARDS / "alerts.rules.yml"
    scrape.token(ctx)  # made on first use, as the first scrape would make it
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
        "rule_files": [str(rules)],
        "scrape_configs": [
            {
                "job_name": "cloudctl",
                "metrics_path": "/metrics",
                "authorization": {"type": "Bearer", "credentials_file": str(scrape.token_file(ctx))},
                "static_configs": [{"targets": [server_url.removeprefix("http://")]}],
            }
        ],
    }
    config_file = tmp_path / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    port = conftest.free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}", process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def instant(prometheus_url: str, query: str) -> list[dict[str, Any]] | None:
    """The result vector of an instant query, or ``None`` while Prometheus cannot answer or has nothing."""
    try:
        response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": query}, timeout=5)
    except httpx.TransportError:
        return None
    if response.status_code != 200:
        return None
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result or None


def one_value(result: list[dict[str, Any]]) -> float:
    (series,) = result
    return float(series["value"][1])


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_prometheus_scrapes_the_state_of_the_estate_from_a_running_api(
    ctx: ctx_module.Context, server_url: str, prometheus: tuple[str, subprocess.Popen[bytes], Path]
) -> None:
    url, process, log = prometheus
    # What serve's leader does when it starts (the audit-checkpoint pass); this server runs no
    # passes. Prometheus judges the checkpoint's age by its own clock: bring the test's clock to now.
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(max(time.time() - ctx.clock.now(), 0.0))
    assert housekeeping.find("audit-checkpoint").run(ctx) is None
    department = ctx.topology.org.children[0].children[0]
    (limit_spec,) = [spec for spec in department.quotas if spec.center == "qd-a"]
    operator = identity.local_operator("secadmin")
    secret = identity.create_token(ctx, principal=operator, role="dept-user", department=department.id).secret
    ordered = httpx.post(
        f"{server_url}/v1/requests",
        json={"offering": "vm.small", "tier": "silver", "preferred_center": "qd-a"},
        headers={"Authorization": f"Bearer {secret}"},
        timeout=30,
    )
    assert ordered.status_code == 201, ordered.text
    refused = httpx.get(f"{server_url}/v1/catalog", headers={"Authorization": "Bearer cct_x.y"}, timeout=30)
    assert refused.status_code == 401

    def poll(query: str) -> list[dict[str, Any]]:
        return wait_for(query, lambda: instant(url, query), process=process, log=log)

    assert one_value(poll('cloudctl_center_up{center="qd-a"}')) == 1.0
    assert {series["metric"]["center"] for series in poll("cloudctl_center_up == 1")} == {
        center.name for center in ctx.topology.centers
    }
    quota = f'node="{department.id}",center="qd-a",resource="vcpu"'
    assert one_value(poll(f"cloudctl_quota_limit{{{quota}}}")) == float(limit_spec.vcpu or 0)
    assert one_value(poll(f"cloudctl_quota_reserved{{{quota}}}")) == float(
        ctx.topology.offering("vm.small").vcpu
    )
    assert one_value(poll("sum(cloudctl_requests)")) == 1.0
    assert one_value(poll('cloudctl_replication_rpo_target_seconds{tier="silver"}')) == float(
        ctx.topology.tier("silver").rpo_target_s
    )
    assert one_value(poll("cloudctl_audit_chain_ok")) == 1.0
    # Process counters: other tests in this process count too, so compare with this process' registry.
    failures = metrics.REGISTRY.get_sample_value(
        "cloudctl_auth_failures_total", {"reason": "malformed bearer token"}
    )
    assert failures is not None and failures >= 1
    assert (
        one_value(poll(f'cloudctl_auth_failures_total{{reason="malformed bearer token"}} >= {failures}'))
        == failures
    )

    def rules_evaluated() -> list[dict[str, Any]] | None:
        groups = httpx.get(f"{url}/api/v1/rules", timeout=5).json()["data"]["groups"]
        evaluated = [g for g in groups if not g["lastEvaluation"].startswith("0001")]
        return groups if groups and len(evaluated) == len(groups) else None

    groups = wait_for("evaluated rule groups", rules_evaluated, process=process, log=log)
    assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])
    firing = [a for a in httpx.get(f"{url}/api/v1/alerts", timeout=5).json()["data"]["alerts"]]
    assert [a["labels"]["alertname"] for a in firing if a["state"] == "firing"] == []
