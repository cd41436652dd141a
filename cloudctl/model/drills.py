"""Drill plans: what a DR drill breaks, for which workloads, against which targets, and when.

``parse(text)`` turns the YAML of a ``dr/drills/*.yaml`` file into a ``DrillPlan``
or raises ``errors.InvalidInput`` whose field is the path inside the file
(``scenario.kind``, ``steps[1].post[0].http.url``, ``schedule``) and whose reason
says what is wrong. ``check_against(plan, topology)`` then checks the plan against a
topology (centers and their roles, links, tiers, levels, the warm-up against each
tier's replication interval); department ids are checked against the store by
``services.drills`` before a run starts.

Invariants:
- a plan that parses has exactly one way of scoping (departments and/or tiers, or
  ``all: true``), a schedule that croniter accepts (five fields, UTC) or none, a
  degrade factor above 1, checks that are each exactly one probe, and at most one
  fault that loses centers (``scenario`` and ``faults`` together); a test failover or a
  ransomware attack is a plan's only fault;
- a plan that passes ``check_against`` warms up for at least the replication interval
  of every tier it measures, so a measured RPO is never bounded by the warm-up window;
- effective targets are the topology's per-tier targets, replaced field by field by
  the plan's ``targets`` overrides; a plan that overrides RPO or RTO holds the tier to
  the level it states, else to the highest level whose bounds contain its targets;
- pure: no I/O, no clock — callers pass the times that schedule queries are about.
"""

from __future__ import annotations

import datetime
from typing import Annotated, Any, Literal

import croniter
import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field

from cloudctl import errors
from cloudctl.model import topology as topo

PositiveSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeSeconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
MAX_CANARY_OBJECT_BYTES = 64 * 1024 * 1024
"""The largest canary object: each is held in memory while it is written and checked."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Timed(_Strict):
    at_s: NonNegativeSeconds = 0.0
    """Seconds after the warm-up at which the fault strikes."""


class _LinkFault(_Timed):
    restore_after_s: PositiveSeconds = 300.0
    """Seconds the link stays broken; then it is restored and the copies' catch-up is measured."""


# --- scenarios --------------------------------------------------------------------------------


class LoseLocalCenter(_Timed):
    """One local cloud center goes dark; its partner (and DR for what it lacks) takes over."""

    kind: Literal["lose-local-center"]
    center: topo.Slug

    @property
    def summary(self) -> str:
        return f"lose local center {self.center}"


class LoseBothLocalCenters(_Timed):
    """Every local cloud center goes dark at once; protected workloads recover in the DR center."""

    kind: Literal["lose-both-local-centers"]
    recover_in: topo.Slug | None = None
    """The DR center to recover in; ``None``: the topology's DR center (there must be one)."""

    @property
    def summary(self) -> str:
        return f"lose every local center, recover in {self.recover_in or 'the DR center'}"


class LoseManagementSite(_Timed):
    """The management center's site goes dark with every local center in it (Qingdao: mgmt, qd-a
    and qd-b): the management database's standby in the DR site is promoted, the lost site's
    database fenced, and recovery is driven from there. Needs the management database on
    PostgreSQL with its DR standby (``CLOUDCTL_MGMT_STANDBY_URL``); the promotion is real."""

    kind: Literal["lose-management-site"]
    recover_in: topo.Slug | None = None
    """The DR center to recover in; ``None``: the topology's DR center (there must be one)."""
    management_rpo_s: NonNegativeSeconds = 5.0
    """The management state's RPO target in wall-clock seconds (asynchronous streaming)."""

    @property
    def summary(self) -> str:
        where = self.recover_in or "the DR center"
        return f"lose the management site and every local center, recover in {where}"


class CutDrLink(_LinkFault):
    """The link from a local center to the DR center is cut; asynchronous copies fall behind."""

    kind: Literal["cut-dr-link"]
    center: topo.Slug | None = None
    """The local center whose link to DR is cut; ``None``: every local center's."""

    @property
    def summary(self) -> str:
        return f"cut the DR link of {self.center or 'every local center'}"


class DegradeLink(_LinkFault):
    """A link slows down: its round-trip time is multiplied and its bandwidth divided by ``factor``."""

    kind: Literal["degrade-link"]
    between: tuple[topo.Slug, topo.Slug]
    factor: Annotated[float, Field(gt=1, allow_inf_nan=False)]

    @property
    def summary(self) -> str:
        return f"degrade link {self.between[0]}~{self.between[1]} by ×{self.factor:g}"


