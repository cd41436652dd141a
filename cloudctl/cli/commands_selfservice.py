"""``cloudctl token``, ``request``, ``workload`` and ``audit``: the self-service side, for operators.

Each command is a call on the API as the person logged in (or the break-glass identity), so
the server decides what each role may do: tokens are the secadmin's, the audit log the
auditor's, requests and workloads the sysadmin's. ``audit checkpoint|retention|key rotate``
act on the database and the key ring directly (break-glass).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cloudctl import errors
from cloudctl.cli import client, common, files, output
from cloudctl.model import states

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
    app.add_typer(token_app, name="token")
    app.add_typer(request_app, name="request")
    app.add_typer(workload_app, name="workload")
    app.add_typer(audit_app, name="audit")


# --- tokens ----------------------------------------------------------------------------------------

TOKEN_DAYS_MAX = 3650.0
"""The longest expiry a token may be given, ten years (the API's ``expires_in_s`` bound)."""


@token_app.command("create")
@common.handles_errors
def token_create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="dept-admin, dept-user, sysadmin, secadmin or auditor.")],
    dept: Annotated[str | None, typer.Option(help="The department (for dept-admin and dept-user).")] = None,
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")] = "",
    expires_in_days: Annotated[
        float | None,
        typer.Option(min=0.001, max=TOKEN_DAYS_MAX, help="Expire after this many days (at most ten years)."),
    ] = None,
) -> None:
    """Issue a bearer token (secadmin); the secret is printed once and only its salted hash is kept."""
    state = common.state_of(ctx)
    body = {
        "role": role,
        "department": dept,
        "name": name,
        "expires_in_s": None if expires_in_days is None else expires_in_days * 86400,
    }
    issued = state.api().post("/v1/tokens", body)
    token = issued["token"]

    def render() -> None:
        output.stdout.print(f"token {token['id']} ({token['role']}, {token['department'] or 'operators'})")
        output.stdout.print(issued["secret"], highlight=False, soft_wrap=True)
        output.stderr.print("this is the only time the secret is shown; keep it safe")

    state.emit(issued, render)


@token_app.command("list")
@common.handles_errors
def token_list(
    ctx: typer.Context,
    all_tokens: Annotated[bool, typer.Option("--all", help="Include revoked tokens.")] = False,
) -> None:
    """Tokens, never their secrets (secadmin)."""
    state = common.state_of(ctx)
    items = state.api().get("/v1/tokens", include_revoked=all_tokens)["data"]
    state.emit_table(
        items,
        ["token", "name", "role", "department", "created", "expires", "revoked"],
        lambda t: [
            t["id"],
            t["name"],
            t["role"],
            t["department"] or "–",
            t["created_at"],
            t["expires_at"],
            t["revoked_at"],
        ],
    )


@token_app.command("revoke")
@common.handles_errors
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[str, typer.Argument(metavar="TOKEN", help="A token id, as `token list` shows it.")],
) -> None:
    """Revoke a token at once (secadmin); requests carrying it are refused from now on."""
    state = common.state_of(ctx)
    revoked = state.api().post(f"/v1/tokens/{client.segment(token_id, field='token')}/revoke")
    state.emit(revoked, lambda: output.stdout.print(f"revoked {revoked['id']} at {revoked['revoked_at']}"))


# --- requests --------------------------------------------------------------------------------------


def render_request(item: dict[str, Any]) -> None:
    """A request (``RequestPublic`` as JSON) and its lifecycle."""
    output.stdout.print(
        f"[bold]{item['id']}[/] {item['department']}: {item['count']} × {item['offering']}, "
        f"tier {item['tier']}, data {item['data_class']} — [bold]{item['state']}[/]",
        highlight=False,
    )
    for step in item["steps"]:
        output.stdout.print(f"  {step['at']}  {step['step']}", highlight=False, markup=False)
    for reason in item["reasons"]:
        output.stdout.print(f"  reason: {reason}", highlight=False, markup=False)
    if item["approval_policy_ids"]:
        output.stdout.print(
            f"  approval decided by: {', '.join(item['approval_policy_ids'])}", highlight=False
        )


RequestArgument = Annotated[
    str, typer.Argument(metavar="REQUEST", help="A request id, as `request list` shows it.")
]


