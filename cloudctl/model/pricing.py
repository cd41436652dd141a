"""Money and months of showback: which rate prices an hour, and how a bill's lines are rounded.

Invariants:
- Money is integer fen (分, 0.01 CNY) once a line is priced; nothing here uses float money.
- A line is the unit-hours of one (org node, center, tier, resource) in one month times its
  rate (CNY per unit-hour, at most four decimals), rounded half-up to the fen once. Every
  total is a sum of lines, so a parent's bill is exactly the sum of its own lines and its
  children's bills, and the table, CSV and JSON agree to the fen.
- The rate applied is the most specific that matches: (tier, center), then center, then
  tier, then the resource's default; ``topology.check`` guarantees the default exists.
- A month is ``YYYY-MM`` in UTC, from its first hour to the first hour of the next; a month
  that has not begun is refused, the current month is billed to date.
"""

from __future__ import annotations

import calendar
import dataclasses
import decimal
import re
from datetime import UTC, datetime

from cloudctl import errors
from cloudctl.model import quotas
from cloudctl.model import topology as topo

HOUR_S = 3600
NO_TIER = "-"
"""The tier of quota held without a workload (a reservation an operator made directly)."""

_FEN = decimal.Decimal("0.01")
_MONTH = re.compile(r"^([0-9]{4})-([0-9]{2})$")


def rate(pricing: topo.Pricing, *, resource: quotas.Resource, tier: str, center: str) -> decimal.Decimal:
    """CNY per unit-hour of ``resource`` for a workload of ``tier`` in ``center``."""
    by_key = {(r.resource, r.tier, r.center): r.price for r in pricing.rates}
    wanted_tier = None if tier == NO_TIER else tier
    for key in (
        (resource, wanted_tier, center),
        (resource, None, center),
        (resource, wanted_tier, None),
        (resource, None, None),
    ):
        if key in by_key:
            return by_key[key]
    raise errors.TopologyError(f"no rate for {resource.value}", field="pricing.rates")


def line_fen(unit_hours: int, price: decimal.Decimal) -> int:
    """What ``unit_hours`` cost at ``price`` CNY each, rounded half-up to the fen."""
    amount = (decimal.Decimal(unit_hours) * price).quantize(_FEN, rounding=decimal.ROUND_HALF_UP)
    return int(amount * 100)


def yuan(fen: int) -> str:
    """``123456`` → ``"1234.56"``: exact, for JSON and CSV."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole}.{cents:02d}"


def yuan_grouped(fen: int) -> str:
    """``123456`` → ``"1,234.56"``: for tables."""
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}"


@dataclasses.dataclass(frozen=True)
class Month:
    """One calendar month in UTC, as epoch seconds: ``[start, end)``."""

    name: str
    start: int
    end: int

    @property
    def hours(self) -> int:
        return (self.end - self.start) // HOUR_S


def parse_month(text: str, *, now: float, field: str = "month") -> Month:
    """``2026-11`` → that month; refused when malformed or not yet begun at ``now``."""
    match = _MONTH.fullmatch(text.strip())
    if match is None:
        raise errors.InvalidInput(f"{text!r} is not a month (YYYY-MM, e.g. 2026-11)", field=field)
    year, month = int(match.group(1)), int(match.group(2))
    if not 1 <= month <= 12 or year < 1970:
        raise errors.InvalidInput(f"{text!r} is not a month (YYYY-MM, e.g. 2026-11)", field=field)
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    if start > now:  # first: the end of 9999-12 is past any date
        current = month_of(now).name
        raise errors.InvalidInput(f"{text} has not begun (the current month is {current})", field=field)
    next_year, next_month = (year + 1, 1) if month == 12 else (year, month + 1)
    end = calendar.timegm((next_year, next_month, 1, 0, 0, 0))
    return Month(name=f"{year:04d}-{month:02d}", start=start, end=end)


def month_of(timestamp: float) -> Month:
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    return parse_month(f"{moment.year:04d}-{moment.month:02d}", now=timestamp)


def hour_floor(timestamp: float) -> int:
    return int(timestamp // HOUR_S) * HOUR_S
