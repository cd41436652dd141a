"""``/v1/org/nodes``, ``PUT /v1/quota/{node_id}`` and ``/v1/reservations``: the org tree, its
limits and the quota operators hold by hand.

Every call goes through ``services.orgs`` and ``services.quotas``, which authorise (``org.read``,
``org.manage``, ``quota.set``: the sysadmin's powers) and audit each write, refused or not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from cloudctl.api import app as app_module
from cloudctl.model import quotas as q
from cloudctl.services import orgs
from cloudctl.services import quotas as quotas_service


class OrgNodeCreate(BaseModel):
    """A new org node under an existing one (a sysadmin's ``org.manage``)."""

    model_config = ConfigDict(
        **app_module.STRICT,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "shinan-edu",
                    "display_name": "青岛市市南区教育和体育局",
                    "parent": "shinan",
                    "kind": "department",
                }
            ]
        },
    )

    id: str = Field(max_length=40, description="ASCII id used in commands and URLs")
    display_name: str = Field(max_length=200, description="e.g. 市南区卫生健康局")
    parent: str = Field(max_length=40, description="Id of the parent node")
    kind: str = Field(default="department", max_length=20, description="city, district, bureau or department")


class OrgNodesPage(BaseModel):
    """Org nodes in tree order, all on one page."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={"examples": [{"data": [orgs.ORG_NODE_EXAMPLE], "count": 1, "next_cursor": None}]},
    )

    data: list[orgs.OrgNodePublic]
    """The nodes in tree order (each parent before its children)."""
    count: int
    """How many nodes ``data`` holds."""
    next_cursor: str | None = None
    """Always null: the whole (sub)tree is on this page."""


class Deleted(BaseModel):
    """What a delete did."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [{"id": "shinan-edu", "deleted": True}]}
    )

    id: str
    """The node id asked for."""
    deleted: bool
    """true: the node was deleted now; false: there was none (only with ``ignore_missing``)."""


class QuotaUpdate(BaseModel):
    """New limits of one org node on one center (or ``all``), set together or not at all."""

    model_config = ConfigDict(
        **app_module.STRICT,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [{"center": "qd-a", "limits": {"vcpu": 64, "ram_gb": 256, "instances": None}}]
        },
    )

    center: str = Field(max_length=40, description="A center name, or `all` for the sum over every center")
    limits: dict[
        Annotated[str, StringConstraints(max_length=20)], Annotated[int, Field(ge=0, le=q.MAX_AMOUNT)] | None
    ] = Field(
        max_length=len(q.RESOURCES),
        description="Resource → limit; null removes the node's own limit for that resource",
    )


class ReservationCreate(BaseModel):
    """Quota to hold for one org node on one center (a sysadmin's ``quota.set``)."""

    model_config = ConfigDict(
        **app_module.STRICT,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "node": "hrss-insurance",
                    "center": "qd-a",
                    "amounts": {"vcpu": 16, "ram_gb": 32},
                    "purpose": "社保卡系统扩容",
                }
            ]
        },
    )

    node: str = Field(max_length=40, description="The org node whose quota (and every ancestor's) to hold")
    center: str = Field(max_length=40, description="The center the resources will live in (not `all`)")
    amounts: dict[str, Annotated[int, Field(ge=0, le=q.MAX_AMOUNT)]] = Field(
        max_length=5, description="Resource → amount to hold; at least one above 0"
    )
    purpose: str = Field(default="", max_length=500, description="Why, for the record")


ReservationIdPath = Annotated[
    str,
    Path(max_length=64, description="The reservation's id", examples=["42113841c0d95b7e6a3f28e1d04c9b77"]),
]


