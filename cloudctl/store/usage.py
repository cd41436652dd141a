"""Recorded usage: hourly lines per org node, center, tier and resource, and capacity samples.

Invariants:
- An hour is recorded once: ``record_hour`` first claims the hour's ``usage_passes`` row
  (insert unless present); a second recorder, concurrent or later, finds it claimed and
  writes nothing. The claim, the hour's lines and its capacity samples commit together in
  the caller's transaction, so a recorder killed part-way leaves no trace of the hour and
  the next pass records it whole.
- ``allocated`` counts quota held (reserved or in use) at any moment of the hour, per
  started hour; it is rebuilt from the reservations' lifetimes (a reservation is live from
  ``created_at`` until it is released at ``updated_at``; amounts never change), so an hour
  recorded late holds the same numbers as one recorded on time.
- ``consumed`` is what the backends reported; ``None`` where the hour was recorded too late
  to observe it (``usage_passes.consumed_observed`` is false for such hours).
- Lines with nothing allocated and nothing consumed are not stored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import sqlalchemy as sa

from cloudctl.model import quotas as q
from cloudctl.store import db, schema

LineKey = tuple[str, str, str, q.Resource]
"""(org node, center, tier, resource)."""

RELEASED = "released"


@dataclasses.dataclass(frozen=True)
class HeldQuota:
    """One reservation's lifetime, with the tier of the workload it belongs to (if any)."""

    node_id: str
    center: str
    tier: str | None
    amounts: q.Amounts
    created_at: float
    released_at: float | None

    def live_during(self, start: float, end: float) -> bool:
        """Held at any moment of ``[start, end)``."""
        return self.created_at < end and (self.released_at is None or self.released_at >= start)

    def live_at(self, moment: float) -> bool:
        return self.created_at <= moment and (self.released_at is None or self.released_at > moment)


@dataclasses.dataclass(frozen=True)
class Line:
    allocated: int
    consumed: int | None


@dataclasses.dataclass(frozen=True)
class Sample:
    total: int
    allocated: int
    used: int | None


@dataclasses.dataclass(frozen=True)
class MonthTotal:
    """Unit-hours of one (node, center, tier, resource) over a period."""

    node_id: str
    center: str
    tier: str
    resource: q.Resource
    allocated_unit_hours: int
    consumed_unit_hours: int


@dataclasses.dataclass(frozen=True)
class Coverage:
    hours_recorded: int
    hours_consumed_observed: int
    last_hour: int | None


def held_quota(tx: sa.Connection, *, start: float, end: float) -> list[HeldQuota]:
    """Every reservation held at some moment of ``[start, end)``, with its workload's tier."""
    reservations, placements, workloads = schema.reservations, schema.placements, schema.workloads
    query = (
        sa.select(
            reservations.c.node_id,
            reservations.c.center,
            reservations.c.amounts,
            reservations.c.state,
            reservations.c.created_at,
            reservations.c.updated_at,
            workloads.c.tier,
        )
        .select_from(
            reservations.outerjoin(placements, placements.c.reservation_id == reservations.c.id).outerjoin(
                workloads, workloads.c.id == placements.c.workload_id
            )
        )
        .where(reservations.c.created_at < end)
        .where(sa.or_(reservations.c.state != RELEASED, reservations.c.updated_at >= start))
        .order_by(reservations.c.id)
    )
    return [
        HeldQuota(
            node_id=row.node_id,
            center=row.center,
            tier=row.tier,
            amounts={q.Resource(name): int(value) for name, value in dict(row.amounts).items() if value},
            created_at=float(row.created_at),
            released_at=float(row.updated_at) if row.state == RELEASED else None,
        )
        for row in tx.execute(query)
    ]


def first_reservation_at(tx: sa.Connection) -> float | None:
    value = tx.execute(sa.select(sa.func.min(schema.reservations.c.created_at))).scalar()
    return None if value is None else float(value)


def last_recorded_hour(tx: sa.Connection) -> int | None:
    value = tx.execute(sa.select(sa.func.max(schema.usage_passes.c.hour))).scalar()
    return None if value is None else int(value)


