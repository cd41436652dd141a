"""``/v1/replication`` and ``/v1/failover``, ``/v1/failback``: protection, recovery runs, hooks.

Operators start a failover or failback with a POST; the response (202) carries the run id
and the plan, and the run goes on in this process after the response is sent (its steps
persist, so a restart leaves it ``interrupted``, to be resumed with
``POST /v1/failover/runs/{id}/resume``). ``GET`` lists and shows runs. Every call goes through
``services.recovery``, which authorises and audits it.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel, ConfigDict, Field

from cloudctl import errors
from cloudctl.api import app as app_module
from cloudctl.model import recovery as recovery_model
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, recovery, replication_points

log = logging.getLogger("cloudctl.api.recovery")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class FailoverCreate(_Body):
    from_centers: list[str] = Field(description="The centers to leave (at least one)")
    to_center: str | None = Field(default=None, description="Where to go (default: the best copy)")
    planned: bool | None = Field(
        default=None,
        description="Planned ships the last delta first; unplanned accepts the tier's loss (required to run)",
    )
    department: str | None = None
    dry_run: bool = False
    hooks: list[recovery_model.Hook] = Field(default_factory=list)


class FailbackCreate(_Body):
    to_center: str = Field(description="The center returning to service")
    dry_run: bool = False
    hooks: list[recovery_model.Hook] = Field(default_factory=list)


class ProtectionPage(BaseModel):
    data: list[recovery.ProtectionPublic]
    count: int
    next_cursor: str | None = None


class PointsPage(BaseModel):
    data: list[replication_points.PointPublic]
    count: int
    next_cursor: str | None = None


class RunsPage(BaseModel):
    data: list[recovery.RunPublic]
    count: int
    next_cursor: str | None = None


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
        department: str | None = None,
        tier: str | None = None,
        unprotected: Annotated[bool, Query(description="Only workloads not fully protected")] = False,
    ) -> ProtectionPage:
        """Every ready workload: protected, degraded or unprotected (with the reason), and its streams."""
        recovery.authorize_read(ctx, principal)
        found = recovery.protection(ctx, department=department, tier=tier, unprotected_only=unprotected)
        return ProtectionPage(data=found, count=len(found))

    @routes.get("/replication/points", tags=["operators"])
    def replication_points_list(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        workload: str | None = None,
        department: str | None = None,
    ) -> PointsPage:
        """Replication points: the volume snapshots taken when a DR copy reached a consistent point."""
        recovery.authorize_read(ctx, principal)
        points = replication_points.list_points(ctx, workload_id=workload, department=department)
        return PointsPage(data=points, count=len(points))

    @routes.post("/failover/runs", status_code=202, tags=["operators"])
    def start_failover(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        body: FailoverCreate,
        background: BackgroundTasks,
    ) -> recovery.PlanPublic:
        """Plan a failover and run it (``dry_run``: only the plan)."""
        plan = recovery.plan_failover(
            ctx,
            principal=principal,
            from_centers=body.from_centers,
            to_center=body.to_center,
            planned=body.planned,
            department=body.department,
            dry_run=body.dry_run,
            hooks=tuple(body.hooks),
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
        """Plan the way home to a center and run it (``dry_run``: only the plan)."""
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
        limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
        state: str | None = None,
        kind: str | None = None,
    ) -> RunsPage:
        """Failover and failback runs, newest first; one whose process died shows as interrupted."""
        runs = recovery.list_runs(ctx, principal=principal, state=state, kind=kind, limit=limit)
        return RunsPage(data=runs, count=len(runs))

    @routes.get("/failover/runs/{run_id}", tags=["operators"])
    def get_run(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, run_id: str
    ) -> recovery.RunDetailPublic:
        """One run: its plan, the steps done, hooks and how to resume it."""
        return recovery.get_run(ctx, run_id, principal=principal)

    @routes.post("/failover/runs/{run_id}/resume", status_code=202, tags=["operators"])
    def resume_run(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        run_id: str,
        background: BackgroundTasks,
    ) -> recovery.RunDetailPublic:
        """Finish a paused or interrupted run from its first step not done."""
        recovery.claim_for_resume(ctx, run_id=run_id, principal=principal)
        current = recovery.get_run(ctx, run_id, principal=principal)
        background.add_task(_run_in_background, ctx, run_id, principal)
        return current

    return routes
