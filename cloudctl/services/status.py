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

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl.model import quotas as q
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.services import context as ctx_module
from cloudctl.services import drivers as drivers_service
from cloudctl.services import leader
from cloudctl.store import centers, leases, orgs, quotas

STALE_AFTER_S = 15.0
"""A replica silent this long is shown as ``lost`` (a leader's lease is shorter)."""


DRIVERS_EXAMPLE: dict[str, str] = {
    "compute": "openstack",
    "block_storage": "openstack",
    "object_storage": "s3",
    "containers": "kubernetes",
    "traffic": "dns",
}
CAPACITY_EXAMPLE: dict[str, Any] = {"total": 4096, "allocated": 1830, "used": 1416}
CENTER_EXAMPLE: dict[str, Any] = {
    "name": "qd-a",
    "display_name": "青岛政务云中心A",
    "site": "qingdao",
    "role": topo.CenterRole.LOCAL,
    "health": states.CenterHealth.UP,
    "drivers": DRIVERS_EXAMPLE,
    "capacity": {
        "vcpu": CAPACITY_EXAMPLE,
        "ram_gb": {"total": 16384, "allocated": 7320, "used": 5664},
        "volume_gb": {"total": 400000, "allocated": 146400, "used": 98240},
        "object_gb": {"total": 800000, "allocated": 215000, "used": 131072},
        "instances": {"total": 2000, "allocated": 612, "used": 474},
    },
}
LINK_EXAMPLE: dict[str, Any] = {
    "between": ["qd-a", "dz-dr"],
    "mode": topo.LinkMode.ASYNC,
    "rtt_ms": 8.0,
    "bandwidth_mbps": 10000,
    "state": states.LinkState.UP,
}
REPLICA_EXAMPLE: dict[str, Any] = {
    "id": "mgmt-1:4242:9f3a1c",
    "host": "mgmt-1",
    "pid": 4242,
    "api_url": "http://10.0.0.11:8080",
    "role": states.ReplicaRole.LEADER,
    "epoch": 3,
    "started_at": "2026-11-26T11:58:02Z",
    "heartbeat_age_s": 0.4,
    "policies_sha256": "5f0c9d2e8a41b7c3d6e9f1a2b4c8d0e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5",
    "policies_differ": False,
}
FOLLOWER_EXAMPLE: dict[str, Any] = {
    "id": "mgmt-2:3117:41c7e0",
    "host": "mgmt-2",
    "pid": 3117,
    "api_url": "http://10.0.0.12:8080",
    "role": states.ReplicaRole.FOLLOWER,
    "epoch": None,
    "started_at": "2026-11-26T11:58:05Z",
    "heartbeat_age_s": 0.9,
    "policies_sha256": "5f0c9d2e8a41b7c3d6e9f1a2b4c8d0e3f5a7b9c1d3e5f7a9b1c3d5e7f9a1b3c5",
    "policies_differ": False,
}
STATUS_EXAMPLE: dict[str, Any] = {
    "topology": "qingdao-gov-cloud",
    "display_name": "青岛市电子政务云",
    "generated_at": "2026-11-26T12:06:14Z",
    "centers": [
        {
            "name": "mgmt",
            "display_name": "政务云管理中心",
            "site": "qingdao",
            "role": topo.CenterRole.MANAGEMENT,
            "health": states.CenterHealth.UP,
            "drivers": dict.fromkeys(DRIVERS_EXAMPLE, "simulator"),
            "capacity": {
                "vcpu": {"total": 256, "allocated": 0, "used": 0},
                "ram_gb": {"total": 1024, "allocated": 0, "used": 0},
                "volume_gb": {"total": 20000, "allocated": 0, "used": 0},
                "object_gb": {"total": 50000, "allocated": 0, "used": 0},
                "instances": {"total": 128, "allocated": 0, "used": 0},
            },
        },
        CENTER_EXAMPLE,
        {
            **CENTER_EXAMPLE,
            "name": "qd-b",
            "display_name": "青岛政务云中心B",
            "capacity": {
                "vcpu": {"total": 4096, "allocated": 1790, "used": 1388},
                "ram_gb": {"total": 16384, "allocated": 7160, "used": 5552},
                "volume_gb": {"total": 400000, "allocated": 143200, "used": 96160},
                "object_gb": {"total": 800000, "allocated": 209000, "used": 128000},
                "instances": {"total": 2000, "allocated": 598, "used": 466},
            },
        },
        {
            "name": "dz-dr",
            "display_name": "德州异地灾备中心",
            "site": "dezhou",
            "role": topo.CenterRole.DR,
            "health": states.CenterHealth.UP,
            "drivers": DRIVERS_EXAMPLE,
            "capacity": {
                "vcpu": {"total": 3072, "allocated": 1460, "used": 96},
                "ram_gb": {"total": 12288, "allocated": 5840, "used": 384},
                "volume_gb": {"total": 600000, "allocated": 188000, "used": 141000},
                "object_gb": {"total": 1200000, "allocated": 304000, "used": 262144},
                "instances": {"total": 1500, "allocated": 486, "used": 24},
            },
        },
    ],
    "links": [
        {
            "between": ["qd-a", "qd-b"],
            "mode": topo.LinkMode.SYNC,
            "rtt_ms": 0.6,
            "bandwidth_mbps": 100000,
            "state": states.LinkState.UP,
        },
        LINK_EXAMPLE,
        {
            "between": ["qd-b", "dz-dr"],
            "mode": topo.LinkMode.ASYNC,
            "rtt_ms": 8.0,
            "bandwidth_mbps": 10000,
            "state": states.LinkState.UP,
        },
        {
            "between": ["mgmt", "qd-a"],
            "mode": topo.LinkMode.CONTROL,
            "rtt_ms": 0.5,
            "bandwidth_mbps": 10000,
            "state": states.LinkState.UP,
        },
        {
            "between": ["mgmt", "qd-b"],
            "mode": topo.LinkMode.CONTROL,
            "rtt_ms": 0.5,
            "bandwidth_mbps": 10000,
            "state": states.LinkState.UP,
        },
        {
            "between": ["mgmt", "dz-dr"],
            "mode": topo.LinkMode.CONTROL,
            "rtt_ms": 8.5,
            "bandwidth_mbps": 1000,
            "state": states.LinkState.UP,
        },
    ],
    "replicas": [REPLICA_EXAMPLE, FOLLOWER_EXAMPLE],
}
READINESS_EXAMPLE: dict[str, Any] = {
    "status": "ready",
    "replica": "mgmt-1:4242:9f3a1c",
    "role": states.ReplicaRole.LEADER,
    "replicas": [REPLICA_EXAMPLE, FOLLOWER_EXAMPLE],
}


