"""Point-in-time restore of a workload as operators drive it (CLI, API, drills).

``restore`` picks the newest recovery point consistent at or before the time asked for
(``recovery.restore``), in the center that holds the workload's DR copy or the one named,
then makes the point's volumes there (none for a workload with no volume, whose points are
of its bucket) and rewinds the workload's object data there to it; a dry run only answers
which point it would use and what that loses.

Invariants: input is checked before anything changes (the workload, the time: ISO 8601 and
not in the future, the center: one that holds a recovery point of the workload, the point
existing before the time), each refusal a one-line error naming its field (``workload``,
``at``, ``to``). The caller needs ``failover.run`` on the management center, asked before the
workload is read, and on the center restored into (operators).
A restore (not a dry run) is audited (``workload.restore``, outcome ``success`` or
``failed``), refusals too, and counted in ``cloudctl_restores_total`` and
``cloudctl_restore_data_lost_seconds``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import clock as clocks
from cloudctl import errors, metrics
from cloudctl.model import states
from cloudctl.recovery import restore as engine
from cloudctl.services import audit, identity, recovery
from cloudctl.services import context as ctx_module
from cloudctl.store import requests

RESTORE_EXAMPLE: dict[str, Any] = {
    "workload_id": recovery.SILVER_EXAMPLE_ID,
    "department": "hrss-insurance",
    "at": "2026-11-18T02:20:00Z",
    "point": f"dz-dr/{recovery.SILVER_EXAMPLE_ID}@48213",
    "center": "dz-dr",
    "seq": 48213,
    "consistent_at": "2026-11-18T02:14:31Z",
    "dry_run": False,
    "volumes": [
        {
            "name": f"rs-{recovery.SILVER_EXAMPLE_ID}-0-48213",
            "id": "3c2e51b7-3a1e-4c55-9d0e-7f6b8a0c1d22",
            "of": f"{recovery.SILVER_EXAMPLE_ID}-0",
            "restored_from": f"dz-dr/rp-{recovery.SILVER_EXAMPLE_ID}-0-48213",
        }
    ],
    "objects_rewound": ["ledger/2026-11-18.csv"],
    "objects_removed": ["ledger/README.encrypted"],
    "objects_missing": [],
    "changes_lost": 5,
    "data_lost_s": 329.0,
    "keys_lost": ["ledger/2026-11-18.csv", "ledger/README.encrypted"],
}


class RestoredVolumePublic(BaseModel):
    """A volume a restore made (or, in a dry run, would make) from a replication point's snapshot."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [RESTORE_EXAMPLE["volumes"][0]]}
    )

    name: str
    """``rs-<volume name>-<seq>``."""
    id: str | None
    """The volume's id in the center; null in a dry run."""
    of: str
    """The protected volume (or server disk) it holds the data of."""
    restored_from: str
    """The replication point (``<center>/<snapshot name>``) whose snapshot it was made from."""


class RestorePublic(BaseModel):
    """A point-in-time restore: the point chosen, what was made and rewound, and the data lost."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [RESTORE_EXAMPLE]}
    )

    workload_id: str
    """The workload restored."""
    department: str
    """The org node (department) that owns the workload."""
    at: str
    """The time asked for (ISO 8601 UTC)."""
    point: str
    """The recovery point used: ``<center>/<workload>@<seq>``, the newest consistent at or before ``at``."""
    center: str
    """Where the point lives and the restore happened (the center holding the DR copy, or ``to``)."""
    seq: int
    """The workload's change-log position the point holds."""
    consistent_at: str
    """When the copy was consistent up to ``seq`` (ISO 8601 UTC)."""
    dry_run: bool
    """true: nothing was made or changed; the answer says what a restore would do."""
    volumes: list[RestoredVolumePublic]
    """The volumes made from the point's snapshots (one per protected volume; none for a workload
    with no volume)."""
    objects_rewound: list[str]
    """Keys of the data bucket made to hold their bytes at the point again (empty in a dry run)."""
    objects_removed: list[str]
    """Keys first written after the point, deleted (their versions kept; empty in a dry run)."""
    objects_missing: list[str]
    """Keys whose bytes at the point are no longer kept in the center (lost; empty in a dry run)."""
    changes_lost: int
    """Writes acknowledged after the point and at or before ``at``: what the restore gives up."""
    data_lost_s: float
    """Seconds between the point's ``consistent_at`` and ``at``."""
    keys_lost: list[str]
    """The keys those lost writes changed."""


