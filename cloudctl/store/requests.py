"""Requests, the workloads they become, their placements, and idempotency keys.

Invariants:
- A request's ``steps`` only grow: each lifecycle step is appended with its time,
  so a reader (or a resumed process) sees how far it got.
- ``resource_version`` increases on every update; ``update_request`` and
  ``update_workload`` refuse a stale expected version (optimistic concurrency).
- One workload per request; one placement per workload and center.
- An idempotency key belongs to one principal and names the object it created.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.store import bulk, db, schema


@dataclasses.dataclass(frozen=True)
class RequestRecord:
    id: str
    department: str
    offering: str
    count: int
    tier: str
    data_class: str
    preferred_center: str | None
    name: str
    state: str
    needs_approval: bool
    approval_policy_ids: list[str]
    reasons: list[str]
    steps: list[dict[str, Any]]
    workload_id: str | None
    created_by: str
    created_at: float
    updated_at: float
    resource_version: int


@dataclasses.dataclass(frozen=True)
class PlacementRecord:
    workload_id: str
    center: str
    role: str
    reservation_id: str
    resources: list[dict[str, Any]]
    state: str


@dataclasses.dataclass(frozen=True)
class WorkloadRecord:
    id: str
    request_id: str
    department: str
    name: str
    offering: str
    count: int
    tier: str
    data_class: str
    state: str
    reasons: list[str]
    created_at: float
    updated_at: float
    resource_version: int
    placements: list[PlacementRecord]


def _request(row: Any) -> RequestRecord:
    return RequestRecord(
        id=row.id,
        department=row.department,
        offering=row.offering,
        count=int(row.count),
        tier=row.tier,
        data_class=row.data_class,
        preferred_center=row.preferred_center,
        name=row.name,
        state=row.state,
        needs_approval=bool(row.needs_approval),
        approval_policy_ids=list(row.approval_policy_ids),
        reasons=list(row.reasons),
        steps=list(row.steps),
        workload_id=row.workload_id,
        created_by=row.created_by,
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        resource_version=int(row.resource_version),
    )


_FIND_REQUEST = sa.select(schema.requests).where(schema.requests.c.id == sa.bindparam("id"))
_FIND_REQUEST_LOCKED = _FIND_REQUEST.with_for_update()
_FIND_WORKLOAD = sa.select(schema.workloads).where(schema.workloads.c.id == sa.bindparam("id"))
_FIND_WORKLOAD_LOCKED = _FIND_WORKLOAD.with_for_update()
_LOCK_REQUESTS = (
    sa.select(schema.requests)
    .where(schema.requests.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(schema.requests.c.id)
    .with_for_update()
)
_LOCK_WORKLOADS = (
    sa.select(schema.workloads)
    .where(schema.workloads.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(schema.workloads.c.id)
    .with_for_update()
)
_PLACEMENTS = (
    sa.select(schema.placements)
    .where(schema.placements.c.workload_id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(schema.placements.c.workload_id, schema.placements.c.center)
)


def _row(record: Any, *, leave_out: str = "") -> dict[str, Any]:
    """A record's fields as the insert takes them (shallow: ``asdict`` would deep-copy every list)."""
    return {
        field.name: getattr(record, field.name)
        for field in dataclasses.fields(record)
        if field.name != leave_out
    }


def insert_request(tx: sa.Connection, record: RequestRecord) -> RequestRecord:
    tx.execute(schema.requests.insert(), _row(record))
    return record


def insert_requests(tx: sa.Connection, records: Sequence[RequestRecord]) -> None:
    """Several requests in one statement."""
    if records:
        bulk.insert_rows(tx, schema.requests, [_row(record) for record in records])


def find_request(tx: sa.Connection, request_id: str, *, for_update: bool = False) -> RequestRecord | None:
    query = _FIND_REQUEST_LOCKED if for_update else _FIND_REQUEST
    row = tx.execute(query, {"id": request_id}).first()
    return None if row is None else _request(row)


def get_request(tx: sa.Connection, request_id: str, *, for_update: bool = False) -> RequestRecord:
    record = find_request(tx, request_id, for_update=for_update)
    if record is None:
        raise errors.NotFound(f"no request {request_id!r}", field="request")
    return record


