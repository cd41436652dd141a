"""Domain states and roles of workloads, placements, replication streams and recovery runs.

Every state or role the rest of the package stores, compares or shows is a member of one of
the enums here (or of ``model.grants.GrantState``); code outside the model names the member,
never its string (``tests/unit/test_no_state_literals.py`` checks it). A request moves through
the same ``WorkloadState``s as its workload.

Each kind of state is an enum, and the moves each allows are written here once, as a
table (``*_TRANSITIONS``) checked by ``check_transition``. The role a placement plays in
each center follows from its tier (``home_roles``); failover and failback move roles
with ``promoted_role`` and ``demoted_role``.

Invariants:
- a state moves only along its table; staying in the same state is always allowed;
- a placement serves (takes writes and traffic) exactly when its role is a serving role
  (``active`` or ``primary``) and its state is ``ready``;
- the home layout of a workload is a function of its tier, the topology's center roles
  and, for tiers with one serving center, which local center it was placed in;
- pure: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeVar

from cloudctl import errors

if TYPE_CHECKING:  # the topology (pydantic) is imported where a layout is worked out: a remote
    # CLI command names states without paying for pydantic
    from cloudctl.model import topology as topo


class WorkloadState(enum.StrEnum):
    PENDING_APPROVAL = "pending-approval"
    APPROVED = "approved"
    PROVISIONING = "provisioning"
    READY = "ready"
    FAILED = "failed"
    DELETING = "deleting"
    DELETED = "deleted"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class PlacementRole(enum.StrEnum):
    ACTIVE = "active"
    """Serves in an active-active pair."""
    PRIMARY = "primary"
    """Serves alone; its copies are elsewhere."""
    STANDBY = "standby"
    """A synchronous copy in the other local center, ready to be promoted."""
    DR = "dr"
    """The copy in the disaster-recovery center."""


SERVING_ROLES = frozenset({PlacementRole.ACTIVE, PlacementRole.PRIMARY})

NEVER_PLACED = frozenset({WorkloadState.REJECTED, WorkloadState.CANCELLED})
"""A request refused or withdrawn before anything was placed: a request, never a workload."""
LISTED_WORKLOAD_STATES = tuple(state for state in WorkloadState if state not in NEVER_PLACED)
"""The states ``workload list`` shows (and accepts as a filter)."""


class PlacementState(enum.StrEnum):
    RESERVED = "reserved"
    """Quota held for recovery; nothing runs there."""
    CREATING = "creating"
    READY = "ready"
    DRAINED = "drained"
    """Left in a planned failover while it still worked (an active-active member)."""
    FAILED = "failed"
    """Left because its center was lost."""
    DELETING = "deleting"
    DELETED = "deleted"


class StreamState(enum.StrEnum):
    HEALTHY = "healthy"
    LAGGING = "lagging"
    DEGRADED = "degraded"
    BROKEN = "broken"


class StreamMode(enum.StrEnum):
    """How a replication stream copies its workload's data."""

    SYNC = "sync"
    """Between the local centers: a write is acknowledged when both hold it."""
    ASYNC = "async"
    BACKUP = "backup"
    """Both copy to the DR center every ``dr_interval_s``, as the tier's ``dr_copy`` says."""


class PointState(enum.StrEnum):
    """A replication point (one volume snapshot in the DR center)."""

    READY = "ready"
    """The snapshot exists."""
    FAILED = "failed"
    """The backend refused or did not answer; the next pass tries again."""


class ReplicaRole(enum.StrEnum):
    """What one ``cloudctl serve`` replica is doing, as its heartbeat row says."""

    LEADER = "leader"
    FOLLOWER = "follower"
    STOPPED = "stopped"
    LOST = "lost"
    """Shown, never stored: a replica that is not stopped but has not beaten for too long."""


class CenterHealth(enum.StrEnum):
    """What the management center observes of a center."""

    UP = "up"
    DOWN = "down"
    UNHEALTHY = "unhealthy"
    """It answers, but its calls keep failing (its circuit breaker is open)."""


class LinkState(enum.StrEnum):
    """What the management center observes of a link between two centers."""

    UP = "up"
    DEGRADED = "degraded"
    CUT = "cut"


class Protection(enum.StrEnum):
    """How well a workload's copies protect it now, against what its tier asks."""

    PROTECTED = "protected"
    DEGRADED = "degraded"
    """Some of the copies its tier asks for are missing or unhealthy."""
    UNPROTECTED = "unprotected"


class DatabaseRole(enum.StrEnum):
    """The role of a management database server, as ``cloudctl mgmt status`` sees it."""

    PRIMARY = "primary"
    STANDBY = "standby"
    FENCED = "fenced"
    """A former primary that refuses writes."""
    UNREACHABLE = "unreachable"
    """Shown, never stored: the server did not answer."""


class RunState(enum.StrEnum):
    """A failover or failback run."""

    RUNNING = "running"
    PAUSED = "paused"
    """A hook failed with ``on_failure: pause``: an operator looks, then resumes."""
    INTERRUPTED = "interrupted"
    """The process running it died (SIGKILL, a crash, Ctrl-C); ``resume`` finishes it."""
    DONE = "done"
    FAILED = "failed"
    """A step or a hook with ``on_failure: abort`` failed; the run stops there."""


