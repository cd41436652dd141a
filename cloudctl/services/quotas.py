"""Quotas as operators and departments see them, and the reservation use cases.

Invariants (the store keeps them, this module explains them): usage plus
reservations never exceed any ancestor's limit on any center; a child's limit
never exceeds its ancestors'. ``headroom`` is what a node could still reserve
on a center: the least free amount along its ancestor chain.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.services import access, audit
from cloudctl.services import context as ctx_module
from cloudctl.store import orgs, quotas
from cloudctl.store.db import Transaction

QUOTA_EXAMPLE: dict[str, Any] = {
    "node": "hrss-insurance",
    "display_name": "青岛市社会保险事业中心",
    "path": ["qingdao", "hrss", "hrss-insurance"],
    "centers": [
        {
            "center": "qd-a",
            "resources": [
                {
                    "resource": "vcpu",
                    "limit": 32,
                    "used": 8,
                    "reserved": 10,
                    "headroom": 14,
                    "bounded_by": "hrss-insurance",
                },
                {
                    "resource": "ram_gb",
                    "limit": 128,
                    "used": 16,
                    "reserved": 20,
                    "headroom": 92,
                    "bounded_by": "hrss-insurance",
                },
                {
                    "resource": "volume_gb",
                    "limit": 3200,
                    "used": 160,
                    "reserved": 200,
                    "headroom": 2840,
                    "bounded_by": "hrss-insurance",
                },
                {
                    "resource": "object_gb",
                    "limit": 6400,
                    "used": 0,
                    "reserved": 0,
                    "headroom": 6400,
                    "bounded_by": "hrss-insurance",
                },
                {
                    "resource": "instances",
                    "limit": 16,
                    "used": 2,
                    "reserved": 5,
                    "headroom": 9,
                    "bounded_by": "hrss-insurance",
                },
            ],
        }
    ],
}


class ResourceQuota(BaseModel):
    """One resource of an org node on one center: its limit, what it uses and holds, what is left."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    resource: str
    """``vcpu``, ``ram_gb``, ``volume_gb``, ``object_gb`` or ``instances`` (GB for the sizes)."""
    limit: int | None
    """This node's own limit here; ``None`` is no limit of its own."""
    used: int
    """Committed here by the node and every node under it: resources that were created."""
    reserved: int
    """Held here but not created, by the node and its subtree: unprovisioned requests, standby/DR holds."""
    headroom: int | None
    """What the node could still reserve here, given every ancestor; ``None`` is unbounded."""
    bounded_by: str | None
    """The node (this one or an ancestor) whose limit sets the headroom."""


class CenterQuota(BaseModel):
    """An org node's quota on one center (or on the sum over all of them), resource by resource."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    center: str
    """A center name, or ``all`` for limits on the sum over every center."""
    resources: list[ResourceQuota]
    """One entry per resource, always all five, in the order ``vcpu``, ``ram_gb``, ``volume_gb``, ..."""


class QuotaPublic(BaseModel):
    """An org node's quota: limits, usage, reservations and headroom per center."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [QUOTA_EXAMPLE]})

    node: str
    """The org node's id (a city, bureau, district or department, e.g. ``hrss-insurance``)."""
    display_name: str
    """The node's name as shown to people (e.g. ``青岛市社会保险事业中心``)."""
    path: list[str]
    """The node's ancestors from the root (the city) down to the node itself."""
    centers: list[CenterQuota]
    """The centers asked for: one, or every center in the topology's order followed by ``all``."""


RESERVATION_EXAMPLE: dict[str, Any] = {
    "id": "42113841c0d95b7e6a3f28e1d04c9b77",
    "node": "hrss-insurance",
    "center": "qd-a",
    "amounts": {"vcpu": 16, "ram_gb": 32},
    "state": quotas.ReservationState.RESERVED.value,
    "purpose": "社保卡系统扩容",
    "created_at": "2026-12-07T09:30:00Z",
    "updated_at": "2026-12-07T09:30:00Z",
}


class ReservationPublic(BaseModel):
    """Quota an operator holds for one org node on one center, until it is committed or released."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [RESERVATION_EXAMPLE]}
    )

    id: str
    """The reservation's id, for commit and release."""
    node: str
    """The org node whose quota (and every ancestor's) it holds."""
    center: str
    """The center the resources will live in."""
    amounts: dict[str, int]
    """Resource → amount held (GB for the sizes)."""
    state: str
    """``reserved`` (held), ``committed`` (the resources exist: usage) or ``released`` (given back)."""
    purpose: str
    """Why, as the operator gave it."""
    created_at: str
    """When it was made (UTC, RFC 3339)."""
    updated_at: str
    """When its state last changed (UTC, RFC 3339)."""


