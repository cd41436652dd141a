"""The quota engine: limits, subtree counters and reservations, in the store's transactions.

Invariants, held by every function here within one transaction:
- For every node N, center key K (a center or ``*``) and resource R, the counter
  (N, K, R) equals the sum of live reservations and usage of N's subtree on K
  (on ``*``: on every center).
- ``used + reserved`` of a counter never exceeds the limit (N, K, R) where one is
  set; so no reservation overruns any ancestor's limit on any center.
- A child's limit never exceeds an ancestor's limit for the same resource on the
  same center, nor an ancestor's all-centers limit; a limit is never set below
  what its subtree already uses or holds.
- ``reserve`` locks the counter rows of the whole ancestor chain in one fixed
  order (node id, center, resource) with ``SELECT ... FOR UPDATE`` (on SQLite
  the write transaction itself is exclusive), so concurrent reservations neither
  overcommit nor deadlock.
- Reservation states: reserved → committed → released, or reserved → released;
  released is final and releasing twice changes nothing. A recovery center that
  hands a workload back turns its usage into a hold again (committed → reserved).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import ids
from cloudctl.model import quotas as q
from cloudctl.store import bulk, schema

ALL = q.ALL_CENTERS

LimitKey = tuple[str, str, q.Resource]
"""(node id, center key, resource)."""


class ReservationState(enum.StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"


@dataclasses.dataclass(frozen=True)
class Counter:
    node_id: str
    center: str
    resource: q.Resource
    used: int
    reserved: int

    @property
    def in_use(self) -> int:
        return self.used + self.reserved


@dataclasses.dataclass(frozen=True)
class Reservation:
    id: str
    node_id: str
    center: str
    amounts: q.Amounts
    state: ReservationState
    purpose: str
    created_at: float
    updated_at: float


# --- rows per node -------------------------------------------------------------------------


def create_counters(tx: sa.Connection, *, node_id: str, centers: Iterable[str]) -> None:
    """Zeroed counters of a new node for every center and for all centers."""
    rows = [
        {"node_id": node_id, "center": center, "resource": resource.value, "used": 0, "reserved": 0}
        for center in [*centers, ALL]
        for resource in q.RESOURCES
    ]
    tx.execute(schema.quota_counters.insert(), rows)


def add_center(tx: sa.Connection, *, center: str) -> None:
    """Counters for a center added to the topology after the nodes were created."""
    nodes = [str(row[0]) for row in tx.execute(sa.select(schema.org_nodes.c.id))]
    existing = {
        str(row[0])
        for row in tx.execute(
            sa.select(schema.quota_counters.c.node_id)
            .where(schema.quota_counters.c.center == center)
            .distinct()
        )
    }
    rows = [
        {"node_id": node_id, "center": center, "resource": resource.value, "used": 0, "reserved": 0}
        for node_id in nodes
        if node_id not in existing
        for resource in q.RESOURCES
    ]
    if rows:
        tx.execute(schema.quota_counters.insert(), rows)


def total_in_use(tx: sa.Connection, *, node_id: str) -> int:
    value = tx.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(schema.quota_counters.c.used + schema.quota_counters.c.reserved), 0)
        )
        .where(schema.quota_counters.c.node_id == node_id)
        .where(schema.quota_counters.c.center == ALL)
    ).scalar_one()
    return int(value)


def delete_node_quota_rows(tx: sa.Connection, *, node_id: str) -> None:
    tx.execute(schema.quota_limits.delete().where(schema.quota_limits.c.node_id == node_id))
    tx.execute(schema.quota_counters.delete().where(schema.quota_counters.c.node_id == node_id))


# --- reading ---------------------------------------------------------------------------------


_PATH_OF = sa.select(schema.org_nodes.c.path).where(schema.org_nodes.c.id == sa.bindparam("id"))
_LOCK_COUNTERS = (
    sa.select(schema.quota_counters)
    .where(schema.quota_counters.c.node_id.in_(sa.bindparam("nodes", expanding=True)))
    .where(schema.quota_counters.c.center.in_(sa.bindparam("centers", expanding=True)))
    .where(schema.quota_counters.c.resource.in_(sa.bindparam("resources", expanding=True)))
    .order_by(
        schema.quota_counters.c.node_id,
        schema.quota_counters.c.center,
        schema.quota_counters.c.resource,
    )
    .with_for_update()
)
_LIMITS_IN = sa.select(schema.quota_limits).where(
    schema.quota_limits.c.node_id.in_(sa.bindparam("nodes", expanding=True)),
    schema.quota_limits.c.center.in_(sa.bindparam("centers", expanding=True)),
)
_DELTA = sa.case(
    {resource.value: sa.bindparam(f"delta_{resource.value}") for resource in q.RESOURCES},
    value=schema.quota_counters.c.resource,
    else_=0,
)
_ADJUST = (
    schema.quota_counters.update()
    .where(schema.quota_counters.c.node_id.in_(sa.bindparam("chain", expanding=True)))
    .where(schema.quota_counters.c.center.in_(sa.bindparam("centers", expanding=True)))
    .where(schema.quota_counters.c.resource.in_(sa.bindparam("resources", expanding=True)))
    .values(
        reserved=schema.quota_counters.c.reserved + sa.bindparam("reserved_sign") * _DELTA,
        used=schema.quota_counters.c.used + sa.bindparam("used_sign") * _DELTA,
    )
)
_ADD_RESERVED_JSON = sa.text(
    "UPDATE quota_counters SET reserved = reserved + d.delta"
    " FROM (SELECT json_extract(value, '$[0]') AS node_id, json_extract(value, '$[1]') AS center,"
    " json_extract(value, '$[2]') AS resource, json_extract(value, '$[3]') AS delta"
    " FROM json_each(:rows)) AS d"
    " WHERE quota_counters.node_id = d.node_id AND quota_counters.center = d.center"
    " AND quota_counters.resource = d.resource"
)
"""SQLite: one statement adds to ``reserved`` of many counter rows (one JSON array a row), each
reached by the primary key; one parameter instead of one parameter set per row."""
_RESOURCES_BY_NAME = {resource.value: resource for resource in q.RESOURCES}
_ADD_RESERVED_ROWS = sa.text(
    "UPDATE quota_counters AS c SET reserved = c.reserved + d.delta"
    " FROM (SELECT r ->> 0 AS node_id, r ->> 1 AS center, r ->> 2 AS resource,"
    " CAST(r ->> 3 AS BIGINT) AS delta FROM json_array_elements(CAST(:rows AS JSON)) AS r) AS d"
    " WHERE c.node_id = d.node_id AND c.center = d.center AND c.resource = d.resource"
    " AND c.node_id = ANY(ARRAY(SELECT DISTINCT r ->> 0 FROM json_array_elements(CAST(:rows AS JSON)) AS r))"
)
"""PostgreSQL: one statement adds to ``reserved`` of many counter rows (one JSON array a row: one
text parameter, where four arrays cost psycopg a Python loop over every element). The ``ANY``
on the nodes lets the planner reach the rows by the primary key on a large table."""
_LIMIT_OF_COUNTER = sa.and_(
    schema.quota_limits.c.node_id == schema.quota_counters.c.node_id,
    schema.quota_limits.c.center == schema.quota_counters.c.center,
    schema.quota_limits.c.resource == schema.quota_counters.c.resource,
)
_LOCK_IN_USE = (
    sa.select(
        schema.quota_counters.c.node_id,
        schema.quota_counters.c.center,
        schema.quota_counters.c.resource,
        schema.quota_counters.c.used,
        schema.quota_counters.c.reserved,
        schema.quota_limits.c.limit_value,
    )
    .select_from(schema.quota_counters.outerjoin(schema.quota_limits, _LIMIT_OF_COUNTER))
    .where(schema.quota_counters.c.node_id.in_(sa.bindparam("nodes", expanding=True)))
    .where(schema.quota_counters.c.center.in_(sa.bindparam("centers", expanding=True)))
    .where(schema.quota_counters.c.resource.in_(sa.bindparam("resources", expanding=True)))
    .order_by(
        schema.quota_counters.c.node_id,
        schema.quota_counters.c.center,
        schema.quota_counters.c.resource,
    )
    .with_for_update(of=schema.quota_counters)
)
_PATHS_OF = sa.select(schema.org_nodes.c.id, schema.org_nodes.c.path).where(
    schema.org_nodes.c.id.in_(sa.bindparam("ids", expanding=True))
)
_RESERVATIONS_LOCKED = (
    sa.select(schema.reservations)
    .where(schema.reservations.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(schema.reservations.c.id)
    .with_for_update()
)


def _path_of(tx: sa.Connection, node_id: str, *, field: str = "node") -> str:
    path = tx.execute(_PATH_OF, {"id": node_id}).scalar()
    if path is None:
        raise errors.NotFound(f"no org node {node_id!r}", field=field)
    return str(path)


def _chain(path: str) -> list[str]:
    return [part for part in path.split("/") if part]


def get_limits(
    tx: sa.Connection, *, node_ids: Iterable[str], centers: Iterable[str] | None = None
) -> dict[LimitKey, int]:
    if centers is not None:
        rows = tx.execute(_LIMITS_IN, {"nodes": list(node_ids), "centers": list(centers)})
    else:
        rows = tx.execute(
            sa.select(schema.quota_limits).where(schema.quota_limits.c.node_id.in_(list(node_ids)))
        )
    return {
        (str(row.node_id), str(row.center), q.Resource(row.resource)): int(row.limit_value) for row in rows
    }


def get_counters(
    tx: sa.Connection, *, node_ids: Iterable[str], centers: Iterable[str] | None = None
) -> dict[LimitKey, Counter]:
    query = sa.select(schema.quota_counters).where(schema.quota_counters.c.node_id.in_(list(node_ids)))
    if centers is not None:
        query = query.where(schema.quota_counters.c.center.in_(list(centers)))
    return {
        (str(row.node_id), str(row.center), q.Resource(row.resource)): Counter(
            node_id=str(row.node_id),
            center=str(row.center),
            resource=q.Resource(row.resource),
            used=int(row.used),
            reserved=int(row.reserved),
        )
        for row in tx.execute(query)
    }


_HEADROOM_ROWS = (
    sa.select(
        schema.quota_counters.c.node_id,
        schema.quota_counters.c.center,
        schema.quota_counters.c.used + schema.quota_counters.c.reserved,
        schema.quota_limits.c.limit_value,
    )
    .select_from(schema.quota_counters.join(schema.quota_limits, _LIMIT_OF_COUNTER))
    .where(schema.quota_counters.c.node_id.in_(sa.bindparam("chain", expanding=True)))
    .where(schema.quota_counters.c.center.in_(sa.bindparam("centers", expanding=True)))
    .where(schema.quota_counters.c.resource == sa.bindparam("resource"))
)


def headroom(
    tx: sa.Connection, *, chain: Sequence[str], centers: Sequence[str], resource: q.Resource
) -> dict[str, int | None]:
    """What the last node of ``chain`` could still reserve of ``resource`` on each center.

    The least free amount over every limited node of the chain, on the center and on all
    centers; ``None`` where nothing limits it. One statement, only the limited rows.
    """
    return headroom_many(tx, chains={"": chain}, centers=centers, resource=resource)[""]


def headroom_many(
    tx: sa.Connection, *, chains: Mapping[str, Sequence[str]], centers: Sequence[str], resource: q.Resource
) -> dict[str, dict[str, int | None]]:
    """``headroom`` of several chains (by any name, e.g. the department), in one statement."""
    nodes = sorted({node for chain in chains.values() for node in chain})
    free_of_node: dict[str, dict[str, int]] = {}
    if nodes:
        for node, center, in_use, limit in tx.execute(
            _HEADROOM_ROWS, {"chain": nodes, "centers": [*centers, ALL], "resource": resource.value}
        ).all():
            room = max(int(limit) - int(in_use), 0)
            free = free_of_node.setdefault(str(node), {})
            free[str(center)] = min(room, free.get(str(center), room))
    answers: dict[str, dict[str, int | None]] = {}
    for name, chain in chains.items():
        free_in_chain: dict[str, int] = {}
        for node in chain:
            for center, room in free_of_node.get(node, {}).items():
                free_in_chain[center] = min(room, free_in_chain.get(center, room))
        overall = free_in_chain.get(ALL)
        answer: dict[str, int | None] = {}
        for center in centers:
            bounds = [value for value in (free_in_chain.get(center), overall) if value is not None]
            answer[center] = min(bounds) if bounds else None
        answers[name] = answer
    return answers


def ancestor_ids(tx: sa.Connection, *, node_id: str) -> list[str]:
    """Ids from the root down to ``node_id``, inclusive."""
    return _chain(_path_of(tx, node_id))


def _lock_counters(
    tx: sa.Connection, *, node_ids: list[str], centers: list[str], resources: Iterable[q.Resource]
) -> dict[LimitKey, Counter]:
    """Lock counter rows in the one fixed order every writer uses."""
    rows = tx.execute(
        _LOCK_COUNTERS,
        {
            "nodes": list(node_ids),
            "centers": list(centers),
            "resources": [resource.value for resource in resources],
        },
    )
    return {
        (str(row.node_id), str(row.center), q.Resource(row.resource)): Counter(
            node_id=str(row.node_id),
            center=str(row.center),
            resource=q.Resource(row.resource),
            used=int(row.used),
            reserved=int(row.reserved),
        )
        for row in rows
    }


# --- limits ------------------------------------------------------------------------------------


def _lock_limit_changes(tx: sa.Connection) -> None:
    """Serialise limit changes: the nesting check reads limits up and down the tree."""
    updated = tx.execute(
        schema.settings.update()
        .where(schema.settings.c.key == "quota_limits_epoch")
        .values(value=sa.cast(sa.cast(schema.settings.c.value, sa.Integer) + 1, sa.Text))
    )
    if updated.rowcount == 0:
        tx.execute(schema.settings.insert().values(key="quota_limits_epoch", value="1"))


def set_limits(
    tx: sa.Connection, *, node_id: str, center: str, limits: Mapping[q.Resource, int | None]
) -> None:
    """Set (or, with ``None``, remove) limits of one node on one center key, all or nothing."""
    apply_limits(tx, changes={(node_id, center, resource): value for resource, value in limits.items()})


def apply_limits(tx: sa.Connection, *, changes: Mapping[LimitKey, int | None]) -> None:
    """Apply many limit changes at once, checked against the tree as it will be; all or nothing.

    Checking the final state (not each change in turn) lets one call lower a parent
    and its children together, and keeps the cost to one read of the tree.
    """
    if not changes:
        return
    _lock_limit_changes(tx)
    paths = {
        str(row.id): str(row.path)
        for row in tx.execute(sa.select(schema.org_nodes.c.id, schema.org_nodes.c.path))
    }
    for node_id, _center, _resource in changes:
        if node_id not in paths:
            raise errors.NotFound(f"no org node {node_id!r}", field="node")
    final = get_limits(tx, node_ids=paths)
    for key, value in changes.items():
        if value is None:
            final.pop(key, None)
        else:
            final[key] = value
    by_node: dict[str, list[tuple[str, q.Resource, int]]] = {}
    for (node, center, resource), value in final.items():
        by_node.setdefault(node, []).append((center, resource, value))
    to_check = sorted((key, value) for key, value in changes.items() if value is not None)
    counters = _lock_counters(
        tx,
        node_ids=sorted({node for (node, _c, _r), _v in to_check}),
        centers=sorted({center for (_n, center, _r), _v in to_check}),
        resources={resource for (_n, _c, resource), _v in to_check},
    )
    for (node_id, center, resource), value in to_check:
        _check_limit(
            node_id=node_id,
            center=center,
            resource=resource,
            value=value,
            paths=paths,
            by_node=by_node,
            final=final,
            counter=counters[(node_id, center, resource)],
        )
    table = schema.quota_limits
    grouped: dict[tuple[str, str], list[str]] = {}
    for node_id, center, resource in changes:
        grouped.setdefault((node_id, center), []).append(resource.value)
    for (node_id, center), resources in grouped.items():
        tx.execute(
            table.delete()
            .where(table.c.node_id == node_id)
            .where(table.c.center == center)
            .where(table.c.resource.in_(resources))
        )
    rows = [
        {"node_id": node_id, "center": center, "resource": resource.value, "limit_value": value}
        for (node_id, center, resource), value in changes.items()
        if value is not None
    ]
    if rows:
        tx.execute(table.insert(), rows)


def _check_limit(
    *,
    node_id: str,
    center: str,
    resource: q.Resource,
    value: int,
    paths: Mapping[str, str],
    by_node: Mapping[str, list[tuple[str, q.Resource, int]]],
    final: Mapping[LimitKey, int],
    counter: Counter,
) -> None:
    field = f"limits.{resource.value}"
    if value < 0:
        raise errors.InvalidInput("must not be negative", field=field)
    path = paths[node_id]
    scopes = [ALL] if center == ALL else [center, ALL]
    for ancestor in reversed(_chain(path)[:-1]):
        bounds = [
            (final[(ancestor, key, resource)], key) for key in scopes if (ancestor, key, resource) in final
        ]
        if bounds and value > min(bounds)[0]:
            bound, key = min(bounds)
            scope = "all centers" if key == ALL else f"center {key}"
            raise errors.Conflict(
                f"{value} exceeds the limit {bound} of ancestor {ancestor!r} on {scope}", field=field
            )
    over = [
        (child_value, child, child_center)
        for child, child_path in paths.items()
        if child != node_id and child_path.startswith(path)
        for child_center, child_resource, child_value in by_node.get(child, [])
        if child_resource is resource and center in (ALL, child_center) and child_value > value
    ]
    if over:
        child_value, child, child_center = max(over)
        scope = "all centers" if child_center == ALL else f"center {child_center}"
        raise errors.Conflict(
            f"{value} is below the limit {child_value} of descendant {child!r} on {scope}; lower that first",
            field=field,
        )
    if value < counter.in_use:
        raise errors.Conflict(
            f"{value} is below what {node_id!r} already uses or holds ({counter.in_use})", field=field
        )


# --- reservations ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ReservationAsk:
    """One reservation of a batch: ``amounts`` on ``center`` for ``node_id``."""

    node_id: str
    center: str
    amounts: Mapping[q.Resource, int]
    purpose: str = ""
    reservation_id: str | None = None


def reserve(
    tx: sa.Connection,
    *,
    node_id: str,
    center: str,
    amounts: Mapping[q.Resource, int],
    purpose: str = "",
    now: float,
    reservation_id: str | None = None,
) -> Reservation:
    """Hold ``amounts`` on ``center`` for ``node_id``, or raise ``QuotaExceeded`` naming every shortfall."""
    ask = ReservationAsk(
        node_id=node_id, center=center, amounts=amounts, purpose=purpose, reservation_id=reservation_id
    )
    return reserve_many(tx, asks=[ask], now=now)[0]


def reserve_many(tx: sa.Connection, *, asks: Iterable[ReservationAsk], now: float) -> list[Reservation]:
    """Hold several reservations at once (e.g. one per center of a placement): all or none.

    The counter rows of every ask are locked in one statement, in the one fixed
    order, so batches that span centers cannot deadlock each other.
    """
    (outcome,) = hold_each(tx, groups=[list(asks)], now=now)
    if isinstance(outcome, errors.QuotaExceeded):
        raise outcome
    assert outcome is not None
    return outcome


def hold_each(
    tx: sa.Connection,
    *,
    groups: Sequence[Sequence[ReservationAsk]],
    now: float,
    accept: Callable[[int], bool] | None = None,
) -> list[list[Reservation] | errors.QuotaExceeded | None]:
    """Hold each group of asks all or none, in order, against one locking of the counters.

    Group ``i`` is checked against the counters as the groups before it that were held
    left them; if it fits, ``accept(i)`` (when given) may still decline it (``None`` in
    the result, nothing held); if it does not fit, its ``QuotaExceeded`` names every
    shortfall, and nothing is held for it. Whatever was held moves each touched counter
    row once (one ``UPDATE`` per node and center key) and inserts every reservation row
    in one statement: the cost of a batch barely grows with the number of groups.
    """
    for group in groups:
        for ask in group:
            if ask.center == ALL:
                raise errors.InvalidInput("a reservation is made on one center, not all", field="center")
            for resource, value in ask.amounts.items():
                q.check_amount(value, field=f"amounts.{resource.value}")
    chains = _chains(tx, {ask.node_id for group in groups for ask in group})
    wanted = [[q.nonzero(ask.amounts) for ask in group] for group in groups]
    nodes = sorted({node for chain in chains.values() for node in chain})
    centers = sorted({ask.center for group in groups for ask in group} | {ALL})
    resources = {resource for group in wanted for amounts in group for resource in amounts}
    in_use, limits = _lock_in_use(tx, node_ids=nodes, centers=centers, resources=resources)
    pending: dict[LimitKey, int] = {}
    outcomes: list[list[Reservation] | errors.QuotaExceeded | None] = []
    rows: list[dict[str, Any]] = []
    for index, (group, amounts_of) in enumerate(zip(groups, wanted, strict=True)):
        shortfalls, taken = _check_group(
            group, amounts_of, chains=chains, in_use=in_use, limits=limits, pending=pending
        )
        if shortfalls:
            outcomes.append(errors.QuotaExceeded(shortfalls))
            continue
        if accept is not None and not accept(index):
            outcomes.append(None)
            continue
        for row, value in taken.items():
            pending[row] = pending.get(row, 0) + value
        held = [
            Reservation(
                id=ask.reservation_id or ids.random_hex(32),  # an id, not a secret
                node_id=ask.node_id,
                center=ask.center,
                amounts=amounts,
                state=ReservationState.RESERVED,
                purpose=ask.purpose,
                created_at=now,
                updated_at=now,
            )
            for ask, amounts in zip(group, amounts_of, strict=True)
        ]
        rows += [
            {
                "id": reservation.id,
                "node_id": reservation.node_id,
                "center": reservation.center,
                "amounts": q.as_names(reservation.amounts),
                "state": reservation.state.value,
                "purpose": reservation.purpose,
                "created_at": now,
                "updated_at": now,
            }
            for reservation in held
        ]
        outcomes.append(held)
    _add_reserved(tx, pending)
    bulk.insert_rows(tx, schema.reservations, rows)
    return outcomes


def _lock_in_use(
    tx: sa.Connection, *, node_ids: list[str], centers: list[str], resources: Iterable[q.Resource]
) -> tuple[dict[LimitKey, int], dict[LimitKey, int]]:
    """Lock counter rows (the one fixed order) and read them with their limits, in one statement:
    ``used + reserved`` per row, and the limit of each row that has one."""
    in_use: dict[LimitKey, int] = {}
    limits: dict[LimitKey, int] = {}
    rows = tx.execute(
        _LOCK_IN_USE,
        {"nodes": node_ids, "centers": centers, "resources": [resource.value for resource in resources]},
    ).all()  # in one fetch: a batch locks hundreds of rows
    for node, center, resource, used, reserved, limit in rows:
        key = (node, center, _RESOURCES_BY_NAME[resource])
        in_use[key] = used + reserved
        if limit is not None:
            limits[key] = limit
    return in_use, limits


def _chains(tx: sa.Connection, node_ids: Iterable[str]) -> dict[str, list[str]]:
    """Each node's chain from the root, read in one statement."""
    wanted = sorted(set(node_ids))
    if not wanted:
        return {}
    found = {str(row.id): _chain(str(row.path)) for row in tx.execute(_PATHS_OF, {"ids": wanted}).all()}
    for node_id in wanted:
        if node_id not in found:
            raise errors.NotFound(f"no org node {node_id!r}", field="node")
    return found


