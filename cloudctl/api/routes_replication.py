"""``/v1/replication/...``: replica scrubs for operators (the same service as ``cloudctl replication scrub``).

Included by ``create_app`` under ``/v1``. Invariants: the service authorises (operators
only: ``failover.run`` on every center scrubbed) and audits each mismatch; this module
only maps HTTP to it.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from cloudctl.api.app import ContextDep, Page, PrincipalDep
from cloudctl.services import recovery, replication_scrub


def router() -> APIRouter:
    routes = APIRouter()

    @routes.post("/replication/scrub", tags=["replication"])
    def scrub_replicas(
        ctx: ContextDep,
        principal: PrincipalDep,
        workload: Annotated[
            str | None,
            Query(
                max_length=64,
                description="Only this workload's streams (an unknown id is 404); omitted: every stream",
                examples=[recovery.WORKLOAD_EXAMPLE_ID],
            ),
        ] = None,
    ) -> Page[replication_scrub.ScrubPublic]:
        """Re-read every replica (of one workload, if given); repair, audit and count each mismatch.

        Operators only (``failover.run`` on the management center and on every center scrubbed);
        one finding per stream (by department, workload, target center), all on one page.
        """
        findings = replication_scrub.scrub(ctx, principal=principal, workload_id=workload)
        return Page(data=findings, count=len(findings), next_cursor=None)

    return routes
