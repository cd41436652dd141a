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
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from cloudctl import errors
from cloudctl.api import app as app_module
from cloudctl.model import drill_report
from cloudctl.services import audit, drills

log = logging.getLogger("cloudctl.api.drills")


PLAN_YAML_EXAMPLE = """\
# Nightly: local cloud center A (qd-a) goes dark without warning.
name: lose-qd-a
description: Lose local center qd-a; platinum and gold serve from qd-b with zero data loss.
schedule: "0 18 * * *"
scenario:
  kind: lose-local-center
  center: qd-a
scope:
  tiers: [platinum, gold]
canary:
  writes_per_s: 5
  warmup_s: 120
  object_bytes: 4096
  workloads_per_tier: 2
steps:
  - name: control plane healthy
    pre:
      - name: all four centers report up before the fault
        builtin: centers-up
    post:
      - name: the audit chain is intact after the failover
        builtin: audit-intact
simulated_time: true
"""
"""``dr/drills/lose-qd-a.yaml``, its comments shortened."""

CREATE_EXAMPLE: dict[str, Any] = {"plan_yaml": PLAN_YAML_EXAMPLE, "file_name": "lose-qd-a.yaml"}

RunId = Annotated[
    str,
    Path(
        max_length=64,
        description="The drill run's id, as ``POST /v1/drills/runs`` or the run list gave it",
        examples=["drill-001a1eaaa7dde4c91b0"],
    ),
]


class DrillRunCreate(BaseModel):
    """A drill to start: the plan's YAML as its file holds it, checked as ``cloudctl drill run`` checks it
    (against the topology and the store's departments) before anything is recorded."""

    model_config = ConfigDict(
        **app_module.STRICT, use_attribute_docstrings=True, json_schema_extra={"examples": [CREATE_EXAMPLE]}
    )

    plan_yaml: str = Field(
        max_length=200_000,
        description="The drill plan, as its YAML file holds it (the format of ``dr/drills/*.yaml``)",
    )
    file_name: str | None = Field(
        default=None,
        max_length=200,
        description="The plan's file name; when given, the plan's ``name`` must be its stem "
        "(``lose-qd-a.yaml`` holds ``name: lose-qd-a``); null: not checked",
    )


class DrillRunsPage(BaseModel):
    """Drill runs, newest first: the whole list up to ``limit`` (this list has no further pages)."""

    model_config = ConfigDict(
        use_attribute_docstrings=True,
        json_schema_extra={"examples": [{"data": [drills.RUN_EXAMPLE], "count": 1, "next_cursor": None}]},
    )

    data: list[drills.DrillRunPublic]
    """The runs, newest first."""
    count: int
    """How many runs ``data`` holds."""
    next_cursor: str | None = None
    """Always ``null``: the list is not paged (narrow it with ``plan`` or widen it with ``limit``)."""


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
        """Start a drill: canary writes, the fault, recovery, measurement (poll the run).

        The plan is checked first (a bad one answers 422 naming the field, and no run is recorded);
        the answer (202) is the run just recorded, ``running``, and the drill goes on in this
        process. Sysadmins only (``drill.run``); the start, the end and every refusal are audited.
        """
        drills.authorize_start(ctx, principal=principal)
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
        plan: Annotated[
            str | None,
            Query(max_length=100, description="Only this plan's runs (its name)", examples=["lose-qd-a"]),
        ] = None,
        limit: Annotated[
            int, Query(ge=1, le=1000, description="At most this many, newest first", examples=[20])
        ] = 20,
    ) -> DrillRunsPage:
        """Drill runs, newest first, with the RPO/RTO measured and targeted per tier (sysadmins)."""
        runs = drills.read_runs(ctx, principal=principal, plan=plan, limit=limit)
        return DrillRunsPage(data=runs, count=len(runs))

    @routes.get("/drills/runs/{run_id}")
    def get_drill_run(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, run_id: RunId
    ) -> drills.DrillRunDetail:
        """One run and its timeline so far: what ``cloudctl drill run`` polls to show progress (sysadmins).

        A run whose process died shows ``interrupted`` and can be resumed.
        """
        return drills.read_run(ctx, principal=principal, run_id=run_id)

    @routes.get("/drills/runs/{run_id}/report")
    def get_drill_report(
        ctx: app_module.ContextDep, principal: app_module.PrincipalDep, run_id: RunId
    ) -> drill_report.DrillReport:
        """The report of a finished run: per tier and workload, measured against the targets.

        A run still going, interrupted or failed has none (409). Sysadmins only.
        """
        return drills.read_report(ctx, principal=principal, run_id=run_id)

    @routes.post("/drills/runs/{run_id}/resume", status_code=202)
    def resume_drill(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        run_id: RunId,
        background: BackgroundTasks,
    ) -> drills.DrillRunDetail:
        """Finish a drill that was interrupted, from its last saved step (poll the run).

        No canary is made again and no fault injected twice. Only an ``interrupted`` run resumes
        (409 otherwise, and for a second resume at the same time). Sysadmins only; audited.
        """
        started = drills.start_resume(ctx, run_id=run_id, principal=principal)
        background.add_task(_finish, started)
        return drills.read_run(ctx, principal=principal, run_id=run_id)

    return routes
