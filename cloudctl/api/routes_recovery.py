"""``/v1/replication`` and ``/v1/failover``, ``/v1/failback``: protection, recovery runs, hooks.

Operators start a failover or failback with a POST; the response (202) carries the run id
and the plan, and the run goes on in this process after the response is sent (its steps
persist, so a restart leaves it ``interrupted``, to be resumed with
``POST /v1/failover/runs/{id}/resume``). ``GET`` lists and shows runs. Every call goes through
``services.recovery``, which authorises and audits it.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cloudctl import errors
from cloudctl.api import app as app_module
from cloudctl.model import recovery as recovery_model
from cloudctl.model import states
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, recovery, replication_points, restores, status

log = logging.getLogger("cloudctl.api.recovery")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, use_attribute_docstrings=True)


_HOOK_IN: dict[str, Any] = {
    "name": "notify-duty",
    "when": "pre",
    "http": {"url": "https://ops.cloud.qingdao.gov.cn/hooks/failover", "method": "POST"},
    "timeout_s": 30,
    "on_failure": "continue",
}
FAILOVER_EXAMPLE: dict[str, Any] = {
    "from_centers": ["qd-a"],
    "to_center": None,
    "planned": True,
    "department": "hrss-insurance",
    "dry_run": False,
    "hooks": [
        _HOOK_IN,
        {
            "name": "check-db",
            "when": "post",
            "group": "promote",
            "tier": "gold",
            "command": {"argv": ["/opt/cloudctl/hooks/check-db.sh", "--center", "qd-b"]},
            "timeout_s": 300,
            "on_failure": "pause",
        },
    ],
}


class FailoverCreate(_Body):
    """Leave one or more centers: the workloads serving there move to their best healthy copy."""

    model_config = ConfigDict(json_schema_extra={"examples": [FAILOVER_EXAMPLE]})

    from_centers: list[Annotated[str, Field(max_length=40)]] = Field(
        max_length=16, description="The centers to leave (at least one)"
    )
    to_center: str | None = Field(
        default=None, max_length=40, description="Where to go (default: the best copy)"
    )
    planned: bool | None = Field(
        default=None,
        description="true: planned, ships the last delta first (the centers left must be up); false: "
        "unplanned, accepts the tier's loss. Required in practice: omitted or null is 422, dry run too",
    )
    department: str | None = Field(default=None, max_length=40)
    """Only this org node's workloads (its id, e.g. ``hrss-insurance``; an unknown id is 404); null:
    every department's."""
    dry_run: bool = False
    """true: only answer the plan (``run_id`` null); nothing is started or changed."""
    hooks: list[recovery_model.Hook] = Field(default_factory=list, max_length=100)
    """Hooks to run around the steps (placed in the plan in the order given); empty: none."""
    point: str | None = Field(
        default=None,
        max_length=200,
        description="Recover to this recovery point (``<center>/<workload>@<seq>``, as ``POST "
        "/v1/workloads/{id}/restore`` names it): only its workload, in the center holding it; null: "
        "the newest data each target holds",
        examples=["dz-dr/wl-001a1e8c1e2f88d04a6b3@48213"],
    )
    at: str | None = Field(
        default=None,
        max_length=64,
        description="Recover each workload to its newest recovery point at or before this ISO 8601 time, "
        "in the center it goes to (not with ``point``); null: the newest data each target holds",
        examples=["2026-11-18T02:20:00Z"],
    )


class FailbackCreate(_Body):
    """Bring the workloads whose home uses a center back to it: resync, switch back, restore home roles."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"to_center": "qd-a", "dry_run": False, "hooks": [_HOOK_IN]}]}
    )

    to_center: str = Field(max_length=40, description="The center returning to service")
    dry_run: bool = False
    """true: only answer the plan (``run_id`` null); nothing is started or changed."""
    hooks: list[recovery_model.Hook] = Field(default_factory=list, max_length=100)
    """Hooks to run around the steps (placed in the plan in the order given); empty: none."""


class RestoreCreate(_Body):
    """Restore a workload to the newest recovery point at or before a time."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"at": "2026-11-18T02:20:00Z", "to_center": None, "dry_run": True}]}
    )

    at: str = Field(
        max_length=64,
        description="ISO 8601 time (``Z`` or an offset; none is UTC), not in the future: the point used "
        "is the newest consistent at or before it",
        examples=["2026-11-18T02:20:00Z"],
    )
    to_center: str | None = Field(
        default=None,
        max_length=40,
        description="The center to restore in: one holding a recovery point of the workload (default: the "
        "one whose point is newest, where the DR copy lives)",
        examples=["dz-dr"],
    )
    dry_run: bool = False
    """true: only answer the point that would be used and the data it loses; nothing is changed."""


