"""A drill's replication passes run at their own times, not at the canaries' writes.

``lose-both-local``, gold only (its DR copy ships every 60 s), one canary write every 90 s:
slower than the copy. A pass falls due every 60 s after the one before. Had the drill run a due
pass only at the next write, that write would reach the DR copy the moment it was made, and
every such drill would report an RPO of 0 that an asynchronous copy does not have.

The known answer, read at the loss from what the store holds (not from the report): the DR copy
holds every write acknowledged by its last pass; the data lost is the writes after it. So the
RPO is the loss minus the first write after that pass (0 when there is none), and that pass ran
within one interval of the loss.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from cloudctl.model import drill_report, drills
from cloudctl.recovery import replication as repl
from cloudctl.services import context as ctx_module
from cloudctl.services import drills as drill_service
from cloudctl.store import recovery as recovery_store
from cloudctl.store import replication
from tests.conftest import ROOT

PLAN = ROOT / "dr" / "drills" / "lose-both-local.yaml"
INTERVAL_S = 60.0  # gold's dr_interval_s in infra/topology.yaml
WRITE_EVERY_S = 90.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_a_copy_slower_than_its_canary_writes_loses_what_came_after_its_last_pass(
    sqlite_ctx: ctx_module.Context, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert sqlite_ctx.topology.tier("gold").dr_interval_s == INTERVAL_S
    plan = drills.parse(PLAN.read_text(encoding="utf-8"))
    plan = plan.model_copy(
        update={
            "steps": (),
            "targets": {"gold": plan.targets["gold"]},
            "scope": plan.scope.model_copy(
                update={"all": False, "departments": ("psb",), "tiers": ("gold",)}
            ),
            "canary": plan.canary.model_copy(
                update={"writes_per_s": 1 / WRITE_EVERY_S, "warmup_s": 900.0, "seed": seed}
            ),
        }
    )
    passes: dict[str, list[float]] = {}
    """Per stream: when each pass over it ran, on the drill's clock."""
    replicate = repl.replicate

    def recorded(env: repl.Environment, stream_id: str, **kwargs: Any) -> repl.PassResult:
        passes.setdefault(stream_id, []).append(env.clock.now())
        return replicate(env, stream_id, **kwargs)

    monkeypatch.setattr(repl, "replicate", recorded)
    expected: dict[str, tuple[float, float]] = {}
    """Per canary: (the RPO the store's state at the loss implies, the age of the copy's last pass)."""

    def on_step(step: drill_report.TimelineStep) -> None:
        if step.step != "fault injected":
            return
        with sqlite_ctx.read() as tx:
            run = recovery_store.list_drill_runs(tx, plan=plan.name)[0]
            (fault,) = run.report["progress"]["faults"]
            loss = float(fault["injected_at"])  # on the drill's own clock
            for canary in run.report["progress"]["canaries"]:
                workload_id = canary["workload_id"]
                (copy,) = [
                    s for s in replication.list_streams(tx, workload_ids=[workload_id]) if s.target == "dz-dr"
                ]
                assert copy.last_pass_at is not None
                writes = [
                    change.at for change in replication.changes_after(tx, workload_id=workload_id, seq=0)
                ]
                after_pass = [at for at in writes if at > copy.last_pass_at]
                rpo = loss - min(after_pass) if after_pass else 0.0
                expected[workload_id] = (rpo, loss - copy.last_pass_at)

    report = drill_service.run_drill(sqlite_ctx, plan=plan, on_step=on_step)

    assert expected, "no canary at the loss"
    dr_streams = [stream_id for stream_id in passes if stream_id.endswith("dz-dr")]
    assert dr_streams
    for stream_id in dr_streams:
        times = passes[stream_id]
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        # Due 60 s after the last pass ended (a pass takes its transfer time), whenever writes come.
        assert all(INTERVAL_S <= gap < INTERVAL_S + 1 for gap in gaps), (stream_id, gaps)
    for workload in report.workloads:
        rpo, pass_age = expected[workload.workload_id]
        assert pass_age < INTERVAL_S  # the last pass ran on time, not at a write that came later
        assert workload.rpo_measured_s == pytest.approx(rpo, abs=0.001)
        assert (workload.writes_lost > 0) == (rpo > 0)