class IsolatedFailoverTest(_Timed):
    """A test failover: recover an isolated copy in the DR center, leaving production untouched."""

    kind: Literal["test-failover"]
    center: topo.Slug | None = None
    """The DR center that hosts the isolated copy; ``None``: the topology's DR center."""

    @property
    def summary(self) -> str:
        return f"test failover into an isolated copy in {self.center or 'the DR center'}"


class Ransomware(_Timed):
    """At ``at_s`` the canaries' acknowledged data where they serve, and in their copies, is
    overwritten (``corrupt``) or deleted (``delete``), a ``fraction`` of their keys; each canary
    is then recovered to its newest recovery point consistent before the attack (a failover to
    that time, as an operator would run it). From the warm-up on the drill takes a recovery
    point after every replication pass."""

    kind: Literal["ransomware"]
    mode: Literal["corrupt", "delete"] = "corrupt"
    """``corrupt``: the keys are overwritten (encrypted); ``delete``: they are deleted."""
    fraction: Annotated[float, Field(gt=0, le=1)] = 1.0
    """The share of each canary's keys the attack reaches (the oldest first); 1: every key."""

    @property
    def summary(self) -> str:
        what = "corrupt" if self.mode == "corrupt" else "delete"
        share = "every" if self.fraction == 1 else f"{self.fraction:.0%} of the"
        return f"ransomware: {what} {share} canary key, recover to the last point before it"


AnyScenario = (
    LoseLocalCenter
    | LoseBothLocalCenters
    | LoseManagementSite
    | CutDrLink
    | DegradeLink
    | IsolatedFailoverTest
    | Ransomware
)
Scenario = Annotated[AnyScenario, Field(discriminator="kind")]

LOSSES = (LoseLocalCenter, LoseBothLocalCenters, LoseManagementSite)
"""Faults after which workloads must be recovered elsewhere."""
EVERY_LOCAL_LOST = (LoseBothLocalCenters, LoseManagementSite)
"""Losses of every local center, recovered in the DR center (``recover_in``)."""
LINK_FAULTS = (CutDrLink, DegradeLink)

SCENARIO_KINDS = (
    "lose-local-center",
    "lose-both-local-centers",
    "lose-management-site",
    "cut-dr-link",
    "degrade-link",
    "test-failover",
    "ransomware",
)


# --- scope, targets, canary, checks ---------------------------------------------------------------


class Scope(_Strict):
    """Which workloads a drill covers.

    ``departments`` are org node ids (a bureau or district includes its descendants);
    with both ``departments`` and ``tiers`` a workload must match both. ``all: true``
    covers every protected workload and excludes the other two.
    """

    departments: tuple[topo.Slug, ...] = ()
    tiers: tuple[topo.Slug, ...] = ()
    all: bool = False

    @pydantic.model_validator(mode="after")
    def _one_way_of_scoping(self) -> Scope:
        named = bool(self.departments or self.tiers)
        if self.all and named:
            raise ValueError("give either 'all: true' or departments/tiers, not both")
        if not self.all and not named:
            raise ValueError("name departments, tiers, or 'all: true'")
        return self

    @property
    def summary(self) -> str:
        if self.all:
            return "all workloads"
        parts = []
        if self.departments:
            parts.append("departments " + ", ".join(self.departments))
        if self.tiers:
            parts.append("tiers " + ", ".join(self.tiers))
        return "; ".join(parts)


class TargetOverride(_Strict):
    """A plan's own targets for one tier; an absent field keeps the topology's target.

    ``level`` is the GB/T 20988 level the tier is held to; without it a plan that
    overrides ``rpo_s`` or ``rto_s`` holds the tier to the highest level whose bounds
    contain its targets. ``measured: false`` leaves the tier out of the drill (no
    canaries, no figures), e.g. a daily backup in a drill shorter than a day.
    """

    rpo_s: NonNegativeSeconds | None = None
    rto_s: NonNegativeSeconds | None = None
    level: Annotated[int, Field(ge=1)] | None = None
    catch_up_s: PositiveSeconds | None = None
    """The longest the tier's copies may take to catch up after a link fault is restored."""
    measured: bool = True

    @pydantic.model_validator(mode="after")
    def _overrides_something(self) -> TargetOverride:
        targets = (self.rpo_s, self.rto_s, self.level, self.catch_up_s)
        if self.measured and targets == (None, None, None, None):
            raise ValueError("give rpo_s, rto_s, level, catch_up_s, or 'measured: false'")
        if not self.measured and targets != (None, None, None, None):
            raise ValueError("a tier that is not measured has no targets")
        return self


