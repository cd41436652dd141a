"""Dashboards and alert rules use exactly what cloudctl exports, parse as PromQL, and pass promtool.

The metric names are checked against the exposition of an initialised context (the same text
``/metrics`` serves); PromQL is checked by promtool itself, each panel query compiled as a
recording rule; the alert rules' own unit tests run under ``promtool test rules``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import parser

from cloudctl.services import context as ctx_module
from cloudctl.services import observability
from tests.observability import conftest

DASHBOARDS = conftest.DASHBOARDS
RULES = DASHBOARDS / "alerts.rules.yml"
RULE_TESTS = sorted((DASHBOARDS / "tests").glob("*.yml"))
METRIC_NAME = re.compile(r"\bcloudctl_[a-zA-Z0-9_]+")
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
GRAFANA_INTERVALS = {"__rate_interval", "__interval", "__range"}
EXPECTED_DASHBOARDS = {
    "cloudctl-overview",
    "cloudctl-quotas",
    "cloudctl-replication-dr",
    "cloudctl-security",
    "cloudctl-control-plane",
    "cloudctl-showback-capacity",
}
SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "info": ("_info",),
}


def dashboards() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"))
        found[path.name] = document
    return found


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(dashboard: dict[str, Any]) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            yield panel, target


def variable_queries(dashboard: dict[str, Any]) -> Iterator[str]:
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield query["query"] if isinstance(query, dict) else query


def rule_expressions() -> Iterator[tuple[str, str]]:
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            yield rule.get("alert") or rule["record"], rule["expr"]


def as_promql(expression: str) -> str:
    """A panel query with Grafana's variables replaced the way Grafana would, by plain values."""

    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        return "5m" if name in GRAFANA_INTERVALS else "x"

    return GRAFANA_VARIABLE.sub(value, expression)


def series_names(ctx: ctx_module.Context) -> set[str]:
    """Every series name the exposition of ``ctx`` offers: families, their samples' names, suffixes."""
    text = observability.exposition(ctx).decode()
    names: set[str] = set()
    for family in parser.text_string_to_metric_families(text):
        names.add(family.name)
        names.update(family.name + suffix for suffix in SERIES_SUFFIXES.get(family.type, ()))
        names.update(sample.name for sample in family.samples)
    return names


def test_the_six_dashboards_are_there_with_unique_uids() -> None:
    uids = [dashboard["uid"] for dashboard in dashboards().values()]
    assert sorted(uids) == sorted(EXPECTED_DASHBOARDS)


@pytest.mark.parametrize("name", sorted(dashboards()))
def test_a_dashboard_is_provisionable_and_reads_from_its_datasource_variable(name: str) -> None:
    dashboard = dashboards()[name]
    assert "id" not in dashboard or dashboard["id"] is None, "provisioned dashboards carry no database id"
    assert "cloudctl" in dashboard["tags"]
    (datasource,) = [v for v in dashboard["templating"]["list"] if v["name"] == "datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "query"]
    assert all(v["datasource"]["uid"] == "${datasource}" for v in variables)
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    queries = list(panel_queries(dashboard))
    assert queries, "the dashboard queries something"
    for panel, target in queries:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert target["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        assert METRIC_NAME.search(target["expr"]), f"{panel['title']}: queries no cloudctl series"


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_every_metric_a_dashboard_or_alert_rule_uses_is_in_the_exposition(ctx: ctx_module.Context) -> None:
    exported = series_names(ctx)
    used: dict[str, set[str]] = {}
    for name, dashboard in dashboards().items():
        for panel, target in panel_queries(dashboard):
            for metric in METRIC_NAME.findall(target["expr"]):
                used.setdefault(metric, set()).add(f"{name}: {panel['title']}")
        for query in variable_queries(dashboard):
            for metric in METRIC_NAME.findall(query):
                used.setdefault(metric, set()).add(f"{name}: variable")
    for alert, expression in rule_expressions():
        for metric in METRIC_NAME.findall(expression):
            used.setdefault(metric, set()).add(f"alerts.rules.yml: {alert}")
    missing = {metric: sorted(where) for metric, where in used.items() if metric not in exported}
    assert not missing, f"used but not exported: {missing}"
    assert len(used) >= 25


def promtool_check_rules(promtool: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120, check=False
    )


def write_panel_rules(path: Path, expressions: dict[str, list[tuple[str, str]]]) -> None:
    groups = [
        {"name": group, "rules": [{"record": record, "expr": expr} for record, expr in rules]}
        for group, rules in expressions.items()
    ]
    path.write_text(yaml.safe_dump({"groups": groups}, allow_unicode=True), encoding="utf-8")


def test_every_panel_query_parses_as_promql(promtool: str, tmp_path: Path) -> None:
    expressions: dict[str, list[tuple[str, str]]] = {}
    for dashboard in dashboards().values():
        group = expressions.setdefault(dashboard["uid"], [])
        for panel, target in panel_queries(dashboard):
            record = f"dashboard:{dashboard['uid'].replace('-', '_')}:panel_{panel['id']}_{target['refId']}"
            promql = as_promql(target["expr"])
            assert "$" not in promql, f"{panel['title']}: unreplaced variable in {promql}"
            group.append((record, promql))
    rules = tmp_path / "panels.rules.yml"
    write_panel_rules(rules, expressions)
    result = promtool_check_rules(promtool, rules)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(group) for group in expressions.values())} rules found" in result.stdout


def test_the_promql_check_rejects_a_broken_query(promtool: str, tmp_path: Path) -> None:
    rules = tmp_path / "broken.rules.yml"
    write_panel_rules(rules, {"broken": [("dashboard:broken", "sum(rate(cloudctl_api_requests_total[5m])")]})
    result = promtool_check_rules(promtool, rules)
    assert result.returncode != 0
    assert (
        "dashboard:broken" in result.stdout + result.stderr or "parse error" in result.stdout + result.stderr
    )


def test_the_alert_rules_pass_promtool_check_rules(promtool: str) -> None:
    result = promtool_check_rules(promtool, RULES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    assert RULE_TESTS, "dashboards/tests/*.yml hold the rules' unit tests"
    result = subprocess.run(
        [promtool, "test", "rules", *map(str, RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_both_firing_and_quiet() -> None:
    alerts = {name for name, _ in rule_expressions()}
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert alerts == firing, f"alerts without a firing test: {alerts - firing}"
    assert alerts == quiet, f"alerts without a quiet test: {alerts - quiet}"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for group in yaml.safe_load(RULES.read_text(encoding="utf-8"))["groups"]:
        for rule in group["rules"]:
            assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
            assert rule["annotations"]["summary"], rule["alert"]


def test_the_example_prometheus_config_passes_promtool(promtool: str, tmp_path: Path) -> None:
    """Copied as its comment says: beside the rules and the API's scrape token."""
    for name in ("prometheus.yml", "alerts.rules.yml"):
        shutil.copy(DASHBOARDS / name, tmp_path / name)
    (tmp_path / "cloudctl-metrics.token").write_text("a-scrape-token-of-at-least-32-characters\n")
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_names_a_prometheus_datasource_and_a_file_provider() -> None:
    datasources = yaml.safe_load((DASHBOARDS / "provisioning/datasources/cloudctl.yml").read_text())
    providers = yaml.safe_load((DASHBOARDS / "provisioning/dashboards/cloudctl.yml").read_text())
    assert datasources["apiVersion"] == providers["apiVersion"] == 1
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    assert [(p["type"], bool(p["options"]["path"])) for p in providers["providers"]] == [("file", True)]
