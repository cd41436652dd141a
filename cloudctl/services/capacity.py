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

from pydantic import BaseModel

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
    resource: str
    total: int
    allocated: int
    allocated_percent: float
    threshold_percent: int
    threshold: float
    """The allocated amount at which the center counts as full for this resource."""
    samples: int
    trend_per_day: float | None
    """Growth of the allocated amount per day along the fitted line (units of the resource)."""
    r_squared: float | None
    confidence: str
    """``high``, ``medium``, ``low`` (from R²) or ``none``."""
    outlook: str
    """``full``, ``growing``, ``not-growing`` or ``insufficient-data``."""
    days_to_threshold: float | None
    reaches_threshold_on: str | None
    """The date (UTC) the line crosses the threshold."""


class CenterForecastPublic(BaseModel):
    center: str
    display_name: str
    role: str
    resources: list[ResourceForecastPublic]


class CapacityForecastPublic(BaseModel):
    generated_at: str
    window_days: int
    min_samples: int
    method: str
    centers: list[CenterForecastPublic]


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
