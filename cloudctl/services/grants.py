"""Cross-department data sharing: published data items and purpose-bound, expiring grants.

A provider department publishes a data item (a prefix of one of its bucket workloads, or a
dataset); a consumer department asks for a grant with a purpose, an expiry and the data class it
holds the data under; the provider approves it, and the big-data bureau too where the policies
say the data class needs it (``data.grant.skip_bureau``, policy ``data-grant-bureau-for-sensitive``).
An active grant on a bucket prefix is a bucket policy statement in every center that holds the
workload's bucket; expiry (``expire_due``, a periodic pass of the leader) and revocation take it
away again.

Invariants:
- bad input (no purpose, an expiry not in the future, an unknown item, an item the consumer's
  subtree owns, a control character in an item's text or a revocation's reason) is one line
  naming the field, raised before anything is written;
- an item or grant the caller may not read answers ``NotFound`` exactly as a missing one;
- every publish, request, approval, use, revocation and expiry is audited, refusals too; the
  record commits with the change it describes;
- the backends are changed after the grant's row is locked and before it commits, so a grant is
  ``active`` only where its statements were written, and ``enforced_in`` lists them.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import grants as model
from cloudctl.model import topology as topo
from cloudctl.services import audit, drivers, identity
from cloudctl.services import context as ctx_module
from cloudctl.services import requests as requests_service
from cloudctl.store import grants as store
from cloudctl.store import orgs, requests
from cloudctl.store.db import Transaction

log = logging.getLogger("cloudctl.grants")

EXPIRY_ACTOR = identity.Principal(id="system:grant-expiry", role="sysadmin")
"""Who the periodic pass acts as in the audit log."""

ITEM_EXAMPLE: dict[str, Any] = {
    "id": "household-contributions",
    "owner": "hrss-insurance",
    "kind": "bucket-prefix",
    "workload_id": "wl-001a2433a995562feca1c",
    "prefix": "households/2026/",
    "dataset": None,
    "data_class": "sensitive",
    "description": "社保缴费记录 per household, monthly, for social-assistance checks",
    "published_by": "token:3f9c2a7d5e41b086",
    "created_at": "2026-12-04T22:44:03Z",
    "grants_active": 1,
}
GRANT_EXAMPLE: dict[str, Any] = {
    "id": "grant-001a2433a9955c0ffee11",
    "item_id": "household-contributions",
    "provider": "hrss-insurance",
    "consumer": "civil-assistance",
    "data_class": "sensitive",
    "consumer_data_class": "sensitive",
    "purpose": "social-assistance",
    "state": model.GrantState.ACTIVE,
    "needs_bureau": True,
    "provider_approved_by": "token:3f9c2a7d5e41b086",
    "bureau_approved_by": "token:9d1e0c4b7a2f3e58",
    "requested_by": "token:5b7c9e1f2a3d4c6e",
    "ended_by": None,
    "reason": "",
    "enforced_in": [{"center": "qd-a", "bucket": "wl-001a2433a995562feca1c-1"}],
    "expires_at": "2027-06-30T00:00:00Z",
    "created_at": "2026-12-05T09:12:44Z",
    "updated_at": "2026-12-05T10:03:19Z",
}


class ItemPublic(BaseModel):
    """A published data item: what a provider shares, under which data class."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [ITEM_EXAMPLE]})

    id: str
    """The item's id (3-60 of a-z, 0-9, '-'), chosen by the provider, unique in the city."""
    owner: str
    """The provider department (org node) that owns the data."""
    kind: str
    """``bucket-prefix`` (keys under a prefix of one of the owner's bucket workloads) or ``dataset``."""
    workload_id: str | None
    """For ``bucket-prefix``: the owner's bucket workload holding the data."""
    prefix: str | None
    """For ``bucket-prefix``: the prefix shared (ends with ``/``); a grant covers the keys under it only."""
    dataset: str | None
    """For ``dataset``: the dataset's name in the provider's catalogue."""
    data_class: str
    """A data class of the topology (as shipped ``public``, ``internal``, ``sensitive`` or ``secret``)."""
    description: str
    """What the data is, for consumers browsing the catalog."""
    published_by: str
    """Who published it (the audit log's principal)."""
    created_at: str
    """When it was published (ISO 8601, UTC)."""
    grants_active: int
    """How many grants on it are active now."""


