"""``/v1/data/items`` and ``/v1/data/grants``: cross-department data sharing.

Through ``services.grants``, which authorises (Cedar, ``policies/sharing.cedar``) and audits each
write, refused or not. An item or grant the caller may not see answers 404, as a missing one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cloudctl.api import app as app_module
from cloudctl.model import grants as model
from cloudctl.services import grants


class ItemCreate(BaseModel):
    """A data item to publish: a prefix of one of the owner's bucket workloads, or a dataset."""

    model_config = ConfigDict(
        **app_module.STRICT,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "household-contributions",
                    "kind": "bucket-prefix",
                    "workload_id": "wl-001a2433a995562feca1c",
                    "prefix": "households/2026/",
                    "data_class": "sensitive",
                    "description": "社保缴费记录 per household, monthly, for social-assistance checks",
                }
            ]
        },
    )

    id: str = Field(max_length=60)
    """The item's id: 3-60 of a-z, 0-9, '-', starting with a letter; unique in the city."""
    kind: str = Field(max_length=20)
    """``bucket-prefix`` or ``dataset``."""
    data_class: str = Field(max_length=20)
    """A data class of the topology (as shipped ``public``, ``internal``, ``sensitive`` or ``secret``)."""
    description: str = Field(max_length=1000)
    """What the data is, 1 to 1000 characters."""
    owner: str | None = Field(default=None, max_length=40)
    """The owning department; default the caller's (a bureau admin may name a sub-department)."""
    workload_id: str | None = Field(default=None, max_length=40)
    """For ``bucket-prefix``: the owner's bucket workload that holds the data."""
    prefix: str | None = Field(default=None, max_length=512)
    """For ``bucket-prefix``: the prefix shared; a grant covers only the keys under it."""
    dataset: str | None = Field(default=None, max_length=200)
    """For ``dataset``: the dataset's name in the provider's catalogue."""


class GrantCreate(BaseModel):
    """A grant to ask for: which item, what for, until when."""

    model_config = ConfigDict(
        **app_module.STRICT,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "item_id": "household-contributions",
                    "purpose": "social-assistance",
                    "expires_at": "2027-06-30T00:00:00Z",
                    "consumer_data_class": "sensitive",
                }
            ]
        },
    )

    item_id: str = Field(max_length=60)
    """The data item asked for."""
    purpose: str = Field(max_length=200)
    """What the data is for: ``social-assistance``, ``license-verification``, ``public-service``,
    ``law-enforcement``, ``statistics`` or ``emergency-response`` (the policies check it fits the
    data class)."""
    expires_at: str = Field(max_length=40)
    """When the grant ends by itself (ISO 8601; in the future, at most 366 days ahead)."""
    consumer: str | None = Field(default=None, max_length=40)
    """The department the grant is for; default the caller's."""
    consumer_data_class: str | None = Field(default=None, max_length=20)
    """The data class the consumer holds the data under; default the item's (never less strict)."""


class GrantRevoke(BaseModel):
    """Why a grant is revoked."""

    model_config = ConfigDict(
        **app_module.STRICT,
        use_attribute_docstrings=True,
        json_schema_extra={"examples": [{"reason": "the assistance review of 2026 is finished"}]},
    )

    reason: str = Field(default="", max_length=1000)
    """Why, up to 1000 characters; recorded with the grant and in the audit log."""


class ItemsPage(BaseModel):
    """Data items, by id, all on one page."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={"examples": [{"data": [grants.ITEM_EXAMPLE], "count": 1, "next_cursor": None}]},
    )

    data: list[grants.ItemPublic]
    """The items the caller may see, by id."""
    count: int
    """How many items ``data`` holds."""
    next_cursor: str | None = None
    """Always null: every item is on this page."""


class GrantsPage(BaseModel):
    """Data grants, by id (oldest first), all on one page."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={"examples": [{"data": [grants.GRANT_EXAMPLE], "count": 1, "next_cursor": None}]},
    )

    data: list[grants.GrantPublic]
    """The grants the caller may see, oldest first."""
    count: int
    """How many grants ``data`` holds."""
    next_cursor: str | None = None
    """Always null: every grant is on this page."""