class Canary(_Strict):
    """The canary dataset the engine writes to canary workloads before and during the fault."""

    writes_per_s: PositiveSeconds = 1.0
    """Writes per second to each canary workload."""
    warmup_s: NonNegativeSeconds = 120.0
    """Seconds (simulated when ``simulated_time``) of writes before the first fault."""
    object_bytes: Annotated[int, Field(gt=0, le=MAX_CANARY_OBJECT_BYTES)] = 4096
    """Bytes of each canary object."""
    workloads_per_tier: Annotated[int, Field(ge=1)] = 1
    """Canaries per tier; those of an active-active tier are spread over the local centers."""
    seed: int = 0
    """Seeds where in its write interval each canary writes: the same seed, the same writes."""


class HttpCheck(_Strict):
    url: str
    expect_status: Annotated[int, Field(ge=100, le=599)] = 200
    timeout_s: PositiveSeconds = 5.0

    @pydantic.field_validator("url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1]) == 0:
            raise ValueError("must be an http:// or https:// URL")
        return value


class CommandCheck(_Strict):
    argv: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]
    timeout_s: PositiveSeconds = 30.0
    expect_exit: Annotated[int, Field(ge=0, le=255)] = 0


BUILTIN_CHECKS = ("centers-up", "audit-intact")
"""Checks the drill runs in-process: every center reports up; the audit chain verifies."""


class Check(_Strict):
    """One probe: exactly one of a built-in check, an HTTP request or a command (judged by its exit)."""

    name: str = ""
    builtin: Literal["centers-up", "audit-intact"] | None = None
    http: HttpCheck | None = None
    command: CommandCheck | None = None

    @pydantic.model_validator(mode="after")
    def _exactly_one_probe(self) -> Check:
        if [self.builtin, self.http, self.command].count(None) != 2:
            raise ValueError(
                "a check is exactly one of 'builtin: centers-up|audit-intact', 'http: {url: ...}' "
                "or 'command: {argv: [...]}'"
            )
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.builtin is not None:
            return self.builtin
        if self.http is not None:
            return f"GET {self.http.url}"
        assert self.command is not None
        return " ".join(self.command.argv)


class Step(_Strict):
    """Checks around the drill: ``pre`` after the warm-up, before the fault; ``post`` after recovery."""

    name: str = ""
    pre: tuple[Check, ...] = ()
    post: tuple[Check, ...] = ()


# --- the plan -----------------------------------------------------------------------------------


class DrillPlan(_Strict):
    name: topo.Slug
    description: str = ""
    schedule: str | None = None
    """A five-field cron expression in UTC (or ``@daily`` and friends); ``None``: on demand only."""
    scenario: Scenario
    faults: tuple[Scenario, ...] = ()
    """More faults, each at its own ``at_s``: a compound scenario."""
    scope: Scope
    targets: dict[topo.Slug, TargetOverride] = Field(default_factory=dict)
    canary: Canary = Canary()
    steps: tuple[Step, ...] = ()
    simulated_time: bool = True
    """Run on a simulated clock (CI); false runs in real time (demos, production drills)."""

    @pydantic.field_validator("schedule")
    @classmethod
    def _is_cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        expression = " ".join(value.split())
        fields = len(expression.split(" "))
        if not (expression.startswith("@") or fields == 5) or not croniter.croniter.is_valid(expression):
            raise ValueError(
                f"{value!r} is not a cron expression (five fields: minute hour day-of-month month "
                "day-of-week, in UTC)"
            )
        try:  # a day no month has (30 February) passes croniter's check, and fires never
            croniter.croniter(expression, datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)).get_next(float)
        except croniter.CroniterBadDateError:
            raise ValueError(f"{value!r} never fires (no such day in that month)") from None
        return expression

    @property
    def all_faults(self) -> tuple[AnyScenario, ...]:
        """The scenario and the other faults, in the order they strike (the scenario first on a tie)."""
        faults = (self.scenario, *self.faults)
        return tuple(sorted(faults, key=lambda fault: fault.at_s))


