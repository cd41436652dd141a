"""Admission under concurrency: requests written together stay decided one by one.

Many threads submit at once, so the writer admits several per transaction: each is held
or refused in turn against what the ones before it took, every decision leaves exactly one
audit record, and the counters equal what was granted. Also: the token cache forgets a
revoked token, and the narrow headroom read agrees with the quota view.
"""

from __future__ import annotations

import concurrent.futures
import threading
from pathlib import Path

import pytest

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.services import access, audit, identity, orgs
from cloudctl.services import context as ctx_module
from cloudctl.services import quotas as quotas_service
from cloudctl.services import requests as requests_service
from cloudctl.store import audit as audit_store
from cloudctl.store import quotas
from tests import conftest

THREADS = 40
FITS = 10


def test_concurrent_admissions_get_exactly_what_fits_and_one_audit_record_each(
    ctx: ctx_module.Context,
) -> None:
    orgs.create_node(ctx, node_id="batch-test", display_name="批量测试科", parent="egov", kind="department")
    quotas_service.set_quota(ctx, "batch-test", center="qd-a", limits={"vcpu": 2 * FITS})
    principal = identity.Principal(
        id="t:batch",
        role="dept-user",
        department="batch-test",
        department_path=("qingdao", "egov", "batch-test"),
    )
    body = requests_service.RequestCreate(offering="vm.small", tier="silver", preferred_center="qd-a")
    barrier = threading.Barrier(THREADS)

    def order(_index: int) -> str:
        barrier.wait()
        try:
            return requests_service.submit(ctx, principal=principal, body=body)[0].id
        except errors.QuotaExceeded as refused:
            assert [(s.node, s.resource) for s in refused.shortfalls] == [("batch-test", "vcpu")]
            return "refused"

    with concurrent.futures.ThreadPoolExecutor(max_workers=THREADS) as pool:
        outcomes = list(pool.map(order, range(THREADS)))

    granted = [outcome for outcome in outcomes if outcome != "refused"]
    assert len(granted) == FITS
    assert len(set(granted)) == FITS
    with ctx.read() as tx:
        counters = quotas.get_counters(tx, node_ids=["batch-test", "egov", "qingdao"], centers=["qd-a"])
        records = audit_store.list_records(tx, action="request.create", actor="t:batch")
    for node in ("batch-test", "egov", "qingdao"):
        assert counters[(node, "qd-a", quotas.q.Resource.VCPU)].reserved == 2 * FITS
    assert sorted(record.target_id for record in records if record.outcome == "success") == sorted(granted)
    assert len([record for record in records if record.outcome == "refused"]) == THREADS - FITS
    assert audit.verify(ctx, principal=access.local_operator("auditor")).ok


def test_a_request_refused_for_quota_is_audited_once(ctx: ctx_module.Context) -> None:
    orgs.create_node(ctx, node_id="batch-small", display_name="小额测试科", parent="egov", kind="department")
    quotas_service.set_quota(ctx, "batch-small", center="qd-a", limits={"vcpu": 1})
    principal = identity.Principal(
        id="t:small",
        role="dept-user",
        department="batch-small",
        department_path=("qingdao", "egov", "batch-small"),
    )
    body = requests_service.RequestCreate(offering="vm.small", tier="silver", preferred_center="qd-a")

    with pytest.raises(errors.QuotaExceeded):
        requests_service.submit(ctx, principal=principal, body=body)

    auditor = identity.Principal(id="t:audit", role="auditor")
    records = audit.list_records(ctx, principal=auditor, action="request.create")
    assert [(r.actor, r.outcome, r.target_id) for r in records] == [("t:small", "refused", "-")]
    assert "batch-small" in records[0].detail["reason"]


def test_a_token_revoked_elsewhere_stops_working_once_the_cache_time_passed(
    ctx: ctx_module.Context, clock: clocks.ManualClock, tmp_path: Path
) -> None:
    secadmin = identity.local_operator("secadmin")
    issued = identity.create_token(ctx, principal=secadmin, role="dept-user", department="bigdata")
    bearer = f"Bearer {issued.secret}"
    assert identity.authenticate(ctx, authorization=bearer, source="c").department == "bigdata"
    other_process = conftest.make_context(ctx.store, clock, tmp_path / "other")
    identity.revoke_token(other_process, principal=secadmin, token_id=issued.token.id)

    clock.advance(identity.TOKEN_CACHE_TTL_S)

    with pytest.raises(errors.AuthenticationFailed, match="revoked token"):
        identity.authenticate(ctx, authorization=bearer, source="c")


def test_a_token_revoked_in_this_process_stops_working_at_once(ctx: ctx_module.Context) -> None:
    secadmin = identity.local_operator("secadmin")
    issued = identity.create_token(ctx, principal=secadmin, role="dept-user", department="bigdata")
    bearer = f"Bearer {issued.secret}"
    identity.authenticate(ctx, authorization=bearer, source="c")

    identity.revoke_token(ctx, principal=secadmin, token_id=issued.token.id)

    with pytest.raises(errors.AuthenticationFailed, match="revoked token"):
        identity.authenticate(ctx, authorization=bearer, source="c")


def test_the_narrow_headroom_read_agrees_with_the_quota_view(ctx: ctx_module.Context) -> None:
    quotas_service.set_quota(ctx, "bigdata", center="qd-a", limits={"vcpu": 30})
    quotas_service.set_quota(ctx, "shinan", center="qd-b", limits={"vcpu": 40})
    quotas_service.reserve(ctx, "bigdata", center="qd-a", amounts={"vcpu": 7})
    quotas_service.reserve(ctx, "shinan-civil", center="qd-b", amounts={"vcpu": 5})
    centers = [center.name for center in ctx.topology.centers]

    for node in ("bigdata", "shinan-civil", "shinan", "qingdao"):
        view = quotas_service.show_quota(ctx, node)
        expected = {
            item.center: next(r.headroom for r in item.resources if r.resource == "vcpu")
            for item in view.centers
        }
        with ctx.read() as tx:
            chain = quotas.ancestor_ids(tx, node_id=node)
            narrow = quotas.headroom(tx, chain=chain, centers=centers, resource=quotas.q.Resource.VCPU)
        assert narrow == {center: expected[center] for center in centers}