def list_requests(
    tx: sa.Connection,
    *,
    departments: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    after: str | None = None,
    limit: int | None = None,
) -> list[RequestRecord]:
    """Requests ordered by id (ids sort by creation time); ``after`` is the last id of the previous page."""
    query = sa.select(schema.requests).order_by(schema.requests.c.id)
    if departments is not None:
        query = query.where(schema.requests.c.department.in_(list(departments)))
    if states is not None:
        query = query.where(schema.requests.c.state.in_(list(states)))
    if after is not None:
        query = query.where(schema.requests.c.id > after)
    if limit is not None:
        query = query.limit(limit)
    return [_request(row) for row in tx.execute(query)]


def lock_requests(tx: sa.Connection, request_ids: Sequence[str]) -> dict[str, RequestRecord]:
    """The requests, locked for update in the order of their ids, in one statement; ``NotFound``
    if one is missing."""
    rows = tx.execute(_LOCK_REQUESTS, {"ids": list(request_ids)}).all()
    found = {row.id: _request(row) for row in rows}
    for request_id in request_ids:
        if request_id not in found:
            raise errors.NotFound(f"no request {request_id!r}", field="request")
    return found


def _request_values(
    current: RequestRecord, *, step: str | None, now: float, changes: dict[str, Any]
) -> dict[str, Any]:
    values = dict(changes)
    if step is not None:
        values["steps"] = [*current.steps, {"step": step, "at": now, **changes.get("_detail", {})}]
    values.pop("_detail", None)
    values["updated_at"] = now
    values["resource_version"] = current.resource_version + 1
    return values


Versioned = typing.TypeVar("Versioned", RequestRecord, WorkloadRecord)


def _update_versioned(
    tx: sa.Connection, table: sa.Table, currents: Sequence[Versioned], values: list[dict[str, Any]]
) -> list[Versioned]:
    """Each record's ``values`` written if nobody changed it since it was read (its id and
    ``resource_version``), all together (``bulk.update_rows``); ``Conflict`` (and nothing kept,
    the transaction failing) if any changed; the records as written."""
    rows = [
        ({"id": current.id, "resource_version": current.resource_version}, value)
        for current, value in zip(currents, values, strict=True)
    ]
    if bulk.update_rows(tx, table, rows) != len(rows):
        kind = str(table.name).removesuffix("s")
        raise errors.Conflict(f"a {kind} changed while it was being updated", field=kind)
    return [dataclasses.replace(current, **value) for current, value in zip(currents, values, strict=True)]


def update_requests(
    tx: sa.Connection,
    currents: Sequence[RequestRecord],
    *,
    step: str | None = None,
    now: float,
    **changes: Any,
) -> list[RequestRecord]:
    """``update_request`` for several requests with the same ``changes``, together
    (``bulk.update_rows``); ``Conflict`` (and nothing kept, the transaction failing) if any changed
    since it was read."""
    values = [_request_values(current, step=step, now=now, changes=changes) for current in currents]
    return _update_versioned(tx, schema.requests, currents, values)


_PENDING_PLACEMENTS = (
    sa.select(schema.requests.c.id, schema.placements.c.center, schema.placements.c.role)
    .select_from(
        schema.requests.outerjoin(
            schema.placements, schema.placements.c.workload_id == schema.requests.c.workload_id
        )
    )
    .where(schema.requests.c.state.in_(sa.bindparam("states", expanding=True)))
    .order_by(schema.requests.c.id, schema.placements.c.center)
)