class EffectiveTarget(_Strict):
    """The targets a drill holds one tier to."""

    tier: str
    rpo_target_s: float
    rto_target_s: float
    gbt20988_level_target: int
    overridden: bool
    """True when the plan replaced at least one of the topology's targets."""
    catch_up_allowed_s: float
    """How long the tier's copies may take to catch up after a link comes back: unless the plan
    says, one replication interval for the next pass to start, plus its RPO target or one more
    interval (whichever is longer) for that pass to ship the backlog."""


# --- parsing -----------------------------------------------------------------------------------


def parse(text: str) -> DrillPlan:
    """Parse and validate a drill plan's YAML; raise ``InvalidInput`` naming the path and reason."""
    try:
        raw = topo.load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise errors.InvalidInput(f"not valid YAML ({getattr(exc, 'problem', exc)})", field=where) from None
    return from_data(raw)


def from_data(raw: Any) -> DrillPlan:
    if not isinstance(raw, dict):
        raise errors.InvalidInput("a drill plan must be a mapping", field="(top)")
    try:
        return DrillPlan.model_validate(raw)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        raise errors.InvalidInput(_describe(first), field=_location(first)) from None


def _location(error: Any) -> str:
    """The path in the file; the scenario's kind tag that pydantic adds to the location is dropped."""
    loc: list[int | str] = []
    for part in error["loc"]:
        in_fault = loc == ["scenario"] or (len(loc) == 2 and loc[0] == "faults")
        if in_fault and part in SCENARIO_KINDS:
            continue
        loc.append(part)
    if error["type"] in {"union_tag_invalid", "union_tag_not_found"}:
        loc.append("kind")
    return topo.format_location(tuple(loc))


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "string_pattern_mismatch":
        return "must be a lower-case ASCII id (letters, digits, '-'), starting with a letter"
    if kind == "union_tag_invalid":
        return f"unknown scenario kind {error['ctx']['tag']!r} (known: {', '.join(SCENARIO_KINDS)})"
    if kind == "union_tag_not_found":
        return f"required (one of: {', '.join(SCENARIO_KINDS)})"
    if kind == "missing":
        return "required"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    message = str(error["msg"])
    return message[0].lower() + message[1:] if message else "invalid"


# --- checks against a topology ---------------------------------------------------------------------


def check_against(plan: DrillPlan, topology: topo.Topology) -> None:
    """Check the centers, links, tiers and levels the plan names, and that its warm-up is long
    enough to measure every tier it measures; raise ``InvalidInput`` with the path."""
    _check_scenario(plan.scenario, topology, field="scenario")
    losses = int(isinstance(plan.scenario, LOSSES))
    for index, fault in enumerate(plan.faults):
        _check_scenario(fault, topology, field=f"faults[{index}]")
        if isinstance(fault, IsolatedFailoverTest) or isinstance(plan.scenario, IsolatedFailoverTest):
            raise errors.InvalidInput(
                "a test failover touches no production, so it is a plan's only fault",
                field=f"faults[{index}].kind",
            )
        if isinstance(fault, Ransomware) or isinstance(plan.scenario, Ransomware):
            raise errors.InvalidInput(
                "a ransomware attack is measured against the points before it, so it is a plan's only fault",
                field=f"faults[{index}].kind",
            )
        losses += isinstance(fault, LOSSES)
        if losses > 1:
            raise errors.InvalidInput(
                "a plan loses centers once (one lose-* fault in scenario and faults together)",
                field=f"faults[{index}].kind",
            )
    tiers = {tier.name for tier in topology.tiers}
    known_tiers = ", ".join(tier.name for tier in topology.tiers)
    for index, name in enumerate(plan.scope.tiers):
        if name not in tiers:
            raise errors.InvalidInput(
                f"unknown tier {name!r} (known: {known_tiers})", field=f"scope.tiers[{index}]"
            )
    for name in plan.targets:
        if name not in tiers:
            raise errors.InvalidInput(
                f"unknown tier {name!r} (known: {known_tiers})", field=f"targets.{name}"
            )
        if plan.scope.tiers and name not in plan.scope.tiers:
            raise errors.InvalidInput(
                f"tier {name!r} is not in the plan's scope (tiers: {', '.join(plan.scope.tiers)})",
                field=f"targets.{name}",
            )
        level = plan.targets[name].level
        levels = sorted(entry.level for entry in topology.gbt20988_levels)
        if level is not None and level not in levels:
            raise errors.InvalidInput(
                f"no GB/T 20988 level {level} in the topology (levels: {', '.join(map(str, levels))})",
                field=f"targets.{name}.level",
            )
    for tier in tiers_in_scope(plan, topology):
        interval = float(tier.dr_interval_s or 0)
        if measured(plan, tier.name) and plan.canary.warmup_s < interval:
            raise errors.InvalidInput(
                f"{plan.canary.warmup_s:g} s is shorter than tier {tier.name}'s replication interval "
                f"({interval:g} s), so its RPO could not be measured; warm up longer or mark the tier "
                f"'targets.{tier.name}.measured: false'",
                field="canary.warmup_s",
            )
    if not tiers_measured(plan, topology):
        raise errors.InvalidInput("the plan measures no tier", field="targets")
    _check_canary_writes(plan, topology)


