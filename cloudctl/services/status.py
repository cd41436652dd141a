"""The state of the four centers and their links, as one stable document.

``overview()`` is what ``cloudctl status --output json`` prints and what the
API's status endpoint returns; its shape is documented in README.md and only
grows. Capacity per center and resource: ``total`` from the topology,
``allocated`` the quota granted there (used + reserved by every department),
``used`` what the center's backend reports as consumed. ``replicas`` lists the
``cloudctl serve`` processes of the management center, each with its role (``leader``,
``follower``, ``stopped``) as its last heartbeat recorded it; a replica whose heartbeat
is older than ``STALE_AFTER_S`` shows as ``lost``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from cloudctl import clock as clocks
from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers as drivers_service
from cloudctl.services import leader
from cloudctl.store import centers, leases, orgs, quotas

STALE_AFTER_S = 15.0
"""A replica silent this long is shown as ``lost`` (a leader's lease is shorter)."""


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


class ReplicaPublic(BaseModel):
    id: str
    host: str
    pid: int
    api_url: str
    role: str
    """``leader``, ``follower``, ``stopped``, or ``lost`` (no heartbeat for ``STALE_AFTER_S``)."""
    epoch: int | None
    """The lease epoch the leader holds; ``None`` for the others."""
    started_at: str
    heartbeat_age_s: float


class StatusPublic(BaseModel):
    topology: str
    display_name: str
    generated_at: str
    centers: list[CenterPublic]
    links: list[LinkPublic]
    replicas: list[ReplicaPublic] = []


class ReadinessPublic(BaseModel):
    status: str
    replica: str | None
    """This process's replica id (``None`` outside ``cloudctl serve``)."""
    role: str | None
    replicas: list[ReplicaPublic]


def replicas(ctx: ctx_module.Context) -> list[ReplicaPublic]:
    """The serve replicas and their roles; stopped ones last seen over an hour ago are gone."""
    now = ctx.clock.now()
    with ctx.read() as tx:
        rows = leases.list_replicas(tx)
    result = []
    for row in rows:
        age_s = max(now - row.heartbeat_at, 0.0)
        role = row.role if row.role == "stopped" or age_s < STALE_AFTER_S else "lost"
        result.append(
            ReplicaPublic(
                id=row.id,
                host=row.host,
                pid=row.pid,
                api_url=row.api_url,
                role=role,
                epoch=row.epoch if role == "leader" else None,
                started_at=clocks.isoformat(row.started_at),
                heartbeat_age_s=round(age_s, 1),
            )
        )
    return result


def readiness(ctx: ctx_module.Context) -> ReadinessPublic:
    """What ``/readyz`` answers: the store holds initialised state; this replica and the others."""
    ctx.require_initialised()
    rows = replicas(ctx)
    mine = leader.local_replica_id(ctx)
    role = next((row.role for row in rows if row.id == mine), None)
    return ReadinessPublic(status="ready", replica=mine, role=role, replicas=rows)


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
        replicas=replicas(ctx),
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
