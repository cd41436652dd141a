"""The capacity forecast's arithmetic: a least-squares line through samples, and when it crosses.

Invariants:
- The trend is the ordinary least-squares line of value against time, the same model as
  Prometheus' ``predict_linear``; ``slope_per_day`` is in the resource's units per day.
- The confidence is the coefficient of determination R² of that line (the share of the
  samples' variance the line explains, 0 to 1). A series that does not vary has no R²
  (``None``): a flat line explains nothing and predicts no crossing.
- Fewer samples than the planning's ``min_samples``: no trend is claimed at all
  (``insufficient-data``), whatever two points would suggest.
- Days until the threshold count from the last sample, along the fitted line; a resource
  already at or past its threshold is ``full`` (0 days), one whose line does not rise never
  reaches it (``None``).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence

DAY_S = 86400.0


class Outlook(enum.StrEnum):
    FULL = "full"
    """Allocated is at or past the threshold now."""
    GROWING = "growing"
    """The trend rises: ``days_to_threshold`` says when it crosses."""
    NOT_GROWING = "not-growing"
    """The trend is flat or falling: it never crosses."""
    INSUFFICIENT_DATA = "insufficient-data"
    """Too few samples in the window to claim a trend."""


@dataclasses.dataclass(frozen=True)
class Line:
    slope_per_day: float
    value_at_last: float
    """The line's value at the last sample's time."""
    r_squared: float | None


@dataclasses.dataclass(frozen=True)
class Forecast:
    samples: int
    current: float
    threshold: float
    outlook: Outlook
    line: Line | None
    days_to_threshold: float | None


def fit(points: Sequence[tuple[float, float]]) -> Line | None:
    """The least-squares line through ``(time_s, value)`` points; ``None`` with fewer than two times."""
    if len(points) < 2:
        return None
    n = float(len(points))
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    s_tt = sum((t - mean_t) ** 2 for t, _ in points)
    if s_tt == 0:
        return None
    s_tv = sum((t - mean_t) * (v - mean_v) for t, v in points)
    s_vv = sum((v - mean_v) ** 2 for _, v in points)
    slope = s_tv / s_tt
    last_t = max(t for t, _ in points)
    r_squared = None if s_vv == 0 else min(max((s_tv * s_tv) / (s_tt * s_vv), 0.0), 1.0)
    return Line(
        slope_per_day=slope * DAY_S,
        value_at_last=mean_v + slope * (last_t - mean_t),
        r_squared=r_squared,
    )


def forecast(points: Sequence[tuple[float, float]], *, threshold: float, min_samples: int) -> Forecast:
    """Where ``points`` head relative to ``threshold``; the last point is the current value."""
    ordered = sorted(points)
    current = ordered[-1][1] if ordered else 0.0
    if ordered and current >= threshold:
        return Forecast(len(ordered), current, threshold, Outlook.FULL, fit(ordered), 0.0)
    if len(ordered) < min_samples:
        return Forecast(len(ordered), current, threshold, Outlook.INSUFFICIENT_DATA, None, None)
    line = fit(ordered)
    if line is None or line.slope_per_day <= 0:
        return Forecast(len(ordered), current, threshold, Outlook.NOT_GROWING, line, None)
    days = max((threshold - line.value_at_last) / line.slope_per_day, 0.0)
    return Forecast(len(ordered), current, threshold, Outlook.GROWING, line, days)