class GrantPublic(BaseModel):
    """A grant: one consumer's purpose-bound, expiring access to one data item."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [GRANT_EXAMPLE]})

    id: str
    """The grant id: ``grant-`` then 13 hex digits of the request time in ms and 8 random hex digits."""
    item_id: str
    """The data item granted."""
    provider: str
    """The department that owns the item."""
    consumer: str
    """The department the grant is for."""
    data_class: str
    """The item's data class."""
    consumer_data_class: str
    """The data class the consumer holds the shared data under (at least as strict as the item's)."""
    purpose: str
    """What the data is for: ``social-assistance``, ``license-verification``, ``public-service``,
    ``law-enforcement``, ``statistics`` or ``emergency-response``."""
    state: str
    """``requested``, ``active``, ``expired`` or ``revoked``."""
    needs_bureau: bool
    """Whether the big-data bureau (``bigdata``) must approve besides the provider (the data class)."""
    provider_approved_by: str | None
    """Who approved for the provider; null until then."""
    bureau_approved_by: str | None
    """Who approved for the big-data bureau; null until then (or when not needed)."""
    requested_by: str
    """Who asked for it."""
    ended_by: str | None
    """Who revoked it (``system:grant-expiry`` when it expired); null while live."""
    reason: str
    """Why it was revoked, or ``expired``; empty while live."""
    enforced_in: list[dict[str, str]]
    """Where the backend enforces it now: ``{center, bucket}`` per bucket policy written."""
    expires_at: str
    """When it ends by itself (ISO 8601, UTC)."""
    created_at: str
    """When it was asked for (ISO 8601, UTC)."""
    updated_at: str
    """When its state or approvals last changed (ISO 8601, UTC)."""


# --- reading ----------------------------------------------------------------------------------


def _path(tx: Transaction, node_id: str) -> tuple[str, ...]:
    node = orgs.find_node(tx, node_id)
    return tuple(node.ancestor_ids) if node else (node_id,)


def _item_resource(tx: Transaction, item: store.ItemRecord) -> dict[str, Any]:
    return {
        "resource_type": "DataItem",
        "resource_id": item.id,
        "owner": item.owner,
        "owner_path": _path(tx, item.owner),
        "attributes": {"data_class": item.data_class},
    }


def _grant_resource(
    tx: Transaction, *, grant_id: str, provider: str, consumer: str, data_class: str
) -> dict[str, Any]:
    return {
        "resource_type": "DataGrant",
        "resource_id": grant_id,
        "owner": provider,
        "owner_path": _path(tx, provider),
        "attributes": {"consumer": consumer, "consumer_path": _path(tx, consumer), "data_class": data_class},
    }


def _allowed(
    ctx: ctx_module.Context, *, principal: identity.Principal, action: str, resource: dict[str, Any]
) -> bool:
    from cloudctl.policy import engine

    decision = identity.policies(ctx).decide(
        principal=principal,
        action=action,
        resource=engine.Resource(
            type=resource["resource_type"],
            id=resource["resource_id"],
            owner=resource["owner"],
            owner_path=resource["owner_path"],
            attributes=resource["attributes"],
        ),
    )
    return decision.allowed


def _visible_item(
    ctx: ctx_module.Context, tx: Transaction, *, principal: identity.Principal, item_id: str
) -> store.ItemRecord:
    item = store.find_item(tx, item_id)
    if item is None or not _allowed(
        ctx, principal=principal, action="data.item.read", resource=_item_resource(tx, item)
    ):
        raise errors.NotFound(f"no data item {item_id!r}", field="item")
    return item


def _grant_of(tx: Transaction, record: store.GrantRecord) -> dict[str, Any]:
    return _grant_resource(
        tx,
        grant_id=record.id,
        provider=record.provider,
        consumer=record.consumer,
        data_class=record.data_class,
    )


