"""Showback and chargeback: a month's bill per org node, center or tier, from the recorded usage.

Invariants:
- The bill prices the unit-hours ``services.usage`` recorded with the topology's price
  list in force when the bill is read (``model.pricing``): one rounded line per (node,
  center, tier, resource); every figure is a sum of those lines in integer fen, so a
  node's total is exactly its own lines plus its children's totals, and the rows of any
  grouping (``--by``) add up to the bill's total.
- ``allocated`` prices the quota held (the chargeback: what a department keeps out of
  others' reach); ``consumed`` prices what the backends reported (the showback of actual
  use), over the hours where consumption was observed.
- A department reads the bill of its own subtree only; another department's id answers
  ``NotFound`` exactly as a missing one does. Operators read every node's.
- Bad input (a malformed month, one not begun, an unknown node, an unknown grouping)
  raises ``InvalidInput`` naming the field, before anything is read.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import pricing
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.services import identity
from cloudctl.store import orgs, usage

DELETED = "(deleted)"
_METRICS_CACHE_KEY = "showback.metrics"
OUTSIDE = "(outside)"


class Grouping(enum.StrEnum):
    DEPARTMENT = "department"
    BUREAU = "bureau"
    DISTRICT = "district"
    CENTER = "center"
    TIER = "tier"


class BillRowPublic(BaseModel):
    """One row of a bill: an org node (with its subtree), a bureau, a district, a center or a tier."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    key: str
    """Org node id, bureau or district id, center name or tier name (``-``: quota held without a tier)."""
    name: str
    """Display name: the org node's or center's (Chinese, as in the topology) or the tier's."""
    kind: str
    """The org node's kind (``city``, ``bureau``, ``district``, ``department``), ``center`` or ``tier``;
    ``(deleted)`` or ``(outside)`` for lines of deleted nodes or nodes under no bureau/district."""
    parent: str | None
    """The parent row's key in the department view (the org tree); ``None`` elsewhere."""
    depth: int
    """Depth below the billed scope in the department view (0: the scope itself); 0 elsewhere."""
    allocated_cny: str
    """Price of the quota held (subtree total in the department view), exact to the fen."""
    consumed_cny: str
    """Price of what the backends reported, over the observed hours."""
    own_allocated_cny: str
    """The node's own lines only (department view); equal to ``allocated_cny`` elsewhere."""
    allocated_unit_hours: dict[str, int]
    """Quota held in unit-hours per resource (``vcpu``, ``ram_gb``, ``volume_gb``, ``object_gb``,
    ``instances``); a resource never held is left out."""


class BillTotalPublic(BaseModel):
    """The bill's total: the sum of every priced line in scope, in the bill's currency."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    allocated_cny: str
    """Price of all the quota held in scope (the chargeback), exact to the fen."""
    consumed_cny: str
    """Price of all the consumption the backends reported in scope (the showback), exact to the fen."""


SHOWBACK_EXAMPLE: dict[str, Any] = {
    "month": "2026-11",
    "currency": "CNY",
    "scope": "hrss",
    "by": "department",
    "period_start": "2026-11-01T00:00:00Z",
    "period_end": "2026-11-18T02:00:00Z",
    "month_to_date": True,
    "hours_in_month": 720,
    "hours_recorded": 410,
    "hours_consumed_observed": 410,
    "rows": [
        {
            "key": "hrss",
            "name": "青岛市人力资源和社会保障局",
            "kind": "bureau",
            "parent": None,
            "depth": 0,
            "allocated_cny": "3159.07",
            "consumed_cny": "1407.66",
            "own_allocated_cny": "0.00",
            "allocated_unit_hours": {"vcpu": 18940, "ram_gb": 37880, "volume_gb": 378800, "instances": 7010},
        },
        {
            "key": "hrss-employment",
            "name": "青岛市公共就业和人才服务中心",
            "kind": "department",
            "parent": "hrss",
            "depth": 1,
            "allocated_cny": "446.90",
            "consumed_cny": "293.56",
            "own_allocated_cny": "446.90",
            "allocated_unit_hours": {"vcpu": 3280, "ram_gb": 6560, "volume_gb": 65600, "instances": 1640},
        },
        {
            "key": "hrss-insurance",
            "name": "青岛市社会保险事业中心",
            "kind": "department",
            "parent": "hrss",
            "depth": 1,
            "allocated_cny": "2712.17",
            "consumed_cny": "1114.10",
            "own_allocated_cny": "2712.17",
            "allocated_unit_hours": {"vcpu": 15660, "ram_gb": 31320, "volume_gb": 313200, "instances": 5370},
        },
    ],
    "total": {"allocated_cny": "3159.07", "consumed_cny": "1407.66"},
}
"""November 2026 to date for the human resources and social security bureau (``department=hrss``)."""


class ShowbackPublic(BaseModel):
    """A month's bill of an org node's subtree: priced quota held and consumption, per row and in total."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [SHOWBACK_EXAMPLE]}
    )

    month: str
    """The month billed, ``YYYY-MM`` (UTC)."""
    currency: str
    """The price list's currency (``CNY``); every amount is a decimal string exact to the fen."""
    scope: str
    """The org node whose subtree is billed."""
    by: str
    """How the rows group the lines: ``department`` (the org tree), ``bureau``, ``district``, ``center``
    or ``tier``."""
    period_start: str
    """Start of the month, ISO 8601 UTC."""
    period_end: str
    """End of the last recorded hour in the month (the month's end once it is recorded whole)."""
    month_to_date: bool
    """The month is not recorded whole yet: the bill covers it to ``period_end`` only."""
    hours_in_month: int
    """Hours in the month (672 to 744)."""
    hours_recorded: int
    """Hours of the month whose usage is recorded (allocation priced for each of them)."""
    hours_consumed_observed: int
    """Of those, the hours whose consumption the backends reported (consumption priced for these only)."""
    rows: list[BillRowPublic]
    """The rows; in the department view parents before children, nodes with nothing billed left out
    (the scope always shown)."""
    total: BillTotalPublic
    """The sum of every line in scope: the scope's row in the org tree, the sum of the rows otherwise."""


