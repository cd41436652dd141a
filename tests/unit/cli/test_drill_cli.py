"""``cloudctl drill``: plans, schedule, history, and runs that exit by the report's verdict.

The drill engine (``cloudctl.services.drills.run_drill``) is replaced by a fake that returns a
hand-built report, so these tests see only what the command does with it: no waits, no sleeps.
"""

from __future__ import annotations

import datetime
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from cloudctl import settings as settings_module
from cloudctl.cli import commands_core, commands_drill, main
from cloudctl.model import drill_report, drills
from cloudctl.recovery.drills import engine as drill_engine
from cloudctl.services import context as ctx_module
from cloudctl.store import recovery as recovery_store
from tests.conftest import POLICIES, ROOT, TOPOLOGY
from tests.support import operators

PLAN_DIR = ROOT / "dr" / "drills"
SHIPPED = sorted(path.stem for path in PLAN_DIR.glob("*.yaml"))


def tier_result(tier: str, *, rpo: float, rpo_target: float, passed: bool) -> drill_report.TierResult:
    figures = drill_report.Figures(
        gbt20988_level_target=6 if passed else 5,
        rpo_target_s=rpo_target,
        rto_target_s=120,
        rpo_measured_s=rpo,
        rto_measured_s=42.5,
        writes_acknowledged=600,
        writes_lost=0 if rpo == 0 else 3,
    )
    level = 6 if rpo == 0 else 5
    missed = drill_report.judge(figures, level_achieved=level, all_writes_lost=False)
    assert (not missed) == passed
    return drill_report.TierResult(
        tier=tier,
        workloads=1,
        **figures.model_dump(),
        gbt20988_level_achieved=level,
        missed=missed,
        passed=not missed,
    )


def make_report(*, plan: str = "lose-qd-a", passed: bool = True) -> drill_report.DrillReport:
    rpo = 0.0 if passed else 7.5
    return drill_report.DrillReport(
        plan=plan,
        scenario="lose-local-center",
        started_at="2026-01-04T18:00:00Z",
        finished_at="2026-01-04T18:05:00Z",
        simulated_time=True,
        passed=passed,
        tiers=[tier_result("platinum", rpo=rpo, rpo_target=0, passed=passed)],
        workloads=[
            drill_report.WorkloadResult(
                workload_id="w-1",
                department="psb",
                tier="platinum",
                recovered_in="qd-b",
                **tier_result("platinum", rpo=rpo, rpo_target=0, passed=passed).model_dump(
                    include=set(drill_report.Objectives.model_fields)
                ),
            )
        ],
        timeline=[
            drill_report.TimelineStep(at="2026-01-04T18:00:00Z", offset_s=0, step="canary writes started"),
            drill_report.TimelineStep(
                at="2026-01-04T18:02:00Z", offset_s=120, step="fault injected", detail="qd-a down"
            ),
            drill_report.TimelineStep(at="2026-01-04T18:02:42Z", offset_s=162.5, step="workloads serving"),
        ],
    )


class FakeEngine:
    """Stands in for the drill engine (``engine.run``): notes each timeline step, then returns the report.

    The service around it is the real one: it records the run, saves progress after each step
    (what the command polls through the API) and stores the report.
    """

    def __init__(self) -> None:
        self.report = make_report()
        self.plans: list[drills.DrillPlan] = []

    def __call__(self, drill: drill_engine.Drill) -> drill_report.DrillReport:
        self.plans.append(drill.plan)
        for step in self.report.timeline:
            drill.note(step.step, step.detail)
            drill.save()
        # As the engine does, the report's timeline is the run's own (``drill started`` first).
        return self.report.model_copy(update={"plan": drill.plan.name, "timeline": drill.progress.timeline})


