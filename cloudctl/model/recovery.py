"""Recovery plans: typed steps and the hooks that run around them.

A failover or failback plan is an ordered list of ``RecoveryStep``. Each step has one
``StepAction``; ``from_centers`` lists the centers the workload leaves. Hooks are operator
callouts (a command or an HTTP call) bound ``pre`` or ``post`` to a step group (an
action), a tier, both, or the whole run; ``place_hooks`` turns them into ``hook`` steps
at their place in the plan, so they are shown in ``--dry-run``, recorded with the run
and resumed like any other step.

Invariants:
- a step id is ``<index>:<workload or hook>:<action>`` and unique in its plan;
- a hook is exactly one of ``command`` or ``http``, with a positive timeout and a
  failure policy (``abort``, ``continue`` or ``pause``);
- a hook bound to a group or tier that no step of the plan has is not placed;
- parsing a hooks file names the path inside the file of the first thing wrong;
- pure: no I/O.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from cloudctl import errors
from cloudctl.model import topology as topo


class StepAction(enum.StrEnum):
    """What one step of a recovery plan does (a hook's ``group`` names one of these but ``hook``).

    ``final-sync``: planned only, ship the last delta to the target so nothing is lost;
    ``promote``: the target serves (held quota becomes usage, servers start, roles swap);
    ``switch-traffic``: the workload's traffic record points at the target;
    ``reprotect``: streams rebuilt from where the workload serves now;
    ``resync``: failback, ship what the returning center lacks until it is consistent;
    ``restore-home``: failback, every placement takes its home role and stand-ins hand back;
    ``hook``: an operator's hook (a command or an HTTP call) runs at this place in the plan.
    """

    FINAL_SYNC = "final-sync"
    """Planned: ship the last delta to the target, so nothing is lost."""
    PROMOTE = "promote"
    """The target serves: held quota becomes usage, servers start, roles swap."""
    SWITCH_TRAFFIC = "switch-traffic"
    """The workload's traffic record is weighted to the target."""
    REPROTECT = "reprotect"
    """Streams rebuilt from where the workload serves now."""
    RESYNC = "resync"
    """Failback: ship what the returning center lacks, until it is consistent."""
    RESTORE_HOME = "restore-home"
    """Failback: every placement takes its home role; stand-ins hand back; home streams."""
    HOOK = "hook"
    """An operator's hook runs (never a hook's ``group``)."""


GROUPS = tuple(action for action in StepAction if action is not StepAction.HOOK)


class FailurePolicy(enum.StrEnum):
    """What a failed hook (non-zero exit, HTTP error, timeout) does to its run.

    ``abort``: the run stops as ``failed`` and no later step runs; ``continue``: the failure is
    recorded with the step and the run goes on; ``pause``: the run stops as ``paused`` until an
    operator resumes it.
    """

    ABORT = "abort"
    """The run stops as failed; steps after the hook do not run."""
    CONTINUE = "continue"
    """The failure is recorded; the run goes on."""
    PAUSE = "pause"
    """The run stops as paused; an operator looks and resumes it."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class CommandCall(_Strict):
    """A hook that runs a command on the host running the recovery (no shell).

    It gets ``CLOUDCTL_RUN``, ``CLOUDCTL_STEP`` and ``CLOUDCTL_HOOK_SCOPE`` in its environment;
    exit status 0 is success, and the last 500 characters of its output are kept with the step.
    """

    argv: Annotated[tuple[Annotated[str, Field(min_length=1)], ...], Field(min_length=1)]
    """The program and its arguments (at least the program; no argument empty), run without a shell."""


class HttpCall(_Strict):
    """A hook that calls a URL; any 2xx answer is success, anything else (or no answer) a failure."""

    url: str
    """An ``http://`` or ``https://`` URL, called from the host running the recovery."""
    method: Literal["GET", "POST"] = "POST"
    """A POST carries the run, the hook and the phase as JSON."""

    @pydantic.field_validator("url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")) or not value.split("://", 1)[1]:
            raise ValueError("must be an http:// or https:// URL")
        return value


