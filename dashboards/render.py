"""Draw a few panels of the cloudctl dashboards into one PNG, from a running Prometheus' answers.

For the README and for reports where no Grafana is at hand: the panels' PromQL is read from the
dashboard JSON beside this script (so the picture shows exactly what the dashboards query), run
against Prometheus' HTTP API (``/api/v1/query_range`` for time series, ``/api/v1/query`` for
bar gauges), and drawn with matplotlib (the optional ``docs`` extra)::

    python dashboards/render.py --prometheus http://127.0.0.1:9090 --minutes 15 --out dashboards/overview.png

Grafana variables are replaced the way an "All" selection would: ``$__rate_interval`` by
``--rate-interval``, a variable given with ``--var NAME=VALUE`` by its value, any other by ``.*``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_PANELS = (
    ("cloudctl-overview", "Capacity granted to departments (%)"),
    ("cloudctl-overview", "Requests by state"),
    ("cloudctl-quotas", "Most used quotas: (used + reserved) / limit"),
    ("cloudctl-replication-dr", "Replication lag (current RPO) vs target"),
    ("cloudctl-replication-dr", "Measured RPO vs target"),
    ("cloudctl-security", "Authentication failures by reason (per minute)"),
)
VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
MAX_SERIES = 10


def load_panels(wanted: tuple[tuple[str, str], ...]) -> list[dict[str, Any]]:
    by_uid = {}
    for path in sorted(HERE.glob("*.json")):
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        by_uid[dashboard["uid"]] = dashboard
    found = []
    for uid, title in wanted:
        panel = next((p for p in by_uid[uid]["panels"] if p.get("title") == title), None)
        if panel is None:
            raise SystemExit(f"render.py: no panel {title!r} in dashboard {uid}")
        found.append(panel)
    return found


def promql(expression: str, *, rate_interval: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = next(group for group in match.groups() if group)
        if name in {"__rate_interval", "__interval", "__range"}:
            return rate_interval
        return variables.get(name, ".*")

    return VARIABLE.sub(value, expression)


def ask(prometheus: str, endpoint: str, params: dict[str, str]) -> list[dict[str, Any]]:
    url = f"{prometheus.rstrip('/')}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=30) as response:
        body = json.load(response)
    if body.get("status") != "success":
        raise SystemExit(f"render.py: Prometheus refused {params.get('query')!r}: {body}")
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def legend(template: str, labels: dict[str, str]) -> str:
    if not template or template == "__auto":
        return ", ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "__name__") or "value"
    return LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), template)


def draw(
    axes: Any,
    panel: dict[str, Any],
    *,
    prometheus: str,
    start: float,
    end: float,
    rate: str,
    variables: dict[str, str],
) -> None:
    import matplotlib.dates as mdates

    axes.set_title(panel["title"], fontsize=10, loc="left", fontweight="bold")
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "")
    dashed = {
        rule["matcher"]["options"]
        for rule in panel.get("fieldConfig", {}).get("overrides", [])
        if rule["matcher"]["id"] == "byFrameRefID"
    }
    if panel["type"] in {"bargauge", "stat"}:
        names, values = [], []
        for target in panel["targets"]:
            for series in ask(
                prometheus,
                "query",
                {"query": promql(target["expr"], rate_interval=rate, variables=variables)},
            ):
                names.append(legend(target.get("legendFormat", ""), series["metric"]))
                values.append(float(series["value"][1]))
        ranked = sorted(zip(values, names, strict=True))[-MAX_SERIES * 2 :]
        axes.barh([n for _, n in ranked], [v for v, _ in ranked], color="#3274d9")
        axes.tick_params(axis="y", labelsize=7)
        if unit == "percent":
            axes.set_xlim(0, 100)
            axes.axvline(90, color="#d44a3a", linestyle="--", linewidth=1)
            axes.set_xlabel("%", fontsize=8)
        return
    drawn = 0
    for target in panel["targets"]:
        params = {
            "query": promql(target["expr"], rate_interval=rate, variables=variables),
            "start": f"{start:.0f}",
            "end": f"{end:.0f}",
            "step": f"{max((end - start) / 240, 1):.0f}",
        }
        for series in ask(prometheus, "query_range", params)[:MAX_SERIES]:
            xs = [datetime.fromtimestamp(float(t), tz=UTC) for t, _ in series["values"]]
            ys = [float(v) for _, v in series["values"]]
            style = "--" if target["refId"] in dashed else "-"
            axes.plot(
                xs, ys, style, linewidth=1.5, label=legend(target.get("legendFormat", ""), series["metric"])
            )
            drawn += 1
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=None))
    axes.tick_params(labelsize=7)
    if unit:
        axes.set_ylabel({"s": "seconds", "percent": "%", "Bps": "bytes/s"}.get(unit, unit), fontsize=8)
    axes.grid(True, alpha=0.3)
    if drawn:
        axes.legend(fontsize=6, loc="upper left", ncol=2, framealpha=0.8)
    else:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="grey")


def main(argv: list[str] | None = None) -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    options.add_argument("--prometheus", default="http://127.0.0.1:9090", help="Prometheus base URL")
    options.add_argument("--minutes", type=float, default=30, help="time range to draw, ending now")
    options.add_argument("--rate-interval", default="1m", help="what $__rate_interval stands for")
    options.add_argument(
        "--var",
        action="append",
        default=["resource=vcpu"],
        metavar="NAME=VALUE",
        help="a dashboard variable's value (default: resource=vcpu; others match everything)",
    )
    options.add_argument("--out", type=Path, default=HERE / "overview.png")
    arguments = options.parse_args(argv)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("render.py needs matplotlib: pip install 'cloudctl[docs]'", file=sys.stderr)
        return 2

    variables = dict(item.split("=", 1) for item in arguments.var)
    panels = load_panels(DEFAULT_PANELS)
    end = time.time()
    start = end - arguments.minutes * 60
    figure, grid = plt.subplots(3, 2, figsize=(16, 13), constrained_layout=True)
    for axes, panel in zip(grid.flat, panels, strict=True):
        draw(
            axes,
            panel,
            prometheus=arguments.prometheus,
            start=start,
            end=end,
            rate=arguments.rate_interval,
            variables=variables,
        )
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(end))
    figure.suptitle(
        f"cloudctl — panels of the Grafana dashboards, drawn from Prometheus ({stamp}, last "
        f"{arguments.minutes:g} min)",
        fontsize=13,
    )
    figure.savefig(arguments.out, dpi=110)
    print(arguments.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
