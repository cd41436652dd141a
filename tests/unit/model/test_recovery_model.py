"""Domain states and recovery plans as pure rules: transitions in one table, typed steps, hooks placed."""

from __future__ import annotations

import pytest

from cloudctl import errors
from cloudctl.model import recovery as model
from cloudctl.model import states
from cloudctl.model import topology as topo
from tests.conftest import TOPOLOGY


def test_a_state_moves_only_along_its_table() -> None:
    run = states.RunState
    assert (
        states.check_transition(states.RUN_TRANSITIONS, run.INTERRUPTED, run.RUNNING, field="run")
        is run.RUNNING
    )
    assert (
        states.check_transition(states.RUN_TRANSITIONS, run.RUNNING, run.RUNNING, field="run") is run.RUNNING
    )
    with pytest.raises(errors.Conflict) as caught:
        states.check_transition(states.RUN_TRANSITIONS, run.DONE, run.RUNNING, field="run")
    assert caught.value.one_line() == "run: cannot go from done to running"
    workload = states.WorkloadState
    with pytest.raises(errors.Conflict):
        states.check_transition(states.WORKLOAD_TRANSITIONS, workload.DELETED, workload.READY, field="state")
    every_table = (states.RUN_TRANSITIONS, states.WORKLOAD_TRANSITIONS, states.PLACEMENT_TRANSITIONS)
    for table in every_table:
        assert set(table) == set(type(next(iter(table))))  # every state has its row


def test_home_roles_follow_the_tier_and_the_center_roles() -> None:
    topology = topo.parse(TOPOLOGY.read_text(encoding="utf-8"))
    centers = ["qd-a", "qd-b", "dz-dr"]
    platinum = states.home_roles(
        topology, tier=topology.tier("platinum"), centers=centers, serving_center=None
    )
    gold = states.home_roles(topology, tier=topology.tier("gold"), centers=centers, serving_center="qd-b")
    silver = states.home_roles(
        topology, tier=topology.tier("silver"), centers=["qd-b", "dz-dr"], serving_center="qd-b"
    )
    assert platinum == {"qd-a": "active", "qd-b": "active", "dz-dr": "dr"}
    assert gold == {"qd-a": "standby", "qd-b": "primary", "dz-dr": "dr"}
    assert silver == {"qd-b": "primary", "dz-dr": "dr"}
    assert states.demoted_role("primary", center_is_dr=True) is states.PlacementRole.DR
    assert states.left_state("active", planned=True) is states.PlacementState.DRAINED
    assert states.serves("primary", "ready") and not states.serves("standby", "ready")


def test_a_step_stored_before_typed_steps_still_reads() -> None:
    old = {"id": "0001:wl-1:promote", "workload_id": "wl-1", "tier": "gold", "target": "qd-b", "why": "x",
           "action": "promote", "from": ["qd-a"]}  # fmt: skip
    step = model.RecoveryStep.model_validate(old)
    assert (step.action, step.from_centers) == (model.StepAction.PROMOTE, ["qd-a"])
    assert "from" not in step.document() and step.document()["from_centers"] == ["qd-a"]
    with pytest.raises(ValueError):
        model.RecoveryStep.model_validate({**old, "action": "teleport"})


def test_hooks_go_before_the_first_and_after_the_last_step_they_are_bound_to() -> None:
    steps = [
        model.RecoveryStep(action=action, workload_id=workload, tier=tier)
        for workload, tier in (("a", "gold"), ("b", "silver"))
        for action in (model.StepAction.PROMOTE, model.StepAction.SWITCH_TRAFFIC)
    ]
    hooks = model.hooks_from_data(
        [
            {"name": "around-run", "when": "post", "command": {"argv": ["x"]}},
            {"name": "before-traffic", "when": "pre", "group": "switch-traffic", "command": {"argv": ["x"]}},
            {"name": "after-gold", "when": "post", "tier": "gold", "command": {"argv": ["x"]}},
        ]
    )
    placed = model.place_hooks(steps, hooks)
    labels = [s.hook.label if s.hook else f"{s.workload_id}:{s.action}" for s in placed]
    assert labels == [
        "a:promote",
        "before-traffic",
        "a:switch-traffic",
        "after-gold",
        "b:promote",
        "b:switch-traffic",
        "around-run",
    ]
    assert [s.id.split(":")[0] for s in placed] == [f"{i:04d}" for i in range(7)]


def test_a_hooks_file_nested_too_deep_is_one_line() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        model.parse_hooks("hooks: " + "[" * 5_000 + "]" * 5_000)
    assert caught.value.one_line().startswith("line 1: not valid YAML (nested deeper than 100 levels")
