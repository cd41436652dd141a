"""Drill plans: the shipped ones are valid against the shipped topology; a bad plan names its field."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from cloudctl import errors
from cloudctl.model import drills, topology
from tests.conftest import ROOT, TOPOLOGY

PLANS = sorted((ROOT / "dr" / "drills").glob("*.yaml"))

BASE: dict[str, Any] = {
    "name": "example",
    "schedule": "0 18 * * *",
    "scenario": {"kind": "lose-local-center", "center": "qd-a"},
    "scope": {"tiers": ["platinum", "gold"]},
    "steps": [
        {"name": "before", "pre": [{"command": {"argv": ["cloudctl", "status"]}}]},
        {"name": "after", "post": [{"http": {"url": "http://127.0.0.1:8080/readyz"}}]},
    ],
}


@pytest.fixture(scope="module")
def shipped_topology() -> topology.Topology:
    return topology.parse(TOPOLOGY.read_text(encoding="utf-8"))


def plan_with(**changes: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


def rejected(data: Any) -> errors.InvalidInput:
    with pytest.raises(errors.InvalidInput) as caught:
        drills.from_data(data)
    return caught.value


def rejected_by(data: dict[str, Any], shipped: topology.Topology) -> errors.InvalidInput:
    plan = drills.from_data(data)
    with pytest.raises(errors.InvalidInput) as caught:
        drills.check_against(plan, shipped)
    return caught.value


# --- the shipped plans -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", PLANS, ids=[path.stem for path in PLANS])
def test_every_shipped_plan_is_valid_against_the_shipped_topology(
    path: Path, shipped_topology: topology.Topology
) -> None:
    plan = drills.parse(path.read_text(encoding="utf-8"))
    drills.check_against(plan, shipped_topology)
    assert plan.name == path.stem
    assert plan.schedule is not None
    assert plan.description


def test_the_shipped_plans_cover_every_scenario_and_mix_tiers_and_departments() -> None:
    plans = [drills.parse(path.read_text(encoding="utf-8")) for path in PLANS]
    assert {plan.scenario.kind for plan in plans} == set(drills.SCENARIO_KINDS)
    assert sum(1 for plan in plans if plan.faults) >= 2  # compound plans
    assert any(plan.scope.tiers and plan.scope.departments for plan in plans)
    assert any(plan.scope.all for plan in plans)


def test_effective_targets_replace_only_the_overridden_fields(shipped_topology: topology.Topology) -> None:
    plan = drills.parse((ROOT / "dr" / "drills" / "test-failover-dr.yaml").read_text(encoding="utf-8"))
    targets = {target.tier: target for target in drills.effective_targets(plan, shipped_topology)}
    silver = shipped_topology.tier("silver")
    assert (targets["silver"].rpo_target_s, targets["silver"].rto_target_s) == (600, silver.rto_target_s)
    assert targets["silver"].overridden
    assert targets["silver"].gbt20988_level_target == 5  # derived: RPO 600 s, RTO 4 h fit level 5
    assert (targets["platinum"].rpo_target_s, targets["platinum"].gbt20988_level_target) == (60, 5)
    assert "bronze" not in targets  # marked 'measured: false'


def test_a_tier_without_override_keeps_the_topology_level(shipped_topology: topology.Topology) -> None:
    plan = drills.from_data(BASE)
    targets = {target.tier: target for target in drills.effective_targets(plan, shipped_topology)}
    assert targets["gold"].gbt20988_level_target == shipped_topology.tier("gold").gbt20988_level
    assert not targets["gold"].overridden


def test_overriding_rpo_derives_the_level_the_targets_fit(shipped_topology: topology.Topology) -> None:
    plan = drills.from_data(plan_with(targets={"gold": {"rpo_s": 120}}))
    (gold,) = [t for t in drills.effective_targets(plan, shipped_topology) if t.tier == "gold"]
    # Level 6 needs RPO 0; 120 s with gold's 900 s RTO fits level 5.
    assert (gold.rpo_target_s, gold.rto_target_s, gold.gbt20988_level_target) == (120, 900, 5)


def test_a_stated_level_is_the_level_checked(shipped_topology: topology.Topology) -> None:
    plan = drills.from_data(plan_with(targets={"gold": {"rpo_s": 120, "level": 4}}))
    (gold,) = [t for t in drills.effective_targets(plan, shipped_topology) if t.tier == "gold"]
    assert gold.gbt20988_level_target == 4


def test_a_level_the_topology_does_not_know_is_refused(shipped_topology: topology.Topology) -> None:
    error = rejected_by(plan_with(targets={"gold": {"level": 9}}), shipped_topology)
    assert error.field == "targets.gold.level"


def test_catch_up_allowed_is_one_interval_to_start_and_one_more_or_the_rpo_to_ship(
    shipped_topology: topology.Topology,
) -> None:
    plan = drills.from_data(plan_with(scope={"tiers": ["gold", "silver"]}, canary={"warmup_s": 300}))
    targets = {t.tier: t for t in drills.effective_targets(plan, shipped_topology)}
    assert targets["gold"].catch_up_allowed_s == 60 + 60  # RPO 0, interval 60
    assert targets["silver"].catch_up_allowed_s == 900 + 300  # RPO 900 > interval 300


def test_a_warm_up_shorter_than_a_tier_interval_is_refused_naming_tier_and_interval(
    shipped_topology: topology.Topology,
) -> None:
    error = rejected_by(plan_with(scope={"tiers": ["silver"]}, canary={"warmup_s": 120}), shipped_topology)
    assert error.field == "canary.warmup_s"
    assert "silver" in error.reason and "300 s" in error.reason
    assert len(error.one_line().splitlines()) == 1


def test_a_tier_marked_not_measured_lifts_the_warm_up_rule(shipped_topology: topology.Topology) -> None:
    plan = drills.from_data(
        plan_with(scope={"tiers": ["gold", "bronze"]}, targets={"bronze": {"measured": False}})
    )
    drills.check_against(plan, shipped_topology)
    assert [t.name for t in drills.tiers_measured(plan, shipped_topology)] == ["gold"]


def test_a_plan_that_measures_no_tier_is_refused(shipped_topology: topology.Topology) -> None:
    plan = plan_with(scope={"tiers": ["bronze"]}, targets={"bronze": {"measured": False}})
    assert rejected_by(plan, shipped_topology).field == "targets"


def test_compound_faults_strike_in_the_order_of_their_offsets() -> None:
    plan = drills.from_data(
        plan_with(
            scenario={"kind": "lose-local-center", "center": "qd-a", "at_s": 120},
            faults=[
                {"kind": "cut-dr-link", "center": "qd-b", "at_s": 180},
                {"kind": "degrade-link", "between": ["qd-a", "qd-b"], "factor": 10, "at_s": 60},
            ],
        )
    )
    assert [fault.kind for fault in plan.all_faults] == ["degrade-link", "lose-local-center", "cut-dr-link"]
    assert plan.faults[0].restore_after_s == 300  # a link fault is always restored


def test_a_plan_that_loses_centers_twice_is_refused(shipped_topology: topology.Topology) -> None:
    plan = plan_with(faults=[{"kind": "lose-local-center", "center": "qd-b", "at_s": 60}])
    assert rejected_by(plan, shipped_topology).field == "faults[0].kind"


def test_a_bad_center_in_a_later_fault_names_that_fault(shipped_topology: topology.Topology) -> None:
    plan = plan_with(faults=[{"kind": "cut-dr-link", "center": "dz-dr"}])
    assert rejected_by(plan, shipped_topology).field == "faults[0].center"


def test_a_field_error_inside_a_later_fault_names_its_path() -> None:
    error = rejected(plan_with(faults=[{"kind": "degrade-link", "between": ["qd-a", "qd-b"], "factor": 0.5}]))
    assert error.field == "faults[0].factor"


def test_effective_targets_cover_only_the_tiers_in_scope(shipped_topology: topology.Topology) -> None:
    plan = drills.from_data(BASE)
    assert [target.tier for target in drills.effective_targets(plan, shipped_topology)] == [
        "platinum",
        "gold",
    ]


def test_a_plan_gets_the_documented_defaults() -> None:
    plan = drills.from_data(BASE)
    assert plan.simulated_time is True
    assert (plan.canary.writes_per_s, plan.canary.warmup_s) == (1.0, 120.0)
    assert (plan.canary.object_bytes, plan.canary.workloads_per_tier) == (4096, 1)
    http = plan.steps[1].post[0].http
    assert http is not None
    assert (http.expect_status, http.timeout_s) == (200, 5.0)
    command = plan.steps[0].pre[0].command
    assert command is not None
    assert (command.expect_exit, command.timeout_s) == (0, 30.0)


# --- bad plans name their field ------------------------------------------------------------------------


def test_a_bad_cron_expression_names_schedule() -> None:
    error = rejected(plan_with(schedule="61 25 * * *"))
    assert error.field == "schedule"
    assert "cron" in error.reason


def test_a_six_field_cron_expression_is_refused() -> None:
    assert rejected(plan_with(schedule="0 0 18 * * *")).field == "schedule"


def test_an_unknown_scenario_kind_names_scenario_kind_and_the_known_kinds() -> None:
    error = rejected(plan_with(scenario={"kind": "lose-everything"}))
    assert error.field == "scenario.kind"
    assert "lose-everything" in error.reason
    assert "lose-local-center" in error.reason


def test_a_scenario_without_kind_names_scenario_kind() -> None:
    assert rejected(plan_with(scenario={"center": "qd-a"})).field == "scenario.kind"


def test_a_field_error_inside_a_scenario_names_the_path_without_the_kind_tag() -> None:
    error = rejected(plan_with(scenario={"kind": "degrade-link", "between": ["qd-a", "qd-b"], "factor": 1}))
    assert error.field == "scenario.factor"
    assert "greater than 1" in error.reason


def test_a_degrade_factor_below_one_is_refused() -> None:
    scenario = {"kind": "degrade-link", "between": ["qd-a", "qd-b"], "factor": 0.5}
    assert rejected(plan_with(scenario=scenario)).field == "scenario.factor"


def test_an_unknown_tier_in_scope_names_its_index(shipped_topology: topology.Topology) -> None:
    error = rejected_by(plan_with(scope={"tiers": ["gold", "diamond"]}), shipped_topology)
    assert error.field == "scope.tiers[1]"
    assert "diamond" in error.reason


def test_an_unknown_tier_in_targets_names_it(shipped_topology: topology.Topology) -> None:
    error = rejected_by(plan_with(targets={"diamond": {"rpo_s": 0}}), shipped_topology)
    assert error.field == "targets.diamond"


def test_a_target_for_a_tier_outside_the_scope_is_refused(shipped_topology: topology.Topology) -> None:
    error = rejected_by(plan_with(targets={"bronze": {"rto_s": 60}}), shipped_topology)
    assert error.field == "targets.bronze"
    assert "scope" in error.reason


def test_an_empty_target_override_is_refused() -> None:
    assert rejected(plan_with(targets={"gold": {}})).field == "targets.gold"


def test_a_tier_not_measured_takes_no_target() -> None:
    assert rejected(plan_with(targets={"gold": {"measured": False, "rpo_s": 1}})).field == "targets.gold"


def test_losing_a_center_that_is_not_local_names_the_center_and_its_role(
    shipped_topology: topology.Topology,
) -> None:
    error = rejected_by(
        plan_with(scenario={"kind": "lose-local-center", "center": "dz-dr"}), shipped_topology
    )
    assert error.field == "scenario.center"
    assert "'dr'" in error.reason
    assert "'local'" in error.reason


def test_a_test_failover_into_a_local_center_is_refused(shipped_topology: topology.Topology) -> None:
    error = rejected_by(plan_with(scenario={"kind": "test-failover", "center": "qd-b"}), shipped_topology)
    assert error.field == "scenario.center"


def test_recovering_in_a_center_that_is_not_dr_is_refused(shipped_topology: topology.Topology) -> None:
    scenario = {"kind": "lose-both-local-centers", "recover_in": "mgmt"}
    assert rejected_by(plan_with(scenario=scenario), shipped_topology).field == "scenario.recover_in"


def test_cutting_the_dr_link_of_the_management_center_is_refused(shipped_topology: topology.Topology) -> None:
    scenario = {"kind": "cut-dr-link", "center": "mgmt"}
    assert rejected_by(plan_with(scenario=scenario), shipped_topology).field == "scenario.center"


def test_degrading_a_link_to_an_unknown_center_names_its_end(shipped_topology: topology.Topology) -> None:
    scenario = {"kind": "degrade-link", "between": ["qd-a", "qd-c"], "factor": 4}
    error = rejected_by(plan_with(scenario=scenario), shipped_topology)
    assert error.field == "scenario.between[1]"
    assert "qd-c" in error.reason


def test_degrading_a_link_that_is_not_declared_is_refused(shipped_topology: topology.Topology) -> None:
    raw = yaml.safe_load(TOPOLOGY.read_text(encoding="utf-8"))
    raw["links"] = [link for link in raw["links"] if set(link["between"]) != {"qd-a", "qd-b"}]
    without_sync_link = topology.from_data(raw)
    scenario = {"kind": "degrade-link", "between": ["qd-a", "qd-b"], "factor": 4}
    assert rejected_by(plan_with(scenario=scenario), without_sync_link).field == "scenario.between"


def test_scope_with_both_all_and_tiers_is_refused() -> None:
    error = rejected(plan_with(scope={"all": True, "tiers": ["gold"]}))
    assert error.field == "scope"
    assert "not both" in error.reason


def test_an_empty_scope_is_refused() -> None:
    assert rejected(plan_with(scope={})).field == "scope"


def test_an_http_check_without_url_names_the_path_in_the_file() -> None:
    data = plan_with()
    data["steps"][1]["post"][0] = {"http": {"expect_status": 204}}
    error = rejected(data)
    assert error.field == "steps[1].post[0].http.url"
    assert error.reason == "required"


def test_an_http_check_with_a_url_that_is_not_http_is_refused() -> None:
    data = plan_with()
    data["steps"][1]["post"][0] = {"http": {"url": "ftp://example"}}
    assert rejected(data).field == "steps[1].post[0].http.url"


def test_a_command_check_without_argv_names_the_path_in_the_file() -> None:
    data = plan_with()
    data["steps"][0]["pre"][0] = {"command": {"timeout_s": 10}}
    assert rejected(data).field == "steps[0].pre[0].command.argv"


def test_a_check_with_neither_http_nor_command_names_the_check() -> None:
    data = plan_with()
    data["steps"][0]["pre"][0] = {"name": "nothing to do"}
    error = rejected(data)
    assert error.field == "steps[0].pre[0]"
    assert "exactly one" in error.reason


def test_an_unknown_field_is_named() -> None:
    error = rejected(plan_with(canary={"writes_per_minute": 3}))
    assert (error.field, error.reason) == ("canary.writes_per_minute", "unknown field")


def test_a_plan_name_must_be_a_slug() -> None:
    assert rejected(plan_with(name="Lose QD-A")).field == "name"


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        drills.parse("name: x\nscenario: [unclosed\n")
    assert caught.value.field is not None
    assert caught.value.field.startswith("line ")


def test_a_plan_nested_too_deep_is_one_line() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        drills.parse("name: x\nsteps: " + "[" * 101 + "]" * 101)
    assert caught.value.one_line() == "line 2: not valid YAML (nested deeper than 100 levels)"


def test_a_plan_nested_to_the_bound_is_validated() -> None:
    with pytest.raises(errors.InvalidInput) as caught:
        drills.parse(yaml.safe_dump(BASE) + "targets: " + "[" * 99 + "]" * 99)  # 100 levels, the plan's own
    assert caught.value.field == "targets"


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"canary": {"warmup_s": float("inf")}}, "canary.warmup_s"),
        ({"canary": {"writes_per_s": float("inf")}}, "canary.writes_per_s"),
        ({"scenario": {"kind": "cut-dr-link", "center": "qd-a", "restore_after_s": float("inf")}}, None),
        ({"scenario": {"kind": "lose-local-center", "center": "qd-a", "at_s": float("inf")}}, None),
        ({"faults": [{"kind": "degrade-link", "between": ["qd-a", "qd-b"], "factor": float("inf")}]}, None),
        ({"targets": {"gold": {"rpo_s": float("inf")}}}, "targets.gold.rpo_s"),
    ],
)
def test_an_infinite_duration_or_rate_is_refused(changes: dict[str, Any], field: str | None) -> None:
    # an infinite warm-up wrote canaries for ever: the drill never ended
    error = rejected(plan_with(**changes))
    assert error.reason == "input should be a finite number"
    if field is not None:
        assert error.field == field


def test_a_plan_with_a_key_given_twice_is_refused() -> None:
    text = yaml.safe_dump(BASE, sort_keys=False) + "scope:\n  tiers: [bronze]\n"
    with pytest.raises(errors.InvalidInput) as caught:
        drills.parse(text)
    assert caught.value.reason == "not valid YAML (duplicate key 'scope')"


@pytest.mark.parametrize("schedule", ["0 0 30 2 *", "0 0 31 4 *"])
def test_a_schedule_that_never_fires_is_refused(schedule: str) -> None:
    # `drill list` and `drill due` (the CI job's) ended in croniter's traceback reckoning it
    error = rejected(plan_with(schedule=schedule))
    assert (error.field, error.reason) == (
        "schedule",
        f"{schedule!r} never fires (no such day in that month)",
    )


def test_a_schedule_on_the_29th_of_february_is_kept() -> None:
    assert drills.from_data(plan_with(schedule="0 0 29 2 *")).schedule == "0 0 29 2 *"


def test_a_plan_that_is_not_a_mapping_is_refused() -> None:
    assert rejected(["name"]).field == "(top)"


def test_bad_input_maps_to_exit_code_2() -> None:
    assert rejected(plan_with(schedule="never")).exit_code == 2


# --- schedule ---------------------------------------------------------------------------------------

NIGHT = 1_767_290_400.0  # 2026-01-01T18:00:00Z, when "0 18 * * *" fires


def test_a_plan_never_run_is_due_at_its_last_firing() -> None:
    plan = drills.from_data(BASE)
    assert drills.fell_due_at(plan, at=NIGHT + 600, last_run_at=None) == NIGHT


def test_a_firing_exactly_now_counts() -> None:
    plan = drills.from_data(BASE)
    assert drills.fell_due_at(plan, at=NIGHT, last_run_at=None) == NIGHT


def test_a_plan_run_since_its_last_firing_is_not_due() -> None:
    plan = drills.from_data(BASE)
    assert drills.fell_due_at(plan, at=NIGHT + 3600, last_run_at=NIGHT + 60) is None


def test_a_plan_run_before_its_last_firing_is_due_again() -> None:
    plan = drills.from_data(BASE)
    assert drills.fell_due_at(plan, at=NIGHT + 3600, last_run_at=NIGHT - 86400 + 60) == NIGHT


def test_firings_before_since_do_not_count() -> None:
    monthly = drills.from_data(plan_with(schedule="0 18 1 * *"))
    second_night = NIGHT + 86400 + 1800
    assert drills.fell_due_at(monthly, at=second_night, last_run_at=None, since=second_night - 86400) is None
    assert drills.fell_due_at(monthly, at=NIGHT + 1800, last_run_at=None, since=NIGHT + 1800 - 86400) == NIGHT


def test_a_plan_without_schedule_is_never_due() -> None:
    plan = drills.from_data(plan_with(schedule=None))
    assert drills.fell_due_at(plan, at=NIGHT, last_run_at=None) is None


def test_next_run_is_strictly_after() -> None:
    assert drills.next_run_after("0 18 * * *", after=NIGHT) == NIGHT + 86400
    assert drills.next_run_after("0 18 * * *", after=NIGHT - 1) == NIGHT


def test_the_example_plan_in_the_dr_readme_is_valid(shipped_topology: topology.Topology) -> None:
    readme = (ROOT / "dr" / "README.md").read_text(encoding="utf-8")
    example = readme.split("```yaml\n", 1)[1].split("```", 1)[0]
    plan = drills.parse(example)
    drills.check_against(plan, shipped_topology)
    assert any(check.http is not None for check in plan.steps[0].pre)


@pytest.mark.parametrize(
    "canary",
    [
        {"warmup_s": 1e300},  # finite, and no drill would end
        {"writes_per_s": 1000, "warmup_s": 86400, "workloads_per_tier": 1},
        {"writes_per_s": 1, "warmup_s": 3600, "workloads_per_tier": 10_000},
    ],
)
def test_a_plan_whose_canaries_would_write_past_the_bound_is_refused_naming_the_canary(
    canary: dict[str, float], shipped_topology: topology.Topology
) -> None:
    error = rejected_by(plan_with(canary=canary), shipped_topology)
    assert error.field == "canary"
    assert f"at most {drills.MAX_CANARY_WRITES:,}" in error.reason


def test_a_plan_just_within_the_canary_bound_is_kept(shipped_topology: topology.Topology) -> None:
    # 2 tiers x 1,000 canaries x 5 writes/s x 1,000 s = exactly the bound: kept
    canary = {"writes_per_s": 5, "warmup_s": 1000, "workloads_per_tier": 1000}
    drills.check_against(drills.from_data(plan_with(canary=canary)), shipped_topology)
    assert drills.MAX_CANARY_WRITES == 2 * 1000 * 5 * 1000


def test_a_canary_object_over_64_mib_is_refused() -> None:
    error = rejected(plan_with(canary={"object_bytes": 64 * 1024 * 1024 + 1}))
    assert error.field == "canary.object_bytes"