def _visible_grant(
    ctx: ctx_module.Context,
    tx: Transaction,
    *,
    principal: identity.Principal,
    grant_id: str,
    for_update: bool = False,
) -> store.GrantRecord:
    record = store.find_grant(tx, grant_id, for_update=for_update)
    if record is None or not _allowed(
        ctx, principal=principal, action="data.grant.read", resource=_grant_of(tx, record)
    ):
        raise errors.NotFound(f"no data grant {grant_id!r}", field="grant")
    return record


def _item_public(tx: Transaction, item: store.ItemRecord) -> ItemPublic:
    active = store.list_grants(tx, item_id=item.id, states=[model.GrantState.ACTIVE])
    return ItemPublic(
        id=item.id,
        owner=item.owner,
        kind=item.kind,
        workload_id=item.workload_id,
        prefix=item.prefix,
        dataset=item.dataset,
        data_class=item.data_class,
        description=item.description,
        published_by=item.published_by,
        created_at=clocks.isoformat(item.created_at),
        grants_active=len(active),
    )


def _grant_public(record: store.GrantRecord) -> GrantPublic:
    return GrantPublic(
        id=record.id,
        item_id=record.item_id,
        provider=record.provider,
        consumer=record.consumer,
        data_class=record.data_class,
        consumer_data_class=record.consumer_data_class,
        purpose=record.purpose,
        state=record.state,
        needs_bureau=record.needs_bureau,
        provider_approved_by=record.provider_approved_by,
        bureau_approved_by=record.bureau_approved_by,
        requested_by=record.requested_by,
        ended_by=record.ended_by,
        reason=record.reason,
        enforced_in=record.enforced_in,
        expires_at=clocks.isoformat(record.expires_at),
        created_at=clocks.isoformat(record.created_at),
        updated_at=clocks.isoformat(record.updated_at),
    )


def list_items(ctx: ctx_module.Context, *, principal: identity.Principal) -> list[ItemPublic]:
    """The items the caller may see, by id: the shared catalog, its own, and (bureau) all."""
    with ctx.read() as tx:
        return [
            _item_public(tx, item)
            for item in store.list_items(tx)
            if _allowed(ctx, principal=principal, action="data.item.read", resource=_item_resource(tx, item))
        ]


def get_item(ctx: ctx_module.Context, *, principal: identity.Principal, item_id: str) -> ItemPublic:
    with ctx.read() as tx:
        return _item_public(tx, _visible_item(ctx, tx, principal=principal, item_id=item_id))


def list_grants(
    ctx: ctx_module.Context, *, principal: identity.Principal, state: str | None = None
) -> list[GrantPublic]:
    """The grants the caller may see (as provider, consumer, bureau or sysadmin), by id."""
    if state is not None and state not in set(model.GrantState):
        raise errors.InvalidInput(
            f"{state!r} is not a grant state ({', '.join(model.GrantState)})", field="state"
        )
    with ctx.read() as tx:
        return [
            _grant_public(record)
            for record in store.list_grants(tx, states=[state] if state else None)
            if _allowed(ctx, principal=principal, action="data.grant.read", resource=_grant_of(tx, record))
        ]


def get_grant(ctx: ctx_module.Context, *, principal: identity.Principal, grant_id: str) -> GrantPublic:
    with ctx.read() as tx:
        return _grant_public(_visible_grant(ctx, tx, principal=principal, grant_id=grant_id))


# --- publishing -------------------------------------------------------------------------------


