"""Scrubbing replicas, and the object storage a deleted workload leaves behind.

``scrub`` re-reads what each replication stream's target holds (every object, verified
against its sha256 and compared with the source), re-sends what is damaged, missing or
other bytes, and audits each mismatch. ``ContinuousScrub`` is the same at a configured
rate, for ``serve``. ``retire_deleted`` removes a deleted workload's traffic records at
once and its data buckets in every center once its tier's retention has passed.

Invariants:

- Operator only: a scrub is authorised as ``failover.run`` (recovery operations) on the
  management center before anything is looked up, and on every center it scrubs.
- Each mismatch is repaired, written to the audit log (``replication.scrub``, target
  the workload, outcome ``repaired``, detail the key, the centers and the stream) and
  counted in ``cloudctl_replica_mismatches_total{center,tier}``. A scrub that finds
  nothing wrong writes nothing to a replica.
- Retirement is level-based: each pass looks at what the centers hold (``data-*``
  buckets, the zone's records), so a pass killed part-way is finished by the next.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

from pydantic import BaseModel, ConfigDict

from cloudctl import errors, metrics
from cloudctl.model import states
from cloudctl.recovery import replication as repl
from cloudctl.recovery import traffic
from cloudctl.services import audit, identity
from cloudctl.services import context as ctx_module
from cloudctl.services import recovery as recovery_service
from cloudctl.store import replication, requests

log = logging.getLogger(__name__)

SCRUB_ACTION = "replication.scrub"
SECONDS_PER_DAY = 86400
DATA_BUCKET_PREFIX = repl.data_bucket("")
SERVE_PRINCIPAL = identity.Principal(id="system:serve", role="sysadmin")
"""Who the scrubs and retirements ``serve`` runs by itself are recorded as."""


SCRUB_EXAMPLE: dict[str, Any] = {
    "stream_id": f"{recovery_service.WORKLOAD_EXAMPLE_ID}:qd-a>dz-dr",
    "workload_id": recovery_service.WORKLOAD_EXAMPLE_ID,
    "tier": "gold",
    "source": "qd-a",
    "target": "dz-dr",
    "mismatches": ["claims/2026/11/17/batch-0412.json"],
    "bytes_resent": 384512,
    "error": "",
}


class ScrubPublic(BaseModel):
    """What scrubbing one stream's replica found: every object at the target re-read and checked."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [SCRUB_EXAMPLE]})

    stream_id: str
    """The stream scrubbed: ``<workload id>:<source>><target>``."""
    workload_id: str
    """The workload whose copy was scrubbed."""
    tier: str
    """The workload's tier."""
    source: str
    """The center the copy is compared with (where the workload serves)."""
    target: str
    """The center whose copy was re-read."""
    mismatches: list[str]
    """Keys whose copy at the target was damaged, missing or other bytes; all repaired."""
    bytes_resent: int
    """Bytes sent again to repair the mismatches (0 when none)."""
    error: str
    """Why the scrub of this stream could not finish (a center unreachable); empty when it did."""


@audit.audits_refusals(action="replication.scrub", target_type="Workload", target="workload_id")
def scrub(
    ctx: ctx_module.Context, *, principal: identity.Principal, workload_id: str | None = None
) -> list[ScrubPublic]:
    """Scrub every stream (of one workload, if given); the findings per stream."""
    # Operators only, whatever there is to scrub: refused before anything is looked up.
    recovery_service.authorize_operations(ctx, principal, action="failover.run")
    with ctx.read() as tx:
        if workload_id is not None:
            requests.get_workload(tx, workload_id)  # NotFound names the workload
        streams = replication.list_streams(tx, workload_ids=[workload_id] if workload_id else None)
    for center in sorted({stream.target for stream in streams}):
        recovery_service.authorize_center(ctx, principal, center, action="failover.run")
    env = recovery_service.environment(ctx)
    findings = [_scrub_one(ctx, env, principal, stream) for stream in streams]
    audit.record(
        ctx,
        principal=principal,
        action="replication.scrub",
        target_type="Workload",
        target_id=workload_id or "-",
        outcome="success",
        detail={
            "streams": len(findings),
            "mismatches": sum(len(finding.mismatches) for finding in findings),
            "errors": sum(1 for finding in findings if finding.error),
        },
    )
    return findings


def _scrub_one(
    ctx: ctx_module.Context, env: repl.Environment, principal: identity.Principal, stream: replication.Stream
) -> ScrubPublic:
    try:
        result = repl.scrub(env, stream.id)
    except errors.BackendUnavailable as error:
        result = repl.PassResult(stream.id, 0, 0, 0, stream.last_seq, error.one_line())
    for key in result.mismatches:
        metrics.REPLICA_MISMATCHES.labels(center=stream.target, tier=stream.tier).inc()
        audit.record(
            ctx,
            principal=principal,
            action=SCRUB_ACTION,
            target_type="Workload",
            target_id=stream.workload_id,
            outcome="repaired",
            detail={"key": key, "source": stream.source, "target": stream.target, "stream": stream.id},
        )
    return ScrubPublic(
        stream_id=stream.id,
        workload_id=stream.workload_id,
        tier=stream.tier,
        source=stream.source,
        target=stream.target,
        mismatches=list(result.mismatches),
        bytes_resent=result.bytes_copied,
        error=result.error,
    )


