"""``cloudctl drill``: DR drill plans, their schedule, runs and reports.

Invariants:
- a plan is validated (its YAML, its name against its file's, its names against the
  topology in force and the store) before anything runs; a bad plan exits 2 with one
  line naming the field. With several plans (``list``, ``due``) the line starts with the file;
- ``drill run`` exits 0 only when the report says ``passed``, 1 otherwise, and always leaves
  its reports (JSON, Markdown, HTML, JUnit) on disk before exiting;
- ``drill due`` exits 0 whatever is due: the CI scheduler reads its JSON
  (a list of ``{name, path, schedule, fell_due_at, last_run_at}``);
- ``run``, ``resume``, ``history`` and ``report`` go through the API (``/v1/drills/runs``): the
  plan's YAML is sent, the server checks and runs it, and the command follows its timeline;
- ``list``, ``show`` and ``due`` read the plan files and the schedule (``cloudctl.services.drills``,
  over the local state); this module only parses options and renders.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.cli import client, common, files, output
from cloudctl.model import states

if TYPE_CHECKING:
    from cloudctl.model import drill_report

DEFAULT_PLAN_DIR = Path("dr/drills")


drill_app = typer.Typer(
    help="DR drills: plans and schedules, runs that measure RPO/RTO, and their reports.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(drill_app, name="drill")


PlanDirOption = Annotated[Path, typer.Option("--dir", help="Directory of drill plans (*.yaml).")]


def _parse_time(value: str, *, field: str) -> float:
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise errors.InvalidInput(
            f"{value!r} is not an ISO 8601 time (e.g. 2026-01-01T18:00:00Z)", field=field
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    # a schedule's fire times around it must be dates too (year 1 has no year before it)
    if not (1970 <= parsed.year <= 9998 and 1970 <= parsed.astimezone(datetime.UTC).year <= 9998):
        raise errors.InvalidInput(f"{value!r} is out of range (from 1970 to 9998, UTC)", field=field)
    return parsed.timestamp()


def _result_cell(run: dict[str, Any] | None) -> str:
    if run is None:
        return "–"
    verdict = {True: "passed", False: "FAILED", None: run["state"]}[run["passed"]]
    return f"{verdict} {run['finished_at'] or run['started_at']}"


# --- commands ---------------------------------------------------------------------------------------


@drill_app.command("list")
@common.handles_errors
def drill_list(ctx: typer.Context, directory: PlanDirOption = DEFAULT_PLAN_DIR) -> None:
    """Drill plans with their scenario, scope, schedule, next run and last result."""
    from cloudctl.cli import drill_views
    from cloudctl.model import drills
    from cloudctl.services import drills as drill_service

    state = common.state_of(ctx)
    plans = drill_service.load_plans(state.context, directory)
    latest = drill_service.latest_runs(state.context)
    now = state.context.clock.now()
    items = []
    for path, plan in plans:
        run = latest.get(plan.name)
        items.append(
            drill_views.PlanPublic(
                name=plan.name,
                path=str(path),
                description=plan.description,
                scenario=plan.scenario.model_dump(mode="json"),
                scope=plan.scope.model_dump(mode="json"),
                schedule=plan.schedule,
                next_run_at=None
                if plan.schedule is None
                else clocks.isoformat(drills.next_run_after(plan.schedule, after=now)),
                last_run=None if run is None else run.model_dump(mode="json"),
            )
        )
    by_name = {plan.name: plan for _, plan in plans}

    def render() -> None:
        output.stdout.print(
            output.table(
                None,
                ["plan", "scenario", "scope", "schedule (UTC)", "next run", "last result"],
                [
                    [
                        item.name,
                        by_name[item.name].scenario.summary,
                        by_name[item.name].scope.summary,
                        item.schedule or "on demand",
                        item.next_run_at,
                        _result_cell(item.last_run),
                    ]
                    for item in items
                ],
            )
        )

    state.emit(items, render)


@drill_app.command("show")
@common.handles_errors
def drill_show(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="PLAN", help="A plan name or a path to its YAML.")],
    directory: PlanDirOption = DEFAULT_PLAN_DIR,
) -> None:
    """One plan, validated, with the targets it holds each tier to."""
    from cloudctl.cli import drill_views
    from cloudctl.model import drills
    from cloudctl.services import drills as drill_service

    state = common.state_of(ctx)
    topology = state.context.topology
    path, plan = drill_service.resolve_plan(state.context, reference, directory)
    detail = drill_views.PlanDetail(
        path=str(path),
        plan=plan.model_dump(mode="json"),
        effective_targets=[
            drill_views.TargetPublic.model_validate(target.model_dump())
            for target in drills.effective_targets(plan, topology)
        ],
    )

    def render() -> None:
        output.stdout.print(f"[bold]{plan.name}[/] ({output.escape(path)})", highlight=False)
        if plan.description:
            output.stdout.print(f"  {plan.description}", highlight=False, markup=False)
        output.stdout.print(f"  scenario: {plan.scenario.summary}", highlight=False, markup=False)
        output.stdout.print(f"  scope:    {plan.scope.summary}", highlight=False, markup=False)
        output.stdout.print(
            f"  schedule: {plan.schedule or 'on demand'} (UTC){'' if plan.simulated_time else ', real time'}",
            highlight=False,
            markup=False,
        )
        canary = plan.canary
        output.stdout.print(
            f"  canary:   {canary.writes_per_s:g} writes/s of {canary.object_bytes} B, "
            f"{canary.warmup_s:g} s warm-up, {canary.workloads_per_tier} workload(s) per tier",
            highlight=False,
        )
        output.stdout.print(
            output.table(
                "effective targets",
                ["tier", "RPO target s", "RTO target s", "GB/T 20988 level", "source"],
                [
                    [
                        target.tier,
                        f"{target.rpo_target_s:g}",
                        f"{target.rto_target_s:g}",
                        target.gbt20988_level_target,
                        "plan" if target.overridden else "topology",
                    ]
                    for target in detail.effective_targets
                ],
            )
        )
        for index, step in enumerate(plan.steps):
            output.stdout.print(
                f"  step {index + 1}: {step.name or '(unnamed)'}", highlight=False, markup=False
            )
            for phase, checks in (("pre", step.pre), ("post", step.post)):
                for check in checks:
                    output.stdout.print(f"    {phase}: {check.label}", highlight=False, markup=False)

    state.emit(detail, render)


@drill_app.command("history")
@common.handles_errors
def drill_history(
    ctx: typer.Context,
    reference: Annotated[
        str | None, typer.Argument(metavar="[PLAN]", help="Only this plan (a name or a path).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many runs.")] = 20,
) -> None:
    """Past drill runs, newest first, with the RPO/RTO measured / target per tier."""
    from cloudctl.cli import drill_views

    state = common.state_of(ctx)
    name = reference
    if reference is not None and Path(reference).suffix in {".yaml", ".yml"}:
        name = Path(reference).stem
    items = state.api().get("/v1/drills/runs", plan=name, limit=limit)["data"]

    def render() -> None:
        rows = []
        for item in items:
            verdict = {True: "passed", False: "FAILED", None: item["state"]}[item["passed"]]
            first = [drill_views.short_id(item["id"]), item["plan"], verdict, item["started_at"][:16]]
            for index, tier in enumerate(item["tiers"] or [None]):
                lead = first if index == 0 else ["", "", "", ""]
                if tier is None:
                    rows.append([*lead, "–", "–", "–"])
                    continue
                rows.append(
                    [
                        *lead,
                        tier["tier"],
                        drill_views.pair(tier["rpo_measured_s"], tier["rpo_target_s"]),
                        drill_views.pair(tier["rto_measured_s"], tier["rto_target_s"]),
                    ]
                )
        output.stdout.print(
            output.table(None, ["run", "plan", "result", "started", "tier", "RPO s", "RTO s"], rows)
        )

    state.emit(items, render)


@drill_app.command("due")
@common.handles_errors
def drill_due(
    ctx: typer.Context,
    at: Annotated[str | None, typer.Option(help="The time to ask about (ISO 8601); default now.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            help="Ignore firings at or before this time (ISO 8601), e.g. the previous scheduler run; "
            "useful when the state does not persist between CI runs."
        ),
    ] = None,
    directory: PlanDirOption = DEFAULT_PLAN_DIR,
) -> None:
    """Plans whose schedule fired since their last run (for the CI scheduler); always exits 0."""
    from cloudctl.services import drills as drill_service

    state = common.state_of(ctx)
    at_s = state.context.clock.now() if at is None else _parse_time(at, field="at")
    since_s = None if since is None else _parse_time(since, field="since")
    items = drill_service.due_plans(state.context, directory, at=at_s, since=since_s)

    def render() -> None:
        if not items:
            output.stdout.print(f"no drill is due at {clocks.isoformat(at_s)}")
            return
        output.stdout.print(
            output.table(
                None,
                ["plan", "schedule (UTC)", "fell due at", "last run"],
                [[i.name, i.schedule, i.fell_due_at, i.last_run_at] for i in items],
            )
        )

    state.emit(items, render)


ReportDirOption = Annotated[
    Path | None,
    typer.Option(help="Where to write the reports; default <home>/drills/<plan>-<started>/."),
]
JunitOption = Annotated[Path | None, typer.Option(help="Also write the JUnit XML here.")]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=1,
        help="Stop following the drill after this long (it goes on; `drill report RUN` fetches it later).",
    ),
]
DEFAULT_TIMEOUT_S = 6 * 3600.0


def _plan_file(reference: str, directory: Path) -> Path:
    """The plan's file: a path, or ``directory/<name>.yaml``. A name no file can have (too long,
    holding a NUL) is no plan."""
    path = Path(reference)
    try:
        if path.suffix in {".yaml", ".yml"} or path.exists():
            return path
        for candidate in (directory / f"{reference}.yaml", directory / f"{reference}.yml"):
            if candidate.is_file():
                return candidate
    except (OSError, ValueError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise errors.InvalidInput(f"no drill plan can be named so: {reason}", field="plan") from None
    known = sorted(p.stem for p in directory.glob("*.y*ml")) if directory.is_dir() else []
    raise errors.NotFound(
        f"no drill plan {reference!r} in {directory} (known: {', '.join(known) or 'none'})", field="plan"
    )


@drill_app.command("run")
@common.handles_errors
def drill_run(
    ctx: typer.Context,
    reference: Annotated[str, typer.Argument(metavar="PLAN", help="dr/drills/PLAN.yaml, or a plan name.")],
    report_dir: ReportDirOption = None,
    junit: JunitOption = None,
    directory: PlanDirOption = DEFAULT_PLAN_DIR,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Run a drill (sysadmin): canary writes, the fault, recovery, measurement, followed step by step;
    exit 1 if any objective is missed."""
    state = common.state_of(ctx)
    path = _plan_file(reference, directory)
    text = files.read_bounded(path, field="plan")
    _check_destinations(report_dir=report_dir, junit=junit)
    started = state.api().post("/v1/drills/runs", {"plan_yaml": text, "file_name": path.name})
    output.stderr.print(
        f"drill run {started['id']} started; "
        f"if it stops, finish it with `cloudctl drill resume {started['id']}`",
        highlight=False,
    )
    _follow_and_finish(state, started, report_dir=report_dir, junit=junit, deadline_s=timeout_s)


