"""Property-based tests of the quota engine over random trees and operation sequences.

A small reference model predicts every answer (granted or refused, accepted or
rejected); after each step the store must agree with it and keep the invariants:
counters equal the live reservations of each subtree, no counter exceeds its limit,
no child limit exceeds an ancestor's.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.store import db, orgs, quotas

CENTERS = ["c1", "c2"]
KEYS = [*CENTERS, q.ALL_CENTERS]
VCPU = q.Resource.VCPU
_example = itertools.count()


@dataclasses.dataclass
class Reference:
    parents: dict[str, str | None]
    limits: dict[tuple[str, str], int]
    live: dict[str, tuple[str, str, int]] = dataclasses.field(default_factory=dict)

    def chain(self, node: str) -> list[str]:
        result = [node]
        while (parent := self.parents[result[-1]]) is not None:
            result.append(parent)
        return result

    def in_use(self, node: str, key: str) -> int:
        return sum(
            amount
            for owner, center, amount in self.live.values()
            if node in self.chain(owner) and key in (center, q.ALL_CENTERS)
        )

    def fits(self, node: str, center: str, amount: int) -> bool:
        return all(
            self.in_use(a, key) + amount <= self.limits[(a, key)]
            for a in self.chain(node)
            for key in (center, q.ALL_CENTERS)
            if (a, key) in self.limits
        )

    def limit_allowed(self, node: str, key: str, value: int) -> bool:
        scopes = [q.ALL_CENTERS] if key == q.ALL_CENTERS else [key, q.ALL_CENTERS]
        for ancestor in self.chain(node)[1:]:
            if any((ancestor, s) in self.limits and value > self.limits[(ancestor, s)] for s in scopes):
                return False
        for other in self.parents:
            if other != node and node in self.chain(other):
                for other_key in KEYS:
                    bounded = key in (q.ALL_CENTERS, other_key)
                    if bounded and self.limits.get((other, other_key), -1) > value:
                        return False
        return value >= self.in_use(node, key)


@st.composite
def trees(draw: st.DrawFn) -> tuple[list[tuple[str, str | None]], dict[tuple[str, str], int]]:
    size = draw(st.integers(min_value=1, max_value=7))
    prefix = f"p{next(_example)}"
    nodes: list[tuple[str, str | None]] = [(f"{prefix}-0", None)]
    for index in range(1, size):
        parent = draw(st.sampled_from([name for name, _ in nodes]))
        nodes.append((f"{prefix}-{index}", parent))
    limits: dict[tuple[str, str], int] = {}
    for name, parent in nodes:
        for key in KEYS:
            if not draw(st.booleans()):
                continue
            bounds = [
                limits[(ancestor, scope)]
                for ancestor in _ancestors(nodes, parent)
                for scope in ([q.ALL_CENTERS] if key == q.ALL_CENTERS else [key, q.ALL_CENTERS])
                if (ancestor, scope) in limits
            ]
            limits[(name, key)] = draw(st.integers(min_value=0, max_value=min(bounds, default=30)))
    return nodes, limits


def _ancestors(nodes: list[tuple[str, str | None]], parent: str | None) -> Iterator[str]:
    parents = dict(nodes)
    while parent is not None:
        yield parent
        parent = parents[parent]


operations = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.integers(0, 6), st.sampled_from(CENTERS), st.integers(1, 9)),
        st.tuples(st.just("commit"), st.integers(0, 40)),
        st.tuples(st.just("release"), st.integers(0, 40)),
        st.tuples(st.just("limit"), st.integers(0, 6), st.sampled_from(KEYS), st.integers(0, 30)),
        st.tuples(st.just("unlimit"), st.integers(0, 6), st.sampled_from(KEYS)),
    ),
    max_size=25,
)


@pytest.fixture
def shared_store(store: db.Store) -> db.Store:
    """One store for all examples of a test: each example builds its own subtree under ``root``."""
    with store.transaction() as tx:
        orgs.create_node(
            tx, node_id="root", display_name="根", kind="city", parent_id=None, centers=CENTERS, now=0
        )
    return store


def run_example(
    store: db.Store,
    tree: tuple[list[tuple[str, str | None]], dict[tuple[str, str], int]],
    ops: list[tuple[object, ...]],
) -> None:
    nodes, limits = tree
    with store.transaction() as tx:
        for name, parent in nodes:
            orgs.create_node(
                tx,
                node_id=name,
                display_name=name,
                kind="bureau",  # any depth: a department would take no children
                parent_id=parent or "root",
                centers=CENTERS,
                now=0,
            )
        quotas.apply_limits(tx, changes={(node, key, VCPU): value for (node, key), value in limits.items()})
    ref = Reference(parents={name: parent for name, parent in nodes}, limits=dict(limits))
    names = [name for name, _ in nodes]
    issued: list[str] = []
    for op in ops:
        kind = op[0]
        if kind == "reserve":
            node, center, amount = names[int(op[1]) % len(names)], str(op[2]), int(op[3])  # type: ignore[call-overload]
            expected = ref.fits(node, center, amount)
            try:
                with store.transaction() as tx:
                    reservation = quotas.reserve(
                        tx, node_id=node, center=center, amounts={VCPU: amount}, now=0
                    )
            except errors.QuotaExceeded as refused:
                assert not expected, "refused although it fits"
                assert all(s.node in ref.chain(node) for s in refused.shortfalls)
            else:
                assert expected, "granted although it does not fit"
                ref.live[reservation.id] = (node, center, amount)
                issued.append(reservation.id)
        elif kind in ("commit", "release") and issued:
            reservation_id = issued[int(op[1]) % len(issued)]  # type: ignore[call-overload]
            with store.transaction() as tx:
                current = quotas.get_reservation(tx, reservation_id)
            if kind == "release":
                with store.transaction() as tx:
                    quotas.release_reservation(tx, reservation_id, now=0)
                ref.live.pop(reservation_id, None)
            elif current.state is not quotas.ReservationState.RELEASED:
                with store.transaction() as tx:
                    quotas.commit_reservation(tx, reservation_id, now=0)
        elif kind in ("limit", "unlimit"):
            node, key = names[int(op[1]) % len(names)], str(op[2])  # type: ignore[call-overload]
            value = int(op[3]) if kind == "limit" else None  # type: ignore[call-overload]
            expected = value is None or ref.limit_allowed(node, key, value)
            try:
                with store.transaction() as tx:
                    quotas.set_limits(tx, node_id=node, center=key, limits={VCPU: value})
            except errors.Conflict:
                assert not expected, f"limit {node}/{key}={value} refused although allowed"
            else:
                assert expected, f"limit {node}/{key}={value} accepted although it breaks the tree"
                if value is None:
                    ref.limits.pop((node, key), None)
                else:
                    ref.limits[(node, key)] = value
        check_invariants(store, ref, names)
    with store.transaction() as tx:
        for reservation_id in issued:
            quotas.release_reservation(tx, reservation_id, now=0)
        counters = quotas.get_counters(tx, node_ids=[*names, "root"])
    assert all(counter.in_use == 0 for counter in counters.values())


def check_invariants(store: db.Store, ref: Reference, names: list[str]) -> None:
    with store.read() as tx:
        counters = quotas.get_counters(tx, node_ids=names)
        limits = quotas.get_limits(tx, node_ids=names)
    assert {(n, k): v for (n, k, _r), v in limits.items()} == ref.limits
    for node in names:
        for key in KEYS:
            counter = counters[(node, key, VCPU)]
            assert counter.in_use == ref.in_use(node, key)
            if (node, key) in ref.limits:
                assert counter.in_use <= ref.limits[(node, key)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=trees(), ops=operations)
def test_the_engine_agrees_with_the_reference_and_keeps_its_invariants(
    shared_store: db.Store,
    tree: tuple[list[tuple[str, str | None]], dict[tuple[str, str], int]],
    ops: list[tuple[object, ...]],
) -> None:
    run_example(shared_store, tree, ops)