@request_app.command("list")
@common.handles_errors
def request_list(
    ctx: typer.Context,
    state_filter: Annotated[str | None, typer.Option("--state", help="Only requests in this state.")] = None,
    dept: Annotated[str | None, typer.Option(help="Only this department's requests.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
) -> None:
    """Requests, oldest first."""
    state = common.state_of(ctx)
    pages = state.api().pages("/v1/requests", page_size=min(limit, 200), state=state_filter, department=dept)
    items = list(itertools.islice(pages, limit))
    state.emit_table(
        items,
        ["request", "department", "offering", "count", "tier", "state"],
        lambda r: [r["id"], r["department"], r["offering"], r["count"], r["tier"], r["state"]],
    )


@request_app.command("show")
@common.handles_errors
def request_show(ctx: typer.Context, request_id: RequestArgument) -> None:
    """One request and its lifecycle, step by step."""
    state = common.state_of(ctx)
    item = state.api().get(f"/v1/requests/{client.segment(request_id, field='request')}")
    state.emit(item, lambda: render_request(item))


@request_app.command("approve")
@common.handles_errors
def request_approve(
    ctx: typer.Context,
    request_id: RequestArgument,
    wait_s: Annotated[
        float,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            min=0,
            help="Wait up to this long for the management center to provision it (0: do not wait).",
        ),
    ] = 0,
) -> None:
    """Approve a request that waits for an operator (sysadmin); `cloudctl serve` provisions it."""
    state = common.state_of(ctx)
    api = state.api()
    path = f"/v1/requests/{client.segment(request_id, field='request')}"
    item = api.post(f"{path}/approve")
    if wait_s:
        with output.stderr.status(f"provisioning {request_id}…"):
            item = client.wait_for(
                lambda: api.get(path),
                done=lambda current: current["state"] not in WAITING_STATES,
                deadline_s=wait_s,
                what=f"provisioning of {request_id}",
            )
    state.emit(item, lambda: render_request(item))


WAITING_STATES = frozenset({states.WorkloadState.APPROVED, states.WorkloadState.PROVISIONING})
"""Request states on the way to ``ready`` (or ``failed``), which ``approve --wait`` waits out."""


@request_app.command("reject")
@common.handles_errors
def request_reject(
    ctx: typer.Context,
    request_id: RequestArgument,
    reason: Annotated[str, typer.Option(help="Why; the department sees it.")],
) -> None:
    """Reject a request that waits for an operator (sysadmin); its quota is released."""
    state = common.state_of(ctx)
    item = state.api().post(
        f"/v1/requests/{client.segment(request_id, field='request')}/reject", {"reason": reason}
    )
    state.emit(item, lambda: render_request(item))


# --- workloads -------------------------------------------------------------------------------------


def render_workload(item: dict[str, Any]) -> None:
    """A workload (``WorkloadPublic`` as JSON): placement per center and protection."""
    protection = item["protection"]
    output.stdout.print(
        f"[bold]{item['id']}[/] {output.escape(item['name'])} ({item['department']}): {item['count']} × "
        f"{item['offering']} — [bold]{item['state']}[/]",
        highlight=False,
    )
    output.stdout.print(
        f"  tier {protection['tier']}: {protection['local']}, DR copy {protection['dr_copy']}, "
        f"RPO ≤ {protection['rpo_target_s']} s, RTO ≤ {protection['rto_target_s']} s, GB/T 20988 level "
        f"{protection['gbt20988_level']}",
        highlight=False,
    )
    output.stdout.print(
        output.table(
            None,
            ["center", "role", "state", "amounts", "resources"],
            [
                [
                    p["center"],
                    p["role"],
                    p["state"],
                    ", ".join(f"{k}={v}" for k, v in p["amounts"].items()),
                    ", ".join(r["name"] for r in p["resources"]) or "–",
                ]
                for p in item["placements"]
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
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
) -> None:
    """Workloads with their tier and where they run."""
    state = common.state_of(ctx)
    pages = state.api().pages(
        "/v1/workloads", page_size=min(limit, 200), department=dept, state=state_filter, tier=tier
    )
    items = list(itertools.islice(pages, limit))
    state.emit_table(
        items,
        ["workload", "name", "department", "offering", "tier", "state", "centers"],
        lambda w: [
            w["id"],
            w["name"],
            w["department"],
            f"{w['count']} × {w['offering']}",
            w["tier"],
            w["state"],
            ", ".join(f"{p['center']}:{p['role']}" for p in w["placements"]),
        ],
    )


@workload_app.command("show")
@common.handles_errors
def workload_show(
    ctx: typer.Context,
    workload_id: Annotated[
        str, typer.Argument(metavar="WORKLOAD", help="A workload id, as `workload list` shows it.")
    ],
) -> None:
    """One workload: placement per center and protection."""
    state = common.state_of(ctx)
    item = state.api().get(f"/v1/workloads/{client.segment(workload_id, field='workload')}")
    state.emit(item, lambda: render_workload(item))


# --- audit -----------------------------------------------------------------------------------------


def _render_audit(items: list[dict[str, Any]]) -> None:
    output.stdout.print(
        output.table(
            None,
            ["seq", "at", "actor", "role", "source", "action", "target", "outcome"],
            [
                [
                    r["seq"],
                    r["at"],
                    r["actor"],
                    r["role"],
                    r["source"],
                    r["action"],
                    f"{r['target_type']} {r['target_id']}",
                    r["outcome"],
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
    after: Annotated[int, typer.Option(min=0, help="Records after this sequence number.")] = 0,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="At most this many.")] = 100,
) -> None:
    """Audit records, oldest first (auditor)."""
    state = common.state_of(ctx)
    pages = state.api().pages(
        "/v1/audit",
        page_size=min(limit, 200),
        action=action,
        outcome=outcome,
        start=str(after) if after else None,
    )
    items = list(itertools.islice(pages, limit))
    state.emit(items, lambda: _render_audit(items))


@audit_app.command("export")
@common.handles_errors
def audit_export(
    ctx: typer.Context,
    output_file: Annotated[
        Path, typer.Option("--file", metavar="FILE", help="Where to write the JSON lines.")
    ],
    after: Annotated[int, typer.Option(min=0, help="Records after this sequence number.")] = 0,
) -> None:
    """Export the audit log as JSON lines, one record per line with its hashes (auditor)."""
    state = common.state_of(ctx)
    files.check_writable(output_file, field="file", make_parents=True)
    reply = state.api().call(
        "GET", "/v1/audit/export", params={"after": after}, accept="application/x-ndjson"
    )
    seqs = _export_seqs(reply.body)
    # its owner's alone: the log holds every department's records
    files.write_replacing(output_file, reply.body, mode=0o600, field="file", make_parents=True)
    result = {
        "path": str(output_file),
        "records": len(seqs),
        "first_seq": seqs[0] if seqs else None,
        "last_seq": seqs[-1] if seqs else None,
    }
    state.emit(
        result,
        lambda: output.stdout.print(
            f"exported {result['records']} record(s) to {result['path']}", highlight=False, markup=False
        ),
    )


def _export_seqs(body: bytes) -> list[int]:
    """The sequence number of each record of an export (JSON lines); an export of anything else
    is refused before it is written (it would not verify)."""
    seqs: list[int] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # not JSON, or not UTF-8
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("seq"), int)):
            raise errors.OperationFailed(
                f"the API's export is not audit records, one a line (line {number}); nothing was written",
                field="api",
            )
        seqs.append(record["seq"])
    return seqs


@audit_app.command("verify")
@common.handles_errors
def audit_verify(ctx: typer.Context) -> None:
    """Recompute the chain under the key ring and check it against the newest checkpoint (auditor);
    exit 1 and name the first bad record if anything was changed, removed, reordered or re-hashed."""
    state = common.state_of(ctx)
    result = state.api().get("/v1/audit/verify")

    def render() -> None:
        if result["ok"]:
            checkpoint = (
                "no checkpoint yet"
                if result["checkpoint_seq"] is None
                else f"checkpoint {result['checkpoint_seq']}"
            )
            output.stdout.print(
                f"audit chain intact: {result['records']} records, head {result['head_seq']}, "
                f"keys {', '.join(result['key_ids']) or 'none'}, {checkpoint}"
            )
        else:
            output.stdout.print(
                f"[red]audit chain broken[/] at record {result['first_bad_seq']}: {result['problem']} "
                f"({result['records']} records read, head {result['head_seq']})"
            )

    state.emit(result, render)
    if not result["ok"]:
        raise typer.Exit(1)


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
    state.operator()
    result = audit_service.apply_retention(state.context, archive_dir=archive_dir)
    state.emit(
        result,
        lambda: output.stdout.print(
            f"archived and pruned {result.records} record(s)"
            + (f" to {result.path}" if result.records else ""),
            highlight=False,
            markup=False,
        ),
    )


@audit_app.command("checkpoint")
@common.handles_errors
def audit_checkpoint(ctx: typer.Context) -> None:
    """Verify the records since the newest checkpoint and sign the head into the checkpoint file
    (``serve`` does it every CLOUDCTL_AUDIT_CHECKPOINT_INTERVAL_S); exit 1 if the chain is broken."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    state.operator()
    result = audit_service.checkpoint(state.context)

    def render() -> None:
        if result.written:
            output.stdout.print(
                f"checkpoint of record {result.seq} signed with {result.key_id} in {result.path}",
                highlight=False,
                markup=False,
            )
        else:
            output.stdout.print(f"[red]no checkpoint written[/]: {output.escape(result.problem)}")

    state.emit(result, render)
    if not result.written:
        raise typer.Exit(1)


@audit_key_app.command("rotate")
@common.handles_errors
def audit_key_rotate(ctx: typer.Context) -> None:
    """Sign new records with a new key; the old keys stay in the ring to verify older records."""
    from cloudctl.services import audit as audit_service

    state = common.state_of(ctx)
    result = audit_service.rotate_key(state.context, principal=state.operator())
    state.emit(
        result,
        lambda: output.stdout.print(
            f"new records are signed with {result.key_id} ({result.path})", highlight=False, markup=False
        ),
    )
