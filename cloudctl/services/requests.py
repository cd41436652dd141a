"""Requests from the catalog: submit, approve, reject, cancel, read — the department's way in.

Lifecycle (each step appended to ``steps`` with its time)::

    submitted → policy-checked → quota-reserved → pending-approval? → approved
              → provisioning → ready            (or rejected / cancelled / failed, with reasons)

Invariants:
- Admission is one transaction: the quota of every placement is reserved, the
  request and its workload are written and the audit record appended — or
  nothing is (a refusal names the quota that ran out, ``QuotaExceeded``).
- A department sees only its own requests (others answer ``NotFound``).
- ``Idempotency-Key``: the same key with the same body returns the request it
  created; with another body it is refused (``Conflict``).
- Quota held by a request is released when it is rejected, cancelled or fails.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from typing import Any, Literal

from pydantic import BaseModel, Field

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.policy import engine as policy_engine
from cloudctl.services import audit, identity, placement
from cloudctl.services import context as ctx_module
from cloudctl.services import quotas as quotas_service
from cloudctl.store import quotas, requests

DATA_CLASSES = ("public", "internal", "sensitive", "secret")
MAX_COUNT = 100
LIVE_STATES = ("pending-approval", "approved", "provisioning")


class RequestCreate(BaseModel):
    """What a department asks for."""

    offering: str = Field(description="Catalog offering, e.g. vm.medium")
    count: int = Field(default=1, ge=1, le=100, description="How many units of the offering")
    tier: str = Field(description="Protection tier, e.g. gold")
    data_class: Literal["public", "internal", "sensitive", "secret"] = Field(
        default="internal", description="public, internal, sensitive or secret"
    )
    preferred_center: str | None = Field(default=None, description="A local cloud center to prefer")
    name: str = Field(default="", description="A name for the workload, e.g. social-insurance-portal")
    department: str | None = Field(default=None, description="Only for operators: the department ordered for")


class StepPublic(BaseModel):
    step: str
    at: str


class PlacementPublic(BaseModel):
    center: str
    role: str
    amounts: dict[str, int]
    state: str
    resources: list[dict[str, Any]]


class RequestPublic(BaseModel):
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
    steps: list[StepPublic]
    workload_id: str | None
    created_by: str
    created_at: str
    updated_at: str


def _public(record: requests.RequestRecord) -> RequestPublic:
    return RequestPublic(
        id=record.id,
        department=record.department,
        offering=record.offering,
        count=record.count,
        tier=record.tier,
        data_class=record.data_class,
        preferred_center=record.preferred_center,
        name=record.name,
        state=record.state,
        needs_approval=record.needs_approval,
        approval_policy_ids=record.approval_policy_ids,
        reasons=record.reasons,
        steps=[StepPublic(step=s["step"], at=clocks.isoformat(float(s["at"]))) for s in record.steps],
        workload_id=record.workload_id,
        created_by=record.created_by,
        created_at=clocks.isoformat(record.created_at),
        updated_at=clocks.isoformat(record.updated_at),
    )


def new_id(prefix: str, now: float) -> str:
    """Ids that sort by creation time (for stable pagination), then random."""
    return f"{prefix}-{int(now * 1000):013x}{secrets.token_hex(4)}"


def _validate(ctx: ctx_module.Context, body: RequestCreate) -> tuple[topo.Offering, topo.Tier]:
    topology = ctx.topology
    offering = topology.offering(body.offering)
    tier = topology.tier(body.tier)
    if not 1 <= body.count <= MAX_COUNT:
        raise errors.InvalidInput(f"must be between 1 and {MAX_COUNT}", field="count")
    if body.data_class not in DATA_CLASSES:
        raise errors.InvalidInput(
            f"unknown data class {body.data_class!r} (known: {', '.join(DATA_CLASSES)})", field="data_class"
        )
    if body.preferred_center is not None:
        topology.center(body.preferred_center)
    if body.name and (len(body.name) > 40 or not topo.is_slug(body.name)):
        raise errors.InvalidInput("lower-case ASCII letters, digits and '-', at most 40", field="name")
    return offering, tier


def _department_of(ctx: ctx_module.Context, principal: identity.Principal, body: RequestCreate) -> str:
    if identity.is_department(principal):
        if body.department not in (None, principal.department):
            raise errors.InvalidInput("a department orders for itself only", field="department")
        return principal.department
    if not body.department:
        raise errors.InvalidInput("name the department this request is for", field="department")
    return body.department


def _fingerprint(body: RequestCreate) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()


class _KeyTaken(Exception):
    """Another submission with the same idempotency key committed first."""


def submit(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    body: RequestCreate,
    idempotency_key: str | None = None,
) -> tuple[RequestPublic, bool]:
    """Admit a request; returns it and whether it was created now (``False``: an idempotent replay).

    A refusal (policy or quota) is audited with its reason and changes nothing else.
    """
    try:
        return _submit(ctx, principal=principal, body=body, idempotency_key=idempotency_key)
    except _KeyTaken:
        replay = _replay(ctx, principal=principal, key=idempotency_key or "", body=body)
        assert replay is not None
        return replay, False
    except (errors.QuotaExceeded, errors.PolicyDenied) as refused:
        _audit_refusal(
            ctx,
            principal,
            refused,
            detail={"offering": body.offering, "count": body.count, "tier": body.tier},
        )
        raise


def _submit(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    body: RequestCreate,
    idempotency_key: str | None,
) -> tuple[RequestPublic, bool]:
    if idempotency_key is not None:
        replay = _replay(ctx, principal=principal, key=idempotency_key, body=body)
        if replay is not None:
            return replay, False
    admission = _prepare(ctx, principal=principal, body=body, headroom={})
    with ctx.transaction() as tx:
        if idempotency_key is not None and not requests.claim_idempotency_key(
            tx,
            principal=principal.id,
            key=idempotency_key,
            fingerprint=_fingerprint(body),
            target_id=admission.request_id,
            now=admission.now,
        ):
            raise _KeyTaken
        (record,) = _admit(ctx, tx, principal=principal, admissions=[admission])
    return _public(record), True


def submit_many(
    ctx: ctx_module.Context, *, principal: identity.Principal, bodies: list[RequestCreate]
) -> list[RequestPublic]:
    """Admit several requests of one principal together: all of them or none.

    Each is checked as ``submit`` checks it (fields, policy, placement); the quota of
    all of them is reserved in one step, so a batch that does not fit is refused whole,
    naming every shortfall, and nothing is admitted. For a caller that orders many
    alike things at once, such as a drill's canaries: one transaction instead of one each.
    """
    headroom: dict[str, dict[str, int | None]] = {}
    try:
        admissions = [_prepare(ctx, principal=principal, body=body, headroom=headroom) for body in bodies]
        with ctx.transaction() as tx:
            records = _admit(ctx, tx, principal=principal, admissions=admissions)
    except (errors.QuotaExceeded, errors.PolicyDenied) as refused:
        _audit_refusal(ctx, principal, refused, detail={"requests": len(bodies)})
        raise
    return [_public(record) for record in records]


def _audit_refusal(
    ctx: ctx_module.Context,
    principal: identity.Principal,
    refused: errors.QuotaExceeded | errors.PolicyDenied,
    *,
    detail: dict[str, Any],
) -> None:
    audit.record_refusal(
        ctx,
        principal=principal,
        action="request.create",
        target_type="Request",
        target_id="-",
        error=refused,
        detail=detail,
    )


@dataclasses.dataclass(frozen=True)
class _Admission:
    """A request checked and placed, ready to be written with its quota held."""

    body: RequestCreate
    offering: topo.Offering
    tier: topo.Tier
    department: str
    planned: list[placement.Placement]
    approval: policy_engine.Decision
    request_id: str
    workload_id: str
    now: float


def _prepare(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    body: RequestCreate,
    headroom: dict[str, dict[str, int | None]],
) -> _Admission:
    """Check one request (fields, policy) and place it; ``headroom`` caches each department's."""
    offering, tier = _validate(ctx, body)
    department = _department_of(ctx, principal, body)
    owner_path = identity.department_path(ctx, department)
    amounts = q.scale(offering.amounts(), body.count)
    size = {
        "vcpu_total": amounts.get(q.Resource.VCPU, 0),
        "ram_gb_total": amounts.get(q.Resource.RAM_GB, 0),
        "volume_gb_total": amounts.get(q.Resource.VOLUME_GB, 0),
        "object_gb_total": amounts.get(q.Resource.OBJECT_GB, 0),
        "instances": amounts.get(q.Resource.INSTANCES, 0),
        "data_class": body.data_class,
    }
    identity.authorize(
        ctx,
        principal=principal,
        action="request.create",
        resource_type="Request",
        resource_id="new",
        owner=department,
        owner_path=owner_path,
        context={"offering_in_catalog": True, **size},
    )
    if department not in headroom:
        headroom[department] = {
            center.center: next(item.headroom for item in center.resources if item.resource == "vcpu")
            for center in quotas_service.show_quota(ctx, department).centers
        }
    planned = placement.plan(
        ctx,
        principal=principal,
        tier=tier,
        amounts=amounts,
        data_class=body.data_class,
        preferred_center=body.preferred_center,
        headroom_vcpu=headroom[department],
    )
    approval = identity.policies(ctx).decide(
        principal=principal,
        action="request.auto_approve",
        resource=policy_engine.Resource(type="Request", id="new", owner=department, owner_path=owner_path),
        context=size,
    )
    now = ctx.clock.now()
    return _Admission(
        body=body,
        offering=offering,
        tier=tier,
        department=department,
        planned=planned,
        approval=approval,
        request_id=new_id("req", now),
        workload_id=new_id("wl", now),
        now=now,
    )