class Hook(_Strict):
    """An operator callout run before or after a group of steps, a tier's steps, or the whole run.

    Exactly one of ``command`` or ``http``. It becomes a ``hook`` step of the plan (shown in a dry
    run, recorded with the run, resumed like any other step); a hook bound to a group or tier that
    no step of the plan has is not placed.
    """

    name: str = ""
    """A name shown in the plan and the run's hook outcomes; empty: what it calls is shown."""
    when: Literal["pre", "post"]
    """``pre``: before the first step it is bound to; ``post``: after the last one."""
    group: StepAction | None = None
    """Around the steps of this action; with ``tier``, only that tier's."""
    tier: topo.Slug | None = None
    """Around the steps of this tier's workloads; neither group nor tier: around the run."""
    command: CommandCall | None = None
    """The command to run; null when the hook is an HTTP call."""
    http: HttpCall | None = None
    """The URL to call; null when the hook is a command."""
    timeout_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    """Seconds the call may take (more than 0, at most 3600); longer counts as a failure."""
    on_failure: FailurePolicy = FailurePolicy.ABORT
    """What a failure of the call does to the run."""

    @pydantic.model_validator(mode="after")
    def _exactly_one_call(self) -> Hook:
        if (self.command is None) == (self.http is None):
            raise ValueError("a hook is exactly one of 'command: {argv: [...]}' or 'http: {url: ...}'")
        if self.group is StepAction.HOOK:
            raise ValueError("a hook cannot be bound to other hooks")
        return self

    @property
    def label(self) -> str:
        """Its name, else what it calls."""
        call = (
            " ".join(self.command.argv)
            if self.command
            else f"{self.http.method} {self.http.url}"
            if self.http
            else ""
        )
        return self.name or call

    @property
    def scope(self) -> str:
        parts = [part for part in (self.tier, self.group) if part]
        return " ".join(parts) if parts else "run"


class HooksFile(_Strict):
    hooks: tuple[Hook, ...] = ()


class AddressMapping(BaseModel):
    """How one server's address carries over to the center a ``promote`` step brings it up in.

    Planned from the topology's network maps and the address recorded for the server where it
    served; the server is made in the target with its port at ``new_address``."""

    model_config = ConfigDict(
        frozen=True,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [
                {
                    "server": "wl-7f3a-0",
                    "from_center": "qd-a",
                    "network": "gov-apps",
                    "to_network": "gov-apps-dr",
                    "old_address": "10.16.0.23",
                    "new_address": "10.80.0.23",
                    "kept": False,
                }
            ]
        },
    )

    server: str
    """The server's name (``<workload id>-<n>``), the same in both centers."""
    from_center: str
    """The center the server served in, where it had ``old_address``."""
    network: str
    """Its network there (the topology's name)."""
    to_network: str
    """The network of the target center it is mapped to."""
    old_address: str
    """Its IPv4 address where it served."""
    new_address: str
    """Its IPv4 address in the target center."""
    kept: bool
    """true: the same address (a stretched network); false: re-mapped."""


class PointChoice(BaseModel):
    """The recovery point a ``promote`` step starts the workload from, chosen with the plan
    (``failover --point`` or ``--at``): its volumes are made from that point's snapshots and its
    object data in the target is rewound to it."""

    model_config = ConfigDict(
        frozen=True,
        use_attribute_docstrings=True,
        json_schema_extra={
            "examples": [{"id": "dz-dr/wl-7f3a@48213", "seq": 48213, "consistent_at": "2026-11-18T02:14:31Z"}]
        },
    )

    id: str
    """``<center>/<workload>@<seq>``: the center holding it (the step's target), the change-log position."""
    seq: int
    """The workload's change-log position the point holds; later writes are lost."""
    consistent_at: str
    """When the copy was consistent up to ``seq`` (ISO 8601 UTC)."""