def _public_reservation(reservation: quotas.Reservation) -> ReservationPublic:
    return ReservationPublic(
        id=reservation.id,
        node=reservation.node_id,
        center=reservation.center,
        amounts=q.as_names(reservation.amounts),
        state=reservation.state.value,
        purpose=reservation.purpose,
        created_at=clocks.isoformat(reservation.created_at),
        updated_at=clocks.isoformat(reservation.updated_at),
    )


def center_key(ctx: ctx_module.Context, center: str) -> str:
    """``all`` → the all-centers key; any other value must name a center."""
    if center == "all":
        return q.ALL_CENTERS
    ctx.topology.center(center)
    return center


def show_quota(ctx: ctx_module.Context, node_id: str, *, center: str | None = None) -> QuotaPublic:
    keys = [center_key(ctx, center)] if center else [*(c.name for c in ctx.topology.centers), q.ALL_CENTERS]
    with ctx.read() as tx:
        node = orgs.get_node(tx, node_id)
        chain = node.ancestor_ids
        scopes = sorted({*keys, q.ALL_CENTERS})
        limits = quotas.get_limits(tx, node_ids=chain, centers=scopes)
        counters = quotas.get_counters(tx, node_ids=chain, centers=scopes)
    return QuotaPublic(
        node=node.id,
        display_name=node.display_name,
        path=chain,
        centers=[
            CenterQuota(
                center="all" if key == q.ALL_CENTERS else key,
                resources=[
                    _resource_quota(
                        node_id=node.id, chain=chain, key=key, resource=r, limits=limits, counters=counters
                    )
                    for r in q.RESOURCES
                ],
            )
            for key in keys
        ],
    )


def _resource_quota(
    *,
    node_id: str,
    chain: list[str],
    key: str,
    resource: q.Resource,
    limits: Mapping[quotas.LimitKey, int],
    counters: Mapping[quotas.LimitKey, quotas.Counter],
) -> ResourceQuota:
    counter = counters[(node_id, key, resource)]
    headroom: int | None = None
    bounded_by: str | None = None
    scopes = [key] if key == q.ALL_CENTERS else [key, q.ALL_CENTERS]
    for ancestor in reversed(chain):
        for scope in scopes:
            limit = limits.get((ancestor, scope, resource))
            if limit is None:
                continue
            free = max(limit - counters[(ancestor, scope, resource)].in_use, 0)
            if headroom is None or free < headroom:
                headroom, bounded_by = free, ancestor
    return ResourceQuota(
        resource=resource.value,
        limit=limits.get((node_id, key, resource)),
        used=counter.used,
        reserved=counter.reserved,
        headroom=headroom,
        bounded_by=bounded_by,
    )


@audit.audits_refusals(action="quota.set", target_type="Quota", target="node_id")
def set_quota(
    ctx: ctx_module.Context,
    node_id: str,
    *,
    center: str,
    limits: Mapping[str, int | None],
    principal: access.Principal | None = None,
) -> QuotaPublic:
    """Set limits of one node on one center (or ``all``); all or nothing; audited.

    ``principal`` defaults to the local sysadmin (the operator's console)."""
    principal = principal or access.local_operator("sysadmin")
    access.authorize(ctx, principal=principal, action="quota.set", resource_type="Quota", resource_id=node_id)
    key = center_key(ctx, center)
    parsed = {q.parse_resource(name, field="limits"): value for name, value in limits.items()}
    for resource, value in parsed.items():
        if value is not None:
            q.check_amount(value, field=f"limits.{resource.value}")
    if not parsed:
        raise errors.InvalidInput("name at least one resource to set", field="limits")
    with ctx.transaction() as tx:
        quotas.set_limits(tx, node_id=node_id, center=key, limits=parsed)
        audit.record(
            ctx,
            principal=principal,
            action="quota.set",
            target_type="Quota",
            target_id=node_id,
            outcome="success",
            detail={"center": center, "limits": {r.value: v for r, v in parsed.items()}},
            tx=tx,
        )
    return show_quota(ctx, node_id, center=center)


@audit.audits_refusals(action="quota.reserve", target_type="Quota", target="node_id")
def reserve(
    ctx: ctx_module.Context,
    node_id: str,
    *,
    center: str,
    amounts: Mapping[str, int],
    purpose: str = "",
    principal: access.Principal | None = None,
) -> ReservationPublic:
    """Hold quota of one node on one center; the sysadmin's, as setting limits is; audited.

    ``principal`` defaults to the local sysadmin (the operator's console)."""
    principal = principal or access.local_operator("sysadmin")
    access.authorize(ctx, principal=principal, action="quota.set", resource_type="Quota", resource_id=node_id)
    if center == "all":
        raise errors.InvalidInput("a reservation is made on one center, not all", field="center")
    center_key(ctx, center)
    parsed = q.amounts_from(amounts)
    if not any(parsed.values()):
        raise errors.InvalidInput("name at least one resource to reserve, more than 0", field="amounts")
    with ctx.transaction() as tx:
        reservation = quotas.reserve(
            tx, node_id=node_id, center=center, amounts=parsed, purpose=purpose, now=ctx.clock.now()
        )
        _record_reservation(ctx, tx, reservation, action="quota.reserve", principal=principal)
    return _public_reservation(reservation)


