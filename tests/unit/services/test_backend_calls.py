"""``services.drivers`` builds each real driver with the call policy its topology's ``calls:`` sets:
the driver's ``RetryPolicy`` defaults, overridden field by field. Building a driver contacts no
server, so no server is needed here; ``tests/integration/test_tuned_backends.py`` shows the policy
at work against real servers."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl import clock as clocks
from cloudctl import settings as settings_module
from cloudctl.drivers import kubernetes, s3
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers, setup
from cloudctl.store import db
from tests.conftest import POLICIES, TOPOLOGY

ENDPOINT_URL = "http://127.0.0.1:9000"
"""Nothing listens there: building the drivers sends nothing."""

TunedContext = Callable[[dict[str, tuple[dict[str, str], dict[str, Any]]]], ctx_module.Context]


def write_kubeconfig(path: Path, *, context: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": context, "cluster": {"server": "http://127.0.0.1:6443"}}],
        "users": [{"name": "cloudctl", "user": {"token": "t"}}],
        "contexts": [{"name": context, "context": {"cluster": context, "user": "cloudctl"}}],
        "current-context": context,
    }
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    return path


@pytest.fixture
def tuned_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TunedContext]:
    """``tuned_context(centers)``: an initialised context whose topology gives the named centers
    ``drivers`` and ``backends`` (``{center: (drivers, backends)}``)."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    opened: list[tuple[ctx_module.Context, db.Store]] = []

    def make(centers: dict[str, tuple[dict[str, str], dict[str, Any]]]) -> ctx_module.Context:
        data: dict[str, Any] = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
        for center in data["centers"]:
            if center["name"] in centers:
                center["drivers"], center["backends"] = centers[center["name"]]
        path = tmp_path / "topology.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        store = db.Store(db.sqlite_url(tmp_path))
        settings = settings_module.Settings(home=tmp_path, topology=path, policies=POLICIES)
        ctx = ctx_module.Context(settings=settings, clock=clocks.ManualClock(), _store=store)
        opened.append((ctx, store))
        setup.initialise(ctx)
        return ctx

    yield make
    for ctx, store in opened:
        ctx.close()
        store.dispose()


def test_the_object_storage_driver_carries_the_policy_its_calls_set(tuned_context: TunedContext) -> None:
    ctx = tuned_context(
        {
            "qd-a": (
                {"object_storage": "s3"},
                {"s3": {"endpoint_url": ENDPOINT_URL, "calls": {"attempts": 2, "timeout_s": 0.5}}},
            )
        }
    )

    built = drivers.center_drivers(ctx, "qd-a").object_storage

    assert built.retry == dataclasses.replace(s3.RetryPolicy(), attempts=2, read_timeout_s=0.5)


def test_the_traffic_driver_carries_the_policy_its_calls_set(tuned_context: TunedContext) -> None:
    calls = {"connect_timeout_s": 1.5, "max_wait_s": 0.5, "max_retry_after_s": 0}
    ctx = tuned_context(
        {"mgmt": ({"traffic": "dns"}, {"dns": {"endpoint_url": ENDPOINT_URL, "calls": calls}})}
    )

    built = drivers.center_drivers(ctx, "mgmt").traffic

    assert built.retry == dataclasses.replace(
        s3.RetryPolicy(), connect_timeout_s=1.5, max_wait_s=0.5, max_retry_after_s=0.0
    )


def test_the_containers_driver_carries_the_policy_its_calls_set(
    tuned_context: TunedContext, tmp_path: Path
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", context="qd-b")
    ctx = tuned_context(
        {
            "qd-b": (
                {"containers": "kubernetes"},
                {"kubernetes": {"kubeconfig": str(kubeconfig), "calls": {"attempts": 1, "timeout_s": 12}}},
            )
        }
    )

    built = drivers.center_drivers(ctx, "qd-b").containers

    assert built.retry == dataclasses.replace(kubernetes.RetryPolicy(), attempts=1, read_timeout_s=12.0)
    assert built.retry.request_timeout == (kubernetes.RetryPolicy().connect_timeout_s, 12.0)


def test_a_backend_without_calls_keeps_the_drivers_defaults(tuned_context: TunedContext) -> None:
    ctx = tuned_context({"qd-a": ({"object_storage": "s3"}, {"s3": {"endpoint_url": ENDPOINT_URL}})})

    assert drivers.center_drivers(ctx, "qd-a").object_storage.retry == s3.RetryPolicy()