class RecoveryStep(BaseModel):
    """One step of a recovery plan, stored with the run as JSON."""

    model_config = ConfigDict(frozen=True, populate_by_name=True, use_attribute_docstrings=True)

    id: str = ""
    """``<index>:<workload id or hook-pre/hook-post>:<action>``, unique in its plan (index 4 digits)."""
    action: StepAction
    """What the step does."""
    workload_id: str = ""
    """The workload the step recovers; empty for a hook step."""
    tier: str = ""
    """The workload's tier (``platinum``, ``gold``, ``silver``, ``bronze``); a hook step's tier, or empty."""
    target: str = ""
    """The center the workload goes to (or, failing back, returns to); empty for a hook step."""
    why: str = ""
    """Why this target (e.g. ``standby copy``, ``dr copy``, ``home: primary in qd-a``); a hook's scope."""
    from_centers: list[str] = Field(
        default_factory=list, validation_alias=AliasChoices("from_centers", "from")
    )
    """The centers the workload leaves (runs stored before this field read ``from``)."""
    hook: Hook | None = None
    """The hook this step runs (``action`` ``hook``); null for every other step."""
    addresses: list[AddressMapping] | None = None
    """A ``promote`` step's servers whose addresses the topology's network maps carry over
    (kept or re-mapped); null when none does."""
    point: PointChoice | None = None
    """A ``promote`` step of a failover to a chosen point (``--point``/``--at``): the recovery point
    it starts from; null: the newest data the target holds."""

    def numbered(self, index: int) -> RecoveryStep:
        subject = self.workload_id or f"hook-{self.hook.when if self.hook else ''}"
        return self.model_copy(update={"id": f"{index:04d}:{subject}:{self.action.value}"})

    def document(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def number(steps: list[RecoveryStep]) -> list[RecoveryStep]:
    return [step.numbered(index) for index, step in enumerate(steps)]


def place_hooks(steps: list[RecoveryStep], hooks: tuple[Hook, ...]) -> list[RecoveryStep]:
    """``steps`` with each hook's step before the first (``pre``) or after the last (``post``) step
    it is bound to, in the order the hooks are declared; then numbered."""
    before: dict[int, list[RecoveryStep]] = {}
    after: dict[int, list[RecoveryStep]] = {}
    for hook in hooks:
        matching = [
            index
            for index, step in enumerate(steps)
            if (hook.group is None or step.action is hook.group)
            and (hook.tier is None or step.tier == hook.tier)
        ]
        if not matching:
            continue
        step = RecoveryStep(action=StepAction.HOOK, tier=hook.tier or "", why=hook.scope, hook=hook)
        if hook.when == "pre":
            before.setdefault(matching[0], []).append(step)
        else:
            after.setdefault(matching[-1], []).append(step)
    placed: list[RecoveryStep] = []
    for index, step in enumerate(steps):
        placed += before.get(index, [])
        placed.append(step)
        placed += after.get(index, [])
    return number(placed)


def parse_hooks(text: str) -> tuple[Hook, ...]:
    """The hooks of a YAML file (``hooks: [...]``); ``InvalidInput`` naming the path of what is wrong."""
    try:
        raw = topo.load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise errors.InvalidInput(f"not valid YAML ({getattr(exc, 'problem', exc)})", field=where) from None
    return hooks_from_data(raw if raw is not None else {})


def hooks_from_data(raw: Any) -> tuple[Hook, ...]:
    if isinstance(raw, list):
        raw = {"hooks": raw}
    if not isinstance(raw, dict):
        raise errors.InvalidInput("a hooks file is a mapping with a 'hooks' list", field="(top)")
    try:
        return HooksFile.model_validate(raw).hooks
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        message = str(first["msg"]).removeprefix("Value error, ")
        reason = "unknown field" if first["type"] == "extra_forbidden" else message[:1].lower() + message[1:]
        raise errors.InvalidInput(reason, field=topo.format_location(tuple(first["loc"]))) from None


def check_hooks(hooks: tuple[Hook, ...], topology: topo.Topology) -> None:
    """The tiers hooks name exist in the topology."""
    for index, hook in enumerate(hooks):
        if hook.tier is not None:
            try:
                topology.tier(hook.tier)
            except errors.NotFound:
                raise errors.InvalidInput(
                    f"no tier {hook.tier!r} in the topology", field=f"hooks[{index}].tier"
                ) from None