@audit.audits_refusals(action="quota.commit", target_type="Reservation", target="reservation_id")
def commit(
    ctx: ctx_module.Context, reservation_id: str, *, principal: access.Principal | None = None
) -> ReservationPublic:
    """Turn a reservation into usage; audited. ``principal`` as for ``reserve``."""
    return _settle(ctx, reservation_id, quotas.commit_reservation, action="quota.commit", principal=principal)


@audit.audits_refusals(action="quota.release", target_type="Reservation", target="reservation_id")
def release(
    ctx: ctx_module.Context, reservation_id: str, *, principal: access.Principal | None = None
) -> ReservationPublic:
    """Give a reservation's quota back; audited. ``principal`` as for ``reserve``."""
    return _settle(
        ctx, reservation_id, quotas.release_reservation, action="quota.release", principal=principal
    )


def _settle(
    ctx: ctx_module.Context,
    reservation_id: str,
    settle: Callable[..., quotas.Reservation],
    *,
    action: str,
    principal: access.Principal | None,
) -> ReservationPublic:
    """Commit or release a reservation (``settle``) as ``principal`` may, audited as ``action``."""
    principal = _reservation_authorized(ctx, reservation_id, principal=principal)
    with ctx.transaction() as tx:
        reservation = settle(tx, reservation_id, now=ctx.clock.now())
        _record_reservation(ctx, tx, reservation, action=action, principal=principal)
    return _public_reservation(reservation)


def _reservation_authorized(
    ctx: ctx_module.Context, reservation_id: str, *, principal: access.Principal | None
) -> access.Principal:
    principal = principal or access.local_operator("sysadmin")
    # Asked before the store is read, so that a refused caller cannot tell which ids exist.
    access.authorize(ctx, principal=principal, action="quota.set", resource_type="Quota", resource_id="all")
    with ctx.read() as tx:
        node_id = quotas.get_reservation(tx, reservation_id).node_id
    access.authorize(ctx, principal=principal, action="quota.set", resource_type="Quota", resource_id=node_id)
    return principal


def _record_reservation(
    ctx: ctx_module.Context,
    tx: Transaction,
    reservation: quotas.Reservation,
    *,
    action: str,
    principal: access.Principal,
) -> None:
    audit.record(
        ctx,
        principal=principal,
        action=action,
        target_type="Quota",
        target_id=reservation.node_id,
        outcome="success",
        detail={
            "reservation": reservation.id,
            "center": reservation.center,
            "amounts": q.as_names(reservation.amounts),
            "purpose": reservation.purpose,
        },
        tx=tx,
    )


def list_reservations(
    ctx: ctx_module.Context,
    *,
    node_id: str | None = None,
    live_only: bool = True,
    principal: access.Principal | None = None,
) -> list[ReservationPublic]:
    """Reservations of one node (``quota.read`` on it: a department its own subtree; none named, its
    own department) or of all (``quota.read`` of the whole tree: operators)."""
    principal = principal or access.local_operator("sysadmin")
    if node_id is None and access.is_department(principal):
        node_id = principal.department
    states = [quotas.ReservationState.RESERVED, quotas.ReservationState.COMMITTED] if live_only else None
    if node_id is None:
        access.authorize(
            ctx, principal=principal, action="quota.read", resource_type="Quota", resource_id="all"
        )
    else:
        _authorize_node_read(ctx, principal, node_id)
    with ctx.read() as tx:
        return [_public_reservation(r) for r in quotas.list_reservations(tx, node_id=node_id, states=states)]


def _authorize_node_read(ctx: ctx_module.Context, principal: Any, node_id: str) -> None:
    """``quota.read`` of one node; for a department, a node outside its subtree is missing."""
    with ctx.read() as tx:
        node = orgs.find_node(tx, node_id)
    if node is None:
        raise errors.NotFound(f"no org node {node_id!r}", field="department")
    access.authorize(
        ctx,
        principal=principal,
        action="quota.read",
        resource_type="Quota",
        resource_id=node_id,
        owner=node_id,
        owner_path=tuple(node.ancestor_ids),
        hide_as_missing=True,
    )


def department_quota(
    ctx: ctx_module.Context, *, principal: Any, department: str | None = None, center: str | None = None
) -> QuotaPublic:
    """A node's quota as a principal may see it: departments their own subtree, operators any node."""
    node_id = department or principal.department
    if not node_id:
        raise errors.InvalidInput("name the org node whose quota to show", field="department")
    _authorize_node_read(ctx, principal, node_id)
    return show_quota(ctx, node_id, center=center)
