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
EXPORT_EXAMPLE = (
    '{"action": "request.create", "actor": "token:0eb685578843c699", "at": 1796424243.0, '
    '"department": "hrss-insurance", "detail": {"count": 2, "offering": "vm.medium", "state": "approved", '
    '"tier": "gold"}, "hash": "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d", '
    '"key_id": "k20261101-3c3e91", "outcome": "success", '
    '"prev_hash": "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb", '
    '"request_id": "8f6728b962f8e4872d155f7195457a25", "role": "dept-admin", "seq": 48213, '
    '"source": "10.20.3.17", "target_id": "req-001a2433a99553b7d04e9", "target_type": "Request"}\n'
    '{"action": "request.approve", "actor": "token:5cd4cca749bc29f3", "at": 1796424388.0, '
    '"department": "", "detail": {"reason": ""}, '
    '"hash": "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6", '
    '"key_id": "k20261101-3c3e91", "outcome": "success", '
    '"prev_hash": "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d", '
    '"request_id": "c15f92ec2da5f7cb6333a55430452ce5", "role": "sysadmin", "seq": 48214, '
    '"source": "10.0.0.21", "target_id": "req-001a2433b2c41a0f3e6d2", "target_type": "Request"}\n'
)
"""Two lines of an export: the fields of each record in key order, ``at`` in seconds since the epoch."""


def router() -> APIRouter:
    routes = APIRouter(tags=["audit"])

    @routes.get(
        "/audit/export",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {MEDIA_TYPE: {"example": EXPORT_EXAMPLE}},
                "description": "One record per line, oldest first, with ``prev_hash``, ``hash``, ``key_id``",
            }
        },
    )
    def export_audit(
        ctx: app_module.ContextDep,
        principal: app_module.PrincipalDep,
        after: Annotated[
            int,
            Query(
                ge=0,
                le=audit.MAX_SEQ,
                description="Records after this ``seq`` (the last one of an earlier copy); 0: all",
                examples=[48212],
            ),
        ] = 0,
    ) -> StreamingResponse:
        """The audit log as JSON lines (auditors only), the lines ``cloudctl audit export`` writes.

        Each record comes with its hashes and key id, so the copy verifies like one made at the
        console; ``after`` continues an earlier copy.
        """
        lines = audit.export_lines(ctx, principal=principal, after_seq=after)
        return StreamingResponse(lines, media_type=MEDIA_TYPE)

    return routes
