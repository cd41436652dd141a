"""The drill's arithmetic, pure: when each canary writes, and what the read-back proves.

Invariants:
- every canary writes every ``1 / writes_per_s`` seconds, all at the same instants,
  from a first write that ``seed`` places within the first interval: the same plan and
  seed write the same schedule (where writes fall against the replication passes is
  what the seed varies); one instant for all keeps a drill of many canaries to one
  store round trip per instant;
- measured RPO is the reference time (the fault that made the workload recover
  elsewhere, else the end of the drill) minus the write time of the oldest acknowledged
  write that is missing, or corrupt, where the workload serves; 0 when none is;
- a tier's figures are the worst of its workloads', and its level the lowest of theirs:
  a tier never earns a level one of its workloads did not.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cloudctl.model import drill_report, drills
from cloudctl.model import topology as topo
from cloudctl.recovery.drills import platform, progress


def first_write_offset_s(*, seed: int, interval_s: float) -> float:
    """When the canaries first write after the warm-up starts (within one write interval)."""
    return round(interval_s * random.Random(seed).random(), 3)


def rpo_s(
    writes: Sequence[platform.Acknowledged], held: Sequence[bool], *, reference_at: float
) -> tuple[float | None, int]:
    """``(measured RPO, writes lost)`` over the writes acknowledged at or before ``reference_at``.

    ``None`` when no write was acknowledged by then (nothing measured).
    """
    considered = [(write, kept) for write, kept in zip(writes, held, strict=True) if write.at <= reference_at]
    if not considered:
        return None, 0
    lost = [write.at for write, kept in considered if not kept]
    return (max(reference_at - min(lost), 0.0) if lost else 0.0), len(lost)


def workload_result(
    canary: progress.Canary,
    *,
    target: drills.EffectiveTarget,
    topology: topo.Topology,
    writes: Sequence[platform.Acknowledged],
    held: Sequence[bool],
    measured_at: float,
    faults: Sequence[progress.Fault],
) -> drill_report.WorkloadResult:
    reference = measured_at if canary.loss_at is None else canary.loss_at
    acknowledged = sum(1 for write in writes if write.at <= reference)
    rpo, lost = (None, 0) if canary.stranded_reason else rpo_s(writes, held, reference_at=reference)
    if canary.stranded_reason:
        rto = None
    elif canary.loss_at is None:
        rto = 0.0  # served throughout
    else:
        rto = None if canary.served_at is None else max(canary.served_at - canary.loss_at, 0.0)
    crossing = [fault for fault in faults if canary.workload_id in fault.catching_up and fault.restored_at]
    catch_ups = [
        fault.caught_up_at[canary.workload_id] - (fault.restored_at or 0.0)
        for fault in crossing
        if canary.workload_id in fault.caught_up_at
    ]
    exposures = [  # kept when its copy went with a center lost after the restore (not in ``crossing``)
        fault.exposure_s[canary.workload_id]
        for fault in faults
        if fault.restored_at and canary.workload_id in fault.exposure_s
    ]
    figures = drill_report.Figures(
        rpo_target_s=target.rpo_target_s,
        rto_target_s=target.rto_target_s,
        rpo_measured_s=_round(rpo),
        rto_measured_s=_round(rto),
        writes_acknowledged=acknowledged,
        writes_lost=lost,
        gbt20988_level_target=target.gbt20988_level_target,
        catch_up_s=_round(max(catch_ups)) if crossing and len(catch_ups) == len(crossing) else None,
        catch_up_allowed_s=target.catch_up_allowed_s if crossing else None,
        dr_exposure_s=_round(max(exposures)) if exposures else None,
        stranded=int(canary.stranded_reason is not None),
    )
    all_lost = acknowledged > 0 and lost == acknowledged
    # The level of the figures reported (to the millisecond), as the judge reads them against the
    # targets: a reader who looks the reported RPO and RTO up in the level table finds this level.
    shown_rpo, shown_rto = figures.rpo_measured_s, figures.rto_measured_s
    level = (
        None
        if all_lost or shown_rpo is None or shown_rto is None
        else topology.level_achieved(rto_s=shown_rto, rpo_s=shown_rpo)
    )
    missed = drill_report.judge(figures, level_achieved=level, all_writes_lost=all_lost)
    return drill_report.WorkloadResult(
        **figures.model_dump(),
        gbt20988_level_achieved=level,
        all_writes_lost=all_lost,
        missed=missed,
        passed=not missed,
        workload_id=canary.workload_id,
        department=canary.department,
        tier=canary.tier,
        home_center=canary.home,
        recovered_in=None if canary.stranded_reason else (canary.recovered_in or canary.writes_to),
        stranded_reason=canary.stranded_reason,
    )


def tier_result(
    target: drills.EffectiveTarget, workloads: Sequence[drill_report.WorkloadResult]
) -> drill_report.TierResult:
    """The worst figures of the tier's workloads, judged by the same rule."""
    rpos = [w.rpo_measured_s for w in workloads]
    rtos = [w.rto_measured_s for w in workloads]
    with_catch_up = [w for w in workloads if w.catch_up_allowed_s is not None]
    catch_ups = [w.catch_up_s for w in with_catch_up]
    exposures = [w.dr_exposure_s for w in workloads if w.dr_exposure_s is not None]
    acknowledged = sum(w.writes_acknowledged for w in workloads)
    lost = sum(w.writes_lost for w in workloads)
    levels = [w.gbt20988_level_achieved for w in workloads]
    figures = drill_report.Figures(
        rpo_target_s=target.rpo_target_s,
        rto_target_s=target.rto_target_s,
        rpo_measured_s=None if None in rpos else max(r for r in rpos if r is not None),
        rto_measured_s=None if None in rtos else max(r for r in rtos if r is not None),
        writes_acknowledged=acknowledged,
        writes_lost=lost,
        gbt20988_level_target=target.gbt20988_level_target,
        catch_up_s=None
        if not with_catch_up or None in catch_ups
        else max(c for c in catch_ups if c is not None),
        catch_up_allowed_s=target.catch_up_allowed_s if with_catch_up else None,
        dr_exposure_s=max(exposures) if exposures else None,
        stranded=sum(w.stranded for w in workloads),
    )
    all_lost = acknowledged > 0 and lost == acknowledged
    level = None if all_lost or None in levels else min(level for level in levels if level is not None)
    missed = drill_report.judge(figures, level_achieved=level, all_writes_lost=all_lost)
    return drill_report.TierResult(
        **figures.model_dump(),
        gbt20988_level_achieved=level,
        all_writes_lost=all_lost,
        missed=missed,
        passed=not missed,
        tier=target.tier,
        workloads=len(workloads),
    )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