ItemId = Annotated[
    str,
    Path(max_length=60, description="The data item's id, as listed", examples=["household-contributions"]),
]
GrantId = Annotated[
    str,
    Path(max_length=64, description="The grant's id, as listed", examples=["grant-001a2433a9955c0ffee11"]),
]


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/data/items", tags=["data"])
    def list_data_items(ctx: app_module.ContextDep, principal: app_module.PrincipalDep) -> ItemsPage:
        """The shared data catalog: every item the caller may see, by id.

        Departments see every item that is not secret, and their own; the big-data bureau and the
        sysadmin see all.
        """
        items = grants.list_items(ctx, principal=principal)
        return ItemsPage(data=items, count=len(items))

    @routes.post("/data/items", status_code=201, tags=["data"])
    def publish_data_item(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, body: ItemCreate
    ) -> grants.ItemPublic:
        """Publish a data item of the caller's department (its ``dept-admin``). Audited, refusals too.

        A ``bucket-prefix`` item names one of the owner's bucket workloads and a prefix; a ``dataset``
        item names a dataset. A taken id is 409; bad input is 422 naming the field.
        """
        return grants.publish(
            ctx,
            principal=principal,
            item_id=body.id,
            owner=body.owner,
            kind=body.kind,
            data_class=body.data_class,
            description=body.description,
            workload_id=body.workload_id,
            prefix=body.prefix,
            dataset=body.dataset,
        )

    @routes.get("/data/items/{item_id}", tags=["data"])
    def get_data_item(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, item_id: ItemId
    ) -> grants.ItemPublic:
        """One data item; one the caller may not see answers 404, as a missing one."""
        return grants.get_item(ctx, principal=principal, item_id=item_id)

    @routes.get("/data/grants", tags=["data"])
    def list_data_grants(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        state: Annotated[
            str | None,
            Query(
                max_length=app_module.QUERY_NAME_MAX,
                description="Only grants in this state: requested, active, expired or revoked",
                examples=[model.GrantState.ACTIVE],
            ),
        ] = None,
    ) -> GrantsPage:
        """The grants the caller may see, oldest first: as provider, consumer, the bureau or sysadmin."""
        items = grants.list_grants(ctx, principal=principal, state=state)
        return GrantsPage(data=items, count=len(items))

    @routes.post("/data/grants", status_code=201, tags=["data"])
    def request_data_grant(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, body: GrantCreate
    ) -> grants.GrantPublic:
        """Ask for a grant on an item, with a purpose and an expiry; it waits for the provider.

        The policies check that the purpose fits the item's data class and that the consumer holds the
        data under a class at least as strict (403 naming the policy). No purpose, an expiry in the
        past, an unknown item or one the consumer owns is 422 (404 for the item) naming the field.
        """
        return grants.request_grant(
            ctx,
            principal=principal,
            item_id=body.item_id,
            purpose=body.purpose,
            expires_at=body.expires_at,
            consumer=body.consumer,
            consumer_data_class=body.consumer_data_class,
        )

    @routes.get("/data/grants/{grant_id}", tags=["data"])
    def get_data_grant(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, grant_id: GrantId
    ) -> grants.GrantPublic:
        """One grant, with its approvals and where it is enforced; 404 if the caller may not see it."""
        return grants.get_grant(ctx, principal=principal, grant_id=grant_id)

    @routes.post("/data/grants/{grant_id}/approve", tags=["data"])
    def approve_data_grant(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, grant_id: GrantId
    ) -> grants.GrantPublic:
        """Approve a requested grant: first the provider's dept-admin, then (where the data class needs
        it) a dept-admin of the big-data bureau. With every approval it needs the grant becomes active
        and its bucket policies are written. Audited, refusals too.
        """
        return grants.approve(ctx, principal=principal, grant_id=grant_id)

    @routes.post("/data/grants/{grant_id}/revoke", tags=["data"])
    def revoke_data_grant(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, grant_id: GrantId, body: GrantRevoke
    ) -> grants.GrantPublic:
        """Revoke a live grant at once and take its bucket policies away (provider, consumer, bureau or
        sysadmin). Revoking an ended grant changes nothing. Audited, refusals too.
        """
        return grants.revoke(ctx, principal=principal, grant_id=grant_id, reason=body.reason)

    @routes.post("/data/grants/{grant_id}/use", tags=["data"])
    def use_data_grant(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, grant_id: GrantId
    ) -> grants.GrantPublic:
        """Record a use of an active grant by the consumer (audited); the answer says where to read.

        A grant that is not active is 409.
        """
        return grants.use(ctx, principal=principal, grant_id=grant_id)

    return routes