def placements_of_requests(tx: sa.Connection, *, states: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """The requests in ``states``, by id in order, each with ``(center, role)`` of its workload's
    placements in the order of their centers (none if it has no workload): one statement that
    reads three columns, not the records."""
    found: dict[str, list[tuple[str, str]]] = {}
    for request_id, center, role in tx.execute(_PENDING_PLACEMENTS, {"states": list(states)}):
        placements = found.setdefault(str(request_id), [])
        if center is not None:
            placements.append((str(center), str(role)))
    return found


def update_request(
    tx: sa.Connection, current: RequestRecord, *, step: str | None = None, now: float, **changes: Any
) -> RequestRecord:
    """Write ``changes`` (and append ``step``) if nobody changed the request since ``current`` was read."""
    values = _request_values(current, step=step, now=now, changes=changes)
    result = db.update_values(
        tx,
        schema.requests,
        where={"id": current.id, "resource_version": current.resource_version},
        values=values,
    )
    if result.rowcount != 1:
        raise errors.Conflict(f"request {current.id!r} changed while it was being updated", field="request")
    return dataclasses.replace(current, **values)


# --- workloads -------------------------------------------------------------------------------------


def _placement(row: Any) -> PlacementRecord:
    return PlacementRecord(
        workload_id=row.workload_id,
        center=row.center,
        role=row.role,
        reservation_id=row.reservation_id,
        resources=list(row.resources),
        state=row.state,
    )


def _placements(tx: sa.Connection, workload_ids: list[str]) -> dict[str, list[PlacementRecord]]:
    result: dict[str, list[PlacementRecord]] = {workload_id: [] for workload_id in workload_ids}
    if not workload_ids:
        return result
    for row in tx.execute(_PLACEMENTS, {"ids": list(workload_ids)}):
        result[row.workload_id].append(_placement(row))
    return result


def _workload(row: Any, placements: list[PlacementRecord]) -> WorkloadRecord:
    return WorkloadRecord(
        id=row.id,
        request_id=row.request_id,
        department=row.department,
        name=row.name,
        offering=row.offering,
        count=int(row.count),
        tier=row.tier,
        data_class=row.data_class,
        state=row.state,
        reasons=list(row.reasons),
        created_at=float(row.created_at),
        updated_at=float(row.updated_at),
        resource_version=int(row.resource_version),
        placements=placements,
    )


def insert_workload(tx: sa.Connection, record: WorkloadRecord) -> WorkloadRecord:
    tx.execute(schema.workloads.insert(), _row(record, leave_out="placements"))
    if record.placements:
        tx.execute(schema.placements.insert(), [_row(p) for p in record.placements])
    return record


def insert_workloads(tx: sa.Connection, records: Sequence[WorkloadRecord]) -> None:
    """Several workloads and all their placements, in one statement per table."""
    if not records:
        return
    rows = [_row(record, leave_out="placements") for record in records]
    placements = [_row(placement) for record in records for placement in record.placements]
    bulk.insert_rows(tx, schema.workloads, rows)
    bulk.insert_rows(tx, schema.placements, placements)


def find_workload(tx: sa.Connection, workload_id: str, *, for_update: bool = False) -> WorkloadRecord | None:
    query = _FIND_WORKLOAD_LOCKED if for_update else _FIND_WORKLOAD
    row = tx.execute(query, {"id": workload_id}).first()
    if row is None:
        return None
    return _workload(row, _placements(tx, [workload_id])[workload_id])


def lock_workloads(tx: sa.Connection, workload_ids: Sequence[str]) -> dict[str, WorkloadRecord]:
    """The workloads, locked for update in the order of their ids, with their placements (two
    statements in all); ``NotFound`` if one is missing."""
    rows = tx.execute(_LOCK_WORKLOADS, {"ids": list(workload_ids)}).all()
    placements = _placements(tx, [row.id for row in rows])
    found = {row.id: _workload(row, placements[row.id]) for row in rows}
    for workload_id in workload_ids:
        if workload_id not in found:
            raise errors.NotFound(f"no workload {workload_id!r}", field="workload")
    return found


def get_workload(tx: sa.Connection, workload_id: str, *, for_update: bool = False) -> WorkloadRecord:
    record = find_workload(tx, workload_id, for_update=for_update)
    if record is None:
        raise errors.NotFound(f"no workload {workload_id!r}", field="workload")
    return record


def list_workloads(
    tx: sa.Connection,
    *,
    departments: Iterable[str] | None = None,
    states: Iterable[str] | None = None,
    tiers: Iterable[str] | None = None,
    after: str | None = None,
    limit: int | None = None,
    ids: Iterable[str] | None = None,
) -> list[WorkloadRecord]:
    query = sa.select(schema.workloads).order_by(schema.workloads.c.id)
    if ids is not None:
        query = query.where(schema.workloads.c.id.in_(list(ids)))
    if departments is not None:
        query = query.where(schema.workloads.c.department.in_(list(departments)))
    if states is not None:
        query = query.where(schema.workloads.c.state.in_(list(states)))
    if tiers is not None:
        query = query.where(schema.workloads.c.tier.in_(list(tiers)))
    if after is not None:
        query = query.where(schema.workloads.c.id > after)
    if limit is not None:
        query = query.limit(limit)
    rows = tx.execute(query).all()
    placements = _placements(tx, [row.id for row in rows])
    return [_workload(row, placements[row.id]) for row in rows]


def update_workload(
    tx: sa.Connection, current: WorkloadRecord, *, now: float, with_placements: bool = True, **changes: Any
) -> WorkloadRecord:
    """Write ``changes`` if nobody changed the workload since ``current`` was read; the record
    as written, its placements read again (``with_placements=False``: kept as in ``current``,
    for a caller that does not look at them)."""
    values = {**changes, "updated_at": now, "resource_version": current.resource_version + 1}
    result = db.update_values(
        tx,
        schema.workloads,
        where={"id": current.id, "resource_version": current.resource_version},
        values=values,
    )
    if result.rowcount != 1:
        raise errors.Conflict(f"workload {current.id!r} changed while it was being updated", field="workload")
    if not with_placements:
        return dataclasses.replace(current, **values)
    # The placements may have changed since ``current`` was read (``update_placement``).
    return dataclasses.replace(current, **values, placements=_placements(tx, [current.id])[current.id])


def update_workloads(
    tx: sa.Connection, currents: Sequence[WorkloadRecord], *, now: float, **changes: Any
) -> list[WorkloadRecord]:
    """``update_workload(..., with_placements=False)`` for several workloads with the same
    ``changes``, together (``bulk.update_rows``); ``Conflict`` if any changed since it was read."""
    values = [
        {**changes, "updated_at": now, "resource_version": current.resource_version + 1}
        for current in currents
    ]
    return _update_versioned(tx, schema.workloads, currents, values)


def update_placements(tx: sa.Connection, changes: Sequence[tuple[str, str, Mapping[str, Any]]]) -> None:
    """``update_placement`` for several ``(workload_id, center, values)`` whose values name the
    same columns, together (``bulk.update_rows``)."""
    bulk.update_rows(
        tx,
        schema.placements,
        [
            ({"workload_id": workload_id, "center": center}, dict(values))
            for workload_id, center, values in changes
        ],
    )


def update_placement(tx: sa.Connection, *, workload_id: str, center: str, values: Mapping[str, Any]) -> None:
    db.update_values(
        tx, schema.placements, where={"workload_id": workload_id, "center": center}, values=dict(values)
    )


def count_by_state(tx: sa.Connection) -> dict[str, int]:
    rows = tx.execute(sa.select(schema.requests.c.state, sa.func.count()).group_by(schema.requests.c.state))
    return {str(state): int(count) for state, count in rows}


# --- idempotency -----------------------------------------------------------------------------------


def find_idempotency_key(tx: sa.Connection, *, principal: str, key: str) -> tuple[str, str] | None:
    """``(fingerprint, target_id)`` stored for this principal's key, if any."""
    row = tx.execute(
        sa.select(schema.idempotency_keys.c.fingerprint, schema.idempotency_keys.c.target_id)
        .where(schema.idempotency_keys.c.principal == principal)
        .where(schema.idempotency_keys.c.key == key)
    ).first()
    return None if row is None else (str(row.fingerprint), str(row.target_id))


def claim_idempotency_key(
    tx: sa.Connection, *, principal: str, key: str, fingerprint: str, target_id: str, now: float
) -> bool:
    """Record that this principal's key creates ``target_id``; ``False`` when the key was taken."""
    values = {
        "principal": principal,
        "key": key,
        "fingerprint": fingerprint,
        "target_id": target_id,
        "created_at": now,
    }
    return db.insert_unless_present(tx, schema.idempotency_keys, values)