@dataclasses.dataclass
class _Money:
    allocated_fen: int = 0
    consumed_fen: int = 0
    unit_hours: dict[q.Resource, int] = dataclasses.field(default_factory=dict)

    def add(self, other: _Money) -> None:
        self.allocated_fen += other.allocated_fen
        self.consumed_fen += other.consumed_fen
        for resource, hours in other.unit_hours.items():
            self.unit_hours[resource] = self.unit_hours.get(resource, 0) + hours


@dataclasses.dataclass(frozen=True)
class PricedLine(usage.MonthTotal):
    """A month total with what its unit-hours cost at the rate of its resource, tier and center."""

    allocated_fen: int
    consumed_fen: int

    def money(self) -> _Money:
        return _Money(
            allocated_fen=self.allocated_fen,
            consumed_fen=self.consumed_fen,
            unit_hours={self.resource: self.allocated_unit_hours},
        )


def parse_grouping(value: str | None) -> Grouping:
    if value is None:
        return Grouping.DEPARTMENT
    try:
        return Grouping(value)
    except ValueError:
        known = ", ".join(g.value for g in Grouping)
        raise errors.InvalidInput(f"unknown grouping {value!r} (known: {known})", field="by") from None


def price_list(ctx: ctx_module.Context) -> topo.Pricing:
    if ctx.topology.pricing is None:
        raise errors.InvalidInput("the topology declares no price list", field="pricing")
    return ctx.topology.pricing


def price_lines(prices: topo.Pricing, totals: Iterable[usage.MonthTotal]) -> list[PricedLine]:
    lines = []
    for total in totals:
        rate = pricing.rate(prices, resource=total.resource, tier=total.tier, center=total.center)
        lines.append(
            PricedLine(
                **dataclasses.asdict(total),
                allocated_fen=pricing.line_fen(total.allocated_unit_hours, rate),
                consumed_fen=pricing.line_fen(total.consumed_unit_hours, rate),
            )
        )
    return lines


