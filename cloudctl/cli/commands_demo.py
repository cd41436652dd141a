"""``cloudctl demo`` (a guided run on the simulator centers) and ``cloudctl sim`` (fault injection).

The demo only calls services; it leaves the state as it found it (every
reservation it makes is released, every fault it injects is cleared), so it can
run again and again in the same home.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cloudctl import errors
from cloudctl.cli import commands_core, commands_org, common, output

if TYPE_CHECKING:
    from cloudctl.services import context as ctx_module
    from cloudctl.services import identity

sim_app = typer.Typer(help="The simulator centers: inject and clear faults.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    app.add_typer(sim_app, name="sim")


def _step(number: int, title: str) -> None:
    output.stdout.rule(f"[bold cyan]{number}. {title}", align="left")


def _say(text: str) -> None:
    output.stdout.print(text, highlight=False)


@common.handles_errors
def demo(
    ctx: typer.Context,
    department: Annotated[str, typer.Option(help="The department the demo orders for.")] = "shinan-health",
    center: Annotated[str, typer.Option(help="The local center the demo places in.")] = "",
) -> None:
    """A guided end-to-end run on the simulator centers (safe to repeat)."""
    from cloudctl.model import quotas as q
    from cloudctl.model import topology as topo
    from cloudctl.services import faults, orgs, setup
    from cloudctl.services import quotas as quotas_service
    from cloudctl.services import status as status_service

    state = common.state_of(ctx)
    context = state.context

    _step(1, "Initialise the state from the topology")
    result = setup.initialise(context)
    _say(
        f"{result.outcome}: {result.store} from {result.topology_file} "
        f"({result.centers} centers; topology sha256 {result.topology_sha256[:12]}…)"
    )
    sysadmin = _break_glass(context, "sysadmin")
    topology = context.topology
    local = [c.name for c in topology.centers_with_role(topo.CenterRole.LOCAL)]
    center = center or local[0]

    _step(2, "The four centers of two sites, and the links between them")
    commands_core.render_status(output.to_data(status_service.overview(context)))

    _step(3, "The org tree: city → district or bureau → department")
    nodes = orgs.list_nodes(context)
    branch = next((node.path for node in nodes if node.id == department), [])
    shown = [node for node in nodes if node.depth <= 1 or node.parent in branch]
    output.stdout.print(commands_org.tree(output.to_data(shown)))
    _say(f"({len(nodes)} org nodes in all; `cloudctl dept list` shows every one)")

    _step(4, f"Quota of {department} on {center}, with the headroom its ancestors leave")
    commands_org.render_quota(output.to_data(quotas_service.show_quota(context, department, center=center)))

    offering = topology.offering("vm.medium")
    count = 2
    amounts = q.as_names(q.scale(offering.amounts(), count))
    _step(5, f"Reserve {count} × {offering.name} ({offering.display_name}) for {department} on {center}")
    reservation = quotas_service.reserve(
        context, department, center=center, amounts=amounts, purpose="demo: two application servers"
    )
    _say(f"reservation {reservation.id}: {amounts}")
    view = quotas_service.show_quota(context, department, center=center)
    commands_org.render_quota(output.to_data(view))
    parent = view.path[-2] if len(view.path) > 1 else view.path[-1]
    _say(
        f"the same amounts now count against {parent} and {view.path[0]} too (the counters roll up the tree)"
    )

    _step(6, "Ask for more than the tree allows: refused, naming the quota that ran out")
    too_much = {"vcpu": 10_000}
    try:
        quotas_service.reserve(context, department, center=center, amounts=too_much, purpose="demo: too much")
    except errors.QuotaExceeded as refused:
        _say(f"refused (exit code {refused.exit_code}): {refused.one_line()}")
        for shortfall in refused.shortfalls[1:]:
            _say(f"  also: {shortfall.describe()}")

    _step(7, "Commit (the servers exist now), then release (they are gone)")
    committed = quotas_service.commit(context, reservation.id)
    _say(f"{committed.id} {committed.state}")
    released = quotas_service.release(context, reservation.id)
    _say(f"{released.id} {released.state}; {department} is back where it started")

    other = local[1] if len(local) > 1 else center
    _self_service(context, department=department, center=center, sysadmin=sysadmin)

    _step(12, f"Fault injection on the simulator: take {other} down, look, bring it back")
    fault = faults.inject(context, kind="center-down", center=other, principal=sysadmin)
    health = {c.name: c.health for c in status_service.overview(context).centers}
    _say(f"injected {fault.id}: health of {other} is now [red]{health[other]}[/]")
    faults.clear(context, fault_id=fault.id, principal=sysadmin)
    health = {c.name: c.health for c in status_service.overview(context).centers}
    _say(f"cleared {fault.id}: health of {other} is {health[other]} again")

    _step(13, "A DR drill: lose qd-a for real (canary writes, fault, recovery, measurement)")
    _drill(context, simulated=state.simulated_time, operator=sysadmin)

    _step(14, "What next: run the management center and log in to it")
    home = f" --home {state.home}" if str(state.home) != ".cloudctl" else ""
    glass = "--as secadmin --reason 'first operator token'"
    for command, why in [
        (f"cloudctl{home} serve --port 8080", "the API under /v1, the reconcilers and /metrics"),
        (
            f"cloudctl{home} {glass} token create --role sysadmin -o json > op.json",
            "the first operator's token (break-glass: recorded with your OS user, host and reason)",
        ),
        (
            "jq -r .secret op.json | cloudctl login --api http://127.0.0.1:8080 --name local",
            "store the API and the token in ~/.config/cloudctl/config.yaml (mode 0600)",
        ),
        ("cloudctl status", "every operator command now goes through the API as that person"),
    ]:
        _say(f"  [bold]{command}[/]\n      {why}")


def _drill(context: ctx_module.Context, *, simulated: bool, operator: identity.Principal) -> None:
    """A short ``lose-local-center`` drill, in real time unless ``--simulated-time``."""
    from pathlib import Path

    from rich.text import Text

    from cloudctl.cli import drill_views
    from cloudctl.model import drills
    from cloudctl.model import topology as topo
    from cloudctl.services import drills as drill_service

    local = context.topology.centers_with_role(topo.CenterRole.LOCAL)[0].name
    shipped = Path("dr/drills/lose-qd-a.yaml")
    if shipped.exists() and local == "qd-a":
        plan = drills.parse(shipped.read_text(encoding="utf-8"))
    else:
        plan = drills.from_data(
            {
                "name": "demo-lose-local",
                "scenario": {"kind": "lose-local-center", "center": local},
                "scope": {"tiers": [t.name for t in context.topology.tiers[:2]]},
            }
        )
    # As short as the plan allows: one replication interval of the slowest tier in scope.
    intervals = [float(tier.dr_interval_s or 0) for tier in drills.tiers_in_scope(plan, context.topology)]
    quick = plan.canary.model_copy(update={"warmup_s": max([10.0, *intervals]), "workloads_per_tier": 1})
    plan = plan.model_copy(update={"canary": quick, "steps": (), "simulated_time": simulated})
    with output.stderr.status(Text(f"drill {plan.name}: starting")) as status:

        def on_step(step: object) -> None:
            offset = getattr(step, "offset_s", 0.0)
            status.update(Text(f"drill {plan.name} [{offset:6.1f} s] {getattr(step, 'step', '')}"))
            _say(f"  [{offset:6.1f} s] {getattr(step, 'step', '')} {getattr(step, 'detail', '')}")

        report = drill_service.run_drill(context, plan=plan, on_step=on_step, principal=operator)
    for renderable in drill_views.render_console(report):
        output.stdout.print(renderable)


DEMO_REASON = "cloudctl demo: a guided run on the simulator centers"


def _break_glass(context: ctx_module.Context, role: str) -> identity.Principal:
    """The demo plays each operator at the console: each role is a recorded break-glass use."""
    from cloudctl.services import audit

    return audit.record_break_glass(context, role=role, reason=DEMO_REASON)


def _self_service(
    context: ctx_module.Context, *, department: str, center: str, sysadmin: identity.Principal
) -> None:
    """Steps 8-11: a department orders through its token; an operator approves; it is deleted again."""
    from cloudctl.cli import commands_selfservice
    from cloudctl.services import audit, identity, provisioning, workloads
    from cloudctl.services import requests as requests_service

    secadmin, auditor = _break_glass(context, "secadmin"), _break_glass(context, "auditor")

    _step(8, f"A token for {department}, and the department orders from the catalog")
    issued = identity.create_token(
        context, principal=secadmin, role="dept-admin", department=department, name="demo"
    )
    _say(
        f"token {issued.token.id} issued (secret shown once: {issued.secret[:12]}…; "
        "only a salted hash is kept)"
    )
    principal = identity.authenticate(context, authorization=f"Bearer {issued.secret}", source="demo")
    body = requests_service.RequestCreate(offering="vm.small", count=2, tier="gold", name="demo-portal")
    small, _ = requests_service.submit(context, principal=principal, body=body)
    commands_selfservice.render_request(output.to_data(small))

    _step(9, "Provisioning on the simulator centers (the reconciler `cloudctl serve` runs)")
    with output.stderr.status("provisioning…"):
        provisioning.reconcile(context, kind="request", object_id=small.id)
    commands_selfservice.render_workload(
        output.to_data(workloads.get(context, principal=principal, workload_id=small.workload_id or ""))
    )

    _step(10, "A larger request waits for an operator")
    big_body = requests_service.RequestCreate(
        offering="vm.small", count=5, tier="silver", preferred_center=center
    )
    big, _ = requests_service.submit(context, principal=principal, body=big_body)
    commands_selfservice.render_request(output.to_data(big))
    approved = requests_service.approve(context, principal=sysadmin, request_id=big.id)
    _say(f"approved by {sysadmin.id} (sysadmin): {approved.state}")
    with output.stderr.status("provisioning…"):
        provisioning.reconcile(context, kind="request", object_id=big.id)

    _step(11, "The department deletes both; resources go first, then the quota comes back")
    for request in (small, big):
        workloads.delete(context, principal=principal, workload_id=request.workload_id or "")
    with output.stderr.status("deleting…"):
        provisioning.run_pending(context)
    for request in (small, big):
        gone = workloads.get(context, principal=principal, workload_id=request.workload_id or "")
        _say(f"{gone.id}: {gone.state}")
    identity.revoke_token(context, principal=secadmin, token_id=issued.token.id)
    verification = audit.verify(context, principal=auditor)
    _say(f"token revoked; audit chain intact: {verification.ok} ({verification.records} records)")


@sim_app.command("inject")
@common.handles_errors
def sim_inject(
    ctx: typer.Context,
    kind: Annotated[
        str, typer.Argument(help="center-down, link-cut, link-degraded, api-error-rate or corrupt-replica.")
    ],
    center: Annotated[str, typer.Option(help="The center the fault hits (one end, for a link).")],
    peer: Annotated[str | None, typer.Option(help="The other end of the link.")] = None,
    factor: Annotated[float | None, typer.Option(help="How many times slower a degraded link is.")] = None,
    rate: Annotated[float | None, typer.Option(help="Probability that one API operation fails.")] = None,
    workload: Annotated[str | None, typer.Option(help="corrupt-replica: whose data is damaged.")] = None,
    key: Annotated[
        str | None, typer.Option(help="corrupt-replica: which object (default: the first).")
    ] = None,
) -> None:
    """Inject a fault into the simulated centers; it holds until cleared."""
    from cloudctl.services import faults

    state = common.state_of(ctx)
    operator = state.operator()
    fault = faults.inject(
        state.context,
        kind=kind,
        center=center,
        peer=peer,
        factor=factor,
        rate=rate,
        workload=workload,
        key=key,
        principal=operator,
    )
    state.emit(fault, lambda: _say(f"injected {fault.id}"))


@sim_app.command("faults")
@common.handles_errors
def sim_faults(ctx: typer.Context) -> None:
    """The faults in force."""
    from cloudctl.services import faults

    state = common.state_of(ctx)
    state.operator()
    items = faults.list_faults(state.context)
    state.emit_table(
        items,
        ["fault", "kind", "center", "link", "factor", "rate", "injected"],
        lambda f: [f.id, f.kind, f.center, " ↔ ".join(f.link or []) or None, f.factor, f.rate, f.injected_at],
    )


@sim_app.command("clear")
@common.handles_errors
def sim_clear(
    ctx: typer.Context,
    fault_id: Annotated[
        str | None, typer.Argument(metavar="[FAULT]", help="Fault id; all faults if omitted.")
    ] = None,
) -> None:
    """Clear one fault, or all of them."""
    from cloudctl.services import faults

    state = common.state_of(ctx)
    operator = state.operator()
    cleared = faults.clear(state.context, fault_id=fault_id, principal=operator)
    state.emit({"cleared": cleared}, lambda: _say(f"cleared {cleared} fault(s)"))
