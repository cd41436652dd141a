"""Workloads: what an admitted request became, where it lives and how it is protected.

Invariants: a department sees only its own workloads (others answer
``NotFound``); deleting marks the workload ``deleting`` and the provisioning
reconciler removes its resources before it releases the quota.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import states
from cloudctl.services import audit, identity
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import orgs, quotas, requests

DELETABLE_STATES = ("ready", "failed", "pending-approval", "approved")


class ProtectionPublic(BaseModel):
    tier: str
    local: str
    """How the tier keeps the workload in the local centers (active-active, sync-standby, single)."""
    dr_copy: str
    rpo_target_s: int
    rto_target_s: int
    gbt20988_level: int
    recovery_centers: list[str]
    """Centers holding failover headroom (standby and DR placements)."""


class WorkloadPublic(BaseModel):
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
    placements: list[requests_service.PlacementPublic]
    protection: ProtectionPublic
    created_at: str
    updated_at: str


def _public(ctx: ctx_module.Context, tx: Any, record: requests.WorkloadRecord) -> WorkloadPublic:
    tier = ctx.topology.tier(record.tier)
    reservations = {
        p.reservation_id: quotas.find_reservation(tx, p.reservation_id) for p in record.placements
    }
    placements = []
    for p in record.placements:
        reservation = reservations[p.reservation_id]
        amounts = {} if reservation is None else {r.value: v for r, v in reservation.amounts.items()}
        placements.append(
            requests_service.PlacementPublic(
                center=p.center, role=p.role, amounts=amounts, state=p.state, resources=p.resources
            )
        )
    return WorkloadPublic(
        id=record.id,
        request_id=record.request_id,
        department=record.department,
        name=record.name,
        offering=record.offering,
        count=record.count,
        tier=record.tier,
        data_class=record.data_class,
        state=record.state,
        reasons=record.reasons,
        placements=placements,
        protection=ProtectionPublic(
            tier=tier.name,
            local=tier.local.value,
            dr_copy=tier.dr_copy.value,
            rpo_target_s=tier.rpo_target_s,
            rto_target_s=tier.rto_target_s,
            gbt20988_level=tier.gbt20988_level,
            recovery_centers=[p.center for p in record.placements if p.role in ("standby", "dr", "active")],
        ),
        created_at=clocks.isoformat(record.created_at),
        updated_at=clocks.isoformat(record.updated_at),
    )


def _owned(
    ctx: ctx_module.Context, tx: Any, *, principal: identity.Principal, workload_id: str, action: str
) -> requests.WorkloadRecord:
    record = requests.find_workload(tx, workload_id)
    if record is None:
        raise errors.NotFound(f"no workload {workload_id!r}", field="workload")
    node = orgs.find_node(tx, record.department)
    identity.authorize(
        ctx,
        principal=principal,
        action=action,
        resource_type="Workload",
        resource_id=workload_id,
        owner=record.department,
        owner_path=tuple(node.ancestor_ids) if node else (record.department,),
        hide_as_missing=True,
    )
    return record


def get(ctx: ctx_module.Context, *, principal: identity.Principal, workload_id: str) -> WorkloadPublic:
    with ctx.read() as tx:
        record = _owned(ctx, tx, principal=principal, workload_id=workload_id, action="workload.read")
        return _public(ctx, tx, record)


def list_workloads(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    department: str | None = None,
    state: str | None = None,
    tier: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[WorkloadPublic], str | None]:
    """Workloads, by id; a request rejected or cancelled before placement is never listed."""
    if state is not None and state not in states.LISTED_WORKLOAD_STATES:
        never = state in states.NEVER_PLACED
        raise errors.InvalidInput(
            f"{state} requests were never placed: `request list --state {state}` shows them"
            if never
            else f"{state!r} is not a workload state ({', '.join(states.LISTED_WORKLOAD_STATES)})",
            field="state",
        )
    departments = requests_service.visible_departments(
        ctx, principal=principal, department=department, action="workload.read", resource_type="Workload"
    )
    with ctx.read() as tx:
        records = requests.list_workloads(
            tx,
            departments=departments,
            states=[state] if state else states.LISTED_WORKLOAD_STATES,
            tiers=[tier] if tier else None,
            after=cursor,
            limit=limit + 1,
        )
        page = records[:limit]
        items = [_public(ctx, tx, record) for record in page]
    return items, (page[-1].id if len(records) > limit else None)


@audit.audits_refusals(action="workload.delete", target_type="Workload", target="workload_id")
def delete(ctx: ctx_module.Context, *, principal: identity.Principal, workload_id: str) -> WorkloadPublic:
    """Mark the workload for deletion; its quota is released once its resources are gone."""
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        record = _owned(ctx, tx, principal=principal, workload_id=workload_id, action="workload.delete")
        record = requests.get_workload(tx, workload_id, for_update=True)
        if record.state in ("deleting", "deleted"):
            return _public(ctx, tx, record)
        if record.state not in DELETABLE_STATES:
            raise errors.Conflict(
                f"workload {workload_id} is {record.state}; wait until it is ready or failed", field="state"
            )
        request = requests.get_request(tx, record.request_id, for_update=True)
        if request.state in requests_service.LIVE_STATES:
            requests.update_request(tx, request, state="cancelled", step="cancelled", now=now)
        record = requests.update_workload(tx, record, state="deleting", now=now)
        audit.record(
            ctx,
            principal=principal,
            action="workload.delete",
            target_type="Workload",
            target_id=workload_id,
            outcome="success",
            tx=tx,
        )
        return _public(ctx, tx, record)
