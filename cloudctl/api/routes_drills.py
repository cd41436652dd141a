"""``/v1/drills/runs``: start, follow, resume and read DR drills.

A client sends the plan's YAML (it names the file too, so the name rule holds remotely); the
answer (202) carries the run id, and the drill goes on in this process after the response, its
progress saved after each step. ``GET`` on the run returns its timeline so far, which is what
``cloudctl drill run`` polls to show progress; ``/report`` returns the finished report. Every
call goes through ``services.drills``, which authorises (``drill.run``: the sysadmin's power) and
audits the start, the end and every refusal.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Query
from pydantic import BaseModel, Field

from cloudctl import errors
from cloudctl.api import app as app_module
from cloudctl.model import drill_report
from cloudctl.services import audit, drills

log = logging.getLogger("cloudctl.api.drills")


class DrillRunCreate(BaseModel):
    model_config = app_module.STRICT

    plan_yaml: str = Field(max_length=200_000, description="The drill plan, as its YAML file holds it")
    file_name: str | None = Field(
        default=None, max_length=200, description="The plan's file name (its name must match)"
    )


class DrillRunsPage(BaseModel):
    data: list[drills.DrillRunPublic]
    count: int
    next_cursor: str | None = None


def _finish(started: drills.StartedDrill) -> None:
    """Run the drill after the response; a failure is saved in the run (and audited), not lost."""
    try:
        started.finish()
    except errors.CloudctlError as error:
        log.warning("drill run %s stopped: %s", started.run_id, error.one_line())


def router() -> APIRouter:
    routes = APIRouter(tags=["drills"])

    @routes.post("/drills/runs", status_code=202)
    def start_drill(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        body: DrillRunCreate,
        background: BackgroundTasks,
    ) -> drills.DrillRunDetail:
        """Start a drill: canary writes, the fault, recovery, measurement (poll the run)."""
        try:
            plan = drills.plan_from_text(ctx, body.plan_yaml, file_name=body.file_name)
        except errors.InvalidInput as error:
            audit.record_refusal(
                ctx, principal=principal, action="drill.run", target_type="Drill", target_id="-", error=error
            )
            raise
        started = drills.start_drill(ctx, plan=plan, principal=principal)
        background.add_task(_finish, started)
        return drills.read_run(ctx, principal=principal, run_id=started.run_id)

    @routes.get("/drills/runs")
    def list_drill_runs(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        plan: Annotated[str | None, Query(max_length=100, description="Only this plan's runs")] = None,
        limit: Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first")] = 20,
    ) -> DrillRunsPage:
        """Drill runs, newest first, with the RPO/RTO measured and targeted per tier."""
        runs = drills.read_runs(ctx, principal=principal, plan=plan, limit=limit)
        return DrillRunsPage(data=runs, count=len(runs))

    @routes.get("/drills/runs/{run_id}")
    def get_drill_run(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, run_id: str
    ) -> drills.DrillRunDetail:
        """One run and its timeline so far."""
        return drills.read_run(ctx, principal=principal, run_id=run_id)

    @routes.get("/drills/runs/{run_id}/report")
    def get_drill_report(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, run_id: str
    ) -> drill_report.DrillReport:
        """The report of a finished run: per tier and workload, measured against the targets."""
        return drills.read_report(ctx, principal=principal, run_id=run_id)

    @routes.post("/drills/runs/{run_id}/resume", status_code=202)
    def resume_drill(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        run_id: str,
        background: BackgroundTasks,
    ) -> drills.DrillRunDetail:
        """Finish a drill that was interrupted, from its last saved step (poll the run)."""
        started = drills.start_resume(ctx, run_id=run_id, principal=principal)
        background.add_task(_finish, started)
        return drills.read_run(ctx, principal=principal, run_id=run_id)

    return routes
