"""A DR line cut, audited on the services (simulated centers, the drill's own clock).

``cut-dr-then-lose-both``: both Qingdao DR lines are cut at the warm-up's end and both
Qingdao centers are lost 120 s later, recovering in dz-dr. Whatever the DR copy of a canary
lacked at the cut it still lacks at the loss (the line is down, nothing ships), and it
holds everything before that. So, with ``w0`` the write time of the oldest write the copy
lacked at the cut, the answer is known once ``w0`` is read at the cut: RPO = loss − w0, and
the writes lost are every write acknowledged from ``w0`` up to the loss.
"""

from __future__ import annotations

import pytest

from cloudctl.model import drill_report, drills
from cloudctl.services import context as ctx_module
from cloudctl.services import drills as drill_service
from cloudctl.store import recovery as recovery_store
from cloudctl.store import replication
from tests.conftest import ROOT

PLANS = ROOT / "dr" / "drills"


def test_writes_lost_behind_a_cut_dr_line_are_exactly_those_the_copy_lacked_at_the_cut(
    sqlite_ctx: ctx_module.Context,
) -> None:
    plan = drills.parse((PLANS / "cut-dr-then-lose-both.yaml").read_text(encoding="utf-8"))
    plan = plan.model_copy(update={"steps": ()})
    at_cut: dict[str, float] = {}
    """Per canary: the write time of the oldest write its DR copy lacked when the line was cut."""
    at_loss: dict[str, list[float]] = {}
    """Per canary: the write times of every write acknowledged when both centers were lost."""

    def canaries() -> list[str]:
        with sqlite_ctx.read() as tx:
            run = recovery_store.list_drill_runs(tx, plan=plan.name)[0]
        return [canary["workload_id"] for canary in run.report["progress"]["canaries"]]

    def on_step(step: drill_report.TimelineStep) -> None:
        if step.step != "fault injected":
            return
        with sqlite_ctx.read() as tx:
            if "cut" in step.detail:
                for workload_id in canaries():
                    (copy,) = [
                        s
                        for s in replication.list_streams(tx, workload_ids=[workload_id])
                        if s.target == "dz-dr"
                    ]
                    oldest = replication.first_pending_at(tx, workload_id=workload_id, seq=copy.last_seq)
                    assert oldest is not None  # one write a second, the copy ships every 30-60 s
                    at_cut[workload_id] = oldest
            else:
                for workload_id in canaries():
                    changes = replication.changes_after(tx, workload_id=workload_id, seq=0)
                    at_loss[workload_id] = [change.at for change in changes]

    report = drill_service.run_drill(sqlite_ctx, plan=plan, on_step=on_step)
    with sqlite_ctx.read() as tx:
        started = recovery_store.list_drill_runs(tx, plan=plan.name)[0].started_at

    by_kind = {fault.kind: fault for fault in report.faults}
    cut, loss = by_kind["cut-dr-link"], by_kind["lose-both-local-centers"]
    assert cut.injected_offset_s is not None and loss.injected_offset_s is not None
    assert loss.injected_offset_s - cut.injected_offset_s == pytest.approx(120, abs=1e-3)
    lost_at = started + loss.injected_offset_s
    assert set(at_cut) == set(at_loss) == {w.workload_id for w in report.workloads}
    for workload in report.workloads:
        w0 = at_cut[workload.workload_id]
        writes = at_loss[workload.workload_id]
        assert workload.recovered_in == "dz-dr"
        assert workload.writes_acknowledged == len(writes)
        assert workload.writes_lost == sum(1 for at in writes if at >= w0)
        assert workload.writes_lost >= 120  # every write of the two minutes the line was down
        assert workload.rpo_measured_s == pytest.approx(lost_at - w0, abs=2e-3)
        assert workload.gbt20988_level_achieved == 5  # RPO of minutes, not 0
    for tier in report.tiers:
        mine = [w for w in report.workloads if w.tier == tier.tier]
        assert tier.writes_lost == sum(w.writes_lost for w in mine)
        assert tier.rpo_measured_s == max(w.rpo_measured_s or 0.0 for w in mine)
    # The line came back after both of its local ends were lost: no copy left to catch up.
    assert (cut.workloads_hit, cut.dr_exposure_s, cut.catch_up_s) == (len(report.workloads), None, None)


def test_a_copy_that_went_with_its_center_before_catching_up_is_not_reported_caught_up(
    sqlite_ctx: ctx_module.Context,
) -> None:
    """qd-a's DR line is cut for 60 s after a 120 s warm-up; one second after it is back, qd-a
    is lost and the gold canary serves from its synchronous standby in qd-b. Gold ships to DR
    every 60 s, so no pass ran in that second: the copy across the restored line never caught
    up, it went with qd-a. No catch-up is reported (nor judged); the data at risk when the line
    came back is: the restore's time less the oldest write the copy lacked at the cut."""
    plan = drills.DrillPlan.model_validate(
        {
            "name": "cut-then-lose-qd-a",
            "scenario": {"kind": "cut-dr-link", "center": "qd-a", "restore_after_s": 60},
            "faults": [{"kind": "lose-local-center", "center": "qd-a", "at_s": 61}],
            "scope": {"departments": ["psb"], "tiers": ["gold"]},
            "canary": {"writes_per_s": 1, "warmup_s": 120},
        }
    )
    at_cut: list[float] = []

    def on_step(step: drill_report.TimelineStep) -> None:
        if step.step == "fault injected" and "cut" in step.detail:
            with sqlite_ctx.read() as tx:
                run = recovery_store.list_drill_runs(tx, plan=plan.name)[0]
                (canary,) = run.report["progress"]["canaries"]
                (copy,) = [
                    s
                    for s in replication.list_streams(tx, workload_ids=[canary["workload_id"]])
                    if s.target == "dz-dr"
                ]
                oldest = replication.first_pending_at(tx, workload_id=copy.workload_id, seq=copy.last_seq)
            assert oldest is not None
            at_cut.append(oldest)

    report = drill_service.run_drill(sqlite_ctx, plan=plan, on_step=on_step)
    with sqlite_ctx.read() as tx:
        started = recovery_store.list_drill_runs(tx, plan=plan.name)[0].started_at

    by_kind = {fault.kind: fault for fault in report.faults}
    cut = by_kind["cut-dr-link"]
    assert cut.injected_offset_s is not None and cut.restored_offset_s is not None
    assert cut.restored_offset_s - cut.injected_offset_s == pytest.approx(60, abs=1e-3)
    (w0,) = at_cut
    at_risk = started + cut.restored_offset_s - w0
    assert at_risk > 60  # the whole outage, and what was written since the last pass before it
    (tier,) = report.tiers
    (workload,) = report.workloads
    assert workload.recovered_in == "qd-b"
    for result in (tier, workload):
        assert (result.writes_lost, result.rpo_measured_s) == (0, 0.0)
        assert (result.catch_up_s, result.catch_up_allowed_s) == (None, None)
        assert result.dr_exposure_s == pytest.approx(at_risk, abs=2e-3)
    assert cut.catch_up_s is None
    assert cut.dr_exposure_s == pytest.approx(at_risk, abs=2e-3)
    steps = [step.step for step in report.timeline]
    assert "copy gone before it caught up" in steps
    assert "copies caught up" not in steps
    assert report.passed
