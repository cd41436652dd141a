"""``POST /v1/replication/scrub``: operators scrub replicas over HTTP; departments may not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from cloudctl import clock as clocks
from cloudctl.services import context as ctx_module
from cloudctl.services import faults, identity, provisioning, recovery
from cloudctl.services import requests as requests_service
from tests.support.bearer import token

HRSS = identity.Principal(
    id="t:hrss", role="dept-admin", department="hrss", department_path=("qingdao", "hrss")
)


def test_an_operator_scrubs_a_workloads_replicas_and_a_department_may_not(
    ctx: ctx_module.Context, client: TestClient
) -> None:
    body = requests_service.RequestCreate(offering="vm.small", tier="silver", preferred_center="qd-a")
    request, _ = requests_service.submit(ctx, principal=HRSS, body=body)
    assert provisioning.reconcile(ctx, kind="request", object_id=request.id).done
    workload = request.workload_id or ""
    recovery.write(ctx, workload, key="ledger/1", data=b"balance: 1000")
    assert isinstance(ctx.clock, clocks.ManualClock)
    ctx.clock.advance(301)
    recovery.run_due(ctx)
    faults.inject(ctx, kind="corrupt-replica", center="dz-dr", workload=workload)

    refused = client.post(
        "/v1/replication/scrub", params={"workload": workload}, headers=token(ctx, "dept-admin", "hrss")
    )
    assert (refused.status_code, refused.headers["content-type"]) == (403, "application/problem+json")
    answer = client.post(
        "/v1/replication/scrub", params={"workload": workload}, headers=token(ctx, "sysadmin")
    )

    assert answer.status_code == 200
    [finding] = answer.json()["data"]
    assert (finding["target"], finding["mismatches"], finding["error"]) == ("dz-dr", ["ledger/1"], "")
    missing = client.post(
        "/v1/replication/scrub", params={"workload": "wl-nope"}, headers=token(ctx, "sysadmin")
    )
    assert (missing.status_code, missing.json()["field"]) == (404, "workload")