MAX_CANARY_WRITES = 10_000_000
"""The most canary writes a plan may ask for up to its last fault: every one is an object written,
recorded and checked, so a plan beyond it would run for days (or never end)."""


def _check_canary_writes(plan: DrillPlan, topology: topo.Topology) -> None:
    """Refuse a plan whose canaries would write more than ``MAX_CANARY_WRITES`` objects before its
    last fault strikes (the warm-up and the faults' offsets, every canary of every measured tier)."""
    canary = plan.canary
    last_fault_s = max(fault.at_s for fault in plan.all_faults)
    canaries = canary.workloads_per_tier * len(tiers_measured(plan, topology))
    writes = canary.writes_per_s * (canary.warmup_s + last_fault_s) * canaries
    if writes > MAX_CANARY_WRITES:
        raise errors.InvalidInput(
            f"{canaries} canaries writing {canary.writes_per_s:g}/s for {canary.warmup_s + last_fault_s:g} s "
            f"would write {writes:.3g} objects before the last fault; at most {MAX_CANARY_WRITES:,} "
            "(fewer canaries, a lower rate or a shorter warm-up)",
            field="canary",
        )


def _check_scenario(scenario: AnyScenario, topology: topo.Topology, *, field: str) -> None:
    try:
        _check_fault(scenario, topology)
    except errors.InvalidInput as error:
        raise errors.InvalidInput(
            error.reason, field=(error.field or "").replace("scenario", field, 1)
        ) from None


def _check_fault(scenario: AnyScenario, topology: topo.Topology) -> None:
    if isinstance(scenario, LoseLocalCenter):
        _require_role(topology, scenario.center, topo.CenterRole.LOCAL, field="scenario.center")
    elif isinstance(scenario, EVERY_LOCAL_LOST):
        _require_dr_center(topology, scenario.recover_in, field="scenario.recover_in")
    elif isinstance(scenario, CutDrLink):
        dr_centers = [center.name for center in topology.centers_with_role(topo.CenterRole.DR)]
        if scenario.center is None:
            local_centers = [center.name for center in topology.centers_with_role(topo.CenterRole.LOCAL)]
            if not any(topology.link(a, b) for a in local_centers for b in dr_centers):
                raise errors.InvalidInput("no local center has a link to a DR center", field="scenario.kind")
        else:
            _require_role(topology, scenario.center, topo.CenterRole.LOCAL, field="scenario.center")
            if not any(topology.link(scenario.center, dr) for dr in dr_centers):
                raise errors.InvalidInput(
                    f"center {scenario.center!r} has no link to a DR center", field="scenario.center"
                )
    elif isinstance(scenario, DegradeLink):
        a, b = scenario.between
        for index, name in enumerate(scenario.between):
            _require_center(topology, name, field=f"scenario.between[{index}]")
        if a == b:
            raise errors.InvalidInput("a link joins two different centers", field="scenario.between")
        if topology.link(a, b) is None:
            raise errors.InvalidInput(f"no link joins {a!r} and {b!r}", field="scenario.between")
    elif isinstance(scenario, IsolatedFailoverTest):
        _require_dr_center(topology, scenario.center, field="scenario.center")
    elif isinstance(scenario, Ransomware):
        _require_dr_center(topology, None, field="scenario.kind")