def bill(
    ctx: ctx_module.Context,
    *,
    month: str,
    department: str | None = None,
    by: str | None = None,
    principal: identity.Principal | None = None,
    dept_field: str = "dept",
) -> ShowbackPublic:
    """The bill of ``month`` for ``department``'s subtree (default: the caller's, or the whole city).

    Without ``principal`` the caller is the operator at the management center's shell; with one,
    the policies decide, and a node outside a department's subtree is reported missing.
    """
    grouping = parse_grouping(by)
    period = pricing.parse_month(month, now=ctx.clock.now())
    prices = price_list(ctx)
    with ctx.read() as tx:
        nodes = orgs.list_nodes(tx)
    by_id = {node.id: node for node in nodes}
    scope_id = department or (principal.department if principal is not None else "") or _root(nodes)
    scope = by_id.get(scope_id)
    missing = errors.NotFound(f"no org node {scope_id!r}", field=dept_field)
    if scope is None:
        raise missing
    if principal is not None:
        try:
            identity.authorize(
                ctx,
                principal=principal,
                action="quota.read",
                resource_type="Quota",
                resource_id=scope.id,
                owner=scope.id,
                owner_path=tuple(scope.ancestor_ids),
                hide_as_missing=True,
            )
        except errors.NotFound:
            raise missing from None
    in_scope = [node.id for node in nodes if scope.id in node.ancestor_ids]
    with ctx.read() as tx:
        totals = usage.period_totals(
            tx, start=period.start, end=period.end, node_ids=None if scope.parent_id is None else in_scope
        )
        covered = usage.coverage(tx, start=period.start, end=period.end)
    lines = price_lines(prices, totals)
    rows = list(_rows(ctx.topology, grouping, scope, nodes, lines))
    total = _Money()
    for line in lines:
        total.add(line.money())
    period_end = period.start if covered.last_hour is None else covered.last_hour + pricing.HOUR_S
    return ShowbackPublic(
        month=period.name,
        currency=prices.currency,
        scope=scope.id,
        by=grouping.value,
        period_start=clocks.isoformat(period.start),
        period_end=clocks.isoformat(period_end),
        month_to_date=period_end < period.end,
        hours_in_month=period.hours,
        hours_recorded=covered.hours_recorded,
        hours_consumed_observed=covered.hours_consumed_observed,
        rows=rows,
        total=BillTotalPublic(
            allocated_cny=pricing.yuan(total.allocated_fen), consumed_cny=pricing.yuan(total.consumed_fen)
        ),
    )


def _root(nodes: list[orgs.OrgNode]) -> str:
    return next((node.id for node in nodes if node.parent_id is None), "")


def _row(
    *,
    key: str,
    name: str,
    kind: str,
    parent: str | None,
    depth: int,
    money: _Money,
    own: _Money | None = None,
) -> BillRowPublic:
    return BillRowPublic(
        key=key,
        name=name,
        kind=kind,
        parent=parent,
        depth=depth,
        allocated_cny=pricing.yuan(money.allocated_fen),
        consumed_cny=pricing.yuan(money.consumed_fen),
        own_allocated_cny=pricing.yuan((own or money).allocated_fen),
        allocated_unit_hours=q.as_names(
            money.unit_hours, keys=[r for r in q.RESOURCES if r in money.unit_hours]
        ),
    )


def _rows(
    topology: topo.Topology,
    grouping: Grouping,
    scope: orgs.OrgNode,
    nodes: list[orgs.OrgNode],
    lines: list[PricedLine],
) -> Iterator[BillRowPublic]:
    by_id = {node.id: node for node in nodes}
    if grouping is Grouping.CENTER:
        groups = _group(lines, lambda line: line.center)
        order = [center.name for center in topology.centers]
        for key in [*order, *sorted(set(groups) - set(order))]:
            if key in groups:
                name = topology.center(key).display_name if key in order else key
                yield _row(key=key, name=name, kind="center", parent=None, depth=0, money=groups[key])
        return
    if grouping is Grouping.TIER:
        groups = _group(lines, lambda line: line.tier)
        order = [tier.name for tier in topology.tiers]
        for key in [*order, *sorted(set(groups) - set(order))]:
            if key in groups:
                name = topology.tier(key).display_name if key in order else "no tier (quota held directly)"
                yield _row(key=key, name=name, kind="tier", parent=None, depth=0, money=groups[key])
        return
    if grouping in (Grouping.BUREAU, Grouping.DISTRICT):
        kind = grouping.value

        def unit_of(line: PricedLine) -> str:
            node = by_id.get(line.node_id)
            if node is None:
                return DELETED
            return next((a for a in node.ancestor_ids if by_id[a].kind == kind), OUTSIDE)

        groups = _group(lines, unit_of)
        units = [node.id for node in nodes if node.kind == kind and node.id in groups]
        for key in [*units, *(k for k in (OUTSIDE, DELETED) if k in groups)]:
            node = by_id.get(key)
            name = (
                node.display_name if node else f"not under any {kind}" if key == OUTSIDE else "deleted nodes"
            )
            yield _row(
                key=key, name=name, kind=kind if node else key, parent=None, depth=0, money=groups[key]
            )
        return
    yield from _tree_rows(scope, nodes, lines)