class ContinuousScrub:
    """Scrubs the streams one after the other, ``streams_per_minute`` on average (``serve``).

    The budget grows with the clock and is spent one stream at a time, in stream id
    order, starting over after the last; 0 streams per minute scrubs nothing.
    """

    def __init__(self, ctx: ctx_module.Context, *, streams_per_minute: float) -> None:
        if not streams_per_minute >= 0 or math.isinf(streams_per_minute):
            raise errors.InvalidInput(
                f"must be a number >= 0, not {streams_per_minute}",
                field="replication_scrub_streams_per_minute",
            )
        self._ctx = ctx
        self._per_s = streams_per_minute / 60
        self._budget = 0.0
        self._last_at: float | None = None
        self._after = ""

    def run_once(self) -> list[ScrubPublic]:
        """Scrub as many streams as the time since the last call allows (at most one per call
        when the rate is low, never more than the budget)."""
        now = self._ctx.clock.now()
        elapsed_s = 0.0 if self._last_at is None else max(now - self._last_at, 0.0)
        self._last_at = now
        self._budget = min(self._budget + elapsed_s * self._per_s, max(1.0, self._per_s * 60))
        done: list[ScrubPublic] = []
        while self._budget >= 1:
            stream = self._next()
            if stream is None:
                break
            self._budget -= 1
            env = recovery_service.environment(self._ctx)
            done.append(_scrub_one(self._ctx, env, SERVE_PRINCIPAL, stream))
        return done

    def _next(self) -> replication.Stream | None:
        with self._ctx.read() as tx:
            streams = replication.list_streams(tx)
        if not streams:
            return None
        later = [stream for stream in streams if stream.id > self._after]
        chosen = later[0] if later else streams[0]
        self._after = chosen.id
        return chosen


# --- what a deleted workload leaves -------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RetirementReport:
    records_removed: int
    buckets_emptied: list[str]
    """``center/bucket`` whose current objects were deleted (their versions kept)."""
    buckets_removed: list[str]
    """``center/bucket`` removed with their history, the retention having passed."""


def retire_deleted(ctx: ctx_module.Context) -> RetirementReport:
    """Take away what deleted workloads left in the centers; idempotent."""
    env = recovery_service.environment(ctx)
    records = _retire_records(ctx, env)
    by_center: dict[str, list[str]] = {}
    for center in ctx.topology.centers:
        by_center[center.name] = [
            bucket.name
            for bucket in env.drivers_for(center.name).object_storage.list_buckets()
            if bucket.name.startswith(DATA_BUCKET_PREFIX)
        ]
    ids = sorted({name.removeprefix(DATA_BUCKET_PREFIX) for names in by_center.values() for name in names})
    with ctx.read() as tx:
        deleted = {
            w.id: w for w in requests.list_workloads(tx, ids=ids, states=[states.WorkloadState.DELETED])
        }
    emptied: list[str] = []
    removed: list[str] = []
    now = ctx.clock.now()
    for center_name, names in by_center.items():
        storage = env.drivers_for(center_name).object_storage
        for name in names:
            workload = deleted.get(name.removeprefix(DATA_BUCKET_PREFIX))
            if workload is None:
                continue
            current = storage.list_object_entries(name)
            for entry in current:
                storage.delete_object(name, key=entry.key, ignore_missing=True)
            if current:
                emptied.append(f"{center_name}/{name}")
            retention_s = ctx.topology.tier(workload.tier).deleted_retention_days * SECONDS_PER_DAY
            if now >= workload.updated_at + retention_s:
                storage.delete_bucket(name, ignore_missing=True)
                removed.append(f"{center_name}/{name}")
    return RetirementReport(records_removed=records, buckets_emptied=emptied, buckets_removed=removed)


def _retire_records(ctx: ctx_module.Context, env: repl.Environment) -> int:
    """Remove the records whose workload is deleted and whose name no live workload took again."""
    driver = env.drivers_for(traffic.traffic_center(ctx.topology)).traffic
    names = {record.name for record in driver.list_records(ctx.topology.zone)}
    if not names:
        return 0
    with ctx.read() as tx:
        workloads = requests.list_workloads(tx, departments=sorted({n.rsplit(".", 1)[-1] for n in names}))
    live = {traffic.record_name(w) for w in workloads if w.state != states.WorkloadState.DELETED}
    removed = 0
    for workload in workloads:
        name = traffic.record_name(workload)
        if workload.state == states.WorkloadState.DELETED and name in names and name not in live:
            removed += traffic.remove(driver, ctx.topology, workload)
            names.discard(name)
    return removed


RETIRE_INTERVAL_S = 300.0


class ObjectHousekeeping:
    """What ``serve`` does for object replication besides the passes: the continuous scrub at
    ``settings.replication_scrub_streams_per_minute`` and, every five minutes, retirement of
    what deleted workloads left. Never raises: a failure is logged and tried again later."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        self._scrub = ContinuousScrub(
            ctx, streams_per_minute=ctx.settings.replication_scrub_streams_per_minute
        )
        self._last_retired_at = float("-inf")

    def run_once(self) -> None:
        try:
            for finding in self._scrub.run_once():
                if finding.mismatches:
                    log.warning(
                        "scrub repaired %d object(s) of %s at %s",
                        len(finding.mismatches),
                        finding.workload_id,
                        finding.target,
                    )
        except Exception:
            log.exception("replica scrub failed; trying again next pass")
        now = self._ctx.clock.now()
        if now - self._last_retired_at < RETIRE_INTERVAL_S:
            return
        self._last_retired_at = now
        try:
            retire_deleted(self._ctx)
        except Exception:
            log.exception("retiring deleted workloads' buckets and records failed; trying again later")
