"""The drill as a table of phases: prepare → warm-up → faults → recover → measure → clean-up.

- **prepare**: canaries through the platform, per tier measured; those of an
  active-active tier alternate between the local centers, the others live where the
  first fault strikes. Made 50 at a time, each batch saved.
- **warm-up**: canary writes on each canary's seeded schedule, replication passes as
  they fall due, for ``warmup_s``; then the pre-checks.
- **faults**: the plan's faults at their offsets, writes going on between them. A loss
  is recovered the moment it strikes (detection time is not modelled): one failover run
  per lost center, its id saved before it runs; a canary of a lost center that its run does
  not serve again is not recovered. A link fault is restored after its outage, and what the
  copies across it lacked just then is recorded (data at risk).
  A ransomware attack overwrites or deletes the canaries' data where they serve, then one
  failover run per serving center takes them to the DR center, each to its newest recovery
  point consistent at or before the attack; a ransomware drill (only) takes recovery points
  after every replication pass from the warm-up on.
- **recover**: after a link came back, writes and passes go on until every copy across
  it holds every write acknowledged before the restore (catch-up), or until twice the
  longest catch-up its tiers allow; a copy that went with a center lost meanwhile is not
  measured (it lacks nothing because it is gone). A test failover brings its isolated copies up here.
- **measure**: every acknowledged write up to each canary's fault is read back where the
  canary serves (or from its isolated copy); then the post-checks. After a ransomware attack,
  each canary's point, the seconds and writes it gave up before the attack, and whether every
  write up to the point reads back intact.
- **clean-up**: faults cleared, canaries deleted.

Invariants: the progress is saved after every phase and inside the long ones (each batch
of canaries, each unit of writes, each fault event, each failover run started), so a
drill killed anywhere resumes where its last save left it; a phase never repeats an
effect its saved progress records (no second canary, fault or failover run).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.model import drill_report, drills
from cloudctl.model import topology as topo
from cloudctl.recovery.drills import measure, platform, progress

OnStep = Callable[[drill_report.TimelineStep], None]
BATCH = 50
"""Canaries made, measured or deleted per platform unit (one store transaction on the drill's clock)."""
WRITES_PER_UNIT = 5000
"""Canary writes per platform unit on the drill's own clock: a few ticks of a large drill."""


@dataclasses.dataclass
class Drill:
    platform: platform.Platform
    progress: progress.Progress
    on_step: OnStep | None = None
    phase: str = "prepare"

    @property
    def clock(self) -> clocks.Clock:
        return self.platform.clock

    @property
    def plan(self) -> drills.DrillPlan:
        return self.progress.plan

    def note(self, step: str, detail: str = "") -> None:
        now = self.clock.now()
        entry = drill_report.TimelineStep(
            at=clocks.isoformat(now),
            offset_s=round(now - self.progress.started_at, 3),
            step=step,
            detail=detail,
            phase=self.phase,
        )
        self.progress.timeline.append(entry)
        if self.on_step is not None:
            self.on_step(entry)

    def save(self) -> None:
        self.progress.clock_at = self.clock.now()
        self.platform.save(self.progress)


# --- prepare --------------------------------------------------------------------------------------


def prepare(drill: Drill) -> None:
    plan, topology = drill.plan, drill.platform.topology
    local = [center.name for center in topology.centers_with_role(topo.CenterRole.LOCAL)]
    home = _home_center(plan, topology)
    wanted = [
        platform.CanarySpec(
            tier=tier.name,
            index=index,
            home=local[index % len(local)] if tier.local is topo.LocalPlacement.ACTIVE_ACTIVE else home,
        )
        for tier in drills.tiers_measured(plan, topology)
        for index in range(plan.canary.workloads_per_tier)
    ]
    made = {(canary.tier, canary.index) for canary in drill.progress.canaries}
    todo = [spec for spec in wanted if (spec.tier, spec.index) not in made]
    interval = 1.0 / plan.canary.writes_per_s
    for start in range(0, len(todo), BATCH):
        chunk = todo[start : start + BATCH]
        with drill.platform.unit():
            created = drill.platform.create_canaries(chunk)
            for spec, canary in zip(chunk, created, strict=True):
                drill.progress.canaries.append(
                    progress.Canary(
                        workload_id=canary.workload_id,
                        tier=spec.tier,
                        index=spec.index,
                        department=canary.department,
                        home=canary.home,
                        writes_to=canary.home,
                        next_write_at=0.0,  # set when the warm-up starts, below
                    )
                )
            drill.save()
    placed: dict[str, int] = {}
    for made_canary in drill.progress.canaries:
        where = f"{made_canary.tier} in {made_canary.home}"
        placed[where] = placed.get(where, 0) + 1
    drill.note(
        "canaries ready",
        f"{len(drill.progress.canaries)} canaries ({', '.join(f'{n} {w}' for w, n in placed.items())}), "
        f"{plan.canary.writes_per_s:g} writes/s each",
    )
    begins = drill.clock.now()
    first = begins + measure.first_write_offset_s(seed=plan.canary.seed, interval_s=interval)
    for ready in drill.progress.canaries:
        ready.next_write_at = first
    drill.progress.warmup_ends_at = begins + plan.canary.warmup_s


def _home_center(plan: drills.DrillPlan, topology: topo.Topology) -> str:
    """Where canaries of tiers that are not active-active live: where the first fault strikes."""
    local = [center.name for center in topology.centers_with_role(topo.CenterRole.LOCAL)]
    for fault in plan.all_faults:
        if isinstance(fault, drills.LoseLocalCenter):
            return fault.center
        if isinstance(fault, drills.CutDrLink) and fault.center:
            return fault.center
        if isinstance(fault, drills.DegradeLink):
            ends = [center for center in fault.between if center in local]
            if ends:
                return ends[0]
    return local[0]


# --- writing --------------------------------------------------------------------------------------


def write_until(drill: Drill, until: float, *, stop: Callable[[], bool] | None = None) -> None:
    """Canary writes as they fall due before ``until``, with the replication passes due, until
    ``until`` (or until ``stop()`` says so after a tick); the progress is saved after each unit.

    Up to ``BATCH`` canaries, a unit holds several ticks (``WRITES_PER_UNIT`` writes); more
    canaries, a tick's writes are one unit and its passes go in units of their own."""
    canaries = drill.progress.canaries
    if drill.clock.now() >= until:
        return
    if not canaries:
        drill.clock.sleep(until - drill.clock.now())
        return
    own_clock = isinstance(drill.clock, clocks.ManualClock)
    ticks_per_unit = max(WRITES_PER_UNIT // len(canaries), 1) if own_clock else 1
    passes_apart = own_clock and len(canaries) > BATCH
    interval = 1.0 / drill.plan.canary.writes_per_s
    done = False
    while not done:
        with drill.platform.unit():
            for _tick in range(ticks_per_unit):
                _write_due(drill, until, interval)
                if passes_apart:
                    break
                done = _passes_then_sleep(drill, until, stop)
                if done:
                    break
            drill.save()
        if passes_apart:
            done = _passes_then_sleep(drill, until, stop)
            if done:
                drill.save()


def _write_due(drill: Drill, until: float, interval: float) -> None:
    now = drill.clock.now()
    due = [c for c in drill.progress.canaries if c.next_write_at <= now and c.next_write_at < until]
    if due:
        _write(drill, due, interval)


def _passes_then_sleep(drill: Drill, until: float, stop: Callable[[], bool] | None) -> bool:
    """The replication passes due now, then the clock on to the next write (or ``until``);
    whether the writing is done."""
    canaries = drill.progress.canaries
    _replicate_due(drill)
    track_catch_up(drill)
    if stop is not None and stop():
        return True
    upcoming = min(canary.next_write_at for canary in canaries)
    # A pass that falls due before the next write runs at its own time, not at that write: run
    # then, a copy shipped every interval would take each write the moment it is made, and a
    # drill writing no faster than that interval would report an RPO of 0 no async copy has.
    ids = [canary.workload_id for canary in canaries]
    while (
        next_pass := drill.platform.next_pass_at(ids, after=drill.clock.now())
    ) is not None and next_pass < min(upcoming, until):
        drill.clock.sleep(max(next_pass - drill.clock.now(), 0.0))
        _replicate_due(drill)
        track_catch_up(drill)
        if stop is not None and stop():
            return True
    if upcoming >= until:
        drill.clock.sleep(max(until - drill.clock.now(), 0.0))
        # A pass that falls due after the last write but by ``until`` runs before what comes
        # next (a fault): else a warm-up as long as the interval could leave a copy no write.
        _replicate_due(drill)
        return True
    drill.clock.sleep(max(upcoming - drill.clock.now(), 0.0))
    return False


def _replicate_due(drill: Drill) -> None:
    ids = [canary.workload_id for canary in drill.progress.canaries]
    if takes_points(drill.plan):
        drill.platform.replicate_due(ids, points=True)
    else:
        drill.platform.replicate_due(ids)


def takes_points(plan: drills.DrillPlan) -> bool:
    """Whether the drill takes recovery points after its replication passes: a ransomware drill
    recovers to one. Other drills take none, so their passes and timings stay as they were."""
    return any(isinstance(fault, drills.Ransomware) for fault in plan.all_faults)


def track_catch_up(drill: Drill) -> bool:
    """Note the canaries whose copies across a restored link hold every write acknowledged
    before the restore; whether every restored link's copies have caught up."""
    now = drill.clock.now()
    waiting = False
    for fault in drill.progress.faults:
        behind = fault.behind
        if not behind:
            continue
        pending: dict[str, float] = {}
        for link in fault.links:
            for workload_id, oldest in drill.platform.oldest_pending_at(behind, link=link).items():
                pending[workload_id] = min(oldest, pending.get(workload_id, oldest))
        lacking_none = [w for w in behind if w not in pending or pending[w] > (fault.restored_at or 0.0)]
        still_across: set[str] = set()
        for link in fault.links if lacking_none else []:
            still_across |= drill.platform.copies_across(lacking_none, link=link)
        for workload_id in behind:
            if workload_id not in lacking_none:
                waiting = True
            elif workload_id in still_across:
                fault.caught_up_at[workload_id] = now
            else:
                # Its copy across the link went with a center lost since the restore: it lacks
                # nothing there because it is gone, so it cannot catch up and there is nothing to
                # measure (as for a link to a center lost before the restore).
                fault.catching_up.remove(workload_id)
                drill.note(
                    "copy gone before it caught up", f"#{fault.index} {workload_id}: its center was lost"
                )
    return not waiting


def _write(drill: Drill, due: Sequence[progress.Canary], interval: float) -> None:
    size = drill.plan.canary.object_bytes
    writes = []
    for canary in due:
        drill.progress.sequence += 1
        header = f"{drill.plan.name} {canary.workload_id} {drill.progress.sequence} ".encode()
        writes.append(
            platform.Write(
                workload_id=canary.workload_id,
                key=f"canary/{drill.progress.sequence:08d}",
                data=(header * (size // len(header) + 1))[:size],
                center=canary.writes_to,
            )
        )
    issued_at = drill.clock.now()
    acknowledged = drill.platform.write(writes)
    latest = max((at for at in acknowledged if at is not None), default=issued_at)
    for fault in drill.progress.faults:
        if fault.active:
            fault.write_latency_s = max(fault.write_latency_s, round(latest - issued_at, 3))
    for canary in due:
        canary.next_write_at += interval


# --- warm-up ---------------------------------------------------------------------------------------


def warm_up(drill: Drill) -> None:
    assert drill.progress.warmup_ends_at is not None
    if drill.clock.now() < drill.progress.warmup_ends_at:
        write_until(drill, drill.progress.warmup_ends_at)
        total = sum(1 for _ in drill.progress.canaries)
        drill.note("warm-up done", f"{drill.progress.sequence} writes issued to {total} canaries")
    run_checks(drill, "pre")
    drill.progress.faults_started_at = drill.progress.warmup_ends_at


def run_checks(drill: Drill, phase: str) -> None:
    for check in drill.platform.checks(phase):
        outcome = check.run()
        drill.progress.checks.append(
            drill_report.CheckResult(
                name=check.name, phase=phase, passed=outcome.passed, detail=outcome.detail
            )
        )
        drill.note(
            f"{phase}-check {'passed' if outcome.passed else 'FAILED'}", f"{check.name}: {outcome.detail}"
        )


# --- faults -----------------------------------------------------------------------------------------


def strike(drill: Drill) -> None:
    start = drill.progress.faults_started_at
    assert start is not None
    if not drill.progress.faults:
        faults = [drill.plan.scenario, *drill.plan.faults]
        drill.progress.faults = sorted(
            (progress.Fault(index=i, spec=spec, due_at=start + spec.at_s) for i, spec in enumerate(faults)),
            key=lambda fault: (fault.due_at, fault.index),
        )
        drill.save()
    while True:
        events = [(f.due_at, 0, f) for f in drill.progress.faults if f.injected_at is None]
        events += [
            (f.restore_due_at, 1, f)
            for f in drill.progress.faults
            if f.restore_due_at is not None and f.restored_at is None
        ]
        unfinished = [
            f
            for f in drill.progress.faults
            if f.injected_at is not None and f.lost_centers and not f.recovered
        ]
        for fault in unfinished:  # a loss whose recovery a kill interrupted
            _recover_from_loss(drill, fault)
        for fault in drill.progress.faults:  # an attack whose recovery a kill interrupted
            if (
                fault.injected_at is not None
                and isinstance(fault.spec, drills.Ransomware)
                and not fault.recovered
            ):
                _recover_to_point(drill, fault)
        if not events:
            return
        at, kind, fault = min(events, key=lambda event: (event[0], event[1], event[2].index))
        write_until(drill, at)
        if kind == 0:
            _inject(drill, fault)
        else:
            _restore(drill, fault)


def _inject(drill: Drill, fault: progress.Fault) -> None:
    spec = fault.spec
    topology = drill.platform.topology
    fault.injected_at = drill.clock.now()
    if isinstance(spec, drills.LoseManagementSite) and drill.progress.management is None:
        # First the management center's own site: from here on the drill runs against the
        # promoted database in the DR site, where the faults and the recovery are recorded.
        drill.progress.management = drill.platform.lose_management(spec)
        drill.save()
        lost = drill.progress.management
        drill.note(
            "management center lost",
            f"{lost.promoted} promoted; {lost.lost} of {lost.acknowledged} management records lost, "
            f"RPO {lost.rpo_s:g} s",
        )
    fault.fault_ids = drill.platform.inject(spec)
    if isinstance(spec, drills.LINK_FAULTS):
        fault.links = _links(spec, topology)
        fault.restore_due_at = fault.injected_at + spec.restore_after_s
        ids = [canary.workload_id for canary in drill.progress.canaries]
        crossing: set[str] = set()
        for link in fault.links:
            crossing |= drill.platform.copies_across(ids, link=link)
        fault.crossing = sorted(crossing)
        fault.catching_up = list(fault.crossing)
    if isinstance(spec, drills.LoseLocalCenter):
        fault.lost_centers = [spec.center]
    elif isinstance(spec, drills.EVERY_LOCAL_LOST):
        fault.lost_centers = [c.name for c in topology.centers_with_role(topo.CenterRole.LOCAL)]
    drill.save()
    drill.note("fault injected", f"#{fault.index} {spec.summary}")
    if fault.lost_centers:
        _recover_from_loss(drill, fault)
    elif isinstance(spec, drills.Ransomware):
        _recover_to_point(drill, fault)
    elif isinstance(spec, drills.IsolatedFailoverTest):
        _isolated_copies(drill, fault)


def _links(spec: drills.CutDrLink | drills.DegradeLink, topology: topo.Topology) -> list[tuple[str, str]]:
    if isinstance(spec, drills.DegradeLink):
        return [spec.between]
    local = (
        [spec.center] if spec.center else [c.name for c in topology.centers_with_role(topo.CenterRole.LOCAL)]
    )
    dr = [c.name for c in topology.centers_with_role(topo.CenterRole.DR)]
    return [(a, b) for a in local for b in dr if topology.link(a, b) is not None]


def _recover_from_loss(drill: Drill, fault: progress.Fault) -> None:
    spec = fault.spec
    to_center = spec.recover_in if isinstance(spec, drills.EVERY_LOCAL_LOST) else None
    assert fault.injected_at is not None
    by_id = {canary.workload_id: canary for canary in drill.progress.canaries}
    for center in fault.lost_centers:
        if center not in fault.failover_runs:
            candidates = [c.workload_id for c in drill.progress.canaries if c.stranded_reason is None]
            planned = drill.platform.plan_failover(
                center=center, to_center=to_center, workload_ids=candidates
            )
            fault.failover_runs[center] = planned.run_id
            for workload_id, reason in planned.stranded.items():
                by_id[workload_id].stranded_reason = reason
                by_id[workload_id].loss_at = fault.injected_at
            drill.save()
            drill.note(f"recovery of {center} planned", f"{len(planned.stranded)} stranded")
        served = drill.platform.execute_failover(fault.failover_runs[center])
        for workload_id, where in served.items():
            canary = by_id[workload_id]
            canary.loss_at = fault.injected_at
            canary.recovered_in = canary.writes_to = where.center
            canary.served_at = where.at
        for canary in drill.progress.canaries:
            # Served in the lost center and not served again by its failover (a hook stopped the
            # run, a step failed): never recovered, whatever the center it used to serve in holds.
            if canary.loss_at is None and (canary.writes_to or canary.home) == center:
                canary.loss_at = fault.injected_at
                canary.stranded_reason = "the failover did not serve it"
        drill.save()
    fault.recovered = True
    stranded = [c for c in drill.progress.canaries if c.stranded_reason and c.loss_at == fault.injected_at]
    recovered = [
        c for c in drill.progress.canaries if c.served_at is not None and c.loss_at == fault.injected_at
    ]
    drill.save()
    drill.note(
        "recovery finished",
        f"{len(recovered)} recovered" + (f", {len(stranded)} could not be recovered" if stranded else ""),
    )


def _recover_to_point(drill: Drill, fault: progress.Fault) -> None:
    """The attack, then one failover per serving center to the DR center, each canary to its newest
    recovery point consistent at or before the attack (as an operator runs ``failover --at``)."""
    spec = fault.spec
    assert isinstance(spec, drills.Ransomware) and fault.injected_at is not None
    attacked_at = fault.injected_at
    canaries = [c for c in drill.progress.canaries if c.stranded_reason is None]
    if fault.keys_attacked is None:
        fault.keys_attacked = drill.platform.attack(spec, [c.workload_id for c in canaries])
        drill.save()
        done = "overwritten" if spec.mode == "corrupt" else "deleted"
        drill.note("data attacked", f"{fault.keys_attacked} canary keys {done}")
    dr_center = drill.platform.topology.centers_with_role(topo.CenterRole.DR)[0].name
    by_center: dict[str, list[progress.Canary]] = {}
    for canary in canaries:
        if canary.loss_at is None:
            serving = canary.writes_to or drill.platform.serving_center(canary.workload_id) or canary.home
            by_center.setdefault(serving, []).append(canary)
    for center, group in sorted(by_center.items()):
        if center not in fault.failover_runs:
            try:
                planned = drill.platform.plan_failover(
                    center=center,
                    to_center=dr_center,
                    workload_ids=[c.workload_id for c in group],
                    at=attacked_at,
                )
            except errors.CloudctlError as error:
                for canary in group:
                    canary.stranded_reason, canary.loss_at = error.one_line(), attacked_at
                fault.failover_runs[center] = ""
                drill.save()
                drill.note(f"recovery of {center} to a point refused", error.one_line())
                continue
            fault.failover_runs[center] = planned.run_id
            for workload_id, chosen in planned.points.items():
                fault.points[workload_id] = (chosen.id, chosen.seq, chosen.consistent_at)
            for canary in group:
                if canary.workload_id in planned.stranded:
                    canary.stranded_reason = planned.stranded[canary.workload_id]
                    canary.loss_at = attacked_at
            drill.save()
            drill.note(
                f"recovery of {center} to {clocks.isoformat(attacked_at)} planned",
                f"{len(planned.points)} to a point, {len(planned.stranded)} stranded",
            )
        if not fault.failover_runs[center]:
            continue
        served = drill.platform.execute_failover(fault.failover_runs[center])
        for canary in group:
            where = served.get(canary.workload_id)
            canary.loss_at = attacked_at
            if where is not None:
                canary.recovered_in = canary.writes_to = where.center
                canary.served_at = where.at
            elif canary.stranded_reason is None:
                canary.stranded_reason = "the failover to a point did not serve it"
        drill.save()
    fault.recovered = True
    drill.save()
    recovered = [c for c in canaries if c.served_at is not None]
    drill.note("recovery to a point finished", f"{len(recovered)} of {len(canaries)} recovered")


def _isolated_copies(drill: Drill, fault: progress.Fault) -> None:
    spec = fault.spec
    assert isinstance(spec, drills.IsolatedFailoverTest) and fault.injected_at is not None
    dr_center = spec.center or drill.platform.topology.centers_with_role(topo.CenterRole.DR)[0].name
    todo = [canary for canary in drill.progress.canaries if canary.loss_at is None]
    for start in range(0, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        with drill.platform.unit():
            # Started together, as a failover starts its servers: one copy's start-up is not
            # counted in the RTO of the copies after it.
            started = drill.platform.start_isolated_copies([c.workload_id for c in batch], center=dr_center)
            for canary in batch:
                served = started.get(canary.workload_id, "no isolated copy was started")
                if isinstance(served, str):
                    canary.stranded_reason = served
                else:
                    canary.recovered_in, canary.served_at = served.center, served.at
                canary.loss_at = fault.injected_at
            drill.save()
    fault.recovered = True
    drill.note("isolated copies up", f"in {dr_center}; production untouched")


def _restore(drill: Drill, fault: progress.Fault) -> None:
    now = drill.clock.now()
    lost = {center for other in drill.progress.faults if other.injected_at for center in other.lost_centers}
    if any(set(link) & lost for link in fault.links):
        # A copy across a link to a center that is gone cannot catch up: nothing to measure there.
        fault.links = [link for link in fault.links if not set(link) & lost]
        ids = [canary.workload_id for canary in drill.progress.canaries]
        fault.catching_up = sorted(
            {w for link in fault.links for w in drill.platform.copies_across(ids, link=link)}
        )
    for link in fault.links:
        for workload_id, oldest in drill.platform.oldest_pending_at(fault.catching_up, link=link).items():
            exposure = round(max(now - oldest, 0.0), 3)
            fault.exposure_s[workload_id] = max(fault.exposure_s.get(workload_id, 0.0), exposure)
    for workload_id in fault.catching_up:
        fault.exposure_s.setdefault(workload_id, 0.0)
    drill.platform.clear(fault.fault_ids)
    fault.restored_at = now
    track_catch_up(drill)
    drill.save()
    at_risk = max(fault.exposure_s.values(), default=0.0)
    drill.note(
        "link restored",
        f"#{fault.index} after {now - (fault.injected_at or now):g} s; {at_risk:g} s of writes at risk",
    )


# --- recover ------------------------------------------------------------------------------------------


def recover(drill: Drill) -> None:
    restored = [
        fault for fault in drill.progress.faults if fault.restored_at is not None and fault.catching_up
    ]
    if not restored:
        return
    targets = {
        target.tier: target for target in drills.effective_targets(drill.plan, drill.platform.topology)
    }
    tier_of = {canary.workload_id: canary.tier for canary in drill.progress.canaries}
    deadline = max(
        (fault.restored_at or 0.0)
        + 2 * max(targets[tier_of[w]].catch_up_allowed_s for w in fault.catching_up)
        for fault in restored
    )
    if not track_catch_up(drill):
        write_until(drill, deadline, stop=lambda: all(not fault.behind for fault in restored))
    slowest = max(
        (at - (fault.restored_at or 0.0) for fault in restored for at in fault.caught_up_at.values()),
        default=0.0,
    )
    behind = sum(len(fault.behind) for fault in restored)
    if not behind and not any(fault.catching_up for fault in restored):
        drill.note("no copy left to catch up", "their centers were lost after the link came back")
        return
    drill.note(
        "copies caught up" if not behind else "copies did not catch up",
        f"slowest {slowest:g} s after the link came back" + (f"; {behind} still behind" if behind else ""),
    )


# --- measure ------------------------------------------------------------------------------------------


def measure_all(drill: Drill) -> None:
    plan, topology = drill.plan, drill.platform.topology
    targets = {target.tier: target for target in drills.effective_targets(plan, topology)}
    if drill.progress.measured_at is None:
        drill.progress.measured_at = drill.clock.now()
    measured_at = drill.progress.measured_at
    results: list[drill_report.WorkloadResult] = []
    read_back: dict[str, list[tuple[platform.Acknowledged, bool]]] = {}
    canaries = drill.progress.canaries
    for start in range(0, len(canaries), BATCH):
        with drill.platform.unit():
            for canary in canaries[start : start + BATCH]:
                result, read_back[canary.workload_id] = _measure(
                    drill, canary, targets[canary.tier], measured_at
                )
                results.append(result)
    drill.progress.workloads = results
    attack = next((f for f in drill.progress.faults if isinstance(f.spec, drills.Ransomware)), None)
    if attack is not None and attack.injected_at is not None:
        drill.progress.ransomware = _point_recoveries(drill, attack, read_back)
        summary = drill.progress.ransomware
        drill.note(
            "recovery points measured",
            f"{sum(w.intact for w in summary.workloads)} of {len(summary.workloads)} canaries intact "
            f"at their point; {sum(w.writes_lost for w in summary.workloads)} writes given up",
        )
    lost = sum(result.writes_lost for result in results)
    drill.note(
        "measured", f"{lost} of {sum(r.writes_acknowledged for r in results)} acknowledged writes lost"
    )
    run_checks(drill, "post")


def _point_recoveries(
    drill: Drill, fault: progress.Fault, read_back: dict[str, list[tuple[platform.Acknowledged, bool]]]
) -> drill_report.RansomwareResult:
    """Per canary: the point it went back to, what that gave up before the attack, and whether
    every write up to the point reads back as acknowledged where it serves now."""
    spec = fault.spec
    assert isinstance(spec, drills.Ransomware) and fault.injected_at is not None
    attacked_at = fault.injected_at
    found = []
    for canary in drill.progress.canaries:
        chosen = fault.points.get(canary.workload_id)
        pairs = read_back.get(canary.workload_id, [])
        if chosen is None or canary.stranded_reason is not None:
            found.append(
                drill_report.PointRecovery(
                    workload_id=canary.workload_id,
                    tier=canary.tier,
                    point=None,
                    reason=canary.stranded_reason or "no recovery point chosen",
                )
            )
            continue
        point, seq, consistent_at = chosen
        to_point = [held for write, held in pairs if write.at <= consistent_at]
        given_up = [write for write, _held in pairs if consistent_at < write.at <= attacked_at]
        found.append(
            drill_report.PointRecovery(
                workload_id=canary.workload_id,
                tier=canary.tier,
                point=point,
                point_seq=seq,
                consistent_at=clocks.isoformat(consistent_at),
                recovered_in=canary.recovered_in,
                data_lost_s=round(max(attacked_at - consistent_at, 0.0), 3),
                writes_lost=len(given_up),
                writes_to_point=len(to_point),
                intact=all(to_point),
            )
        )
    return drill_report.RansomwareResult(
        attacked_at=clocks.isoformat(attacked_at),
        mode=spec.mode,
        keys_attacked=fault.keys_attacked or 0,
        workloads=found,
        passed=bool(found) and all(w.point is not None and w.intact for w in found),
    )


def _measure(
    drill: Drill, canary: progress.Canary, target: drills.EffectiveTarget, measured_at: float
) -> tuple[drill_report.WorkloadResult, list[tuple[platform.Acknowledged, bool]]]:
    writes = drill.platform.acknowledged_writes(canary.workload_id)
    reference = measured_at if canary.loss_at is None else canary.loss_at
    considered = [write for write in writes if write.at <= reference]
    center = (
        canary.recovered_in
        if canary.loss_at is not None
        else drill.platform.serving_center(canary.workload_id)
    )
    if center is None and canary.stranded_reason is None:
        canary.stranded_reason = "not served anywhere after recovery"
    held = (
        drill.platform.holds(center, canary.workload_id, considered) if center else [False] * len(considered)
    )
    result = measure.workload_result(
        canary,
        target=target,
        topology=drill.platform.topology,
        writes=considered,
        held=held,
        measured_at=measured_at,
        faults=drill.progress.faults,
    )
    return result, list(zip(considered, held, strict=True))


# --- clean-up -----------------------------------------------------------------------------------------


def clean_up(drill: Drill) -> None:
    remaining = [
        fault_id
        for fault in drill.progress.faults
        if fault.restored_at is None
        for fault_id in fault.fault_ids
    ]
    drill.platform.clear(remaining)
    problems: list[str] = []
    ids = [canary.workload_id for canary in drill.progress.canaries]
    for start in range(0, len(ids), BATCH):
        with drill.platform.unit():
            problems += drill.platform.delete_canaries(ids[start : start + BATCH])
    drill.progress.cleanup_problems = problems
    drill.note(
        "cleaned up", "faults cleared, canary workloads deleted" if not problems else "; ".join(problems)
    )


# --- the table -------------------------------------------------------------------------------------------

PHASES: tuple[tuple[str, Callable[[Drill], None]], ...] = (
    ("prepare", prepare),
    ("warm-up", warm_up),
    ("faults", strike),
    ("recover", recover),
    ("measure", measure_all),
    ("clean-up", clean_up),
)
assert tuple(name for name, _ in PHASES) == progress.PHASE_NAMES


def run(drill: Drill) -> drill_report.DrillReport:
    """Run the phases not yet finished, saving after each; clean up if one fails.

    An exception leaves the drill cleaned up (faults cleared, canaries deleted) and is
    raised again; anything else that stops it (Ctrl-C, a kill) leaves it as saved, to resume.
    """
    try:
        for name, phase in PHASES:
            if drill.progress.finished(name):
                continue
            drill.phase = name
            phase(drill)
            drill.progress.phase = name
            drill.save()
    except Exception:
        if not drill.progress.finished("clean-up"):
            drill.phase = "clean-up"
            try:
                clean_up(drill)
            finally:
                drill.save()
        raise
    return report(drill)


def report(drill: Drill) -> drill_report.DrillReport:
    plan, topology = drill.plan, drill.platform.topology
    tiers = []
    for target in drills.effective_targets(plan, topology):
        mine = [w for w in drill.progress.workloads if w.tier == target.tier]
        if mine:
            tiers.append(measure.tier_result(target, mine))
    start = drill.progress.started_at
    faults = []
    for fault in sorted(drill.progress.faults, key=lambda f: f.index):
        exposure = list(fault.exposure_s.values())
        catch_ups = [at - (fault.restored_at or 0.0) for at in fault.caught_up_at.values()]
        # A link fault hits the canaries whose copies cross it; another fault, those it moved
        # (a link fault that struck with a loss is not credited with the loss's canaries).
        hit = (
            len(fault.crossing)
            if isinstance(fault.spec, drills.LINK_FAULTS)
            else sum(
                1 for c in drill.progress.canaries if c.loss_at is not None and c.loss_at == fault.injected_at
            )
        )
        faults.append(
            drill_report.FaultResult(
                index=fault.index,
                kind=fault.spec.kind,
                summary=fault.spec.summary,
                injected_offset_s=None if fault.injected_at is None else round(fault.injected_at - start, 3),
                restored_offset_s=None if fault.restored_at is None else round(fault.restored_at - start, 3),
                workloads_hit=hit,
                dr_exposure_s=round(max(exposure), 3) if exposure else None,
                catch_up_s=round(max(catch_ups), 3)
                if fault.catching_up and len(catch_ups) == len(fault.catching_up)
                else None,
                write_latency_s=fault.write_latency_s,
            )
        )
    not_measured = [
        drill_report.NotMeasured(tier=tier.name, reason="the plan marks it 'measured: false'")
        for tier in drills.tiers_in_scope(plan, topology)
        if not drills.measured(plan, tier.name)
    ]
    return drill_report.DrillReport(
        plan=plan.name,
        description=plan.description,
        scenario=plan.scenario.kind if not plan.faults else "compound",
        started_at=clocks.isoformat(start),
        finished_at=clocks.isoformat(drill.clock.now()),
        simulated_time=plan.simulated_time,
        passed=drill_report.drill_passed(tiers, drill.progress.workloads, drill.progress.checks)
        and (drill.progress.management is None or drill.progress.management.met)
        and (drill.progress.ransomware is None or drill.progress.ransomware.passed),
        tiers=tiers,
        workloads=drill.progress.workloads,
        checks=drill.progress.checks,
        timeline=drill.progress.timeline,
        run_id=drill.progress.run_id,
        faults=faults,
        tiers_not_measured=not_measured,
        seed=plan.canary.seed,
        management=drill.progress.management,
        ransomware=drill.progress.ransomware,
    )