def _check_group(
    group: Sequence[ReservationAsk],
    amounts_of: Sequence[q.Amounts],
    *,
    chains: Mapping[str, list[str]],
    in_use: Mapping[LimitKey, int],
    limits: Mapping[LimitKey, int],
    pending: Mapping[LimitKey, int],
) -> tuple[list[errors.Shortfall], dict[LimitKey, int]]:
    """The shortfalls of one all-or-none group, and what it would add to each counter row."""
    taken: dict[LimitKey, int] = {}
    shortfalls: list[errors.Shortfall] = []
    short_rows: set[LimitKey] = set()
    for ask, amounts in zip(group, amounts_of, strict=True):
        items = list(amounts.items())
        for node in reversed(chains[ask.node_id]):
            for key in (ask.center, ALL):
                for resource, value in items:
                    row = (node, key, resource)
                    base = in_use.get(row)
                    if base is None:
                        raise errors.NotFound(f"no quota counters for center {ask.center!r}", field="center")
                    so_far = taken.get(row, 0)
                    taken[row] = so_far + value
                    limit = limits.get(row)
                    if limit is None:
                        continue
                    now_in_use = base + pending.get(row, 0) + so_far
                    if now_in_use + value > limit and row not in short_rows:
                        short_rows.add(row)
                        shortfalls.append(
                            errors.Shortfall(
                                node=node,
                                center=key,
                                resource=resource.value,
                                limit=limit,
                                in_use=now_in_use,
                                requested=value,
                            )
                        )
    return shortfalls, taken


