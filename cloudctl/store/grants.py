"""Published data items and the grants on them.

Invariants:
- rows are never deleted: a grant ends ``expired`` or ``revoked`` and keeps its row;
- ``update_grant`` writes the whole row it was given, under the lock ``get_grant(...,
  for_update=True)`` took, so two approvals or a revocation racing an expiry never interleave;
- ``due_grants`` returns live grants whose expiry has passed, oldest expiry first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import grants as model
from cloudctl.store import schema


@dataclasses.dataclass(frozen=True)
class ItemRecord:
    id: str
    owner: str
    kind: str
    workload_id: str | None
    prefix: str | None
    dataset: str | None
    data_class: str
    description: str
    published_by: str
    created_at: float


@dataclasses.dataclass(frozen=True)
class GrantRecord:
    id: str
    item_id: str
    provider: str
    consumer: str
    data_class: str
    consumer_data_class: str
    purpose: str
    state: str
    needs_bureau: bool
    provider_approved_by: str | None
    bureau_approved_by: str | None
    requested_by: str
    ended_by: str | None
    reason: str
    enforced_in: list[dict[str, str]]
    expires_at: float
    created_at: float
    updated_at: float


def _item(row: Any) -> ItemRecord:
    return ItemRecord(**{field.name: getattr(row, field.name) for field in dataclasses.fields(ItemRecord)})


def _grant(row: Any) -> GrantRecord:
    values = {field.name: getattr(row, field.name) for field in dataclasses.fields(GrantRecord)}
    values["needs_bureau"] = bool(values["needs_bureau"])
    values["enforced_in"] = list(values["enforced_in"] or [])
    return GrantRecord(**values)


def insert_item(tx: sa.Connection, record: ItemRecord) -> ItemRecord:
    if find_item(tx, record.id) is not None:
        raise errors.Conflict(f"a data item {record.id!r} is published already", field="id")
    tx.execute(schema.data_items.insert(), dataclasses.asdict(record))
    return record


def find_item(tx: sa.Connection, item_id: str) -> ItemRecord | None:
    row = tx.execute(sa.select(schema.data_items).where(schema.data_items.c.id == item_id)).first()
    return None if row is None else _item(row)


def list_items(tx: sa.Connection) -> list[ItemRecord]:
    return [_item(row) for row in tx.execute(sa.select(schema.data_items).order_by(schema.data_items.c.id))]


def insert_grant(tx: sa.Connection, record: GrantRecord) -> GrantRecord:
    tx.execute(schema.data_grants.insert(), dataclasses.asdict(record))
    return record


def find_grant(tx: sa.Connection, grant_id: str, *, for_update: bool = False) -> GrantRecord | None:
    query = sa.select(schema.data_grants).where(schema.data_grants.c.id == grant_id)
    row = tx.execute(query.with_for_update() if for_update else query).first()
    return None if row is None else _grant(row)


def update_grant(tx: sa.Connection, record: GrantRecord) -> GrantRecord:
    values = dataclasses.asdict(record)
    grant_id = values.pop("id")
    tx.execute(schema.data_grants.update().where(schema.data_grants.c.id == grant_id).values(values))
    return record


def list_grants(
    tx: sa.Connection, *, item_id: str | None = None, states: Sequence[str] | None = None
) -> list[GrantRecord]:
    query = sa.select(schema.data_grants).order_by(schema.data_grants.c.id)
    if item_id is not None:
        query = query.where(schema.data_grants.c.item_id == item_id)
    if states is not None:
        query = query.where(schema.data_grants.c.state.in_(list(states)))
    return [_grant(row) for row in tx.execute(query)]


def due_grants(tx: sa.Connection, *, now: float, live_states: Sequence[str]) -> list[GrantRecord]:
    query = (
        sa.select(schema.data_grants)
        .where(schema.data_grants.c.state.in_(list(live_states)))
        .where(schema.data_grants.c.expires_at <= now)
        .order_by(schema.data_grants.c.expires_at, schema.data_grants.c.id)
    )
    return [_grant(row) for row in tx.execute(query)]


def counts_by_class(tx: sa.Connection) -> tuple[dict[str, int], dict[str, int]]:
    """(items published, grants active) per data class."""
    items = schema.data_items
    grants = schema.data_grants
    published = {
        row.data_class: int(row.n)
        for row in tx.execute(
            sa.select(items.c.data_class, sa.func.count().label("n")).group_by(items.c.data_class)
        )
    }
    active = {
        row.data_class: int(row.n)
        for row in tx.execute(
            sa.select(grants.c.data_class, sa.func.count().label("n"))
            .where(grants.c.state == model.GrantState.ACTIVE)
            .group_by(grants.c.data_class)
        )
    }
    return published, active
