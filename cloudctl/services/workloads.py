"""Workloads: what an admitted request became, where it lives and how it is protected.

Invariants: a department sees only its own workloads (others answer
``NotFound``); deleting marks the workload ``deleting`` and the provisioning
reconciler removes its resources before it releases the quota.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import errors
from cloudctl.model import states
from cloudctl.services import audit, identity, pages, public
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import orgs, quotas, requests
from cloudctl.store.db import Transaction

DELETABLE_STATES = (
    states.WorkloadState.READY,
    states.WorkloadState.FAILED,
    states.WorkloadState.PENDING_APPROVAL,
    states.WorkloadState.APPROVED,
)


PROTECTION_EXAMPLE: dict[str, Any] = {
    "tier": "gold",
    "local": "sync-standby",
    "dr_copy": "async",
    "rpo_target_s": 0,
    "rto_target_s": 900,
    "gbt20988_level": 6,
    "recovery_centers": ["dz-dr", "qd-b"],
}
WORKLOAD_EXAMPLE: dict[str, Any] = {
    "id": "wl-001a2433a995562feca1c",
    "request_id": "req-001a2433a99553b7d04e9",
    "department": "hrss-insurance",
    "name": "social-insurance-portal",
    "offering": "vm.medium",
    "count": 2,
    "tier": "gold",
    "data_class": "internal",
    "state": states.WorkloadState.READY,
    "reasons": [],
    "placements": [
        {
            "center": "dz-dr",
            "role": states.PlacementRole.DR,
            "amounts": {"vcpu": 8, "ram_gb": 16, "volume_gb": 160, "instances": 2},
            "state": states.PlacementState.RESERVED,
            "resources": [],
        },
        requests_service.PLACEMENT_EXAMPLE,
        {
            "center": "qd-b",
            "role": states.PlacementRole.STANDBY,
            "amounts": {"vcpu": 8, "ram_gb": 16, "volume_gb": 160, "instances": 2},
            "state": states.PlacementState.RESERVED,
            "resources": [],
        },
    ],
    "protection": PROTECTION_EXAMPLE,
    "created_at": "2026-12-04T22:44:03Z",
    "updated_at": "2026-12-04T22:46:31Z",
}


class ProtectionPublic(BaseModel):
    """How a workload is protected: its tier's placement, DR copy and recovery targets."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [PROTECTION_EXAMPLE]}
    )

    tier: str
    """The protection tier: ``platinum``, ``gold``, ``silver`` or ``bronze``."""
    local: str
    """How the tier keeps the workload in the local centers (active-active, sync-standby, single)."""
    dr_copy: str
    """How the tier copies data to the DR center: ``async``, ``backup`` or ``none``."""
    rpo_target_s: int
    """Recovery point objective in seconds: the most data loss the tier is meant to allow (0: none)."""
    rto_target_s: int
    """Recovery time objective in seconds: how long a recovery is meant to take at most."""
    gbt20988_level: int
    """The disaster-recovery level of GB/T 20988 the tier claims, 1 to 6."""
    recovery_centers: list[str]
    """Centers holding failover headroom: those of its ``active``, ``standby`` and ``dr`` placements."""