def _add_reserved(tx: sa.Connection, deltas: Mapping[LimitKey, int]) -> None:
    """Add to ``reserved`` of the counter rows that move, in one statement (rows in key order)."""
    moved = sorted(
        (node, key, resource.value, value) for (node, key, resource), value in deltas.items() if value
    )
    if not moved:
        return
    statement = _ADD_RESERVED_ROWS if tx.dialect.name == "postgresql" else _ADD_RESERVED_JSON
    tx.execute(statement, {"rows": json.dumps(moved)})


def _adjust(
    tx: sa.Connection,
    *,
    chain: list[str],
    center: str,
    amounts: Mapping[q.Resource, int],
    reserved_sign: int,
    used_sign: int,
) -> None:
    """Add ``amounts`` to the chain's counters on ``center`` and all centers, in one statement."""
    if not amounts:
        return
    params: dict[str, Any] = {f"delta_{resource.value}": amounts.get(resource, 0) for resource in q.RESOURCES}
    params.update(
        chain=list(chain),
        centers=[center, ALL],
        resources=[resource.value for resource in amounts],
        reserved_sign=reserved_sign,
        used_sign=used_sign,
    )
    tx.execute(_ADJUST, params)


def _row_to_reservation(row: Any) -> Reservation:
    return Reservation(
        id=str(row.id),
        node_id=str(row.node_id),
        center=str(row.center),
        amounts={q.Resource(name): int(value) for name, value in dict(row.amounts).items()},
        state=ReservationState(row.state),
        purpose=str(row.purpose),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
    )