def _admit(
    ctx: ctx_module.Context, tx: Any, *, principal: identity.Principal, admissions: list[_Admission]
) -> list[requests.RequestRecord]:
    """Hold the quota of every admission at once, then write each request, workload and audit record."""
    held = quotas.reserve_many(
        tx,
        asks=[
            quotas.ReservationAsk(
                node_id=a.department, center=p.center, amounts=p.amounts, purpose=f"{a.request_id} {p.role}"
            )
            for a in admissions
            for p in a.planned
        ],
        now=ctx.clock.now(),
    )
    reservations = iter(held)
    records = []
    for admission in admissions:
        body, now = admission.body, admission.now
        needs_approval = not admission.approval.allowed
        final_state = "pending-approval" if needs_approval else "approved"
        steps = [
            {"step": step, "at": now}
            for step in ("submitted", "policy-checked", "quota-reserved", final_state)
        ]
        record = requests.RequestRecord(
            id=admission.request_id,
            department=admission.department,
            offering=admission.offering.name,
            count=body.count,
            tier=admission.tier.name,
            data_class=body.data_class,
            preferred_center=body.preferred_center,
            name=body.name or admission.request_id,
            state=final_state,
            needs_approval=needs_approval,
            approval_policy_ids=list(admission.approval.policy_ids),
            reasons=[] if not needs_approval else list(admission.approval.reasons),
            steps=steps,
            workload_id=admission.workload_id,
            created_by=principal.id,
            created_at=now,
            updated_at=now,
            resource_version=1,
        )
        requests.insert_request(tx, record)
        requests.insert_workload(
            tx,
            requests.WorkloadRecord(
                id=admission.workload_id,
                request_id=admission.request_id,
                department=admission.department,
                name=record.name,
                offering=admission.offering.name,
                count=body.count,
                tier=admission.tier.name,
                data_class=body.data_class,
                state=final_state,
                reasons=[],
                created_at=now,
                updated_at=now,
                resource_version=1,
                placements=[
                    requests.PlacementRecord(
                        workload_id=admission.workload_id,
                        center=p.center,
                        role=p.role,
                        reservation_id=next(reservations).id,
                        resources=[],
                        state="reserved",
                    )
                    for p in admission.planned
                ],
            ),
        )
        audit.record(
            ctx,
            principal=principal,
            action="request.create",
            target_type="Request",
            target_id=admission.request_id,
            outcome="success",
            detail={
                "offering": admission.offering.name,
                "count": body.count,
                "tier": admission.tier.name,
                "state": final_state,
            },
            tx=tx,
        )
        records.append(record)
    return records


