"""Property: a bill's totals roll up the org tree exactly, in every grouping, to the fen.

Random hourly usage (any node of the shipped tree, any center, tier and resource, several
hours) is recorded through the store; then the bill of the month must satisfy, in integer
fen: each node's total is its own lines plus its children's totals; the city's total is the
sum of the independently priced lines; the rows of ``--by center|tier|bureau|district``
add up to the same total; and a department's own bill equals its row in the city's.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudctl import clock as clocks
from cloudctl.model import pricing
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.services import setup, showback
from cloudctl.store import db, schema, usage
from tests import conftest

NOV_1 = 1_793_491_200  # 2026-11-01T00:00:00Z
TIERS = ["platinum", "gold", "silver", "bronze", pricing.NO_TIER]
CENTERS = ["mgmt", "qd-a", "qd-b", "dz-dr"]


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ctx_module.Context]:
    home: Path = tmp_path_factory.mktemp("rollup")
    store = db.Store(db.sqlite_url(home))
    store.migrate()
    context = conftest.make_context(store, clocks.ManualClock(start=NOV_1 + 20 * 86400), home)
    setup.initialise(context)
    yield context
    store.dispose()


NODES = sorted(
    node.id for node, _parent in topo.parse(conftest.TOPOLOGY.read_text(encoding="utf-8")).org.walk()
)

line_keys = st.tuples(
    st.sampled_from(NODES),
    st.sampled_from(CENTERS),
    st.sampled_from(TIERS),
    st.sampled_from(list(q.RESOURCES)),
)
hours_of_usage = st.lists(
    st.dictionaries(line_keys, st.integers(min_value=0, max_value=5000), min_size=1, max_size=25),
    min_size=1,
    max_size=4,
)


def fen(text: str) -> int:
    return int(decimal.Decimal(text) * 100)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(recorded=hours_of_usage)
def test_totals_roll_up_the_org_tree_exactly(
    city: ctx_module.Context, recorded: list[dict[tuple[str, str, str, q.Resource], int]]
) -> None:
    with city.store.transaction() as tx:
        for table in (schema.usage_hours, schema.usage_passes, schema.capacity_samples):
            tx.execute(sa.delete(table))
        for index, lines in enumerate(recorded):
            usage.record_hour(
                tx,
                hour=NOV_1 + index * 3600,
                lines={
                    key: usage.Line(allocated=amount, consumed=amount // 2) for key, amount in lines.items()
                },
                samples={},
                consumed_observed=True,
                now=NOV_1,
            )
    prices = city.topology.pricing
    assert prices is not None
    unit_hours: dict[tuple[str, str, str, q.Resource], int] = {}
    for lines in recorded:
        for key, amount in lines.items():
            unit_hours[key] = unit_hours.get(key, 0) + amount
    expected = sum(
        int(
            (hours * pricing.rate(prices, resource=key[3], tier=key[2], center=key[1])).quantize(
                decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP
            )
            * 100
        )
        for key, hours in unit_hours.items()
    )

    tree = showback.bill(city, month="2026-11")
    assert fen(tree.total.allocated_cny) == expected
    rows = {row.key: row for row in tree.rows}
    assert fen(rows["qingdao"].allocated_cny) == expected
    for row in tree.rows:
        children = [child for child in tree.rows if child.parent == row.key]
        assert fen(row.allocated_cny) == fen(row.own_allocated_cny) + sum(
            fen(c.allocated_cny) for c in children
        )
        assert fen(row.consumed_cny) >= 0
    for grouping in ("center", "tier", "bureau", "district"):
        grouped = showback.bill(city, month="2026-11", by=grouping)
        assert sum(fen(row.allocated_cny) for row in grouped.rows) == expected, grouping
        assert sum(fen(row.consumed_cny) for row in grouped.rows) == fen(tree.total.consumed_cny), grouping
    for department in ("hrss", "shinan", "psb-traffic"):
        own_bill = showback.bill(city, month="2026-11", department=department)
        in_city = fen(rows[department].allocated_cny) if department in rows else 0
        assert fen(own_bill.total.allocated_cny) == in_city
