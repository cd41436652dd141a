"""Capacity forecast per center: the trend of allocation, when it reaches the threshold, how sure.

Invariants:
- The series is a center's *allocated* amount of a resource (quota granted there: used +
  reserved by every department), sampled at the end of every recorded hour by
  ``services.usage`` and, as its last point, the allocation now; the same quantity
  ``/metrics`` exports as ``cloudctl_center_capacity{kind="allocated"}`` and, divided by the
  total, as ``cloudctl_capacity_allocated_ratio`` (the series the ``predict_linear`` alerts use).
- The threshold is a share of the center's total, per resource, from the topology
  (``capacity_planning.threshold_percent``, overridden per center).
- The trend and its confidence are ``model.forecast``'s least-squares line and R² over the
  last ``window_days``; with fewer than ``min_samples`` points no trend is claimed.
- Placement's warning compares a request's amounts with each center's headroom below the
  threshold; it reads allocation through a cache at most ``WARNING_CACHE_S`` old, so a
  burst of requests may be warned a moment late, never refused (it is a warning).
- ``/metrics`` recomputes the forecast at most every ``METRICS_EVERY_S`` of the context's clock.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl.model import forecast as fc
from cloudctl.model import pricing
from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs, quotas, usage

WARNING_CACHE_S = 2.0
METRICS_EVERY_S = 60.0
"""Scrapes in between reuse the forecast (it reads a month of samples)."""
_CACHE_KEY = "capacity.allocated_now"
_METRICS_CACHE_KEY = "capacity.metrics"
METHOD = (
    "least-squares line through the hourly samples of allocated capacity in the window plus the "
    "allocation now; confidence is the line's R² (high >= 0.9, medium >= 0.6, else low; none "
    "when the series does not vary)"
)


class ResourceForecastPublic(BaseModel):
    """One resource of one center: allocated now against its threshold, the trend and when it crosses."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    resource: str
    """``vcpu``, ``ram_gb``, ``volume_gb``, ``object_gb`` or ``instances``."""
    total: int
    """The center's capacity of the resource, from the topology (units of the resource)."""
    allocated: int
    """Granted as quota in the center now (used + reserved by every department)."""
    allocated_percent: float
    """``allocated`` as a percentage of ``total``, to two decimals (0 when the total is 0)."""
    threshold_percent: int
    """The share of the total at which the center counts as full (topology, overridable per center)."""
    threshold: float
    """The allocated amount at which the center counts as full for this resource."""
    samples: int
    """Points the trend is fitted through: the hourly samples recorded in the window, plus the allocation
    now."""
    trend_per_day: float | None
    """Growth of the allocated amount per day along the fitted line (units of the resource)."""
    r_squared: float | None
    """R² of the fitted line (0 to 1, four decimals); ``None`` when no trend is claimed or the series
    does not vary."""
    confidence: str
    """``high``, ``medium``, ``low`` (from R²) or ``none``."""
    outlook: str
    """``full``, ``growing``, ``not-growing`` or ``insufficient-data``."""
    days_to_threshold: float | None
    """Days (one decimal) until the line reaches the threshold; 0 when ``full``; ``None`` when it never
    does or no trend is claimed."""
    reaches_threshold_on: str | None
    """The date (UTC) the line crosses the threshold."""