def find_reservation(tx: sa.Connection, reservation_id: str) -> Reservation | None:
    row = tx.execute(sa.select(schema.reservations).where(schema.reservations.c.id == reservation_id)).first()
    return None if row is None else _row_to_reservation(row)


def get_reservation(tx: sa.Connection, reservation_id: str) -> Reservation:
    reservation = find_reservation(tx, reservation_id)
    if reservation is None:
        raise errors.NotFound(f"no reservation {reservation_id!r}", field="reservation")
    return reservation


def _lock_reservations(tx: sa.Connection, reservation_ids: list[str]) -> list[Reservation]:
    rows = tx.execute(_RESERVATIONS_LOCKED, {"ids": list(reservation_ids)}).all()
    found = {str(row.id): _row_to_reservation(row) for row in rows}
    for reservation_id in reservation_ids:
        if reservation_id not in found:
            raise errors.NotFound(f"no reservation {reservation_id!r}", field="reservation")
    return [found[reservation_id] for reservation_id in reservation_ids]


_SET_STATES = (
    schema.reservations.update()
    .where(schema.reservations.c.id.in_(sa.bindparam("ids", expanding=True)))
    .values(state=sa.bindparam("state"), updated_at=sa.bindparam("now"))
)
_SET_STATES_BATCH = 500
"""Ids per statement of ``_set_states``: well under SQLite's limit on bound parameters."""