@pytest.fixture
def engine(monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine()
    monkeypatch.setattr(drill_engine, "run", fake)
    return fake


@pytest.fixture
def app() -> typer.Typer:
    """The global options of ``cloudctl`` with ``init`` and the ``drill`` group."""
    result = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
    result.callback()(main.main)
    commands_core.register(result)
    commands_drill.register(result)
    return result


class Cli:
    def __init__(self, app: typer.Typer, home: Path) -> None:
        self.app = app
        self.home = home
        self.runner = CliRunner()

    def __call__(self, *args: str, code: int = 0) -> Any:
        argv = ["--home", str(self.home), "--topology", str(TOPOLOGY), "--policies", str(POLICIES)]
        argv.append("--simulated-time")
        argv += operators.break_glass(list(args))
        result = self.runner.invoke(self.app, argv + main.hoist_global_options(list(args)))
        assert result.exit_code == code, (
            f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        )
        return result

    def json(self, *args: str, code: int = 0) -> Any:
        return json.loads(self(*args, "-o", "json", code=code).stdout)


@pytest.fixture
def cli(app: typer.Typer, tmp_path: Path) -> Cli:
    return Cli(app, tmp_path / "home")


@pytest.fixture
def ready(cli: Cli) -> Cli:
    cli("init")
    return cli


def record_run(home: Path, *, plan: str, started_at: str, report: drill_report.DrillReport) -> None:
    context = ctx_module.open_context(
        settings_module.Settings(home=home, topology=TOPOLOGY, policies=POLICIES)
    )
    started = drills_time(started_at)
    try:
        with context.transaction() as tx:
            recovery_store.insert_drill_run(
                tx,
                recovery_store.DrillRun(
                    id=f"drill-{plan}-{int(started)}",
                    plan=plan,
                    scenario=report.scenario,
                    state="finished",
                    passed=report.passed,
                    report=report.model_dump(mode="json"),
                    started_at=started,
                    finished_at=started + 300,
                ),
            )
    finally:
        context.close()


def drills_time(iso: str) -> float:
    import datetime

    return datetime.datetime.fromisoformat(iso).timestamp()


def one_line_error(result: Any) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def write_plan(directory: Path, name: str, **changes: Any) -> Path:
    data: dict[str, Any] = {
        "name": name,
        "schedule": "0 18 * * *",
        "scenario": {"kind": "lose-local-center", "center": "qd-a"},
        "scope": {"tiers": ["platinum"]},
    }
    data.update(changes)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML
    return path


# --- list, show -------------------------------------------------------------------------------------


def test_list_shows_every_shipped_plan_with_its_schedule_and_next_run(cli: Cli) -> None:
    items = cli.json("drill", "list", "--dir", str(PLAN_DIR))
    assert [item["name"] for item in items] == SHIPPED
    for item in items:
        assert item["schedule"]
        assert item["next_run_at"].endswith("Z")
        assert item["scenario"]["kind"] in drills.SCENARIO_KINDS
        assert item["last_run"] is None


def test_list_shows_the_last_result_from_the_store(ready: Cli) -> None:
    record_run(
        ready.home, plan="lose-qd-a", started_at="2026-01-04T18:00:00Z", report=make_report(passed=False)
    )
    items = {item["name"]: item for item in ready.json("drill", "list", "--dir", str(PLAN_DIR))}
    last = items["lose-qd-a"]["last_run"]
    assert (last["passed"], last["started_at"]) == (False, "2026-01-04T18:00:00Z")
    assert last["tiers"][0]["rpo_measured_s"] == 7.5
    table = ready("drill", "list", "--dir", str(PLAN_DIR)).stdout
    assert "FAILED" in table
    assert "lose-qd-a" in table


def test_list_names_the_file_and_the_field_of_a_bad_plan(cli: Cli, tmp_path: Path) -> None:
    bad = write_plan(tmp_path / "plans", "bad", scenario={"kind": "lose-the-city"})
    result = cli("drill", "list", "--dir", str(bad.parent), code=2)
    assert one_line_error(result).startswith(f"error: {bad}: scenario.kind: unknown scenario kind")


def test_show_gives_the_plan_and_its_effective_targets(cli: Cli) -> None:
    detail = cli.json("drill", "show", "test-failover-dr", "--dir", str(PLAN_DIR))
    assert detail["plan"]["scenario"] == {"kind": "test-failover", "center": "dz-dr", "at_s": 0}
    targets = {target["tier"]: target for target in detail["effective_targets"]}
    assert (targets["silver"]["rpo_target_s"], targets["silver"]["overridden"]) == (600, True)
    assert targets["silver"]["gbt20988_level_target"] == 5
    assert (targets["platinum"]["rpo_target_s"], targets["platinum"]["gbt20988_level_target"]) == (60, 5)
    assert "bronze" not in targets  # not measured by this plan
    assert "effective targets" in cli("drill", "show", str(PLAN_DIR / "lose-qd-a.yaml")).stdout


def test_show_of_an_unknown_plan_exits_2_listing_the_known_ones(cli: Cli) -> None:
    result = cli("drill", "show", "lose-the-moon", "--dir", str(PLAN_DIR), code=2)
    line = one_line_error(result)
    assert line.startswith("error: plan: no drill plan 'lose-the-moon'")
    assert "lose-qd-a" in line


def test_show_of_a_plan_with_a_center_of_the_wrong_role_exits_2(cli: Cli, tmp_path: Path) -> None:
    bad = write_plan(tmp_path, "wrong-role", scenario={"kind": "lose-local-center", "center": "mgmt"})
    result = cli("drill", "show", str(bad), code=2)
    assert one_line_error(result).startswith("error: scenario.center: center 'mgmt' has role 'management'")


# --- history ------------------------------------------------------------------------------------------


def test_history_lists_runs_newest_first_with_figures_per_tier(ready: Cli) -> None:
    record_run(ready.home, plan="lose-qd-a", started_at="2026-01-03T18:00:00Z", report=make_report())
    record_run(
        ready.home, plan="lose-qd-a", started_at="2026-01-04T18:00:00Z", report=make_report(passed=False)
    )
    record_run(
        ready.home,
        plan="cut-dr-link",
        started_at="2026-01-04T18:30:00Z",
        report=make_report(plan="cut-dr-link"),
    )
    runs = ready.json("drill", "history", "lose-qd-a")
    assert [(run["started_at"], run["passed"]) for run in runs] == [
        ("2026-01-04T18:00:00Z", False),
        ("2026-01-03T18:00:00Z", True),
    ]
    assert runs[0]["tiers"] == [
        {
            "tier": "platinum",
            "rpo_target_s": 0.0,
            "rpo_measured_s": 7.5,
            "rto_target_s": 120.0,
            "rto_measured_s": 42.5,
            "gbt20988_level_achieved": 5,
            "gbt20988_level_target": 5,
            "passed": False,
        }
    ]
    assert len(ready.json("drill", "history", "--limit", "2")) == 2
    table = ready("drill", "history").stdout
    assert "7.5/0" in table
    assert "42.5/120" in table


def test_history_before_init_says_to_run_init(cli: Cli) -> None:
    result = cli("drill", "history", code=2)
    assert "cloudctl init" in one_line_error(result)


# --- due ---------------------------------------------------------------------------------------------

SUNDAY_EVENING = "2026-01-04T19:00:00Z"  # after lose-qd-a (daily 18:00) and cut-dr-link (Sun 18:30)
SATURDAY_EVENING = "2026-01-03T19:00:00Z"


def test_due_lists_the_plans_whose_schedule_fired_since_the_last_scheduler_run(ready: Cli) -> None:
    due = ready.json(
        "drill", "due", "--at", SUNDAY_EVENING, "--since", SATURDAY_EVENING, "--dir", str(PLAN_DIR)
    )
    assert [item["name"] for item in due] == ["cut-dr-link", "lose-qd-a"]
    assert due[1]["fell_due_at"] == "2026-01-04T18:00:00Z"
    assert due[1]["path"] == str(PLAN_DIR / "lose-qd-a.yaml")


def test_a_plan_run_since_it_fell_due_is_not_due(ready: Cli) -> None:
    record_run(ready.home, plan="lose-qd-a", started_at="2026-01-04T18:05:00Z", report=make_report())
    due = ready.json(
        "drill", "due", "--at", SUNDAY_EVENING, "--since", SATURDAY_EVENING, "--dir", str(PLAN_DIR)
    )
    assert [item["name"] for item in due] == ["cut-dr-link"]


def test_due_says_so_when_nothing_is_due_and_exits_0(cli: Cli) -> None:
    result = cli(
        "drill", "due", "--at", SUNDAY_EVENING, "--since", "2026-01-04T18:59:00Z", "--dir", str(PLAN_DIR)
    )
    assert "no drill is due" in result.stdout


def test_due_with_a_time_that_is_not_iso_exits_2(cli: Cli) -> None:
    result = cli("drill", "due", "--at", "tonight", "--dir", str(PLAN_DIR), code=2)
    assert one_line_error(result).startswith("error: at: 'tonight' is not an ISO 8601 time")


@pytest.mark.parametrize(
    ("option", "when"),
    [("--at", "0001-01-01T00:00:00Z"), ("--at", "9999-12-31T23:59:59Z"), ("--since", "0001-01-01")],
)
def test_due_with_a_time_out_of_range_exits_2(cli: Cli, option: str, when: str) -> None:
    # a schedule's fire times before year 1 or after 9999 ended in a traceback
    result = cli("drill", "due", option, when, "--dir", str(PLAN_DIR), code=2)
    assert one_line_error(result) == (
        f"error: {option.lstrip('-')}: {when!r} is out of range (from 1970 to 9998, UTC)"
    )


# --- run ---------------------------------------------------------------------------------------------


def test_a_passing_drill_exits_0_and_writes_every_report(
    ready: Cli, engine: FakeEngine, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    junit = tmp_path / "junit" / "lose-qd-a.xml"
    result = ready(
        "drill", "run", str(PLAN_DIR / "lose-qd-a.yaml"), "--report-dir", str(reports), "--junit", str(junit)
    )
    assert [plan.name for plan in engine.plans] == ["lose-qd-a"]
    assert sorted(path.name for path in reports.iterdir()) == [
        "junit.xml",
        "report.html",
        "report.json",
        "report.md",
    ]
    saved = drill_report.DrillReport.model_validate_json(
        (reports / "report.json").read_text(encoding="utf-8")
    )
    assert saved.passed
    assert ET.parse(junit).getroot().attrib["failures"] == "0"
    assert "passed" in result.stdout


def test_a_drill_that_misses_an_objective_exits_1_and_still_leaves_its_reports(
    ready: Cli, engine: FakeEngine
) -> None:
    engine.report = make_report(passed=False)
    result = ready("drill", "run", "lose-qd-a", "--dir", str(PLAN_DIR), "-o", "json", code=1)
    assert json.loads(result.stdout)["passed"] is False
    directory = ready.home / "drills" / "lose-qd-a-20260104T180000Z"
    junit = ET.parse(directory / "junit.xml").getroot()
    assert junit.attrib["failures"] == "2"  # the tier's RPO and the workload's RPO
    assert str(directory) in result.stderr.replace("\n", "")


def test_run_reports_each_step_as_it_happens(ready: Cli, engine: FakeEngine, tmp_path: Path) -> None:
    result = ready("drill", "run", "lose-qd-a", "--dir", str(PLAN_DIR), "--report-dir", str(tmp_path / "r"))
    assert "fault injected — qd-a down" in result.stderr
    steps = ["drill started", "canary writes started", "fault injected", "workloads serving"]
    # Each step once, in order, however the polls fell against the run.
    assert [result.stderr.count(f"] {step}") for step in steps] == [1, 1, 1, 1]
    assert sorted(steps, key=result.stderr.index) == steps


def test_a_plan_named_unlike_its_file_exits_2_and_runs_nothing(
    ready: Cli, engine: FakeEngine, tmp_path: Path
) -> None:
    path = write_plan(tmp_path, "nightly")
    path.rename(tmp_path / "other-name.yaml")
    result = ready("drill", "run", str(tmp_path / "other-name.yaml"), code=2)
    assert one_line_error(result).startswith("error: name: 'nightly' differs from the file name")
    assert engine.plans == []


def test_a_plan_with_an_unknown_department_exits_2_before_any_run_starts(ready: Cli, tmp_path: Path) -> None:
    bad = write_plan(tmp_path, "no-such-dept", scope={"departments": ["nosuch"], "tiers": ["platinum"]})
    result = ready("drill", "run", str(bad), code=2)
    assert one_line_error(result) == "error: scope.departments[0]: no department 'nosuch'"
    assert ready.json("drill", "history") == []


def test_a_warm_up_shorter_than_a_tier_interval_exits_2(
    ready: Cli, engine: FakeEngine, tmp_path: Path
) -> None:
    bad = write_plan(tmp_path, "short", scope={"tiers": ["silver"]})
    result = ready("drill", "run", str(bad), code=2)
    assert "canary.warmup_s" in one_line_error(result) and "silver" in result.stderr
    assert engine.plans == []


def test_a_bad_plan_exits_2_naming_the_field_and_runs_nothing(
    ready: Cli, engine: FakeEngine, tmp_path: Path
) -> None:
    bad = write_plan(tmp_path, "bad-cron", schedule="every night")
    result = ready("drill", "run", str(bad), code=2)
    assert one_line_error(result).startswith("error: schedule: 'every night' is not a cron expression")
    assert engine.plans == []


@pytest.mark.parametrize(
    ("option", "where", "reason"),
    [
        ("--report-dir", "a-file", "is not a directory"),
        ("--report-dir", "a-file/reports", "is not a directory"),
        ("--junit", "a-directory", "is a directory"),
        ("--junit", "a-file/junit.xml", "is not a directory"),
    ],
)
def test_a_report_destination_that_cannot_be_written_exits_2_and_runs_nothing(
    ready: Cli, engine: FakeEngine, tmp_path: Path, option: str, where: str, reason: str
) -> None:
    (tmp_path / "a-file").write_text("kept\n", encoding="utf-8")
    (tmp_path / "a-directory").mkdir()
    result = ready("drill", "run", "lose-qd-a", "--dir", str(PLAN_DIR), option, str(tmp_path / where), code=2)
    named = tmp_path / where.split("/", maxsplit=1)[0]
    assert one_line_error(result) == f"error: {option.lstrip('-')}: {str(named)!r} {reason}"
    assert engine.plans == []
    assert ready.json("drill", "history") == []
    assert (tmp_path / "a-file").read_text(encoding="utf-8") == "kept\n"


def test_reports_that_cannot_be_written_after_the_run_are_one_line(
    ready: Cli, engine: FakeEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(self: Path, *args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full)
    result = ready("drill", "run", "lose-qd-a", "--dir", str(PLAN_DIR), "--report-dir", str(tmp_path), code=1)
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        f"error: report-dir: cannot write {str(tmp_path / 'report.json')!r}: No space left on device"
    )
    assert [plan.name for plan in engine.plans] == ["lose-qd-a"]


def test_a_missing_plan_file_exits_2(ready: Cli, engine: FakeEngine, tmp_path: Path) -> None:
    result = ready("drill", "run", str(tmp_path / "nowhere.yaml"), code=2)
    assert one_line_error(result).startswith("error: plan: no such file")


# --- dr/run-scheduled ----------------------------------------------------------------------------------

STUB = """#!/usr/bin/env bash
echo "$*" >>"$STUB_LOG"
[[ "$1" == --as ]] && shift 4
case "$1 $2" in
    "init "*) echo "already initialised" ;;
    "drill due") echo '[{"name": "lose-qd-a", "path": "dr/drills/lose-qd-a.yaml",
                         "scenario": {"kind": "lose-local-center"}},
                        {"name": "cut-dr-link", "path": "dr/drills/cut-dr-link.yaml",
                         "scenario": {"kind": "cut-dr-link"}}]' ;;
    "drill run") [[ "$3" == *lose-qd-a* ]] && exit 0; exit 1 ;;
esac
"""


def run_scheduled(tmp_path: Path, *args: str, **env_extra: str) -> tuple[int, list[str]]:
    import subprocess

    stub = tmp_path / "cloudctl-stub"
    stub.write_text(STUB, encoding="utf-8")
    stub.chmod(0o755)
    log = tmp_path / "calls.log"
    env = {
        "PATH": "/usr/bin:/bin",
        "CLOUDCTL": str(stub),
        "STUB_LOG": str(log),
        "CLOUDCTL_HOME": str(tmp_path / "home"),
        "DRILL_REPORTS": str(tmp_path / "reports"),
        **env_extra,
    }
    done = subprocess.run(
        ["bash", str(ROOT / "dr" / "run-scheduled"), *args],
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )
    return done.returncode, log.read_text(encoding="utf-8").splitlines()


def test_run_scheduled_runs_every_due_drill_and_exits_1_when_one_missed(tmp_path: Path) -> None:
    code, calls = run_scheduled(tmp_path, DRILL_REASON="CI dr-drills run 42")
    assert code == 1
    assert calls[0] == "init"
    assert calls[1].startswith("drill due --since ")
    glass = "--as sysadmin --reason CI dr-drills run 42 "
    runs = [call.removeprefix(glass) for call in calls if call.startswith(glass)]
    assert [call.split()[2] for call in runs] == ["dr/drills/lose-qd-a.yaml", "dr/drills/cut-dr-link.yaml"]
    assert len(runs) == len([call for call in calls if "drill run" in call])  # none without an identity
    assert f"--junit {tmp_path / 'reports' / 'junit' / 'cut-dr-link.xml'}" in runs[1]
    summary = (tmp_path / "reports" / "summary.txt").read_text(encoding="utf-8")
    assert "passed  lose-qd-a" in summary
    assert "FAILED  cut-dr-link" in summary


def test_the_ci_job_wakes_after_every_plan_fired_that_day() -> None:
    """The workflow's cron fires at most an hour after each firing of each plan's schedule,
    so `drill due --since 24h` runs the plan the same night, not a day late."""
    import croniter

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "dr-drills.yml").read_text(encoding="utf-8"))
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on:` as True
    (cron,) = [entry["cron"] for entry in triggers["schedule"]]
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    for path in PLAN_DIR.glob("*.yaml"):
        plan = drills.parse(path.read_text(encoding="utf-8"))
        assert plan.schedule is not None
        firings = croniter.croniter(plan.schedule, start)
        for _ in range(12):
            fired = firings.get_next(datetime.datetime)
            woke = croniter.croniter(cron, fired).get_next(datetime.datetime)
            assert woke - fired <= datetime.timedelta(hours=1), (plan.name, fired, woke)


def test_run_scheduled_with_an_api_and_a_token_runs_drills_remotely_as_that_token(tmp_path: Path) -> None:
    _code, calls = run_scheduled(tmp_path, CLOUDCTL_API="https://mgmt.example:8443", CLOUDCTL_TOKEN="t")
    assert calls[0].startswith("drill due --since ")  # no local state to initialise
    runs = [call for call in calls if "drill run" in call]
    assert len(runs) == 2 and all(call.startswith("drill run ") for call in runs)


def test_run_scheduled_with_all_runs_every_listed_plan(tmp_path: Path) -> None:
    _code, calls = run_scheduled(tmp_path, "--all")
    assert calls[1] == "drill list -o json"