FORECAST_EXAMPLE: dict[str, Any] = {
    "generated_at": "2026-11-18T02:15:00Z",
    "window_days": 30,
    "min_samples": 24,
    "method": METHOD,
    "centers": [
        {
            "center": "qd-a",
            "display_name": "青岛政务云中心A",
            "role": "local",
            "resources": [
                {
                    "resource": "vcpu",
                    "total": 4096,
                    "allocated": 2310,
                    "allocated_percent": 56.4,
                    "threshold_percent": 80,
                    "threshold": 3276.8,
                    "samples": 721,
                    "trend_per_day": 11.6603,
                    "r_squared": 0.9809,
                    "confidence": "high",
                    "outlook": "growing",
                    "days_to_threshold": 83.0,
                    "reaches_threshold_on": "2027-02-09",
                },
                {
                    "resource": "ram_gb",
                    "total": 16384,
                    "allocated": 8700,
                    "allocated_percent": 53.1,
                    "threshold_percent": 80,
                    "threshold": 13107.2,
                    "samples": 721,
                    "trend_per_day": 42.9604,
                    "r_squared": 0.9787,
                    "confidence": "high",
                    "outlook": "growing",
                    "days_to_threshold": 102.9,
                    "reaches_threshold_on": "2027-02-28",
                },
                {
                    "resource": "volume_gb",
                    "total": 400000,
                    "allocated": 252400,
                    "allocated_percent": 63.1,
                    "threshold_percent": 85,
                    "threshold": 340000.0,
                    "samples": 721,
                    "trend_per_day": 719.9821,
                    "r_squared": 0.9537,
                    "confidence": "high",
                    "outlook": "growing",
                    "days_to_threshold": 121.6,
                    "reaches_threshold_on": "2027-03-19",
                },
                {
                    "resource": "object_gb",
                    "total": 800000,
                    "allocated": 410000,
                    "allocated_percent": 51.25,
                    "threshold_percent": 85,
                    "threshold": 680000.0,
                    "samples": 721,
                    "trend_per_day": 454.7074,
                    "r_squared": 0.7328,
                    "confidence": "medium",
                    "outlook": "growing",
                    "days_to_threshold": 594.2,
                    "reaches_threshold_on": "2028-07-04",
                },
                {
                    "resource": "instances",
                    "total": 2000,
                    "allocated": 1098,
                    "allocated_percent": 54.9,
                    "threshold_percent": 80,
                    "threshold": 1600.0,
                    "samples": 721,
                    "trend_per_day": 5.6424,
                    "r_squared": 0.9799,
                    "confidence": "high",
                    "outlook": "growing",
                    "days_to_threshold": 88.9,
                    "reaches_threshold_on": "2027-02-14",
                },
            ],
        }
    ],
}
"""``GET /v1/capacity/forecast?center=qd-a``: local center A more than half allocated and growing
steadily; its vCPU reach the 80 % threshold first, in 83 days."""


class CenterForecastPublic(BaseModel):
    """One center's forecast, resource by resource."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    center: str
    """The center's name (``qd-a``, ``qd-b``, ``dz-dr``, ``mgmt``)."""
    display_name: str
    """The center's display name, from the topology."""
    role: str
    """``management``, ``local`` or ``dr``."""
    resources: list[ResourceForecastPublic]
    """One forecast per resource, always all five in the same order."""


class CapacityForecastPublic(BaseModel):
    """Each center's allocation trend against its thresholds: days until full, and how sure (operators)."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [FORECAST_EXAMPLE]}
    )

    generated_at: str
    """When the forecast was computed (the allocation now is its last point), ISO 8601 UTC."""
    window_days: int
    """Days of hourly samples the trend is fitted over (topology ``capacity_planning.window_days``)."""
    min_samples: int
    """Fewer points than this and no trend is claimed (``insufficient-data``)."""
    method: str
    """How the trend and the confidence are computed, in words."""
    centers: list[CenterForecastPublic]
    """Every center of the topology in its order, or only the one asked for."""


def allocated_now(ctx: ctx_module.Context) -> dict[tuple[str, q.Resource], int]:
    """Quota granted per (center, resource) now: the org roots' subtree counters."""
    with ctx.read() as tx:
        roots = [node.id for node in orgs.list_nodes(tx) if node.parent_id is None]
        counters = quotas.get_counters(tx, node_ids=roots)
    allocated: dict[tuple[str, q.Resource], int] = {}
    for (_node, center, resource), counter in counters.items():
        if center != q.ALL_CENTERS:
            allocated[(center, resource)] = allocated.get((center, resource), 0) + counter.in_use
    return allocated


def confidence(r_squared: float | None) -> str:
    if r_squared is None:
        return "none"
    if r_squared >= 0.9:
        return "high"
    if r_squared >= 0.6:
        return "medium"
    return "low"


def forecast(ctx: ctx_module.Context, *, center: str | None = None) -> CapacityForecastPublic:
    topology = ctx.topology
    chosen = [topology.center(center)] if center is not None else list(topology.centers)
    planning = topology.capacity_planning
    now = ctx.clock.now()
    since = pricing.hour_floor(now - planning.window_days * fc.DAY_S)
    with ctx.read() as tx:
        history = usage.capacity_history(tx, since=since, centers=[c.name for c in chosen])
    live = allocated_now(ctx)
    centers = []
    for item in chosen:
        totals = item.capacity.amounts()
        resources = []
        for resource in q.RESOURCES:
            total = totals.get(resource, 0)
            percent = topology.threshold_percent(item.name, resource)
            threshold = total * percent / 100
            # A sample stands for the end of its hour.
            points = [
                (float(hour + pricing.HOUR_S), float(s.allocated))
                for hour, s in history.get((item.name, resource), [])
            ]
            current = live.get((item.name, resource), 0)
            points.append((now, float(current)))
            result = fc.forecast(points, threshold=threshold, min_samples=planning.min_samples)
            resources.append(
                _public(
                    resource=resource,
                    total=total,
                    current=current,
                    percent=percent,
                    threshold=threshold,
                    result=result,
                    now=now,
                )
            )
        centers.append(
            CenterForecastPublic(
                center=item.name, display_name=item.display_name, role=item.role.value, resources=resources
            )
        )
    return CapacityForecastPublic(
        generated_at=clocks.isoformat(now),
        window_days=planning.window_days,
        min_samples=planning.min_samples,
        method=METHOD,
        centers=centers,
    )