class ReservationsPage(BaseModel):
    """Reservations, oldest first, all on one page."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [{"data": [quotas_service.RESERVATION_EXAMPLE], "count": 1, "next_cursor": None}]
        },
    )

    data: list[quotas_service.ReservationPublic]
    """The reservations, oldest first."""
    count: int
    """How many ``data`` holds."""
    next_cursor: str | None = None
    """Always null: every reservation asked for is on this page."""


NodeIdPath = Annotated[
    str,
    Path(
        max_length=40,
        description="The org node's id (as in ``infra/topology.yaml``)",
        examples=["shinan-health"],
    ),
]


def router() -> APIRouter:
    routes = APIRouter(tags=["operators"])

    @routes.get("/org/nodes")
    def list_org_nodes(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        under: Annotated[
            str | None,
            Query(
                max_length=40,
                description="Only this node's subtree (the node included); omitted: the whole tree",
                examples=["shinan"],
            ),
        ] = None,
    ) -> OrgNodesPage:
        """The org tree in tree order, each node with the ids of its children (``org.read``)."""
        nodes = orgs.read_nodes(ctx, principal=principal, under=under)
        return OrgNodesPage(data=nodes, count=len(nodes))

    @routes.get("/org/nodes/{node_id}")
    def get_org_node(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, node_id: NodeIdPath
    ) -> orgs.OrgNodePublic:
        """One org node with the ids of its children (``org.read``); an unknown id is 404."""
        return orgs.read_node(ctx, principal=principal, node_id=node_id)

    @routes.post("/org/nodes", status_code=201)
    def create_org_node(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, body: OrgNodeCreate
    ) -> orgs.OrgNodePublic:
        """Add an org node under a parent (``org.manage``, audited, refusals too).

        The node has no limits of its own (its ancestors' bound it) until ``PUT /v1/quota/{node_id}``.
        A malformed id, an empty name or an unknown kind is 422, an unknown parent 404, an id already
        taken 409.
        """
        return orgs.create_node(
            ctx,
            node_id=body.id,
            display_name=body.display_name,
            parent=body.parent,
            kind=body.kind,
            principal=principal,
        )

    @routes.delete("/org/nodes/{node_id}")
    def delete_org_node(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        node_id: NodeIdPath,
        ignore_missing: Annotated[
            bool, Query(description="Succeed when the node does not exist", examples=[True])
        ] = False,
    ) -> Deleted:
        """Delete a node with no children and nothing in use; its tokens are revoked with it.

        Needs ``org.manage``; audited, refusals too. A node with children or anything in use is 409.
        """
        deleted = orgs.delete_node(ctx, node_id=node_id, ignore_missing=ignore_missing, principal=principal)
        return Deleted(id=node_id, deleted=deleted)

    @routes.put("/quota/{node_id}")
    def set_quota(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, node_id: NodeIdPath, body: QuotaUpdate
    ) -> quotas_service.QuotaPublic:
        """Set limits of one node on one center, all or nothing; children never exceed parents."""
        return quotas_service.set_quota(
            ctx, node_id=node_id, center=body.center, limits=body.limits, principal=principal
        )

    @routes.get("/reservations")
    def list_reservations(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        node: Annotated[
            str | None,
            Query(
                max_length=40,
                description="Only this org node's; omitted: every node's (a department: its own)",
                examples=["hrss"],
            ),
        ] = None,
        all_states: Annotated[
            bool, Query(alias="all", description="Include released reservations", examples=[True])
        ] = False,
    ) -> ReservationsPage:
        """Live reservations (reserved or committed), of one node or of all.

        ``quota.read``: a department sees its own subtree's (another's node is 404, as a missing one
        is; none named is its own department's); every node's at once is for operators."""
        items = quotas_service.list_reservations(
            ctx, node_id=node, live_only=not all_states, principal=principal
        )
        return ReservationsPage(data=items, count=len(items))

    @routes.post("/reservations", status_code=201)
    def create_reservation(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, body: ReservationCreate
    ) -> quotas_service.ReservationPublic:
        """Hold quota for a node on a center (``quota.set``, audited, refusals too).

        Refused with 409 naming the ancestor and resource that ran out; nothing is held then."""
        return quotas_service.reserve(
            ctx,
            node_id=body.node,
            center=body.center,
            amounts=body.amounts,
            purpose=body.purpose,
            principal=principal,
        )

    @routes.post("/reservations/{reservation_id}/commit")
    def commit_reservation(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, reservation_id: ReservationIdPath
    ) -> quotas_service.ReservationPublic:
        """Turn a reservation into usage: the resources exist now (``quota.set``, audited)."""
        return quotas_service.commit(ctx, reservation_id=reservation_id, principal=principal)

    @routes.post("/reservations/{reservation_id}/release")
    def release_reservation(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, reservation_id: ReservationIdPath
    ) -> quotas_service.ReservationPublic:
        """Give a reservation (or the usage it became) back to the tree (``quota.set``, audited)."""
        return quotas_service.release(ctx, reservation_id=reservation_id, principal=principal)

    return routes