@audit.audits_refusals(action="data.item.publish", target_type="DataItem", target="item_id")
def publish(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    item_id: str,
    owner: str | None,
    kind: str,
    data_class: str,
    description: str,
    workload_id: str | None = None,
    prefix: str | None = None,
    dataset: str | None = None,
) -> ItemPublic:
    """Publish a data item of ``owner`` (default: the caller's department)."""
    texts = {"id": item_id, "dataset": dataset, "prefix": prefix, "description": description}
    for field, text in texts.items():
        topo.check_one_line(text or "", field=field)  # read in the catalog's tables and the audit log
    model.check_item_id(item_id)
    ctx.topology.check_data_class(data_class)
    if kind not in set(model.ItemKind):
        raise errors.InvalidInput(f"{kind!r} is not an item kind ({', '.join(model.ItemKind)})", field="kind")
    if not description.strip() or len(description) > model.MAX_DESCRIPTION_CHARS:
        raise errors.InvalidInput(
            f"describe the data in 1 to {model.MAX_DESCRIPTION_CHARS} characters", field="description"
        )
    owner = owner or principal.department
    if not owner:
        raise errors.InvalidInput("name the department that owns the data", field="owner")
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        found = orgs.find_node(tx, owner)
        identity.visible_node(
            principal, owner, None if found is None else tuple(found.ancestor_ids), field="owner"
        )
        if kind == model.ItemKind.BUCKET_PREFIX:
            if dataset is not None:
                raise errors.InvalidInput("a bucket-prefix item names no dataset", field="dataset")
            prefix = model.normalise_prefix(prefix or "")
            workload = requests.find_workload(tx, workload_id or "") if workload_id else None
            if workload is None or workload.department != owner:
                raise errors.NotFound(f"no workload {workload_id!r} of {owner}", field="workload_id")
            offering = ctx.topology.offering(workload.offering)
            if offering.kind is not topo.OfferingKind.BUCKET:
                raise errors.InvalidInput(
                    f"workload {workload.id} runs {workload.offering}, not object storage",
                    field="workload_id",
                )
        else:
            if workload_id is not None or prefix is not None:
                raise errors.InvalidInput("a dataset item names no workload or prefix", field="workload_id")
            model.check_dataset(dataset or "")
        record = store.ItemRecord(
            id=item_id,
            owner=owner,
            kind=kind,
            workload_id=workload_id,
            prefix=prefix,
            dataset=dataset,
            data_class=data_class,
            description=description.strip(),
            published_by=principal.id,
            created_at=now,
        )
        identity.authorize(ctx, principal=principal, action="data.item.publish", **_item_resource(tx, record))
        store.insert_item(tx, record)
        audit.record(
            ctx,
            principal=principal,
            action="data.item.publish",
            target_type="DataItem",
            target_id=item_id,
            outcome="success",
            detail={"owner": owner, "kind": kind, "data_class": data_class},
            tx=tx,
        )
        return _item_public(tx, record)


# --- grants -----------------------------------------------------------------------------------