def _set_states(tx: sa.Connection, reservation_ids: list[str], state: ReservationState, now: float) -> None:
    """Move the reservations to ``state``: one statement per ``_SET_STATES_BATCH`` of them."""
    for start in range(0, len(reservation_ids), _SET_STATES_BATCH):
        ids = reservation_ids[start : start + _SET_STATES_BATCH]
        tx.execute(_SET_STATES, {"ids": ids, "state": state.value, "now": now})


_COUNTS: dict[ReservationState, tuple[int, int]] = {
    ReservationState.RESERVED: (1, 0),
    ReservationState.COMMITTED: (0, 1),
    ReservationState.RELEASED: (0, 0),
}
"""What a reservation in each state counts, per unit of its amounts: (reserved, used)."""


def _move(
    tx: sa.Connection, reservation_ids: list[str], *, to: ReservationState, now: float
) -> list[Reservation]:
    """Move reservations to ``to``, locking every counter row they touch in one go; each counter
    changes by what ``to`` counts minus what the old state did. A reservation already in ``to``
    is left; committing a released one is a conflict; only committed usage goes back to a hold."""
    reservations = _lock_reservations(tx, reservation_ids)
    if to is ReservationState.RESERVED:
        moving = [r for r in reservations if r.state is ReservationState.COMMITTED]
    else:
        moving = [r for r in reservations if r.state is not to]
    if to is ReservationState.COMMITTED:
        for reservation in moving:
            if reservation.state is ReservationState.RELEASED:
                raise errors.Conflict(f"reservation {reservation.id!r} was released", field="reservation")
    if not moving:
        return reservations
    chains: dict[str, list[str]] = {}
    for reservation in moving:
        if reservation.node_id not in chains:
            chains[reservation.node_id] = ancestor_ids(tx, node_id=reservation.node_id)
    _lock_counters(
        tx,
        node_ids=sorted({node for chain in chains.values() for node in chain}),
        centers=sorted({r.center for r in moving} | {ALL}),
        resources={resource for r in moving for resource in r.amounts},
    )
    # Reservations of one node and center moving from one state change the same counters by
    # the same signs: their amounts are added up and the counters changed once for them all.
    totals: dict[tuple[str, str, ReservationState], dict[q.Resource, int]] = {}
    for reservation in moving:
        amounts = totals.setdefault((reservation.node_id, reservation.center, reservation.state), {})
        for resource, amount in reservation.amounts.items():
            amounts[resource] = amounts.get(resource, 0) + amount
    held_to, used_to = _COUNTS[to]
    for (node_id, center, state), amounts in totals.items():
        held_from, used_from = _COUNTS[state]
        _adjust(
            tx,
            chain=chains[node_id],
            center=center,
            amounts=amounts,
            reserved_sign=held_to - held_from,
            used_sign=used_to - used_from,
        )
    _set_states(tx, [reservation.id for reservation in moving], to, now)
    return [dataclasses.replace(r, state=to, updated_at=now) if r in moving else r for r in reservations]