def _group(lines: Iterable[PricedLine], key_of: Any) -> dict[str, _Money]:
    groups: dict[str, _Money] = {}
    for line in lines:
        groups.setdefault(key_of(line), _Money()).add(line.money())
    return groups


def _tree_rows(
    scope: orgs.OrgNode, nodes: list[orgs.OrgNode], lines: list[PricedLine]
) -> Iterator[BillRowPublic]:
    """The scope's subtree, parents before children: each node's own lines and its subtree total."""
    by_id = {node.id: node for node in nodes}
    own: dict[str, _Money] = {}
    deleted = _Money()
    for line in lines:
        if line.node_id in by_id:
            own.setdefault(line.node_id, _Money()).add(line.money())
        else:
            deleted.add(line.money())
    children: dict[str, list[str]] = {}
    for node in nodes:
        if node.parent_id is not None:
            children.setdefault(node.parent_id, []).append(node.id)
    subtree: dict[str, _Money] = {}

    def total(node_id: str) -> _Money:
        money = _Money()
        money.add(own.get(node_id, _Money()))
        for child in children.get(node_id, []):
            money.add(total(child))
        if node_id == scope.id and scope.parent_id is None:
            money.add(deleted)
        subtree[node_id] = money
        return money

    total(scope.id)
    stack = [(scope.id, 0)]
    while stack:
        node_id, depth = stack.pop()
        node = by_id[node_id]
        money = subtree[node_id]
        if node_id == scope.id or money.allocated_fen or money.consumed_fen or money.unit_hours:
            yield _row(
                key=node.id,
                name=node.display_name,
                kind=node.kind,
                parent=node.parent_id if node_id != scope.id else None,
                depth=depth,
                money=money,
                own=own.get(node_id, _Money()),
            )
        if (
            node_id == scope.id
            and scope.parent_id is None
            and (deleted.allocated_fen or deleted.consumed_fen)
        ):
            yield _row(
                key=DELETED, name="deleted nodes", kind=DELETED, parent=scope.id, depth=1, money=deleted
            )
        stack.extend((child, depth + 1) for child in reversed(children.get(node_id, [])))


# --- metrics ---------------------------------------------------------------------------------------


def metric_families(ctx: ctx_module.Context) -> Iterator[Any]:
    """Month-to-date cost per org node (its own lines) and center, and how far recording has got."""
    from prometheus_client.core import GaugeMetricFamily

    cost = GaugeMetricFamily(
        "cloudctl_showback_month_to_date_cny",
        "Price of the quota an org node itself held this month so far (its own lines, not its "
        "subtree), per center, in CNY; sum() is the city's month-to-date total.",
        labels=["node", "center"],
    )
    consumed = GaugeMetricFamily(
        "cloudctl_showback_consumed_month_to_date_cny",
        "Price of what the backends reported an org node's workloads consumed this month so far, "
        "per center, in CNY (observed hours only).",
        labels=["node", "center"],
    )
    last_hour = GaugeMetricFamily(
        "cloudctl_usage_last_recorded_hour_end_timestamp_seconds",
        "End of the newest hour whose usage is recorded (Unix time); absent before the first.",
    )
    now = ctx.clock.now()
    period = pricing.month_of(now)
    prices = ctx.topology.pricing
    with ctx.read() as tx:
        last = usage.last_recorded_hour(tx)
    # The month's figures change only when an hour is recorded: price them once per recorded hour.
    key = (period.name, last, id(prices))
    cached = ctx.cache.get(_METRICS_CACHE_KEY)
    if cached is None or cached[0] != key:
        per_key: dict[tuple[str, str], _Money] = {}
        if prices is not None:
            with ctx.read() as tx:
                totals = usage.period_totals(tx, start=period.start, end=period.end)
            for line in price_lines(prices, totals):
                per_key.setdefault((line.node_id, line.center), _Money()).add(line.money())
        cached = (key, per_key)
        ctx.cache[_METRICS_CACHE_KEY] = cached
    if prices is not None:
        for (node, center), money in sorted(cached[1].items()):
            cost.add_metric([node, center], money.allocated_fen / 100)
            consumed.add_metric([node, center], money.consumed_fen / 100)
    if last is not None:
        last_hour.add_metric([], float(last + pricing.HOUR_S))
    yield cost
    yield consumed
    yield last_hour
