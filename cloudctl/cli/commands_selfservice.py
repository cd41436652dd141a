"""``cloudctl serve``, ``token``, ``request``, ``workload`` and ``audit``: the self-service side.

In-process commands act as the operator at the management center's console, each
with the power its group needs (tokens: secadmin; audit: auditor; the rest:
sysadmin), so the separation of powers holds in what they record.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cloudctl.cli import common, output

if TYPE_CHECKING:
    from cloudctl.services import audit as audit_service
    from cloudctl.services import identity
    from cloudctl.services import requests as requests_service
    from cloudctl.services import workloads as workloads_service

token_app = typer.Typer(help="Bearer tokens for departments and operators.", no_args_is_help=True)
request_app = typer.Typer(
    help="Requests from the catalog: list, show, approve, reject.", no_args_is_help=True
)
workload_app = typer.Typer(help="Workloads: placement per center and protection.", no_args_is_help=True)
audit_app = typer.Typer(help="The keyed, hash-chained audit log (the auditor's power).", no_args_is_help=True)
audit_key_app = typer.Typer(
    help="The audit chain's key ring (kept outside the database).", no_args_is_help=True
)
audit_app.add_typer(audit_key_app, name="key")


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(token_app, name="token")
    app.add_typer(request_app, name="request")
    app.add_typer(workload_app, name="workload")
    app.add_typer(audit_app, name="audit")


def _operator(role: str = "sysadmin") -> identity.Principal:
    from cloudctl.services import identity

    return identity.local_operator(role)


@common.handles_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    reconcile_interval_s: Annotated[float, typer.Option(help="Seconds between reconcile passes.")] = 1.0,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes on the port; the reconcilers stay in this one.")
    ] = 1,
    provision_workers: Annotated[
        int, typer.Option(min=1, help="Objects the provisioning reconciler works on at once.")
    ] = 16,
    per_center: Annotated[
        int, typer.Option(min=1, help="... of which at most this many touch one center ...")
    ] = 8,
    per_backend: Annotated[
        int, typer.Option(min=1, help="... and this many one backend (an OpenStack cloud, the simulator).")
    ] = 16,
) -> None:
    """Run one replica of the management center: the HTTP API and /metrics; the reconcilers and
    periodic passes while the database elects it leader (Ctrl-C or SIGTERM stops cleanly)."""
    from cloudctl.api import server
    from cloudctl.services import provisioning

    state = common.state_of(ctx)
    state.context.require_initialised()
    server.serve(
        state.context,
        host=host,
        port=port,
        announce=lambda: output.stderr.print(
            f"cloudctl serving on http://{host}:{port} (API under /v1, docs at /docs)"
        ),
        reconcile_interval_s=reconcile_interval_s,
        workers=workers,
        bounds=provisioning.Bounds(workers=provision_workers, per_center=per_center, per_backend=per_backend),
    )


# --- tokens ----------------------------------------------------------------------------------------


@token_app.command("create")
@common.handles_errors
def token_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="dept-admin, dept-user, sysadmin, secadmin or auditor.")],
    dept: Annotated[str | None, typer.Option(help="The department (for dept-admin and dept-user).")] = None,
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "",
    expires_in_days: Annotated[
        float | None, typer.Option(min=0.001, help="Expire after this many days.")
    ] = None,
) -> None:
    """Issue a bearer token; the secret is printed once and only its salted hash is kept."""
    from cloudctl.services import identity

    state = common.state_of(ctx)
    issued = identity.create_token(
        state.context,
        principal=identity.local_operator("secadmin"),
        role=role,
        department=dept,
        name=name,
        expires_in_s=None if expires_in_days is None else expires_in_days * 86400,
    )

    def render() -> None:
        output.stdout.print(
            f"token {issued.token.id} ({issued.token.role}, {issued.token.department or 'operators'})"
        )
        output.stdout.print(issued.secret, highlight=False, soft_wrap=True)
        output.stderr.print("this is the only time the secret is shown; keep it safe")

    state.emit(issued, render)


@token_app.command("list")
@common.handles_errors
def token_list(
    ctx: typer.Context,
    all_tokens: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
) -> None:
    """Tokens (never their secrets)."""
    from cloudctl.services import identity

    state = common.state_of(ctx)
    items = identity.list_tokens(
        state.context, principal=identity.local_operator("secadmin"), include_revoked=all_tokens
    )
    state.emit(
        items,
        lambda: output.stdout.print(
            output.table(
                None,
                ["token", "name", "role", "department", "created", "expires", "revoked"],
                [
                    [t.id, t.name, t.role, t.department or "–", t.created_at, t.expires_at, t.revoked_at]
                    for t in items
                ],
            )
        ),
    )


@token_app.command("revoke")
@common.handles_errors
def token_revoke(ctx: typer.Context, token_id: Annotated[str, typer.Argument(metavar="TOKEN")]) -> None:
    """Revoke a token at once; requests carrying it are refused from now on."""
    from cloudctl.services import identity

    state = common.state_of(ctx)
    revoked = identity.revoke_token(
        state.context, principal=identity.local_operator("secadmin"), token_id=token_id
    )
    state.emit(revoked, lambda: output.stdout.print(f"revoked {revoked.id} at {revoked.revoked_at}"))


# --- requests --------------------------------------------------------------------------------------


def render_request(item: requests_service.RequestPublic) -> None:
    output.stdout.print(
        f"[bold]{item.id}[/] {item.department}: {item.count} × {item.offering}, tier {item.tier}, "
        f"data {item.data_class} — [bold]{item.state}[/]",
        highlight=False,
    )
    for step in item.steps:
        output.stdout.print(f"  {step.at}  {step.step}", highlight=False)
    for reason in item.reasons:
        output.stdout.print(f"  reason: {reason}", highlight=False)
    if item.approval_policy_ids:
        output.stdout.print(f"  approval decided by: {', '.join(item.approval_policy_ids)}", highlight=False)


@request_app.command("list")
@common.handles_errors
def request_list(
    ctx: typer.Context,
    state_filter: Annotated[str | None, typer.Option("--state", help="Only requests in this state.")] = None,
    dept: Annotated[str | None, typer.Option(help="Only this department's requests.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Requests, oldest first."""
    from cloudctl.services import requests as requests_service

    state = common.state_of(ctx)
    items, _ = requests_service.list_requests(
        state.context, principal=_operator(), state=state_filter, department=dept, limit=limit
    )
    state.emit(
        items,
        lambda: output.stdout.print(
            output.table(
                None,
                ["request", "department", "offering", "count", "tier", "state"],
                [[r.id, r.department, r.offering, r.count, r.tier, r.state] for r in items],
            )
        ),
    )