def commit_reservation(tx: sa.Connection, reservation_id: str, *, now: float) -> Reservation:
    """Turn held quota into usage (the resources now exist); committing twice changes nothing."""
    return _move(tx, [reservation_id], to=ReservationState.COMMITTED, now=now)[0]


def release_reservation(tx: sa.Connection, reservation_id: str, *, now: float) -> Reservation:
    """Give back held quota or usage; releasing twice changes nothing."""
    return _move(tx, [reservation_id], to=ReservationState.RELEASED, now=now)[0]


def commit_reservations(tx: sa.Connection, reservation_ids: list[str], *, now: float) -> list[Reservation]:
    return _move(tx, reservation_ids, to=ReservationState.COMMITTED, now=now)


def release_reservations(tx: sa.Connection, reservation_ids: list[str], *, now: float) -> list[Reservation]:
    return _move(tx, reservation_ids, to=ReservationState.RELEASED, now=now)


def list_reservations(
    tx: sa.Connection,
    *,
    node_id: str | None = None,
    states: Iterable[ReservationState] | None = None,
    limit: int | None = None,
) -> list[Reservation]:
    query = sa.select(schema.reservations).order_by(
        schema.reservations.c.created_at, schema.reservations.c.id
    )
    if node_id is not None:
        query = query.where(schema.reservations.c.node_id == node_id)
    if states is not None:
        query = query.where(schema.reservations.c.state.in_([state.value for state in states]))
    if limit is not None:
        query = query.limit(limit)
    return [_row_to_reservation(row) for row in tx.execute(query)]


def hold_reservations(tx: sa.Connection, reservation_ids: list[str], *, now: float) -> list[Reservation]:
    """Turn usage back into a hold (committed → reserved): a recovery center handing its
    workload back keeps the failover headroom without running anything."""
    return _move(tx, reservation_ids, to=ReservationState.RESERVED, now=now)
