"""The state of the four centers and their links, as one stable document.

``overview()`` is what ``cloudctl status --output json`` prints and what the
API's status endpoint returns; its shape is documented in README.md and only
grows. Capacity per center and resource: ``total`` from the topology,
``allocated`` the quota granted there (used + reserved by every department),
``used`` what the center's backend reports as consumed.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cloudctl import clock as clocks
from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers as drivers_service
from cloudctl.store import centers, orgs, quotas


class CapacityPublic(BaseModel):
    total: int
    allocated: int
    used: int


class CenterPublic(BaseModel):
    name: str
    display_name: str
    site: str
    role: str
    health: str
    """``up`` or ``down``, as observed through the center's drivers."""
    drivers: dict[str, str]
    """The driver serving each capability (``simulator``, ``openstack``, ...), from the topology."""
    capacity: dict[str, CapacityPublic]


class LinkPublic(BaseModel):
    between: list[str]
    mode: str
    rtt_ms: float
    bandwidth_mbps: int
    state: str
    """``up``, ``degraded`` or ``cut``."""


class StatusPublic(BaseModel):
    topology: str
    display_name: str
    generated_at: str
    centers: list[CenterPublic]
    links: list[LinkPublic]


def overview(ctx: ctx_module.Context) -> StatusPublic:
    topology = ctx.topology
    observer = drivers_service.observer(ctx)
    with ctx.read() as tx:
        center_rows = centers.list_centers(tx)
        link_rows = centers.list_links(tx)
        roots = [node.id for node in orgs.list_nodes(tx) if node.parent_id is None]
        allocated = quotas.get_counters(tx, node_ids=roots)
    order = {center.name: index for index, center in enumerate(topology.centers)}
    center_rows.sort(key=lambda row: order.get(row.name, len(order)))
    result: list[CenterPublic] = []
    for row in center_rows:
        used = observer.capacity_used(row.name)
        capacity = {
            resource.value: CapacityPublic(
                total=row.capacity.get(resource, 0),
                allocated=sum(
                    allocated[(root, row.name, resource)].in_use
                    for root in roots
                    if (root, row.name, resource) in allocated
                ),
                used=used.get(resource, 0),
            )
            for resource in q.RESOURCES
        }
        result.append(
            CenterPublic(
                name=row.name,
                display_name=row.display_name,
                site=row.site,
                role=row.role,
                health=observer.center_health(row.name),
                drivers=observer.driver_names(row.name),
                capacity=capacity,
            )
        )
    link_order = {link.name: index for index, link in enumerate(topology.links)}
    link_rows.sort(key=lambda row: link_order.get(f"{row.a}~{row.b}", len(link_order)))
    links = [
        LinkPublic(
            between=[link.a, link.b],
            mode=link.mode,
            rtt_ms=link.rtt_ms,
            bandwidth_mbps=link.bandwidth_mbps,
            state=observer.link_state(link.a, link.b),
        )
        for link in link_rows
    ]
    return StatusPublic(
        topology=topology.name,
        display_name=topology.display_name,
        generated_at=clocks.isoformat(ctx.clock.now()),
        centers=result,
        links=links,
    )


def get_center(ctx: ctx_module.Context, name: str) -> CenterPublic:
    ctx.topology.center(name)
    for center in overview(ctx).centers:
        if center.name == name:
            return center
    raise AssertionError("a center of the topology is missing from the store; run `cloudctl init --force`")


def authorize_supervision(ctx: ctx_module.Context, *, principal: Any) -> None:
    """Reading the centers, their links and recovery runs: policy action ``center.read``."""
    from cloudctl.services import identity

    identity.authorize(
        ctx,
        principal=principal,
        action="center.read",
        resource_type="Center",
        resource_id="all",
        attributes={"name": "all", "role": "all", "site": "all"},
    )


def overview_for(ctx: ctx_module.Context, *, principal: Any) -> StatusPublic:
    """``overview`` for a principal the policies let read the centers."""
    authorize_supervision(ctx, principal=principal)
    return overview(ctx)