@request_app.command("show")
@common.handles_errors
def request_show(ctx: typer.Context, request_id: Annotated[str, typer.Argument(metavar="REQUEST")]) -> None:
    """One request and its lifecycle, step by step."""
    from cloudctl.services import requests as requests_service

    state = common.state_of(ctx)
    item = requests_service.get(state.context, principal=_operator(), request_id=request_id)
    state.emit(item, lambda: render_request(item))


@request_app.command("approve")
@common.handles_errors
def request_approve(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    provision: Annotated[
        bool, typer.Option(help="Provision it now (otherwise `cloudctl serve` does).")
    ] = True,
) -> None:
    """Approve a request that waits for an operator; by default provision it right away."""
    from cloudctl.services import provisioning
    from cloudctl.services import requests as requests_service

    state = common.state_of(ctx)
    item = requests_service.approve(state.context, principal=_operator(), request_id=request_id)
    if provision:
        with output.stderr.status(f"provisioning {request_id}…"):
            result = provisioning.reconcile(state.context, kind="request", object_id=request_id)
        if not result.done:
            output.stderr.print(f"not finished ({result.message}); `cloudctl serve` will retry")
        item = requests_service.get(state.context, principal=_operator(), request_id=request_id)
    state.emit(item, lambda: render_request(item))