class WorkloadPublic(BaseModel):
    """What an admitted request became: where it lives, in what state, and how it is protected."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [WORKLOAD_EXAMPLE]}
    )

    id: str
    """The workload id: ``wl-`` then 13 hex digits of the creation time in ms and 8 random hex digits."""
    request_id: str
    """The request that made it (``GET /v1/requests/{id}``)."""
    department: str
    """The org node that owns it (e.g. ``hrss-insurance``)."""
    name: str
    """Its name, as the request gave it (else the request id); resources are named ``<id>-<n>``."""
    offering: str
    """The catalog offering it runs (e.g. ``vm.medium``)."""
    count: int
    """How many units of the offering, 1 to the topology's limit (100 as shipped)."""
    tier: str
    """The protection tier: ``platinum``, ``gold``, ``silver`` or ``bronze``."""
    data_class: str
    """A data class of the topology (as shipped ``public``, ``internal``, ``sensitive`` or ``secret``)."""
    state: str
    """``pending-approval``, ``approved``, ``provisioning``, ``ready``, ``failed``, ``deleting``,
    ``deleted``, ``rejected`` or ``cancelled``."""
    reasons: list[str]
    """Why it was rejected, cancelled or failed, oldest first; empty otherwise."""
    placements: list[requests_service.PlacementPublic]
    """One per center it uses or holds quota in, by center name."""
    protection: ProtectionPublic
    """Its tier's protection, and the centers it can recover into."""
    created_at: public.Timestamp
    """When it was admitted (ISO 8601, UTC, to the second)."""
    updated_at: public.Timestamp
    """When its state or placements last changed (ISO 8601, UTC, to the second)."""


def _public(ctx: ctx_module.Context, tx: Transaction, record: requests.WorkloadRecord) -> WorkloadPublic:
    tier = ctx.topology.tier(record.tier)
    reservations = {
        p.reservation_id: quotas.find_reservation(tx, p.reservation_id) for p in record.placements
    }
    placements = []
    for p in record.placements:
        reservation = reservations[p.reservation_id]
        amounts = {} if reservation is None else {r.value: v for r, v in reservation.amounts.items()}
        placements.append(requests_service.PlacementPublic.model_validate({**vars(p), "amounts": amounts}))
    return WorkloadPublic.model_validate(
        {
            **vars(record),
            "placements": placements,
            "protection": ProtectionPublic(
                tier=tier.name,
                local=tier.local.value,
                dr_copy=tier.dr_copy.value,
                rpo_target_s=tier.rpo_target_s,
                rto_target_s=tier.rto_target_s,
                gbt20988_level=tier.gbt20988_level,
                recovery_centers=[
                    p.center
                    for p in record.placements
                    if p.role
                    in (states.PlacementRole.STANDBY, states.PlacementRole.DR, states.PlacementRole.ACTIVE)
                ],
            ),
        }
    )


def _owned(
    ctx: ctx_module.Context, tx: Transaction, *, principal: identity.Principal, workload_id: str, action: str
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
    if tier is not None:
        ctx.topology.tier(tier)
    departments = requests_service.visible_departments(
        ctx, principal=principal, department=department, action="workload.read", resource_type="Workload"
    )
    with ctx.read() as tx:
        page, next_cursor = pages.one_page(
            lambda size: requests.list_workloads(
                tx,
                departments=departments,
                states=[state] if state else states.LISTED_WORKLOAD_STATES,
                tiers=[tier] if tier else None,
                after=cursor,
                limit=size,
            ),
            limit=limit,
            cursor_of=lambda record: record.id,
        )
        return [_public(ctx, tx, record) for record in page], next_cursor


@audit.audits_refusals(action="workload.delete", target_type="Workload", target="workload_id")
def delete(ctx: ctx_module.Context, *, principal: identity.Principal, workload_id: str) -> WorkloadPublic:
    """Mark the workload for deletion; its quota is released once its resources are gone."""
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        record = _owned(ctx, tx, principal=principal, workload_id=workload_id, action="workload.delete")
        record = requests.get_workload(tx, workload_id, for_update=True)
        if record.state in (states.WorkloadState.DELETING, states.WorkloadState.DELETED):
            return _public(ctx, tx, record)
        if record.state not in DELETABLE_STATES:
            raise errors.Conflict(
                f"workload {workload_id} is {record.state}; wait until it is ready or failed", field="state"
            )
        request = requests.get_request(tx, record.request_id, for_update=True)
        if request.state in requests_service.LIVE_STATES:
            requests.update_request(
                tx, request, state=states.WorkloadState.CANCELLED, step="cancelled", now=now
            )
        record = requests.update_workload(tx, record, state=states.WorkloadState.DELETING, now=now)
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