def _public(
    *,
    resource: q.Resource,
    total: int,
    current: int,
    percent: int,
    threshold: float,
    result: fc.Forecast,
    now: float,
) -> ResourceForecastPublic:
    line = result.line if result.outlook is not fc.Outlook.INSUFFICIENT_DATA else None
    r_squared = line.r_squared if line is not None else None
    days = result.days_to_threshold
    return ResourceForecastPublic(
        resource=resource.value,
        total=total,
        allocated=current,
        allocated_percent=round(100 * current / total, 2) if total else 0.0,
        threshold_percent=percent,
        threshold=threshold,
        samples=result.samples,
        trend_per_day=None if line is None else round(line.slope_per_day, 4),
        r_squared=None if r_squared is None else round(r_squared, 4),
        confidence=confidence(r_squared) if line is not None else "none",
        outlook=result.outlook.value,
        days_to_threshold=None if days is None else round(days, 1),
        reaches_threshold_on=None
        if days is None
        else datetime.fromtimestamp(now + days * fc.DAY_S, tz=UTC).date().isoformat(),
    )


# --- placement's warning -----------------------------------------------------------------------------


def _allocated_cached(ctx: ctx_module.Context) -> dict[tuple[str, q.Resource], int]:
    now = ctx.clock.now()
    cached = ctx.cache.get(_CACHE_KEY)
    if cached is not None and 0 <= now - cached[0] < WARNING_CACHE_S:
        value: dict[tuple[str, q.Resource], int] = cached[1]
        return value
    value = allocated_now(ctx)
    ctx.cache[_CACHE_KEY] = (now, value)
    return value


def threshold_warning(
    ctx: ctx_module.Context, *, center: str, amounts: Mapping[q.Resource, int]
) -> str | None:
    """One line when ``amounts`` added to ``center`` would take a resource past its threshold."""
    topology = ctx.topology
    totals = topology.center(center).capacity.amounts()
    allocated = _allocated_cached(ctx)
    crossed = []
    for resource, amount in amounts.items():
        total = totals.get(resource, 0)
        if not amount or not total:
            continue
        percent = topology.threshold_percent(center, resource)
        after = allocated.get((center, resource), 0) + amount
        if after * 100 > total * percent:
            crossed.append(f"{resource.value} {100 * after / total:.1f}% of {total} (threshold {percent}%)")
    if not crossed:
        return None
    return f"center {center} would be allocated past its capacity threshold: {', '.join(crossed)}"


# --- metrics -----------------------------------------------------------------------------------------


def metric_families(ctx: ctx_module.Context) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    ratio = GaugeMetricFamily(
        "cloudctl_capacity_allocated_ratio",
        "Share of a center's total granted as quota (used + reserved), per resource: the series "
        "the capacity forecast and its predict_linear alerts follow.",
        labels=["center", "resource"],
    )
    threshold = GaugeMetricFamily(
        "cloudctl_capacity_threshold_ratio",
        "Allocated share at which a center counts as full for a resource (from the topology).",
        labels=["center", "resource"],
    )
    days = GaugeMetricFamily(
        "cloudctl_capacity_days_to_threshold",
        "Days until the allocated trend reaches the threshold (0 when already past); absent when "
        "the trend does not rise or has too few samples.",
        labels=["center", "resource"],
    )
    r_squared = GaugeMetricFamily(
        "cloudctl_capacity_forecast_r_squared",
        "R² of the least-squares trend behind cloudctl_capacity_days_to_threshold.",
        labels=["center", "resource"],
    )
    now = ctx.clock.now()
    cached = ctx.cache.get(_METRICS_CACHE_KEY)
    if cached is None or not 0 <= now - cached[0] < METRICS_EVERY_S:
        cached = (now, forecast(ctx))
        ctx.cache[_METRICS_CACHE_KEY] = cached
    result: CapacityForecastPublic = cached[1]
    for center in result.centers:
        for item in center.resources:
            labels = [center.center, item.resource]
            if item.total:
                ratio.add_metric(labels, item.allocated / item.total)
                threshold.add_metric(labels, item.threshold_percent / 100)
            if item.days_to_threshold is not None:
                days.add_metric(labels, item.days_to_threshold)
            if item.r_squared is not None:
                r_squared.add_metric(labels, item.r_squared)
    yield ratio
    yield threshold
    yield days
    yield r_squared