class CapacityPublic(BaseModel):
    """One resource of one center: what it has, what is granted as quota there, what is consumed."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [CAPACITY_EXAMPLE]}
    )

    total: int
    """The center's capacity from the topology, in the resource's unit (vCPUs, GB or instances)."""
    allocated: int
    """Quota granted on the center: used plus reserved, summed over every department."""
    used: int
    """What the center's backend reports as consumed now."""


class CenterPublic(BaseModel):
    """One center of the topology, its health, its drivers and its capacity per resource."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [CENTER_EXAMPLE]})

    name: str
    """The center's name: ``mgmt``, ``qd-a``, ``qd-b`` or ``dz-dr`` in the shipped topology."""
    display_name: str
    """The center's name as shown to people, from the topology (e.g. ``青岛政务云中心A``)."""
    site: str
    """The site (city) it stands in: ``qingdao`` or ``dezhou``."""
    role: str
    """``management`` (runs cloudctl), ``local`` (a cloud center in the home city) or ``dr``."""
    health: str
    """``up`` or ``down`` as observed through its drivers; ``unhealthy`` while its breaker is open."""
    drivers: dict[str, str]
    """The driver serving each capability (``simulator``, ``openstack``, ...), from the topology."""
    capacity: dict[str, CapacityPublic]
    """Capacity per resource: ``vcpu``, ``ram_gb``, ``volume_gb``, ``object_gb`` and ``instances``."""


class LinkPublic(BaseModel):
    """A network link between two centers, as the topology declares it and as it is observed now."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [LINK_EXAMPLE]})

    between: list[str]
    """The two centers it joins, in the topology's order."""
    mode: str
    """What it carries: ``sync`` (synchronous replication), ``async`` (copies to DR) or ``control``."""
    rtt_ms: float
    """Round-trip time in milliseconds, from the topology."""
    bandwidth_mbps: int
    """Bandwidth in megabits per second, from the topology."""
    state: str
    """``up``, ``degraded`` or ``cut``."""