def _replay(
    ctx: ctx_module.Context, *, principal: identity.Principal, key: str, body: RequestCreate
) -> RequestPublic | None:
    with ctx.read() as tx:
        found = requests.find_idempotency_key(tx, principal=principal.id, key=key)
        if found is None:
            return None
        fingerprint, request_id = found
        if fingerprint != _fingerprint(body):
            raise errors.Conflict(
                "this Idempotency-Key was used with a different request body", field="idempotency_key"
            )
        return _public(requests.get_request(tx, request_id))


def _owned_request(
    ctx: ctx_module.Context, tx: Any, *, principal: identity.Principal, request_id: str, action: str
) -> requests.RequestRecord:
    record = requests.find_request(tx, request_id)
    if record is None:
        raise errors.NotFound(f"no request {request_id!r}", field="request")
    node_path = _path(tx, record.department)
    identity.authorize(
        ctx,
        principal=principal,
        action=action,
        resource_type="Request",
        resource_id=request_id,
        owner=record.department,
        owner_path=node_path,
        hide_as_missing=True,
    )
    return record


def _path(tx: Any, department: str) -> tuple[str, ...]:
    from cloudctl.store import orgs

    node = orgs.find_node(tx, department)
    return tuple(node.ancestor_ids) if node else (department,)