@drill_app.command("resume")
@common.handles_errors
def drill_resume(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The id of the interrupted drill run.")],
    report_dir: ReportDirOption = None,
    junit: JunitOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Finish a drill killed mid-way, from its last finished phase; exit 1 if an objective is missed."""
    state = common.state_of(ctx)
    _check_destinations(report_dir=report_dir, junit=junit)
    started = state.api().post(f"/v1/drills/runs/{client.segment(run_id, field='run')}/resume")
    _follow_and_finish(state, started, report_dir=report_dir, junit=junit, deadline_s=timeout_s)


@drill_app.command("report")
@common.handles_errors
def drill_report_command(
    ctx: typer.Context,
    run_id: Annotated[
        str, typer.Argument(metavar="RUN", help="A drill run id, as `drill history` shows it.")
    ],
    report_dir: ReportDirOption = None,
    junit: JunitOption = None,
) -> None:
    """The report of a finished drill run: shown, and written as JSON, Markdown, HTML and JUnit files;
    exit 1 if it missed an objective."""
    state = common.state_of(ctx)
    _check_destinations(report_dir=report_dir, junit=junit)
    _finish(state, _report(state, run_id), report_dir=report_dir, junit=junit)


def _check_destinations(*, report_dir: Path | None, junit: Path | None) -> None:
    """Refuse, before anything runs, a report directory or JUnit file that cannot be made there."""
    for path, field, directory in ((report_dir, "report-dir", True), (junit, "junit", False)):
        if path is None:
            continue
        if path.exists():
            if path.is_dir() != directory:
                being = "is not" if directory else "is"
                raise errors.InvalidInput(f"{errors.named_path(path)} {being} a directory", field=field)
            continue
        above = next(parent for parent in path.parents if parent.exists())
        if not above.is_dir():
            raise errors.InvalidInput(f"{errors.named_path(above)} is not a directory", field=field)


def _report(state: common.State, run_id: str) -> drill_report.DrillReport:
    from cloudctl.model import drill_report

    data = state.api().get(f"/v1/drills/runs/{client.segment(run_id, field='run')}/report")
    return drill_report.DrillReport.model_validate(data)


def _follow_and_finish(
    state: common.State,
    started: dict[str, Any],
    *,
    report_dir: Path | None,
    junit: Path | None,
    deadline_s: float,
) -> None:
    """Show each new timeline step the API reports until the run stops; then its report."""
    from rich.text import Text

    api = state.api()
    run_id, plan = started["id"], started["plan"]
    narrate = not output.stderr.is_terminal  # logs (CI) get one line per step; terminals a live line
    shown: set[tuple[str, str, str]] = set()
    with output.stderr.status(Text(f"drill {plan}: starting")) as status:

        def show(run: dict[str, Any]) -> None:
            # Steps are known by what they say, not by position: each is shown once, whichever
            # poll first carries it.
            for step in run["timeline"]:
                key = (step["at"], step["step"], step.get("detail") or "")
                if key in shown:
                    continue
                shown.add(key)
                line = f"drill {plan} [{step['offset_s']:9.1f} s] {step['step']}"
                if step.get("detail"):
                    line += f" — {step['detail']}"
                status.update(Text(line))
                if narrate:
                    output.stderr.print(line, highlight=False, markup=False)

        final = client.wait_for(
            lambda: api.get(f"/v1/drills/runs/{client.segment(run_id, field='run')}"),
            done=lambda run: run["state"] != states.DrillRunState.RUNNING,
            deadline_s=deadline_s,
            what=f"drill {run_id}",
            on_poll=show,
        )
    if final["state"] != states.DrillRunState.DONE:
        raise errors.OperationFailed(
            f"drill {run_id} is {final['state']}"
            + (f" ({final['error']})" if final.get("error") else "")
            + f": `cloudctl drill resume {run_id}`",
            field="run",
        )
    _finish(state, _report(state, run_id), report_dir=report_dir, junit=junit)


def _finish(
    state: common.State, report: drill_report.DrillReport, *, report_dir: Path | None, junit: Path | None
) -> None:
    """Write the reports, show the summary, and exit 1 when an objective was missed."""
    from cloudctl.cli import drill_views

    target = report_dir or state.home / "drills" / f"{report.plan}-{_stamp(report.started_at)}"
    field = "report-dir"
    try:
        written = drill_views.write_report(report, directory=target)
        if junit is not None:
            field = "junit"
            drill_views.write_junit(report, junit)
    except OSError as error:
        where = errors.named_path(Path(error.filename)) if error.filename else errors.named_path(target)
        raise errors.OperationFailed(
            f"cannot write {where}: {error.strerror or error}", field=field
        ) from None

    def render() -> None:
        for renderable in drill_views.render_console(report):
            output.stdout.print(renderable)

    state.emit(report, render)
    output.stderr.print(
        f"reports: {written.directory} (report.html, report.md, report.json, junit.xml)",
        highlight=False,
        markup=False,
    )
    if not report.passed:
        raise typer.Exit(1)


def _stamp(iso: str) -> str:
    """``2026-01-01T18:00:00Z`` → ``20260101T180000Z``: sortable and safe in a path."""
    return re.sub(r"[^0-9TZ]", "", iso) or "unknown"