@request_app.command("reject")
@common.handles_errors
def request_reject(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(metavar="REQUEST")],
    reason: Annotated[str, typer.Option(help="Why; the department sees it.")],
) -> None:
    """Reject a request that waits for an operator; its quota is released."""
    from cloudctl.services import requests as requests_service

    state = common.state_of(ctx)
    item = requests_service.reject(state.context, principal=_operator(), request_id=request_id, reason=reason)
    state.emit(item, lambda: render_request(item))


# --- workloads -------------------------------------------------------------------------------------


def render_workload(item: workloads_service.WorkloadPublic) -> None:
    protection = item.protection
    output.stdout.print(
        f"[bold]{item.id}[/] {item.name} ({item.department}): {item.count} × {item.offering} — "
        f"[bold]{item.state}[/]",
        highlight=False,
    )
    output.stdout.print(
        f"  tier {protection.tier}: {protection.local}, DR copy {protection.dr_copy}, "
        f"RPO ≤ {protection.rpo_target_s} s, RTO ≤ {protection.rto_target_s} s, GB/T 20988 level "
        f"{protection.gbt20988_level}",
        highlight=False,
    )
    output.stdout.print(
        output.table(
            None,
            ["center", "role", "state", "amounts", "resources"],
            [
                [
                    p.center,
                    p.role,
                    p.state,
                    ", ".join(f"{k}={v}" for k, v in p.amounts.items()),
                    ", ".join(r["name"] for r in p.resources) or "–",
                ]
                for p in item.placements
            ],
        )
    )


