"""``cloudctl replication``, ``failover`` and ``failback``: keeping data copied and moving workloads.

Each command is a call on the API (``/v1/replication``, ``/v1/failover/runs``,
``/v1/failback/runs``). A failover or failback prints its run id as it starts, shows its
recovery plan, then follows the run the management center executes, drawing a progress bar
from what the API reports (bounded by ``--timeout``); a run interrupted (Ctrl-C, a crash, SIGKILL)
or paused by a hook is finished with ``failover resume RUN``; ``failover list`` and
``failover show RUN`` find runs. ``failover --from X ...`` is kept as an alias of
``failover run --from X ...``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cloudctl.cli import client, common, files, output
from cloudctl.model import states

if TYPE_CHECKING:
    from cloudctl.model import recovery as recovery_model

replication_app = typer.Typer(
    help="Replication streams: where every protected workload's data is copied.", no_args_is_help=True
)


failover_app = typer.Typer(
    help="Move workloads off a center (`failover run`), and find, inspect and finish runs.",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    from cloudctl.cli import commands_replication

    replication_app.command("scrub")(commands_replication.replication_scrub)
    app.add_typer(replication_app, name="replication")
    failover_app.callback()(failover_alias)
    failover_app.command("run")(failover_run)
    failover_app.command("resume")(failover_resume)
    failover_app.command("list")(failover_list)
    failover_app.command("show")(failover_show)
    app.add_typer(failover_app, name="failover")
    app.command("failback")(failback)


@replication_app.command("status")
@common.handles_errors
def replication_status(
    ctx: typer.Context,
    dept: Annotated[str | None, typer.Option(help="Only this department's workloads.")] = None,
    tier: Annotated[str | None, typer.Option(help="Only workloads of this tier.")] = None,
    unprotected: Annotated[
        bool, typer.Option("--unprotected", help="Only workloads not fully protected.")
    ] = False,
) -> None:
    """Every ready workload: protected, degraded or unprotected (with the reason), and its streams
    with their mode, last consistent point and current lag (= current RPO)."""
    state = common.state_of(ctx)
    found = state.api().get("/v1/replication/status", department=dept, tier=tier, unprotected=unprotected)[
        "data"
    ]

    def render() -> None:
        table = output.table(
            None,
            [
                "workload",
                "tier",
                "protection",
                "source → target",
                "mode",
                "state",
                "last consistent",
                "lag s",
                "target s",
                "MiB",
            ],
            [],
        )
        for workload in found:
            verdict_style = {
                states.Protection.DEGRADED: "yellow",
                states.Protection.UNPROTECTED: "bold red",
            }.get(workload["protection"])
            if not workload["streams"]:
                row = [workload["workload_id"], workload["tier"], workload["protection"], "–"]
                output.add_row(table, row, style=verdict_style)
            for s in workload["streams"]:
                output.add_row(
                    table,
                    [
                        workload["workload_id"],
                        workload["tier"],
                        workload["protection"],
                        f"{s['source']} → {s['target']}",
                        s["mode"],
                        s["state"],
                        s["last_consistent_at"] or "–",
                        f"{s['lag_s']:,.1f}",
                        f"{s['rpo_target_s']:,.0f}",
                        f"{s['bytes_copied'] / 2**20:,.2f}",
                    ],
                    style="bold red" if s["over_target"] else verdict_style,
                )
        output.stdout.print(table)
        for workload in found:
            if workload["protection"] != states.Protection.PROTECTED:
                output.stdout.print(
                    f"[bold red]{workload['protection']}[/] {output.escape(workload['workload_id'])} "
                    f"({workload['tier']}): {output.escape(workload['reason'])}",
                    highlight=False,
                )
        over = [s for w in found for s in w["streams"] if s["over_target"]]
        if over:
            output.stdout.print(f"[bold red]{len(over)} stream(s) over their tier's RPO target[/]")

    state.emit(found, render)


@replication_app.command("run")
@common.handles_errors
def replication_run(ctx: typer.Context) -> None:
    """Run the replication passes that are due now (what `cloudctl serve` does every second;
    acts on the database directly: break-glass)."""
    from cloudctl.services import recovery, replication_points

    state = common.state_of(ctx)
    recovery.authorize_operations(state.context, state.operator(), action="failover.run")
    results = recovery.run_due(state.context)
    points = replication_points.take_points(state.context, results)
    summary = [
        {
            "stream": r.stream_id,
            "copied": r.copied,
            "resent": r.resent,
            "bytes": r.bytes_copied,
            "error": r.error,
        }
        for r in results
    ]
    state.emit(
        summary,
        lambda: output.stdout.print(
            f"{len(results)} stream(s) passed; {sum(r.copied for r in results)} object(s) copied; "
            f"{len(points.taken)} replication point(s) taken, {len(points.failed)} failed"
        ),
    )


@replication_app.command("points")
@common.handles_errors
def replication_points_list(
    ctx: typer.Context,
    workload: Annotated[str | None, typer.Option(help="Only this workload's points.")] = None,
    dept: Annotated[str | None, typer.Option(help="Only this department's points.")] = None,
) -> None:
    """Replication points: the volume snapshots taken when a DR copy reached a consistent point
    (a workload with no volume: its DR bucket's kept versions at that point)."""
    state = common.state_of(ctx)
    points = state.api().get("/v1/replication/points", workload=workload, department=dept)["data"]

    def render() -> None:
        table = output.table(
            None, ["workload", "center", "volume or bucket", "snapshot", "seq", "consistent at", "state"], []
        )
        for point in points:
            failed = point["state"] != states.PointState.READY
            output.add_row(
                table,
                [
                    point["workload_id"],
                    point["center"],
                    point["volume_name"] or point["bucket"],
                    point["snapshot_name"] if point["snapshot_id"] else "–",
                    str(point["seq"]),
                    point["consistent_at"] or "–",
                    f"{point['state']}: {point['last_error']}"
                    if failed and point["last_error"]
                    else point["state"],
                ],
                style="bold red" if failed else None,
            )
        output.stdout.print(table)

    state.emit(points, render)


def _steps(data: list[dict[str, Any]]) -> list[recovery_model.RecoveryStep]:
    from cloudctl.model import recovery as recovery_model

    return [recovery_model.RecoveryStep.model_validate(step) for step in data]


def _render_plan(plan: dict[str, Any]) -> None:
    steps = _steps(plan["steps"])
    output.stdout.print(
        f"[bold]{plan['kind']}[/] ({plan['mode']}) from {plan['from_center']}"
        + (f" to {plan['to_center']}" if plan["to_center"] else "")
        + f": {len(steps)} step(s)",
        highlight=False,
    )
    if not steps and not plan["stranded"]:
        nothing = (
            "every workload whose home uses it is home"
            if plan["kind"] == "failback"
            else "no workload serves there"
        )
        output.stdout.print(f"nothing to do: {nothing}")
        return
    output.stdout.print(
        output.table(
            "Recovery plan (in order: tier priority, then workload; hooks where they are bound)",
            ["#", "workload", "tier", "action", "target", "why"],
            [
                [
                    i + 1,
                    s.workload_id or "–",
                    s.tier or "–",
                    s.action.value if s.hook is None else f"hook {s.hook.when}",
                    s.target or "–",
                    s.why if s.hook is None else _hook_text(s),
                ]
                for i, s in enumerate(steps)
            ],
        )
    )
    chosen = [s for s in steps if s.point is not None]
    if chosen:
        output.stdout.print("Recovery points (what each workload starts from):", highlight=False)
    for s in chosen:
        assert s.point is not None
        output.stdout.print(
            f"  {s.workload_id}: {s.point.id} (seq {s.point.seq}, consistent at {s.point.consistent_at})",
            highlight=False,
            soft_wrap=True,
        )
    mapped = [(s, mapping) for s in steps for mapping in s.addresses or []]
    if mapped:
        output.stdout.print("Addresses (network maps of the topology):", highlight=False)
    for s, m in mapped:
        output.stdout.print(
            f"  {m.server}: {m.from_center} {m.network} {m.old_address} → {s.target} {m.to_network} "
            f"{m.new_address} ({'kept' if m.kept else 're-mapped'})",
            highlight=False,
            soft_wrap=True,
        )
    for stranded in plan["stranded"]:
        output.stdout.print(
            f"[yellow]cannot recover[/] {stranded['workload_id']} ({stranded['tier']}): "
            f"{output.escape(stranded['reason'])}",
            highlight=False,
        )


def _hook_text(step: recovery_model.RecoveryStep) -> str:
    hook = step.hook
    assert hook is not None
    return f"{hook.label} ({hook.scope}; {hook.timeout_s:g} s; on failure {hook.on_failure.value})"


def _started(run_id: str, kind: str) -> None:
    output.stderr.print(
        f"{kind} run {run_id} started; if it stops, finish it with `cloudctl failover resume {run_id}`",
        highlight=False,
    )


RUNNING = states.RunState.RUNNING


def _follow(state: common.State, run_id: str, total: int, *, deadline_s: float) -> dict[str, Any]:
    """Poll the run until it stops running, drawing its progress from what the API reports."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    api = state.api()
    path = f"/v1/failover/runs/{client.segment(run_id, field='run')}"
    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.stderr,
        transient=False,
    ) as progress:
        task = progress.add_task(f"run {run_id}", total=total)

        def show(run: dict[str, Any]) -> None:
            last = run["progress"][-1]["id"] if run["progress"] else ""
            subject = last.split(":", 1)[-1].replace(":", " ") if last else run["state"]
            progress.update(
                task,
                completed=run["steps_done"],
                total=run["steps_total"],
                description=output.escape(subject),
            )

        return dict(
            client.wait_for(
                lambda: api.get(path),
                done=lambda run: run["state"] != RUNNING,
                deadline_s=deadline_s,
                what=f"run {run_id}",
                on_poll=show,
            )
        )


def _render_run(run: dict[str, Any]) -> None:
    output.stdout.print(
        f"run {run['id']}: {run['state']}, {run['steps_done']}/{run['steps_total']} steps"
        + (f" ({run['error']})" if run["error"] else ""),
        highlight=False,
        markup=False,
    )
    rows = [
        [
            workload_id,
            outcome.get("served_in", outcome.get("traffic_to", outcome.get("resynced_to", "–"))),
            outcome.get("writes_lost", "–"),
            f"{outcome['rpo_s']:.1f}" if "rpo_s" in outcome else "–",
        ]
        for workload_id, outcome in run["workloads"].items()
    ]
    output.stdout.print(output.table(None, ["workload", "serves in", "writes lost", "data loss s"], rows))
    for workload_id, outcome in run["workloads"].items():
        for held in outcome.get("addresses_held_there", []):
            output.stdout.print(
                f"[yellow]{output.escape(workload_id)}[/]: {output.escape(held['server'])} got "
                f"{output.escape(held['got'])}, not the planned {output.escape(held['planned'])}, "
                "which another server there holds",
                highlight=False,
                soft_wrap=True,
            )
        if outcome.get("superseded_count"):
            output.stdout.print(
                f"{workload_id}: the resync replaced {outcome['superseded_count']} object(s) "
                f"{outcome['resynced_to']} held; its bucket keeps them as versions "
                f"(`cloudctl failover show {run['id']} -o json` names them)",
                highlight=False,
                soft_wrap=True,
            )
    for hook in run["hooks"]:
        verdict = (
            "ok" if hook.get("ok") else f"[bold red]failed[/] ({output.escape(str(hook.get('error', '')))})"
        )
        what = output.escape(f"hook {hook.get('when')} {hook.get('scope')}: {hook.get('hook')}")
        output.stdout.print(f"{what}: {verdict}")
    if run["resume"]:
        output.stdout.print(
            f"[yellow]{run['state']}[/]: finish it with `{output.escape(run['resume'])}`", highlight=False
        )


def _finish(state: common.State, run: dict[str, Any], *, stranded: bool = False) -> None:
    state.emit(run, lambda: _render_run(run))
    if run["state"] != states.RunState.DONE or stranded:
        raise typer.Exit(1)


FromOption = Annotated[
    list[str] | None,
    typer.Option(
        "--from",
        metavar="CENTER",
        help="A center to leave (repeat to leave several at once).",
        show_default=False,
    ),
]
ToOption = Annotated[
    str | None, typer.Option("--to", metavar="CENTER", help="Where to go (default: the best copy).")
]
PlannedOption = Annotated[
    bool | None,
    typer.Option(
        "--planned/--unplanned",
        help="Planned ships the last delta first (no loss); unplanned accepts the loss the tier allows.",
        show_default=False,
    ),
]
PointOption = Annotated[
    str | None,
    typer.Option("--point", metavar="ID", help="Recover to this recovery point (<center>/<workload>@<seq>)."),
]
AtOption = Annotated[
    str | None,
    typer.Option("--at", metavar="TIME", help="Recover to the newest point at or before this ISO 8601 time."),
]
DeptOption = Annotated[str | None, typer.Option(metavar="DEPT", help="Only this department's workloads.")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")]
HooksOption = Annotated[
    Path | None,
    typer.Option(
        "--hooks",
        metavar="FILE",
        help="YAML file of hooks (commands or HTTP calls) to run before/after step groups or tiers.",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        min=1,
        help="Stop following the run after this long (it goes on; `failover show RUN` finds it).",
    ),
]
DEFAULT_TIMEOUT_S = 3600.0
RunArgument = Annotated[str, typer.Argument(metavar="RUN", help="A run id, as `failover list` shows it.")]


def _hooks(path: Path | None) -> list[dict[str, Any]]:
    """The hooks file, checked here (errors name the file's path), sent as data."""
    if path is None:
        return []
    from cloudctl.model import recovery as recovery_model

    text = files.read_bounded(path, field="hooks")
    return [hook.model_dump(mode="json", exclude_none=True) for hook in recovery_model.parse_hooks(text)]


def _start(state: common.State, path: str, body: dict[str, Any], *, dry_run: bool, deadline_s: float) -> None:
    """POST a failover or failback, show its plan, follow the run, and exit as the run ended."""
    plan = state.api().post(path, body)
    if dry_run or not plan["run_id"]:
        state.emit(plan, lambda: _render_plan(plan))
        return
    _started(plan["run_id"], plan["kind"])
    if not state.wants_data:
        _render_plan(plan)
    run = _follow(state, plan["run_id"], len(plan["steps"]), deadline_s=deadline_s)
    _finish(state, run, stranded=bool(plan["stranded"]))


def _failover(
    ctx: typer.Context,
    *,
    from_centers: list[str] | None,
    to_center: str | None,
    planned: bool | None,
    dept: str | None,
    dry_run: bool,
    hooks_file: Path | None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    point: str | None = None,
    at: str | None = None,
) -> None:
    state = common.state_of(ctx)
    body = {
        "from_centers": from_centers or [],
        "to_center": to_center,
        "planned": planned,
        "department": dept,
        "dry_run": dry_run,
        "hooks": _hooks(hooks_file),
        "point": point,
        "at": at,
    }
    _start(state, "/v1/failover/runs", body, dry_run=dry_run, deadline_s=timeout_s)


@common.handles_errors
def failover_alias(
    ctx: typer.Context,
    from_centers: Annotated[list[str] | None, typer.Option("--from", hidden=True)] = None,
    to_center: Annotated[str | None, typer.Option("--to", hidden=True)] = None,
    planned: Annotated[bool | None, typer.Option("--planned/--unplanned", hidden=True)] = None,
    dept: Annotated[str | None, typer.Option(hidden=True)] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", hidden=True)] = False,
    hooks_file: Annotated[Path | None, typer.Option("--hooks", hidden=True)] = None,
    point: Annotated[str | None, typer.Option("--point", hidden=True)] = None,
    at: Annotated[str | None, typer.Option("--at", hidden=True)] = None,
) -> None:
    """Move workloads off a center (`failover run`), and find, inspect and finish runs.

    `cloudctl failover --from X ...` still works: it is `cloudctl failover run --from X ...`.
    """
    if ctx.invoked_subcommand is not None:
        return
    if not from_centers and planned is None and not dry_run:
        output.stdout.print(ctx.get_help())
        raise typer.Exit(0)
    _failover(
        ctx,
        from_centers=from_centers,
        to_center=to_center,
        planned=planned,
        dept=dept,
        dry_run=dry_run,
        hooks_file=hooks_file,
        point=point,
        at=at,
    )


@common.handles_errors
def failover_run(
    ctx: typer.Context,
    from_centers: FromOption = None,
    to_center: ToOption = None,
    planned: PlannedOption = None,
    dept: DeptOption = None,
    dry_run: DryRunOption = False,
    hooks_file: HooksOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
    point: PointOption = None,
    at: AtOption = None,
) -> None:
    """Move the workloads off a center (sysadmin): the run id and recovery plan are shown, then its
    progress as the management center runs it step by step.

    `--point ID` recovers that point's workload to it; `--at TIME` each workload to its newest
    recovery point at or before TIME (in the center it goes to); the plan names each point.

    Exit 0 when every step ran; 1 when a workload could not be recovered, a hook stopped the
    run, or a step failed (the run is then interrupted and `failover resume RUN` finishes it).
    """
    _failover(
        ctx,
        from_centers=from_centers,
        to_center=to_center,
        planned=planned,
        dept=dept,
        dry_run=dry_run,
        hooks_file=hooks_file,
        timeout_s=timeout_s,
        point=point,
        at=at,
    )


@common.handles_errors
def failover_resume(
    ctx: typer.Context, run_id: RunArgument, timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S
) -> None:
    """Finish an interrupted or paused failover or failback from its first step not done."""
    state = common.state_of(ctx)
    current = state.api().post(f"/v1/failover/runs/{client.segment(run_id, field='run')}/resume")
    run = _follow(state, run_id, current["steps_total"], deadline_s=timeout_s)
    _finish(state, run)


@common.handles_errors
def failover_list(
    ctx: typer.Context,
    run_state: Annotated[
        str | None,
        typer.Option("--state", help="Only runs in this state (running, paused, interrupted, done, failed)."),
    ] = None,
    kind: Annotated[str | None, typer.Option(help="Only failover or failback runs.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=200, help="At most this many, newest first.")] = 50,
) -> None:
    """Failover and failback runs, newest first: state, steps done, who started them and when."""
    state = common.state_of(ctx)
    runs = state.api().get("/v1/failover/runs", state=run_state, kind=kind, limit=limit)["data"]

    def render() -> None:
        table = output.table(
            None, ["run", "kind", "mode", "from → to", "state", "steps", "started by", "started at"], []
        )
        for run in runs:
            output.add_row(
                table,
                [
                    run["id"],
                    run["kind"],
                    run["mode"],
                    f"{run['from_center']} → {run['to_center'] or 'best copy'}",
                    run["state"],
                    f"{run['steps_done']}/{run['steps_total']}",
                    run["started_by"] or "–",
                    run["started_at"],
                ],
                style="bold red"
                if run["state"]
                in (states.RunState.INTERRUPTED, states.RunState.FAILED, states.RunState.PAUSED)
                else None,
            )
        output.stdout.print(table)
        for run in runs:
            if run["resume"]:
                output.stdout.print(
                    f"{run['id']} is {run['state']}: `{run['resume']}`", highlight=False, markup=False
                )

    state.emit(runs, render)


@common.handles_errors
def failover_show(ctx: typer.Context, run_id: RunArgument) -> None:
    """One run: its plan, the steps done (with their outcomes), hooks, and how to resume it."""
    state = common.state_of(ctx)
    run = state.api().get(f"/v1/failover/runs/{client.segment(run_id, field='run')}")

    def render() -> None:
        output.stdout.print(
            f"{run['kind']} {run['id']} ({run['mode']}) from {run['from_center']} to "
            f"{run['to_center'] or 'best copy'}: {run['state']}; started by {run['started_by'] or '–'} "
            f"at {run['started_at']}" + (f", finished {run['finished_at']}" if run["finished_at"] else ""),
            highlight=False,
        )
        done = {entry["id"] for entry in run["progress"]}
        output.stdout.print(
            output.table(
                None,
                ["#", "step", "done"],
                [
                    [i + 1, step["id"], "✓" if step["id"] in done else "–"]
                    for i, step in enumerate(run["steps"])
                ],
            )
        )
        _render_run(run)

    state.emit(run, render)


@common.handles_errors
def failback(
    ctx: typer.Context,
    to_center: Annotated[
        str, typer.Option("--to", metavar="CENTER", help="The center returning to service.")
    ],
    dry_run: DryRunOption = False,
    hooks_file: HooksOption = None,
    timeout_s: TimeoutOption = DEFAULT_TIMEOUT_S,
) -> None:
    """Bring home every workload whose home uses a center: resync it, switch back, restore the tier's layout.

    A second failback to the same center plans 0 steps. Exit 1 when a workload cannot go home
    yet or the run stopped (`failover resume RUN` finishes it).
    """
    state = common.state_of(ctx)
    body = {"to_center": to_center, "dry_run": dry_run, "hooks": _hooks(hooks_file)}
    _start(state, "/v1/failback/runs", body, dry_run=dry_run, deadline_s=timeout_s)