class ReplicaPublic(BaseModel):
    """One ``cloudctl serve`` process of the management center, as its last heartbeat recorded it."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [REPLICA_EXAMPLE]}
    )

    id: str
    """The replica's id: ``<host>:<pid>:<6 hex characters>``, new at each start."""
    host: str
    """The host name the process runs on."""
    pid: int
    """The process id on that host."""
    api_url: str
    """The address its API answers on."""
    role: str
    """``leader``, ``follower``, ``stopped``, or ``lost`` (no heartbeat for ``STALE_AFTER_S``)."""
    epoch: int | None
    """The lease epoch the leader holds; ``None`` for the others."""
    started_at: str
    """When the process started (ISO 8601, UTC)."""
    heartbeat_age_s: float
    """Seconds since its last heartbeat, to a tenth of a second."""
    policies_sha256: str | None = None
    """sha256 of the Cedar schema and policies it decides with (each file's name and text);
    ``None`` for a replica that did not report it (one started before this field existed)."""
    policies_differ: bool = False
    """It is running (``leader`` or ``follower``) and decides with other policies than the
    leader, or, with no leader running, than the replica started last: two replicas would
    answer the same call differently."""


class StatusPublic(BaseModel):
    """The four centers and their links, and the serve replicas: ``cloudctl status -o json``."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [STATUS_EXAMPLE]})

    topology: str
    """The topology's name (e.g. ``qingdao-gov-cloud``)."""
    display_name: str
    """The topology's name as shown to people (e.g. ``青岛市电子政务云``)."""
    generated_at: str
    """When this document was made (ISO 8601, UTC, to the second)."""
    centers: list[CenterPublic]
    """Every center, in the topology's order."""
    links: list[LinkPublic]
    """Every link between centers, in the topology's order."""
    replicas: list[ReplicaPublic] = []
    """The serve replicas on this database; empty when none runs (commands at the console)."""


class ReadinessPublic(BaseModel):
    """The store answers and holds initialised state; which serve replica answered, and the others."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [READINESS_EXAMPLE]}
    )

    status: str
    """Always ``ready``: a store that does not answer or is not initialised is an error answer instead."""
    replica: str | None
    """This process's replica id (``None`` outside ``cloudctl serve``)."""
    role: str | None
    """This replica's role (``leader``, ``follower``, ...); ``None`` outside ``cloudctl serve``."""
    replicas: list[ReplicaPublic]
    """Every serve replica on this database, this one included."""


def replicas(ctx: ctx_module.Context) -> list[ReplicaPublic]:
    """The serve replicas and their roles; stopped ones last seen over an hour ago are gone."""
    now = ctx.clock.now()
    with ctx.read() as tx:
        rows = leases.list_replicas(tx)
    roles = {row.id: _role(row, now=now) for row in rows}
    running = [row for row in rows if roles[row.id] in RUNNING]
    leaders = [row for row in running if roles[row.id] == states.ReplicaRole.LEADER]
    newest = sorted(running, key=lambda row: (row.started_at, row.id))[-1:]
    reference = (leaders or newest)[0] if running else None
    return [
        ReplicaPublic(
            id=row.id,
            host=row.host,
            pid=row.pid,
            api_url=row.api_url,
            role=roles[row.id],
            epoch=row.epoch if roles[row.id] == states.ReplicaRole.LEADER else None,
            started_at=clocks.isoformat(row.started_at),
            heartbeat_age_s=round(max(now - row.heartbeat_at, 0.0), 1),
            policies_sha256=row.policies_sha256,
            policies_differ=(
                reference is not None
                and roles[row.id] in RUNNING
                and row.policies_sha256 != reference.policies_sha256
            ),
        )
        for row in rows
    ]


RUNNING = (states.ReplicaRole.LEADER, states.ReplicaRole.FOLLOWER)
"""The roles of a replica that serves and decides (not stopped, not lost)."""


def _role(row: leases.ReplicaRecord, *, now: float) -> str:
    """Its recorded role, or ``lost`` when a replica that did not stop has been silent too long."""
    age_s = max(now - row.heartbeat_at, 0.0)
    if row.role == states.ReplicaRole.STOPPED or age_s < STALE_AFTER_S:
        return row.role
    return states.ReplicaRole.LOST


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