def is_recorded(tx: sa.Connection, hour: int) -> bool:
    found = tx.execute(sa.select(schema.usage_passes.c.hour).where(schema.usage_passes.c.hour == hour))
    return found.first() is not None


def record_hour(
    tx: sa.Connection,
    *,
    hour: int,
    lines: Mapping[LineKey, Line],
    samples: Mapping[tuple[str, q.Resource], Sample],
    consumed_observed: bool,
    now: float,
) -> bool:
    """Record one hour's lines and samples; ``False`` (and nothing written) if it was recorded already."""
    stored = [
        {
            "hour": hour,
            "node_id": node,
            "center": center,
            "tier": tier,
            "resource": resource.value,
            "allocated": line.allocated,
            "consumed": line.consumed,
        }
        for (node, center, tier, resource), line in sorted(lines.items())
        if line.allocated or line.consumed
    ]
    claimed = db.insert_unless_present(
        tx,
        schema.usage_passes,
        {"hour": hour, "recorded_at": now, "consumed_observed": consumed_observed, "lines": len(stored)},
    )
    if not claimed:
        return False
    if stored:
        tx.execute(schema.usage_hours.insert(), stored)
    rows = [
        {
            "hour": hour,
            "center": center,
            "resource": resource.value,
            "total": sample.total,
            "allocated": sample.allocated,
            "used": sample.used,
        }
        for (center, resource), sample in sorted(samples.items())
    ]
    if rows:
        tx.execute(schema.capacity_samples.insert(), rows)
    return True


def period_totals(
    tx: sa.Connection, *, start: int, end: int, node_ids: Iterable[str] | None = None
) -> list[MonthTotal]:
    """Unit-hours per (node, center, tier, resource) over the hours in ``[start, end)``."""
    table = schema.usage_hours
    query = (
        sa.select(
            table.c.node_id,
            table.c.center,
            table.c.tier,
            table.c.resource,
            sa.func.sum(table.c.allocated).label("allocated"),
            sa.func.coalesce(sa.func.sum(table.c.consumed), 0).label("consumed"),
        )
        .where(table.c.hour >= start, table.c.hour < end)
        .group_by(table.c.node_id, table.c.center, table.c.tier, table.c.resource)
        .order_by(table.c.node_id, table.c.center, table.c.tier, table.c.resource)
    )
    if node_ids is not None:
        query = query.where(table.c.node_id.in_(list(node_ids)))
    return [
        MonthTotal(
            node_id=row.node_id,
            center=row.center,
            tier=row.tier,
            resource=q.Resource(row.resource),
            allocated_unit_hours=int(row.allocated),
            consumed_unit_hours=int(row.consumed),
        )
        for row in tx.execute(query)
    ]


def coverage(tx: sa.Connection, *, start: int, end: int) -> Coverage:
    """How many hours of ``[start, end)`` are recorded, and of those how many observed consumption."""
    table = schema.usage_passes
    row = tx.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((table.c.consumed_observed, 1), else_=0)), 0),
            sa.func.max(table.c.hour),
        ).where(table.c.hour >= start, table.c.hour < end)
    ).one()
    return Coverage(
        hours_recorded=int(row[0]),
        hours_consumed_observed=int(row[1]),
        last_hour=None if row[2] is None else int(row[2]),
    )


def capacity_history(
    tx: sa.Connection, *, since: int, centers: Iterable[str] | None = None
) -> dict[tuple[str, q.Resource], list[tuple[int, Sample]]]:
    """Samples from hour ``since`` on, per (center, resource), oldest first."""
    table = schema.capacity_samples
    query = (
        sa.select(table).where(table.c.hour >= since).order_by(table.c.center, table.c.resource, table.c.hour)
    )
    if centers is not None:
        query = query.where(table.c.center.in_(list(centers)))
    history: dict[tuple[str, q.Resource], list[tuple[int, Sample]]] = {}
    for row in tx.execute(query):
        sample = Sample(
            total=int(row.total),
            allocated=int(row.allocated),
            used=None if row.used is None else int(row.used),
        )
        history.setdefault((row.center, q.Resource(row.resource)), []).append((int(row.hour), sample))
    return history
