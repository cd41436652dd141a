"""``services.public``: store records read into public models, moments shown as ISO 8601."""

from __future__ import annotations

import pydantic
import pytest

from cloudctl.services import audit, public, requests
from cloudctl.store import audit as audit_store
from cloudctl.store import requests as request_store

AT = 1_796_424_243.0
AT_TEXT = "2026-12-04T22:44:03Z"


class Moment(pydantic.BaseModel):
    at: public.Timestamp


@pytest.mark.parametrize("given", [AT, 1_796_424_243, AT + 0.6, AT_TEXT])
def test_a_timestamp_is_text_to_the_second_from_epoch_seconds_or_as_given(given: object) -> None:
    assert Moment.model_validate({"at": given}).at == AT_TEXT


def test_a_request_record_reads_into_its_public_model_field_by_field() -> None:
    record = request_store.RequestRecord(
        id="req-1",
        department="hrss-insurance",
        offering="vm.medium",
        count=2,
        tier="gold",
        data_class="internal",
        preferred_center=None,
        name="portal",
        state="ready",
        needs_approval=False,
        approval_policy_ids=["approval-size-threshold"],
        reasons=[],
        steps=[{"step": "submitted", "at": AT}, {"step": "capacity-warning", "at": AT, "detail": "tight"}],
        workload_id="wl-1",
        created_by="local:ops",
        created_at=AT,
        updated_at=AT + 60,
        resource_version=3,
    )
    shown = requests.RequestPublic.model_validate(record).model_dump()
    assert shown["created_at"] == AT_TEXT
    assert shown["updated_at"] == "2026-12-04T22:45:03Z"
    assert shown["steps"] == [
        {"step": "submitted", "at": AT_TEXT, "detail": None},
        {"step": "capacity-warning", "at": AT_TEXT, "detail": "tight"},
    ]
    assert "resource_version" not in shown
    assert (shown["id"], shown["approval_policy_ids"], shown["workload_id"]) == (
        "req-1",
        ["approval-size-threshold"],
        "wl-1",
    )


def test_an_audit_record_reads_into_its_public_model_without_the_previous_hash() -> None:
    record = audit_store.AuditRecord(
        at=AT,
        actor="local:ops",
        role="sysadmin",
        department="",
        action="request.approve",
        target_type="Request",
        target_id="req-1",
        outcome="success",
        detail={"size": 2},
        request_id="r" * 32,
        source="local@host",
        seq=7,
        key_id="k1",
        prev_hash="a" * 64,
        hash="b" * 64,
    )
    shown = audit.AuditRecordPublic.model_validate(record).model_dump()
    assert (shown["seq"], shown["at"], shown["detail"], shown["hash"]) == (7, AT_TEXT, {"size": 2}, "b" * 64)
    assert "prev_hash" not in shown
