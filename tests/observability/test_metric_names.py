"""Every family ``/metrics`` serves is named and typed the same way, and promtool finds no fault.

The conventions (Prometheus' own): a counter's series end in ``_total`` and no family exposes a
``_created`` series; nothing but a counter ends in ``_total``; a family measuring time or size
ends in its base unit (``_seconds``, ``_bytes``), before ``_total`` for a counter; every family
has help text and is cloudctl's own (``cloudctl_``) or the client library's process and
Python families. The exposition is scraped over HTTP as Prometheus scrapes it.
"""

from __future__ import annotations

import subprocess

from fastapi.testclient import TestClient
from prometheus_client import parser

from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.services import scrape as scrape_service

LIBRARY_PREFIXES = ("process_", "python_")
SERIES_SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
    "gauge": ("",),
    "info": ("_info",),
    "unknown": ("",),
}
UNITS = {"second": "_seconds", "byte": "_bytes"}


def scrape(ctx: ctx_module.Context) -> str:
    with TestClient(api_app.create_app(context=ctx)) as client:
        client.get("/healthz")  # at least one request measured
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {scrape_service.token(ctx)}"})
    assert answer.status_code == 200
    return answer.text


def faults_in(text: str) -> list[str]:
    faults = []
    for family in parser.text_string_to_metric_families(text):
        name, kind = family.name, family.type
        if not name.startswith("cloudctl_") and not name.startswith(LIBRARY_PREFIXES):
            faults.append(f"{name}: not cloudctl's (cloudctl_) nor the client library's")
        if not family.documentation.strip():
            faults.append(f"{name}: no help text")
        if name.endswith("_created"):  # how the text format shows a counter's creation time
            faults.append(f"{name}: a _created series")
            continue
        if kind != "counter" and name.endswith("_total"):
            faults.append(f"{name}: a {kind} named like a counter")
        for word, suffix in UNITS.items():
            if f"_{word}" in name and not name.endswith(suffix):
                faults.append(f"{name}: measures {word}s but does not end in {suffix}")
        for sample in family.samples:
            if not any(sample.name == name + suffix for suffix in SERIES_SUFFIXES[kind]):
                faults.append(f"{name}: a {kind} with a series named {sample.name}")
    return faults


def test_every_family_is_named_and_typed_consistently(ctx: ctx_module.Context) -> None:
    assert faults_in(scrape(ctx)) == []


def test_a_family_named_against_the_conventions_is_found() -> None:
    bad = (
        "# HELP cloudctl_jobs_total Jobs.\n# TYPE cloudctl_jobs_total gauge\ncloudctl_jobs_total 1\n"
        "# HELP cloudctl_lag_second Lag.\n# TYPE cloudctl_lag_second gauge\ncloudctl_lag_second 1\n"
        "# HELP cloudctl_logins_total Logins.\n# TYPE cloudctl_logins_total counter\n"
        "cloudctl_logins_total 1\n"
        "# HELP cloudctl_logins_created Logins.\n# TYPE cloudctl_logins_created gauge\n"
        "cloudctl_logins_created 1.7e9\n# TYPE other_thing gauge\nother_thing 1\n"
    )
    assert faults_in(bad) == [
        "cloudctl_jobs_total: a gauge named like a counter",
        "cloudctl_lag_second: measures seconds but does not end in _seconds",
        "cloudctl_logins_created: a _created series",
        "other_thing: not cloudctl's (cloudctl_) nor the client library's",
        "other_thing: no help text",
    ]


def test_promtool_finds_no_fault_in_the_exposition(ctx: ctx_module.Context, promtool: str) -> None:
    checked = subprocess.run(
        [promtool, "check", "metrics"],
        input=scrape(ctx),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (checked.returncode, checked.stdout + checked.stderr) == (0, "")