@workload_app.command("list")
@common.handles_errors
def workload_list(
    ctx: typer.Context,
    dept: Annotated[str | None, typer.Option(help="Only this department's workloads.")] = None,
    state_filter: Annotated[str | None, typer.Option("--state", help="Only workloads in this state.")] = None,
    tier: Annotated[str | None, typer.Option(help="Only workloads of this tier.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """Workloads with their tier and where they run."""
    from cloudctl.services import workloads as workloads_service

    state = common.state_of(ctx)
    items, _ = workloads_service.list_workloads(
        state.context, principal=_operator(), department=dept, state=state_filter, tier=tier, limit=limit
    )
    state.emit(
        items,
        lambda: output.stdout.print(
            output.table(
                None,
                ["workload", "name", "department", "offering", "tier", "state", "centers"],
                [
                    [
                        w.id,
                        w.name,
                        w.department,
                        f"{w.count} × {w.offering}",
                        w.tier,
                        w.state,
                        ", ".join(f"{p.center}:{p.role}" for p in w.placements),
                    ]
                    for w in items
                ],
            )
        ),
    )


@workload_app.command("show")
@common.handles_errors
def workload_show(
    ctx: typer.Context, workload_id: Annotated[str, typer.Argument(metavar="WORKLOAD")]
) -> None:
    """One workload: placement per center and protection."""
    from cloudctl.services import workloads as workloads_service

    state = common.state_of(ctx)
    item = workloads_service.get(state.context, principal=_operator(), workload_id=workload_id)
    state.emit(item, lambda: render_workload(item))


# --- audit -----------------------------------------------------------------------------------------


def _render_audit(items: list[audit_service.AuditRecordPublic]) -> None:
    output.stdout.print(
        output.table(
            None,
            ["seq", "at", "actor", "role", "source", "action", "target", "outcome"],
            [
                [
                    r.seq,
                    r.at,
                    r.actor,
                    r.role,
                    r.source,
                    r.action,
                    f"{r.target_type} {r.target_id}",
                    r.outcome,
                ]
                for r in items
            ],
        )
    )


@audit_app.command("list")
@common.handles_errors
def audit_list(
    ctx: typer.Context,
    action: Annotated[str | None, typer.Option(help="Only this action, e.g. request.create.")] = None,
    outcome: Annotated[str | None, typer.Option(help="success, denied, refused or failed.")] = None,
    after: Annotated[int, typer.Option(help="Records after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10000)] = 100,
) -> None:
    """Audit records, oldest first."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    items = audit_service.list_records(
        state.context,
        principal=_operator("auditor"),
        after_seq=after,
        limit=limit,
        action=action,
        outcome=outcome,
    )
    state.emit(items, lambda: _render_audit(items))


@audit_app.command("export")
@common.handles_errors
def audit_export(
    ctx: typer.Context,
    output_file: Annotated[Path, typer.Option("--file", help="Where to write the JSON lines.")],
    after: Annotated[int, typer.Option(help="Records after this sequence number.")] = 0,
) -> None:
    """Export the audit log as JSON lines (one record per line, with its hashes)."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    result = audit_service.export(
        state.context, principal=_operator("auditor"), path=output_file, after_seq=after
    )
    state.emit(result, lambda: output.stdout.print(f"exported {result.records} record(s) to {result.path}"))


@audit_app.command("retention")
@common.handles_errors
def audit_retention(
    ctx: typer.Context,
    archive_dir: Annotated[
        Path | None, typer.Option(help="Archive directory (default <home>/audit-archive).")
    ] = None,
) -> None:
    """Archive records older than the retention period (CLOUDCTL_AUDIT_RETENTION_DAYS, 180), then prune."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    result = audit_service.apply_retention(state.context, archive_dir=archive_dir)
    state.emit(
        result,
        lambda: output.stdout.print(
            f"archived and pruned {result.records} record(s)"
            + (f" to {result.path}" if result.records else "")
        ),
    )


@audit_app.command("verify")
@common.handles_errors
def audit_verify(ctx: typer.Context) -> None:
    """Recompute the chain under the key ring and check it against the newest checkpoint; exit 1
    and name the first bad record if anything was changed, removed, reordered or re-hashed."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    result = audit_service.verify(state.context, principal=_operator("auditor"))

    def render() -> None:
        if result.ok:
            checkpoint = (
                "no checkpoint yet"
                if result.checkpoint_seq is None
                else f"checkpoint {result.checkpoint_seq}"
            )
            output.stdout.print(
                f"audit chain intact: {result.records} records, head {result.head_seq}, "
                f"keys {', '.join(result.key_ids) or 'none'}, {checkpoint}"
            )
        else:
            output.stdout.print(
                f"[red]audit chain broken[/] at record {result.first_bad_seq}: {result.problem} "
                f"({result.records} records read, head {result.head_seq})"
            )

    state.emit(result, render)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("checkpoint")
@common.handles_errors
def audit_checkpoint(ctx: typer.Context) -> None:
    """Verify the records since the newest checkpoint and sign the head into the checkpoint file
    (``serve`` does it every CLOUDCTL_AUDIT_CHECKPOINT_INTERVAL_S); exit 1 if the chain is broken."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    result = audit_service.checkpoint(state.context)

    def render() -> None:
        if result.written:
            output.stdout.print(
                f"checkpoint of record {result.seq} signed with {result.key_id} in {result.path}"
            )
        else:
            output.stdout.print(f"[red]no checkpoint written[/]: {result.problem}")

    state.emit(result, render)
    if not result.written:
        raise typer.Exit(1)


@audit_key_app.command("rotate")
@common.handles_errors
def audit_key_rotate(ctx: typer.Context) -> None:
    """Sign new records with a new key; the old keys stay in the ring to verify older records."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    result = audit_service.rotate_key(state.context, principal=_operator("secadmin"))
    state.emit(
        result, lambda: output.stdout.print(f"new records are signed with {result.key_id} ({result.path})")
    )
