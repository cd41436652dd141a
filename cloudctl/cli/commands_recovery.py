"""``cloudctl replication``, ``failover`` and ``failback``: keeping data copied and moving workloads.

A failover shows its recovery plan first, then runs it step by step with a
progress bar; a run interrupted (Ctrl-C, a crash) is resumed with ``--resume``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cloudctl import errors
from cloudctl.cli import common, output

if TYPE_CHECKING:
    from cloudctl.services import context as ctx_module
    from cloudctl.services import recovery as recovery_service

replication_app = typer.Typer(
    help="Replication streams: where every protected workload's data is copied.", no_args_is_help=True
)


failover_app = typer.Typer(
    help="Move the workloads off a center; `failover resume RUN` finishes an interrupted run.",
    invoke_without_command=True,
)


def register(app: typer.Typer) -> None:
    app.add_typer(replication_app, name="replication")
    failover_app.callback()(failover)
    failover_app.command("resume")(failover_resume)
    app.add_typer(failover_app, name="failover")
    app.command("failback")(failback)


@replication_app.command("status")
@common.handles_errors
def replication_status(
    ctx: typer.Context,
    dept: Annotated[str | None, typer.Option(help="Only this department's streams.")] = None,
    tier: Annotated[str | None, typer.Option(help="Only streams of this tier.")] = None,
) -> None:
    """Every stream with its mode, last consistent point and current lag (= current RPO)."""
    from cloudctl.services import recovery

    state = common.state_of(ctx)
    streams = recovery.status(state.context, department=dept, tier=tier)

    def render() -> None:
        table = output.table(
            None,
            [
                "workload",
                "tier",
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
        for s in streams:
            style = "bold red" if s.over_target else None
            table.add_row(
                s.workload_id,
                s.tier,
                f"{s.source} → {s.target}",
                s.mode,
                s.state,
                s.last_consistent_at or "–",
                f"{s.lag_s:,.1f}",
                f"{s.rpo_target_s:,.0f}",
                f"{s.bytes_copied / 2**20:,.2f}",
                style=style,
            )
        output.stdout.print(table)
        over = [s for s in streams if s.over_target]
        if over:
            output.stdout.print(f"[bold red]{len(over)} stream(s) over their tier's RPO target[/]")

    state.emit(streams, render)


@replication_app.command("run")
@common.handles_errors
def replication_run(ctx: typer.Context) -> None:
    """Run the replication passes that are due now (what `cloudctl serve` does every second)."""
    from cloudctl.services import recovery, replication_points

    state = common.state_of(ctx)
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
    """Replication points: the volume snapshots taken when a DR copy reached a consistent point."""
    from cloudctl.services import replication_points

    state = common.state_of(ctx)
    points = replication_points.list_points(state.context, workload_id=workload, department=dept)

    def render() -> None:
        table = output.table(
            None, ["workload", "center", "volume", "snapshot", "seq", "consistent at", "state"], []
        )
        for point in points:
            failed = point.state != "ready"
            table.add_row(
                point.workload_id,
                point.center,
                point.volume_name,
                point.snapshot_name if point.snapshot_id else "–",
                str(point.seq),
                point.consistent_at or "–",
                f"{point.state}: {point.last_error}" if failed and point.last_error else point.state,
                style="bold red" if failed else None,
            )
        output.stdout.print(table)

    state.emit(points, render)


def _render_plan(plan: recovery_service.PlanPublic) -> None:
    output.stdout.print(
        f"[bold]{plan.kind}[/] ({plan.mode}) from {plan.from_center}"
        + (f" to {plan.to_center}" if plan.to_center else "")
        + f": {len(plan.steps)} step(s)"
    )
    output.stdout.print(
        output.table(
            "Recovery plan (in order: tier priority, then workload)",
            ["#", "workload", "tier", "action", "target", "why"],
            [
                [i + 1, s["workload_id"], s["tier"], s["action"], s["target"], s["why"]]
                for i, s in enumerate(plan.steps)
            ],
        )
    )
    for stranded in plan.stranded:
        output.stdout.print(
            f"[yellow]cannot recover[/] {stranded['workload_id']} ({stranded['tier']}): {stranded['reason']}",
            highlight=False,
        )


def _execute(context: ctx_module.Context, run_id: str, total: int) -> recovery_service.RunPublic:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from cloudctl.services import recovery

    with Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.stderr,
        transient=False,
    ) as progress:
        task = progress.add_task(f"run {run_id}", total=total)

        def advance(step: dict[str, object], done: int, all_steps: int) -> None:
            progress.update(task, completed=done, description=f"{step['action']} {step['workload_id']}")

        return recovery.execute(context, run_id, on_step=advance)


def _render_run(run: recovery_service.RunPublic) -> None:
    output.stdout.print(f"run {run.id}: {run.state}, {run.steps_done}/{run.steps_total} steps")
    rows = [
        [
            workload_id,
            outcome.get("served_in", outcome.get("traffic_to", "–")),
            outcome.get("writes_lost", "–"),
            f"{outcome['rpo_s']:.1f}" if "rpo_s" in outcome else "–",
        ]
        for workload_id, outcome in run.workloads.items()
    ]
    output.stdout.print(output.table(None, ["workload", "serves in", "writes lost", "data loss s"], rows))


@common.handles_errors
def failover(
    ctx: typer.Context,
    from_center: Annotated[str | None, typer.Option("--from", help="The center to leave.")] = None,
    to_center: Annotated[
        str | None, typer.Option("--to", help="Where to go (default: the best copy).")
    ] = None,
    planned: Annotated[
        bool | None,
        typer.Option(
            "--planned/--unplanned",
            help="Planned ships the last delta first (no loss); unplanned accepts the loss the tier allows.",
        ),
    ] = None,
    dept: Annotated[str | None, typer.Option(help="Only this department's workloads.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
) -> None:
    """Move the workloads off a center: the recovery plan is shown, then executed step by step."""
    from cloudctl.services import identity, recovery

    if ctx.invoked_subcommand is not None:
        return
    state = common.state_of(ctx)
    if from_center is None:
        raise errors.InvalidInput("name the center to leave", field="from")
    if planned is None:
        raise errors.InvalidInput("say --planned or --unplanned", field="mode")
    plan = recovery.plan_failover(
        state.context,
        principal=identity.local_operator("sysadmin"),
        from_center=from_center,
        to_center=to_center,
        planned=planned,
        department=dept,
        dry_run=dry_run,
    )
    if dry_run or not plan.run_id:
        state.emit(plan, lambda: _render_plan(plan))
        return
    if not state.wants_data:
        _render_plan(plan)
    run = _execute(state.context, plan.run_id, len(plan.steps))
    state.emit(run, lambda: _render_run(run))
    if plan.stranded:
        raise typer.Exit(1)


@common.handles_errors
def failover_resume(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="RUN")]) -> None:
    """Finish an interrupted failover or failback from its last completed step."""
    from cloudctl.services import recovery

    state = common.state_of(ctx)
    current = recovery.get_run(state.context, run_id)
    if current.state != "running":
        raise errors.Conflict(f"run {run_id} is {current.state}; nothing to resume", field="run")
    run = _execute(state.context, run_id, current.steps_total)
    if run.kind == "failback":
        recovery.finish_failback(state.context, run.id)
    state.emit(run, lambda: _render_run(run))


@common.handles_errors
def failback(
    ctx: typer.Context,
    to_center: Annotated[str, typer.Option("--to", help="The center returning to service.")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; change nothing.")] = False,
) -> None:
    """Reprotect (reverse replication until consistent), then switch back in a planned failover."""
    from cloudctl.services import identity, recovery

    state = common.state_of(ctx)
    with output.stderr.status(f"reprotecting {to_center}…"):
        plan, shipped = recovery.plan_failback(
            state.context, principal=identity.local_operator("sysadmin"), to_center=to_center, dry_run=dry_run
        )
    if dry_run or not plan.run_id:
        state.emit(plan, lambda: _render_plan(plan))
        return
    if not state.wants_data:
        output.stdout.print(f"reprotected {to_center}: {shipped} object(s) shipped back")
        _render_plan(plan)
    run = _execute(state.context, plan.run_id, len(plan.steps))
    recovery.finish_failback(state.context, run.id)
    state.emit(run, lambda: _render_run(run))