class DrillRunState(enum.StrEnum):
    """A drill run."""

    RUNNING = "running"
    INTERRUPTED = "interrupted"
    """The process running it died; ``drill resume`` continues it."""
    DONE = "done"
    """It finished and has a report (which may say it did not pass)."""
    FAILED = "failed"
    """It stopped on an error before it could report."""


S = TypeVar("S", bound=enum.StrEnum)

UNFINISHED_RUN_STATES = frozenset({RunState.RUNNING, RunState.PAUSED, RunState.INTERRUPTED})


WORKLOAD_TRANSITIONS: Mapping[WorkloadState, frozenset[WorkloadState]] = {
    WorkloadState.PENDING_APPROVAL: frozenset(
        {WorkloadState.APPROVED, WorkloadState.REJECTED, WorkloadState.CANCELLED}
    ),
    WorkloadState.APPROVED: frozenset({WorkloadState.PROVISIONING, WorkloadState.CANCELLED}),
    WorkloadState.PROVISIONING: frozenset({WorkloadState.READY, WorkloadState.FAILED}),
    WorkloadState.READY: frozenset({WorkloadState.DELETING}),
    WorkloadState.FAILED: frozenset({WorkloadState.DELETING}),
    WorkloadState.DELETING: frozenset({WorkloadState.DELETED}),
    WorkloadState.DELETED: frozenset(),
    WorkloadState.REJECTED: frozenset(),
    WorkloadState.CANCELLED: frozenset(),
}

PLACEMENT_TRANSITIONS: Mapping[PlacementState, frozenset[PlacementState]] = {
    PlacementState.RESERVED: frozenset(
        {PlacementState.CREATING, PlacementState.READY, PlacementState.FAILED, PlacementState.DELETING}
    ),
    PlacementState.CREATING: frozenset(
        {PlacementState.READY, PlacementState.FAILED, PlacementState.DELETING}
    ),
    PlacementState.READY: frozenset(
        {PlacementState.RESERVED, PlacementState.DRAINED, PlacementState.FAILED, PlacementState.DELETING}
    ),
    PlacementState.DRAINED: frozenset(
        {PlacementState.READY, PlacementState.RESERVED, PlacementState.FAILED, PlacementState.DELETING}
    ),
    PlacementState.FAILED: frozenset(
        {PlacementState.READY, PlacementState.RESERVED, PlacementState.DELETING}
    ),
    PlacementState.DELETING: frozenset({PlacementState.DELETED}),
    PlacementState.DELETED: frozenset(),
}

RUN_TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    RunState.RUNNING: frozenset({RunState.PAUSED, RunState.INTERRUPTED, RunState.DONE, RunState.FAILED}),
    RunState.PAUSED: frozenset({RunState.RUNNING}),
    RunState.INTERRUPTED: frozenset({RunState.RUNNING}),
    RunState.DONE: frozenset(),
    RunState.FAILED: frozenset(),
}


def check_transition(table: Mapping[S, frozenset[S]], current: S, to: S, *, field: str) -> S:
    """``to`` if the table allows moving there from ``current``; ``Conflict`` naming ``field`` if not."""
    if to != current and to not in table[current]:
        raise errors.Conflict(f"cannot go from {current} to {to}", field=field)
    return to


def serves(role: str, state: str) -> bool:
    return role in SERVING_ROLES and state == PlacementState.READY


def home_roles(
    topology: topo.Topology, *, tier: topo.Tier, centers: list[str], serving_center: str | None
) -> dict[str, PlacementRole]:
    """The role each of ``centers`` (where the workload has a placement) has at home.

    ``serving_center`` is the local center a tier with one serving center was placed in
    (``None`` for active-active). The DR center always holds the DR copy.
    """
    from cloudctl.model import topology as topo

    roles: dict[str, PlacementRole] = {}
    for center in centers:
        if topology.center(center).role is topo.CenterRole.DR:
            roles[center] = PlacementRole.DR
        elif tier.local is topo.LocalPlacement.ACTIVE_ACTIVE:
            roles[center] = PlacementRole.ACTIVE
        elif center == serving_center:
            roles[center] = PlacementRole.PRIMARY
        else:
            roles[center] = PlacementRole.STANDBY
    return roles


def promoted_role(role: str) -> PlacementRole:
    """The role a placement takes when it starts serving: an active stays active, else primary."""
    return PlacementRole.ACTIVE if role == PlacementRole.ACTIVE else PlacementRole.PRIMARY


def demoted_role(role: str, *, center_is_dr: bool) -> PlacementRole:
    """The role a serving placement keeps once its center is left."""
    if role == PlacementRole.ACTIVE:
        return PlacementRole.ACTIVE
    return PlacementRole.DR if center_is_dr else PlacementRole.STANDBY


def left_state(role: str, *, planned: bool) -> PlacementState:
    """The state of a placement its workload left: failed (unplanned), drained or a ready copy."""
    if not planned:
        return PlacementState.FAILED
    return PlacementState.DRAINED if role == PlacementRole.ACTIVE else PlacementState.READY