def get(ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str) -> RequestPublic:
    with ctx.read() as tx:
        return _public(
            _owned_request(ctx, tx, principal=principal, request_id=request_id, action="request.read")
        )


def list_requests(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    state: str | None = None,
    department: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[RequestPublic], str | None]:
    """A page of requests the principal may see, and the cursor of the next page (or ``None``)."""
    departments = visible_departments(
        ctx, principal=principal, department=department, action="request.read", resource_type="Request"
    )
    with ctx.read() as tx:
        records = requests.list_requests(
            tx,
            departments=departments,
            states=[state] if state else None,
            after=cursor,
            limit=limit + 1,
        )
    page = records[:limit]
    next_cursor = page[-1].id if len(records) > limit else None
    return [_public(record) for record in page], next_cursor


def visible_departments(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    department: str | None,
    action: str,
    resource_type: str,
) -> list[str] | None:
    """The departments a listing covers: a department's own subtree, or what an operator filters."""
    from cloudctl.store import orgs

    if identity.is_department(principal):
        with ctx.read() as tx:
            subtree = [node.id for node in orgs.list_nodes(tx, under=principal.department)]
        if department is not None:
            if department not in subtree:
                raise errors.NotFound(f"no org node {department!r}", field="department")
            return [department]
        return subtree
    identity.authorize(
        ctx, principal=principal, action=action, resource_type=resource_type, resource_id="all"
    )
    return None if department is None else [department]


@audit.audits_refusals(action="request.approve", target_type="Request", target="request_id")
def approve(ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str) -> RequestPublic:
    return _decide(ctx, principal=principal, request_id=request_id, action="request.approve", reason=None)


@audit.audits_refusals(action="request.reject", target_type="Request", target="request_id")
def reject(
    ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str, reason: str
) -> RequestPublic:
    if not reason.strip():
        raise errors.InvalidInput("say why the request is rejected", field="reason")
    return _decide(ctx, principal=principal, request_id=request_id, action="request.reject", reason=reason)


@audit.audits_refusals(action="request.cancel", target_type="Request", target="request_id")
def cancel(ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str) -> RequestPublic:
    return _decide(
        ctx, principal=principal, request_id=request_id, action="request.cancel", reason="cancelled"
    )


def _decide(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    request_id: str,
    action: str,
    reason: str | None,
) -> RequestPublic:
    allowed_from = {
        "request.approve": ("pending-approval",),
        "request.reject": ("pending-approval",),
        "request.cancel": ("pending-approval", "approved"),
    }[action]
    target = {"request.approve": "approved", "request.reject": "rejected", "request.cancel": "cancelled"}[
        action
    ]
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        record = _owned_request(ctx, tx, principal=principal, request_id=request_id, action=action)
        record = requests.get_request(tx, request_id, for_update=True)
        if record.state not in allowed_from:
            raise errors.Conflict(
                f"request {request_id} is {record.state}; only a {' or '.join(allowed_from)} request can be "
                f"{target}",
                field="state",
            )
        reasons = record.reasons if reason is None else [*record.reasons, reason]
        updated = requests.update_request(tx, record, state=target, reasons=reasons, step=target, now=now)
        workload = requests.get_workload(tx, record.workload_id or "", for_update=True)
        if target == "approved":
            requests.update_workload(tx, workload, state="approved", now=now)
        else:
            quotas.release_reservations(tx, [p.reservation_id for p in workload.placements], now=now)
            requests.update_workload(tx, workload, state=target, reasons=reasons, now=now)
        audit.record(
            ctx,
            principal=principal,
            action=action,
            target_type="Request",
            target_id=request_id,
            outcome="success",
            detail={"reason": reason or ""},
            tx=tx,
        )
    return _public(updated)
