"""``/v1/org/nodes`` and ``PUT /v1/quota/{node_id}``: the org tree and its limits, for operators.

Every call goes through ``services.orgs`` and ``services.quotas``, which authorise (``org.read``,
``org.manage``, ``quota.set``: the sysadmin's powers) and audit each write, refused or not.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from cloudctl.api import app as app_module
from cloudctl.services import orgs
from cloudctl.services import quotas as quotas_service


class OrgNodeCreate(BaseModel):
    model_config = app_module.STRICT

    id: str = Field(max_length=40, description="ASCII id used in commands and URLs")
    display_name: str = Field(max_length=200, description="e.g. 市南区卫生健康局")
    parent: str = Field(max_length=40, description="Id of the parent node")
    kind: str = Field(default="department", max_length=20, description="city, district, bureau or department")


class OrgNodesPage(BaseModel):
    data: list[orgs.OrgNodePublic]
    count: int
    next_cursor: str | None = None


class Deleted(BaseModel):
    id: str
    deleted: bool


class QuotaUpdate(BaseModel):
    model_config = app_module.STRICT

    center: str = Field(max_length=40, description="A center name, or `all` for the sum over every center")
    limits: dict[str, Annotated[int, Field(ge=0)] | None] = Field(
        description="Resource → limit; null removes the node's own limit for that resource"
    )


def router() -> APIRouter:
    routes = APIRouter(tags=["operators"])

    @routes.get("/org/nodes")
    def list_org_nodes(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        under: Annotated[str | None, Query(max_length=40, description="Only this node's subtree")] = None,
    ) -> OrgNodesPage:
        """The org tree in tree order, each node with the ids of its children."""
        nodes = orgs.read_nodes(ctx, principal=principal, under=under)
        return OrgNodesPage(data=nodes, count=len(nodes))

    @routes.get("/org/nodes/{node_id}")
    def get_org_node(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, node_id: str
    ) -> orgs.OrgNodePublic:
        return orgs.read_node(ctx, principal=principal, node_id=node_id)

    @routes.post("/org/nodes", status_code=201)
    def create_org_node(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, body: OrgNodeCreate
    ) -> orgs.OrgNodePublic:
        """Add an org node under a parent."""
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
        node_id: str,
        ignore_missing: Annotated[bool, Query(description="Succeed when the node does not exist")] = False,
    ) -> Deleted:
        """Delete a node with no children and nothing in use; its tokens are revoked with it."""
        deleted = orgs.delete_node(ctx, node_id=node_id, ignore_missing=ignore_missing, principal=principal)
        return Deleted(id=node_id, deleted=deleted)

    @routes.put("/quota/{node_id}")
    def set_quota(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, node_id: str, body: QuotaUpdate
    ) -> quotas_service.QuotaPublic:
        """Set limits of one node on one center, all or nothing; children never exceed parents."""
        return quotas_service.set_quota(
            ctx, node_id=node_id, center=body.center, limits=body.limits, principal=principal
        )

    return routes