def parse_time(text: str, *, field: str = "at") -> float:
    """An ISO 8601 time (``Z`` or an offset; none is UTC) as epoch seconds; ``InvalidInput`` if not one
    (or if outside the years 1 to 9999 in UTC)."""
    return engine.parse_time(text, field=field)


def _workload(ctx: ctx_module.Context, workload_id: str) -> requests.WorkloadRecord:
    with ctx.read() as tx:
        workload = requests.get_workload(tx, workload_id)
    if workload.state != states.WorkloadState.READY:
        raise errors.InvalidInput(
            f"workload {workload_id} is {workload.state}: only a ready workload is restored", field="workload"
        )
    return workload


def _public(result: engine.Result, *, at: float, dry_run: bool) -> RestorePublic:
    point = result.point
    return RestorePublic(
        workload_id=point.workload_id,
        department=point.department,
        at=clocks.isoformat(at),
        point=point.id,
        center=point.center,
        seq=point.seq,
        consistent_at=clocks.isoformat(point.consistent_at),
        dry_run=dry_run,
        volumes=[
            RestoredVolumePublic(
                name=item["name"], id=item.get("id"), of=item["of"], restored_from=item["restored_from"]
            )
            for item in result.volumes
        ],
        objects_rewound=list(result.rewound),
        objects_removed=list(result.removed),
        objects_missing=list(result.missing),
        changes_lost=result.loss.changes,
        data_lost_s=result.loss.seconds,
        keys_lost=list(result.loss.keys),
    )


@audit.audits_refusals(action="workload.restore", target_type="Workload", target="workload_id")
def restore(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    workload_id: str,
    at: str,
    to_center: str | None = None,
    dry_run: bool = False,
) -> RestorePublic:
    """Restore the workload to the newest point at or before ``at`` (see the module)."""
    # Operators only, whatever the workload: refused before it is looked up, so a department
    # learns nothing of another's workloads (their existence, state or recovery points).
    recovery.authorize_operations(ctx, principal, action="failover.run")
    workload = _workload(ctx, workload_id)
    moment = parse_time(at)
    env = recovery.environment(ctx)
    if to_center is not None:
        try:
            ctx.topology.center(to_center)
        except errors.NotFound as unknown:
            raise errors.InvalidInput(unknown.reason, field="to") from None
        holding = sorted({p.center for p in engine.recovery_points(env, workload)})
        if to_center not in holding:
            where = f" (its points are in {', '.join(holding)})" if holding else " (it has none yet)"
            raise errors.InvalidInput(
                f"{to_center} holds no recovery point of workload {workload_id}{where}", field="to"
            )
    point = engine.choose_point(env, workload, at=moment, center=to_center)
    recovery.authorize_center(ctx, principal, point.center, action="failover.run")
    if dry_run:
        return _public(engine.plan(env, workload, point, at=moment), at=moment, dry_run=True)

    def record(outcome: str, detail: dict[str, object]) -> None:
        audit.record(
            ctx,
            principal=principal,
            action="workload.restore",
            target_type="Workload",
            target_id=workload_id,
            outcome=outcome,
            detail={"point": point.id, **detail},
        )

    try:
        result = engine.restore(env, workload, point, at=moment)
    except errors.CloudctlError as error:
        metrics.RESTORES.labels(center=point.center, outcome="failed").inc()
        record("failed", {"at": clocks.isoformat(moment), "error": error.one_line()})
        audit.mark_recorded(error)
        raise
    metrics.RESTORES.labels(center=point.center, outcome="missing" if result.missing else "success").inc()
    metrics.RESTORE_DATA_LOST.labels(center=point.center).observe(result.loss.seconds)
    public = _public(result, at=moment, dry_run=False)
    record(
        "success",
        {
            "at": public.at,
            "volumes": len(public.volumes),
            "objects_rewound": len(public.objects_rewound),
            "objects_removed": len(public.objects_removed),
            "objects_missing": len(public.objects_missing),
            "changes_lost": public.changes_lost,
            "data_lost_s": public.data_lost_s,
        },
    )
    return public
