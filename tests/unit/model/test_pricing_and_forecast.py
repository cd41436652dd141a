"""The price list's rules, money in fen, months, and the forecast's least-squares arithmetic."""

from __future__ import annotations

import calendar
import decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl import errors
from cloudctl.model import forecast, pricing
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo

TOPOLOGY = Path(__file__).resolve().parents[3] / "infra" / "topology.yaml"
NOV_15 = calendar.timegm((2026, 11, 15, 12, 0, 0))


def shipped() -> Any:
    data = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_most_specific_rate_wins() -> None:
    prices = topo.from_data(shipped()).pricing
    assert prices is not None

    def rate(tier: str, center: str) -> decimal.Decimal:
        return pricing.rate(prices, resource=q.Resource.VCPU, tier=tier, center=center)

    assert rate("bronze", "qd-a") == decimal.Decimal("0.0900")  # the default
    assert rate("gold", "qd-a") == decimal.Decimal("0.1100")  # the tier's
    assert rate("gold", "dz-dr") == decimal.Decimal("0.0450")  # the center's beats the tier's
    assert rate(pricing.NO_TIER, "qd-b") == decimal.Decimal("0.0900")
    data = shipped()
    data["pricing"]["rates"].append(
        {"resource": "vcpu", "tier": "gold", "center": "dz-dr", "price": "0.0700"}
    )
    both = topo.from_data(data).pricing
    assert both is not None
    assert pricing.rate(both, resource=q.Resource.VCPU, tier="gold", center="dz-dr") == decimal.Decimal(
        "0.0700"
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"resource": "vcpu", "tier": "tin", "price": "1"}, "pricing.rates[17].tier"),
        ({"resource": "vcpu", "center": "mars", "price": "1"}, "pricing.rates[17].center"),
        ({"resource": "vcpu", "price": "1"}, "pricing.rates[17]"),
        ({"resource": "vcpu", "price": "-1"}, "pricing.rates[17].price"),
        ({"resource": "vcpu", "price": "0.00001"}, "pricing.rates[17].price"),
        ({"resource": "gpu", "price": "1"}, "pricing.rates[17].resource"),
    ],
)
def test_a_bad_rate_is_refused_naming_it(change: dict[str, str], field: str) -> None:
    data = shipped()
    data["pricing"]["rates"].append(change)
    with pytest.raises(errors.TopologyError) as caught:
        topo.from_data(data)
    assert caught.value.field == field


def test_every_resource_needs_a_default_rate() -> None:
    data = shipped()
    data["pricing"]["rates"] = [
        r for r in data["pricing"]["rates"] if r != {"resource": "object_gb", "price": "0.0002"}
    ]
    with pytest.raises(errors.TopologyError, match="no default rate for object_gb"):
        topo.from_data(data)


def test_thresholds_default_and_are_overridden_per_center() -> None:
    topology = topo.from_data(shipped())
    assert topology.threshold_percent("qd-a", q.Resource.VOLUME_GB) == 85
    assert topology.threshold_percent("dz-dr", q.Resource.VOLUME_GB) == 90
    data = shipped()
    data["centers"][1]["threshold_percent"] = {"vcpu": 101}
    with pytest.raises(errors.TopologyError) as caught:
        topo.from_data(data)
    assert caught.value.field == "centers[1].threshold_percent.vcpu"


def test_a_line_rounds_half_up_to_the_fen_once() -> None:
    assert pricing.line_fen(5, decimal.Decimal("0.0010")) == 1  # 0.005 -> 0.01
    assert pricing.line_fen(4, decimal.Decimal("0.0010")) == 0  # 0.004 -> 0.00
    assert pricing.line_fen(720 * 16, decimal.Decimal("0.0900")) == 103680  # 1036.80
    assert pricing.yuan(103680) == "1036.80"
    assert pricing.yuan_grouped(123456789) == "1,234,567.89"
    assert pricing.yuan(-5) == "-0.05"


def test_a_month_is_its_utc_hours_and_must_have_begun() -> None:
    november = pricing.parse_month("2026-11", now=NOV_15)
    assert (november.start, november.end) == (
        calendar.timegm((2026, 11, 1, 0, 0, 0)),
        calendar.timegm((2026, 12, 1, 0, 0, 0)),
    )
    assert november.hours == 720
    assert pricing.parse_month("2025-12", now=NOV_15).end == calendar.timegm((2026, 1, 1, 0, 0, 0))
    with pytest.raises(errors.InvalidInput, match="2026-12 has not begun") as future:
        pricing.parse_month("2026-12", now=NOV_15)
    assert future.value.field == "month"
    for bad in ("2026-13", "2026-00", "26-11", "2026/11", "november", "", "\uff12\uff10\uff12\uff16-11"):
        with pytest.raises(errors.InvalidInput, match="is not a month") as caught:
            pricing.parse_month(bad, now=NOV_15)
        assert caught.value.field == "month"


def test_the_last_month_a_date_can_hold_has_not_begun_rather_than_failing() -> None:
    with pytest.raises(errors.InvalidInput, match="9999-12 has not begun") as future:
        pricing.parse_month("9999-12", now=NOV_15)
    assert future.value.field == "month"


# --- forecast ------------------------------------------------------------------------------------------


def hourly(values: list[float], start: float = 0.0) -> list[tuple[float, float]]:
    return [(start + 3600.0 * index, value) for index, value in enumerate(values)]


def test_a_straight_line_is_fitted_exactly_with_r_squared_one() -> None:
    points = hourly([100 + 2 * h for h in range(48)])  # +2 per hour = +48 per day
    result = forecast.forecast(points, threshold=1000, min_samples=24)
    assert result.outlook is forecast.Outlook.GROWING
    assert result.line is not None
    assert result.line.slope_per_day == pytest.approx(48)
    assert result.line.r_squared == pytest.approx(1.0)
    assert result.days_to_threshold == pytest.approx((1000 - 194) / 48)


def test_noise_lowers_the_confidence_but_not_the_trend() -> None:
    noisy = hourly([100 + 2 * h + (30 if h % 2 else -30) for h in range(48)])
    line = forecast.fit(noisy)
    assert line is not None
    assert line.slope_per_day == pytest.approx(48, rel=0.05)
    assert line.r_squared is not None and 0.3 < line.r_squared < 0.9


def test_too_few_samples_claim_no_trend() -> None:
    result = forecast.forecast(hourly([1, 2, 3]), threshold=100, min_samples=24)
    assert (result.outlook, result.line, result.days_to_threshold) == (
        forecast.Outlook.INSUFFICIENT_DATA,
        None,
        None,
    )


def test_a_flat_or_falling_series_never_reaches_the_threshold() -> None:
    flat = forecast.forecast(hourly([50.0] * 30), threshold=100, min_samples=24)
    assert flat.outlook is forecast.Outlook.NOT_GROWING
    assert flat.line is not None and flat.line.r_squared is None
    falling = forecast.forecast(hourly([90 - h for h in range(30)]), threshold=100, min_samples=24)
    assert (falling.outlook, falling.days_to_threshold) == (forecast.Outlook.NOT_GROWING, None)


def test_a_series_past_its_threshold_is_full_now() -> None:
    result = forecast.forecast(hourly([70, 80, 90]), threshold=85, min_samples=24)
    assert (result.outlook, result.days_to_threshold) == (forecast.Outlook.FULL, 0.0)