def parse_expiry(text: str) -> float:
    """An ISO 8601 moment (``Z`` or an offset; a bare date is midnight UTC) as epoch seconds."""
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise errors.InvalidInput(
            f"{text!r} is not an ISO 8601 time (e.g. 2027-06-30T00:00:00Z)", field="expires_at"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


@audit.audits_refusals(action="data.grant.request", target_type="DataGrant", target="item_id")
def request_grant(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    item_id: str,
    purpose: str,
    expires_at: str,
    consumer: str | None = None,
    consumer_data_class: str | None = None,
) -> GrantPublic:
    """Ask for a grant on ``item_id`` for ``consumer`` (default: the caller's department)."""
    now = ctx.clock.now()
    purpose = model.check_purpose(purpose)
    expiry = parse_expiry(expires_at)
    model.check_expiry(expiry, now=now)
    consumer = consumer or principal.department
    if not consumer:
        raise errors.InvalidInput("name the department the grant is for", field="consumer")
    with ctx.transaction() as tx:
        item = _visible_item(ctx, tx, principal=principal, item_id=item_id)
        consumer_node = orgs.find_node(tx, consumer)
        consumer_path = identity.visible_node(
            principal,
            consumer,
            None if consumer_node is None else tuple(consumer_node.ancestor_ids),
            field="consumer",
        )
        if item.owner in consumer_path or consumer in _path(tx, item.owner):
            raise errors.InvalidInput(
                f"{consumer} owns {item_id} (or is above its owner {item.owner}): no grant is needed",
                field="item",
            )
        holding_class = consumer_data_class or item.data_class
        ctx.topology.check_data_class(holding_class, field="consumer_data_class")
        grant_id = requests_service.new_id("grant", now)
        resource = _grant_resource(
            tx, grant_id=grant_id, provider=item.owner, consumer=consumer, data_class=item.data_class
        )
        identity.authorize(
            ctx,
            principal=principal,
            action="data.grant.request",
            context={"data_class": item.data_class, "purpose": purpose, "consumer_data_class": holding_class},
            **resource,
        )
        needs_bureau = not _allowed_skip_bureau(ctx, resource)
        record = store.insert_grant(
            tx,
            store.GrantRecord(
                id=grant_id,
                item_id=item.id,
                provider=item.owner,
                consumer=consumer,
                data_class=item.data_class,
                consumer_data_class=holding_class,
                purpose=purpose,
                state=model.GrantState.REQUESTED,
                needs_bureau=needs_bureau,
                provider_approved_by=None,
                bureau_approved_by=None,
                requested_by=principal.id,
                ended_by=None,
                reason="",
                enforced_in=[],
                expires_at=expiry,
                created_at=now,
                updated_at=now,
            ),
        )
        audit.record(
            ctx,
            principal=principal,
            action="data.grant.request",
            target_type="DataGrant",
            target_id=grant_id,
            outcome="success",
            detail={"item": item.id, "consumer": consumer, "purpose": purpose, "needs_bureau": needs_bureau},
            tx=tx,
        )
        return _grant_public(record)


def _allowed_skip_bureau(ctx: ctx_module.Context, resource: dict[str, Any]) -> bool:
    """Whether the policies let the provider's approval alone activate a grant of this data class."""
    provider_admin = identity.Principal(
        id="policy:provider-admin",
        role="dept-admin",
        department=resource["owner"],
        department_path=resource["owner_path"],
    )
    return _allowed(ctx, principal=provider_admin, action="data.grant.skip_bureau", resource=resource)


@audit.audits_refusals(action="data.grant.approve", target_type="DataGrant", target="grant_id")
def approve(ctx: ctx_module.Context, *, principal: identity.Principal, grant_id: str) -> GrantPublic:
    """Give the provider's approval, or the bureau's once the provider's is given; a grant with
    every approval it needs becomes active and its bucket policies are written."""
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        record = _visible_grant(ctx, tx, principal=principal, grant_id=grant_id, for_update=True)
        if record.state != model.GrantState.REQUESTED:
            raise errors.Conflict(
                f"grant {grant_id} is {record.state}; only a requested one is approved", field="state"
            )
        if record.expires_at <= now:
            raise errors.Conflict(f"grant {grant_id} has expired", field="expires_at")
        resource = _grant_of(tx, record)
        action = "data.grant.approve"
        if record.provider_approved_by is None:
            identity.authorize(ctx, principal=principal, action=action, **resource)
            record = _replace(record, provider_approved_by=principal.id)
            given = "provider"
        else:
            action = "data.grant.bureau_approve"
            identity.authorize(ctx, principal=principal, action=action, **resource)
            if not record.needs_bureau or record.bureau_approved_by is not None:
                raise errors.Conflict(f"grant {grant_id} needs no further approval", field="state")
            record = _replace(record, bureau_approved_by=principal.id)
            given = "bureau"
        active = model.is_fully_approved(
            provider_approved=record.provider_approved_by is not None,
            needs_bureau=record.needs_bureau,
            bureau_approved=record.bureau_approved_by is not None,
        )
        record = store.update_grant(tx, _replace(record, updated_at=now))
        audit.record(
            ctx,
            principal=principal,
            action=action,
            target_type="DataGrant",
            target_id=grant_id,
            outcome="success",
            detail={"approval": given, "activates": active},
            tx=tx,
        )
    if not active:
        return _grant_public(record)
    return _activate(ctx, record, now=now)


def _activate(ctx: ctx_module.Context, record: store.GrantRecord, *, now: float) -> GrantPublic:
    """Write a fully approved grant's bucket policies, then mark it active. The backends are
    written outside the store's transaction (a backend may share the database); if one fails
    part-way the grant stays approved but not active, and the periodic pass finishes it."""
    enforced = _enforce(ctx, record)
    with ctx.transaction() as tx:
        current = store.find_grant(tx, record.id, for_update=True)
        assert current is not None
        if current.state != model.GrantState.REQUESTED:
            _withdraw(ctx, _replace(current, enforced_in=enforced))
            return _grant_public(current)
        model.check_transition(model.GrantState(current.state), model.GrantState.ACTIVE, grant_id=record.id)
        activated = store.update_grant(
            tx, _replace(current, state=model.GrantState.ACTIVE, enforced_in=enforced, updated_at=now)
        )
        return _grant_public(activated)


def _approved_but_not_active(record: store.GrantRecord) -> bool:
    return model.is_fully_approved(
        provider_approved=record.provider_approved_by is not None,
        needs_bureau=record.needs_bureau,
        bureau_approved=record.bureau_approved_by is not None,
    )


def activate_approved(ctx: ctx_module.Context) -> list[str]:
    """Finish the grants approved in full whose activation a backend failure interrupted (safe
    to repeat: writing a grant's statement again changes nothing)."""
    now = ctx.clock.now()
    with ctx.read() as tx:
        waiting = [
            record
            for record in store.list_grants(tx, states=[model.GrantState.REQUESTED])
            if _approved_but_not_active(record) and record.expires_at > now
        ]
    done = []
    for record in waiting:
        try:
            if _activate(ctx, record, now=now).state == model.GrantState.ACTIVE:
                done.append(record.id)
        except errors.CloudctlError as error:
            log.warning("grant %s still not active: %s", record.id, error.one_line())
    return done


@audit.audits_refusals(action="data.grant.revoke", target_type="DataGrant", target="grant_id")
def revoke(
    ctx: ctx_module.Context, *, principal: identity.Principal, grant_id: str, reason: str = ""
) -> GrantPublic:
    """End a live grant now and take its bucket policies away; revoking an ended grant changes nothing."""
    topo.check_one_line(reason, field="reason")  # kept with the grant and in the audit log
    now = ctx.clock.now()
    with ctx.read() as tx:
        record = _visible_grant(ctx, tx, principal=principal, grant_id=grant_id)
        identity.authorize(ctx, principal=principal, action="data.grant.revoke", **_grant_of(tx, record))
    if record.state not in model.LIVE_STATES:
        return _grant_public(record)
    _withdraw(ctx, record)
    with ctx.transaction() as tx:
        record = _locked(tx, grant_id)
        if record.state not in model.LIVE_STATES:
            return _grant_public(record)
        record = _end(
            ctx,
            tx,
            record,
            state=model.GrantState.REVOKED,
            by=principal,
            reason=reason.strip() or "revoked",
            now=now,
        )
        return _grant_public(record)


@audit.audits_refusals(action="data.grant.use", target_type="DataGrant", target="grant_id")
def use(ctx: ctx_module.Context, *, principal: identity.Principal, grant_id: str) -> GrantPublic:
    """Record that the consumer uses an active grant (what it reads is then where ``enforced_in`` says)."""
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        record = _visible_grant(ctx, tx, principal=principal, grant_id=grant_id)
        identity.authorize(ctx, principal=principal, action="data.grant.use", **_grant_of(tx, record))
        if record.state != model.GrantState.ACTIVE or record.expires_at <= now:
            raise errors.Conflict(f"grant {grant_id} is {record.state}, not active", field="state")
        audit.record(
            ctx,
            principal=principal,
            action="data.grant.use",
            target_type="DataGrant",
            target_id=grant_id,
            outcome="success",
            detail={"item": record.item_id, "purpose": record.purpose},
            tx=tx,
        )
        return _grant_public(record)


def expire_due(ctx: ctx_module.Context) -> list[str]:
    """End every live grant whose expiry has passed (the leader's periodic pass; safe to repeat)."""
    now = ctx.clock.now()
    with ctx.read() as tx:
        due = [record.id for record in store.due_grants(tx, now=now, live_states=model.LIVE_STATES)]
    ended = []
    for grant_id in due:
        with ctx.read() as tx:
            found = store.find_grant(tx, grant_id)
        if found is not None:
            _withdraw(ctx, found)
        with ctx.transaction() as tx:
            record = store.find_grant(tx, grant_id, for_update=True)
            if record is None or record.state not in model.LIVE_STATES or record.expires_at > now:
                continue
            _end(ctx, tx, record, state=model.GrantState.EXPIRED, by=EXPIRY_ACTOR, reason="expired", now=now)
            ended.append(grant_id)
    return ended


def _end(
    ctx: ctx_module.Context,
    tx: Transaction,
    record: store.GrantRecord,
    *,
    state: model.GrantState,
    by: identity.Principal,
    reason: str,
    now: float,
) -> store.GrantRecord:
    model.check_transition(model.GrantState(record.state), state, grant_id=record.id)
    ended = store.update_grant(
        tx, _replace(record, state=state, ended_by=by.id, reason=reason, enforced_in=[], updated_at=now)
    )
    audit.record(
        ctx,
        principal=by,
        action="data.grant.revoke" if state is model.GrantState.REVOKED else "data.grant.expire",
        target_type="DataGrant",
        target_id=record.id,
        outcome="success",
        detail={
            "item": record.item_id,
            "consumer": record.consumer,
            "reason": reason,
            "withdrawn_from": record.enforced_in,
        },
        tx=tx,
    )
    return ended


def _locked(tx: Transaction, grant_id: str) -> store.GrantRecord:
    record = store.find_grant(tx, grant_id, for_update=True)
    if record is None:
        raise errors.NotFound(f"no data grant {grant_id!r}", field="grant")
    return record


def _withdraw(ctx: ctx_module.Context, record: store.GrantRecord) -> None:
    """Take the grant's statements away wherever they were written (quiet where already gone)."""
    for place in record.enforced_in:
        drivers.center_drivers(ctx, place["center"]).object_storage.revoke_prefix_access(
            place["bucket"], grant_id=record.id
        )


def _buckets_of(tx: Transaction, item: store.ItemRecord) -> Iterator[dict[str, str]]:
    workload = requests.find_workload(tx, item.workload_id or "")
    if workload is None:
        return
    for placement in workload.placements:
        for resource in placement.resources:
            if resource.get("kind") == "bucket":
                yield {"center": placement.center, "bucket": str(resource["id"])}


def _enforce(ctx: ctx_module.Context, record: store.GrantRecord) -> list[dict[str, str]]:
    """Write the grant's bucket policy statement in every center holding the item's bucket."""
    with ctx.read() as tx:
        item = store.find_item(tx, record.item_id)
        places = [] if item is None else list(_buckets_of(tx, item))
    if item is None or item.kind != model.ItemKind.BUCKET_PREFIX:
        return []
    enforced = []
    for place in places:
        drivers.center_drivers(ctx, place["center"]).object_storage.grant_prefix_access(
            place["bucket"], grant_id=record.id, prefix=item.prefix or "", consumer=record.consumer
        )
        enforced.append(place)
    return enforced


def _replace(record: store.GrantRecord, **changes: Any) -> store.GrantRecord:
    import dataclasses

    return dataclasses.replace(record, **changes)


# --- metrics ----------------------------------------------------------------------------------


def metric_families(ctx: ctx_module.Context) -> Iterator[Any]:
    """Items shared and grants active, per data class (every class always present)."""
    from prometheus_client.core import GaugeMetricFamily

    items = GaugeMetricFamily(
        "cloudctl_data_items_shared",
        "Data items published for sharing, per data class.",
        labels=["data_class"],
    )
    active = GaugeMetricFamily(
        "cloudctl_data_grants_active",
        "Data grants active now, per data class of the item.",
        labels=["data_class"],
    )
    with ctx.read() as tx:
        published, live = store.counts_by_class(tx)
    for data_class in ctx.topology.data_classes:
        items.add_metric([data_class], published.get(data_class, 0))
        active.add_metric([data_class], live.get(data_class, 0))
    yield items
    yield active
