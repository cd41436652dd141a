"""``GET /v1/audit/export``: the audit log as JSON lines, for the auditor's own copy.

The lines are exactly those ``cloudctl audit export`` writes (each record with its hashes and
key id), so a copy made remotely verifies like one made at the console.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from cloudctl.api import app as app_module
from cloudctl.services import audit

MEDIA_TYPE = "application/x-ndjson"


def router() -> APIRouter:
    routes = APIRouter(tags=["audit"])

    @routes.get(
        "/audit/export",
        response_class=StreamingResponse,
        responses={200: {"content": {MEDIA_TYPE: {}}, "description": "One record per line"}},
    )
    def export_audit(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        after: Annotated[int, Query(ge=0, description="Records after this sequence number")] = 0,
    ) -> StreamingResponse:
        """The audit log as JSON lines (auditors only)."""
        lines = audit.export_lines(ctx, principal=principal, after_seq=after)
        return StreamingResponse(lines, media_type=MEDIA_TYPE)

    return routes