class ProtectionPage(BaseModel):
    """Ready workloads with their protection, all on one page."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [{"data": [recovery.PROTECTION_EXAMPLE], "count": 1, "next_cursor": None}]
        },
    )

    data: list[recovery.ProtectionPublic]
    """The workloads, in the order of their ids."""
    count: int
    """How many workloads ``data`` holds."""
    next_cursor: str | None = None
    """Always null: every match is on this page."""


class PointsPage(BaseModel):
    """Replication points, all on one page."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [{"data": [replication_points.POINT_EXAMPLE], "count": 1, "next_cursor": None}]
        },
    )

    data: list[replication_points.PointPublic]
    """The points by department, workload, center and volume, oldest ``seq`` first."""
    count: int
    """How many points ``data`` holds."""
    next_cursor: str | None = None
    """Always null: every match is on this page."""


class RunsPage(BaseModel):
    """Failover and failback runs, newest first, up to ``limit``."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={"examples": [{"data": [recovery.RUN_EXAMPLE], "count": 1, "next_cursor": None}]},
    )

    data: list[recovery.RunPublic]
    """The runs, newest first."""
    count: int
    """How many runs ``data`` holds."""
    next_cursor: str | None = None
    """Always null: the newest ``limit`` runs are all there is to read."""


DepartmentQuery = Annotated[
    str | None,
    Query(
        max_length=40,
        description="Only this org node's workloads (a department id)",
        examples=["hrss-insurance"],
    ),
]
RunIdPath = Annotated[
    str,
    Path(
        max_length=64,
        description="The run's id (``failover-…`` or ``failback-…``)",
        examples=[recovery.RUN_EXAMPLE_ID],
    ),
]


def _run_in_background(ctx: ctx_module.Context, run_id: str, principal: identity.Principal) -> None:
    """Run the steps after the response; a failure leaves the run interrupted (and audited), not lost."""
    try:
        recovery.execute(ctx, run_id, principal=principal)
    except errors.CloudctlError as error:
        log.warning("recovery run %s stopped: %s", run_id, error.one_line())


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/replication/status", tags=["operators"])
    def replication_status(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        department: DepartmentQuery = None,
        tier: Annotated[
            str | None,
            Query(
                max_length=40,
                description="Only this tier's workloads (an unknown tier is 404)",
                examples=["gold"],
            ),
        ] = None,
        unprotected: Annotated[
            bool, Query(description="Only workloads not fully protected", examples=[True])
        ] = False,
    ) -> ProtectionPage:
        """Every ready workload: protected, degraded or unprotected (with the reason), and its streams.

        Operators only (``center.read``).
        """
        status.authorize_supervision(ctx, principal=principal)
        found = recovery.protection(ctx, department=department, tier=tier, unprotected_only=unprotected)
        return ProtectionPage(data=found, count=len(found))

    @routes.get("/replication/points", tags=["operators"])
    def replication_points_list(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        workload: Annotated[
            str | None,
            Query(
                max_length=64,
                description="Only this workload's points (an unknown id is 404)",
                examples=[recovery.WORKLOAD_EXAMPLE_ID],
            ),
        ] = None,
        department: DepartmentQuery = None,
    ) -> PointsPage:
        """Replication points: the volume snapshots taken when a DR copy reached a consistent point,
        and for a workload with no volume its DR bucket's kept versions then (``kind``: ``objects``).

        Operators only (``center.read``); an unknown workload or department is 404.
        """
        status.authorize_supervision(ctx, principal=principal)
        points = replication_points.list_points(ctx, workload_id=workload, department=department)
        return PointsPage(data=points, count=len(points))

    @routes.post("/workloads/{workload_id}/restore", tags=["operators"])
    def restore_workload(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        workload_id: Annotated[
            str,
            Path(max_length=64, description="The workload to restore", examples=[recovery.SILVER_EXAMPLE_ID]),
        ],
        body: RestoreCreate,
    ) -> restores.RestorePublic:
        """Restore a workload to the newest recovery point at or before ``at`` (``dry_run``: only the point).

        Makes the point's volumes from its snapshots and rewinds the workload's object data to it, in
        the center holding the point; answers what it made and the data lost up to ``at``. Needs
        ``failover.run`` on the management center (asked first: a department is refused 403 whatever
        the workload) and on that center; an unknown workload is 404; a bad or future ``at``, or one with
        no point at or before it, and a ``to_center`` holding no point of the workload are 422 naming
        the field; each changes nothing.
        """
        return restores.restore(
            ctx,
            principal=principal,
            workload_id=workload_id,
            at=body.at,
            to_center=body.to_center,
            dry_run=body.dry_run,
        )

    @routes.post("/failover/runs", status_code=202, tags=["operators"])
    def start_failover(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        body: FailoverCreate,
        background: BackgroundTasks,
    ) -> recovery.PlanPublic:
        """Plan a failover and run it after the answer (``dry_run``: only the plan).

        Needs ``failover.run`` on every center left; bad input (unknown or management centers, a
        missing ``planned``, a planned failover of a center that is down, a ``point`` that does not
        exist or is another workload's or department's, an ``at`` in the future or with no point at
        or before it) is 422 (404 for an unknown point) naming the field and changes nothing.
        """
        plan = recovery.plan_failover(
            ctx,
            principal=principal,
            from_centers=body.from_centers,
            to_center=body.to_center,
            planned=body.planned,
            department=body.department,
            dry_run=body.dry_run,
            hooks=tuple(body.hooks),
            point=body.point,
            at=body.at,
        )
        if plan.run_id:
            background.add_task(_run_in_background, ctx, plan.run_id, principal)
        return plan

    @routes.post("/failback/runs", status_code=202, tags=["operators"])
    def start_failback(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        body: FailbackCreate,
        background: BackgroundTasks,
    ) -> recovery.PlanPublic:
        """Plan the way home to a center and run it after the answer (``dry_run``: only the plan).

        Needs ``failover.run`` on the center; a center still down is 422. With nothing to bring home
        the plan has no steps and no run is started (``run_id`` null).
        """
        plan = recovery.plan_failback(
            ctx, principal=principal, to_center=body.to_center, dry_run=body.dry_run, hooks=tuple(body.hooks)
        )
        if plan.run_id:
            background.add_task(_run_in_background, ctx, plan.run_id, principal)
        return plan

    @routes.get("/failover/runs", tags=["operators"])
    def list_runs(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        limit: Annotated[int, Query(ge=1, le=200, description="Page size", examples=[20])] = 50,
        state: Annotated[
            str | None,
            Query(
                max_length=20,
                description="Only runs in this state: running, paused, interrupted, done or failed",
                examples=[states.RunState.INTERRUPTED],
            ),
        ] = None,
        kind: Annotated[
            str | None,
            Query(
                max_length=20,
                description="Only runs of this kind: failover or failback",
                examples=["failover"],
            ),
        ] = None,
    ) -> RunsPage:
        """Failover and failback runs, newest first; one whose process died shows as interrupted.

        Operators only (``center.read``); an unknown state or kind is 422. The state filter applies to
        the newest ``limit`` runs, so a page can hold fewer than ``limit``.
        """
        runs = recovery.list_runs(ctx, principal=principal, state=state, kind=kind, limit=limit)
        return RunsPage(data=runs, count=len(runs))

    @routes.get("/failover/runs/{run_id}", tags=["operators"])
    def get_run(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, run_id: RunIdPath
    ) -> recovery.RunDetailPublic:
        """One run: its plan, the steps done, hooks and how to resume it (operators only)."""
        return recovery.get_run(ctx, run_id, principal=principal)

    @routes.post("/failover/runs/{run_id}/resume", status_code=202, tags=["operators"])
    def resume_run(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        run_id: RunIdPath,
        background: BackgroundTasks,
    ) -> recovery.RunDetailPublic:
        """Finish a paused or interrupted run from its first step not done, after the answer.

        Needs ``failover.run``; a run still running or already ended is 409. The answer shows the run
        as this process claims it (state ``running``).
        """
        recovery.claim_for_resume(ctx, run_id=run_id, principal=principal)
        current = recovery.get_run(ctx, run_id, principal=principal)
        background.add_task(_run_in_background, ctx, run_id, principal)
        return current

    return routes