def _require_center(topology: topo.Topology, name: str, *, field: str) -> topo.Center:
    for center in topology.centers:
        if center.name == name:
            return center
    known = ", ".join(center.name for center in topology.centers)
    raise errors.InvalidInput(f"unknown center {name!r} (known: {known})", field=field)


def _require_role(topology: topo.Topology, name: str, role: topo.CenterRole, *, field: str) -> None:
    center = _require_center(topology, name, field=field)
    if center.role is not role:
        fitting = ", ".join(c.name for c in topology.centers_with_role(role)) or "none"
        raise errors.InvalidInput(
            f"center {name!r} has role {center.role.value!r}; this scenario needs a {role.value!r} center "
            f"({fitting})",
            field=field,
        )


def _require_dr_center(topology: topo.Topology, name: str | None, *, field: str) -> None:
    if name is not None:
        _require_role(topology, name, topo.CenterRole.DR, field=field)
    elif not topology.centers_with_role(topo.CenterRole.DR):
        raise errors.InvalidInput("this scenario needs a center with role 'dr'", field="scenario.kind")


# --- targets -------------------------------------------------------------------------------------


def tiers_in_scope(plan: DrillPlan, topology: topo.Topology) -> list[topo.Tier]:
    """The topology's tiers the plan can touch, in failover order (its scope's tiers, or all)."""
    chosen = [tier for tier in topology.tiers if not plan.scope.tiers or tier.name in plan.scope.tiers]
    return sorted(chosen, key=lambda tier: tier.priority)


def measured(plan: DrillPlan, tier: str) -> bool:
    """Whether the plan measures ``tier`` (it does unless its targets say ``measured: false``)."""
    override = plan.targets.get(tier)
    return override is None or override.measured


def tiers_measured(plan: DrillPlan, topology: topo.Topology) -> list[topo.Tier]:
    """The tiers in scope that the drill makes canaries for and judges."""
    return [tier for tier in tiers_in_scope(plan, topology) if measured(plan, tier.name)]


def effective_targets(plan: DrillPlan, topology: topo.Topology) -> list[EffectiveTarget]:
    """Per tier measured: the topology's targets with the plan's overrides applied."""
    result = []
    for tier in tiers_measured(plan, topology):
        override = plan.targets.get(tier.name)
        rpo = float(tier.rpo_target_s if override is None or override.rpo_s is None else override.rpo_s)
        rto = float(tier.rto_target_s if override is None or override.rto_s is None else override.rto_s)
        interval = float(tier.dr_interval_s or 0)
        level = tier.gbt20988_level
        if override is not None and override.level is not None:
            level = override.level
        elif override is not None and (override.rpo_s is not None or override.rto_s is not None):
            level = topology.level_achieved(rto_s=rto, rpo_s=rpo) or min(
                entry.level for entry in topology.gbt20988_levels
            )
        result.append(
            EffectiveTarget(
                tier=tier.name,
                rpo_target_s=rpo,
                rto_target_s=rto,
                gbt20988_level_target=level,
                overridden=override is not None,
                catch_up_allowed_s=float(override.catch_up_s)
                if override is not None and override.catch_up_s is not None
                else max(rpo, interval) + interval,
            )
        )
    return result


# --- schedule ------------------------------------------------------------------------------------


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, tz=datetime.UTC)


def next_run_after(schedule: str, *, after: float) -> float:
    """The first time (epoch seconds) strictly after ``after`` that ``schedule`` fires."""
    return croniter.croniter(schedule, _utc(after)).get_next(float)


def last_fired_at(schedule: str, *, at: float) -> float:
    """The latest time (epoch seconds) at or before ``at`` that ``schedule`` fired."""
    # croniter's get_prev is strict; one second later makes a firing exactly at ``at`` count.
    return croniter.croniter(schedule, _utc(at + 1)).get_prev(float)


def fell_due_at(
    plan: DrillPlan, *, at: float, last_run_at: float | None, since: float | None = None
) -> float | None:
    """When the plan's schedule last fired, if that is after its last run (and after ``since``).

    ``None``: not due (no schedule, or run since it last fired). A plan never run is due
    as soon as its schedule has fired once (within ``since`` when given).
    """
    if plan.schedule is None:
        return None
    fired = last_fired_at(plan.schedule, at=at)
    floors = [value for value in (last_run_at, since) if value is not None]
    if floors and fired <= max(floors):
        return None
    return fired
