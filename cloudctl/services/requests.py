"""Requests from the catalog: submit, approve, reject, cancel, read — the department's way in.

Lifecycle (each step appended to ``steps`` with its time)::

    submitted → policy-checked → quota-reserved → pending-approval? → approved
              → provisioning → ready            (or rejected / cancelled / failed, with reasons)

Invariants:
- Admission is one transaction: the quota of every placement is reserved, the
  request and its workload are written and the audit record appended — or
  nothing is (a refusal names the quota that ran out, ``QuotaExceeded``).
- A department sees only its own requests (others answer ``NotFound``).
- ``Idempotency-Key``: the same key with the same body returns the request it
  created; with another body it is refused (``Conflict``).
- Quota held by a request is released when it is rejected, cancelled or fails.
- The data classes and the most units of one request are the topology's
  (``Topology.data_classes``, ``Topology.max_count``): checked at admission, one line naming
  ``data_class`` or ``count``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import contextvars
import dataclasses
import hashlib
import json
import threading
import weakref
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from cloudctl import errors
from cloudctl.model import ids, states
from cloudctl.model import quotas as q
from cloudctl.model import topology as topo
from cloudctl.policy import engine as policy_engine
from cloudctl.services import audit, identity, pages, placement, public
from cloudctl.services import context as ctx_module
from cloudctl.store import audit as audit_store
from cloudctl.store import orgs, quotas, requests

LIVE_STATES = (
    states.WorkloadState.PENDING_APPROVAL,
    states.WorkloadState.APPROVED,
    states.WorkloadState.PROVISIONING,
)


class RequestCreate(BaseModel):
    """What a department asks for."""

    offering: str = Field(description="A catalog offering's name (``GET /v1/catalog``), e.g. ``vm.medium``")
    count: int = Field(
        default=1,
        ge=1,
        description=(
            "How many units of the offering, 1 to the topology's limit (``catalog_limits.max_count``, "
            "or the offering's own ``max_count``; 100 as shipped)"
        ),
    )
    tier: str = Field(description="The protection tier: ``platinum``, ``gold``, ``silver`` or ``bronze``")
    data_class: str = Field(
        default="internal",
        max_length=40,
        description=(
            "How sensitive the data is: one of the topology's data classes, least strict first "
            "(``GET /v1/catalog`` lists them; as shipped ``public``, ``internal``, ``sensitive`` or "
            "``secret``)"
        ),
    )
    preferred_center: str | None = Field(
        default=None,
        description=(
            "A local cloud center (``qd-a`` or ``qd-b``) to serve from; ``null`` lets placement choose "
            "the one with most vCPU headroom (active-active tiers use both)"
        ),
    )
    name: str = Field(
        default="",
        description=(
            "A name for the workload: lower-case ASCII letters, digits and ``-``, at most 40; "
            "empty names it after the request id"
        ),
    )
    department: str | None = Field(
        default=None,
        description=(
            "The org node ordered for: a department may leave it out or name itself only; a principal "
            "without a department must name one (the shipped policies let only departments order)"
        ),
    )


STEP_EXAMPLE: dict[str, Any] = {"step": "quota-reserved", "at": "2026-12-04T22:44:03Z", "detail": None}
PLACEMENT_EXAMPLE: dict[str, Any] = {
    "center": "qd-a",
    "role": states.PlacementRole.PRIMARY,
    "amounts": {"vcpu": 8, "ram_gb": 16, "volume_gb": 160, "instances": 2},
    "state": states.PlacementState.READY,
    "resources": [
        {"kind": "server", "name": "wl-001a2433a995562feca1c-0", "id": "3f6c2a9e8d1b4c07a5e2f9b1c4d8e6a0"},
        {"kind": "server", "name": "wl-001a2433a995562feca1c-1", "id": "b82e4d15c9a34f6e8d07a1c3e5f92b74"},
    ],
}
REQUEST_EXAMPLE: dict[str, Any] = {
    "id": "req-001a2433a99553b7d04e9",
    "department": "hrss-insurance",
    "offering": "vm.medium",
    "count": 2,
    "tier": "gold",
    "data_class": "internal",
    "preferred_center": None,
    "name": "social-insurance-portal",
    "state": states.WorkloadState.READY,
    "needs_approval": False,
    "approval_policy_ids": ["approval-auto-small"],
    "reasons": [],
    "steps": [
        {"step": "submitted", "at": "2026-12-04T22:44:03Z", "detail": None},
        {"step": "policy-checked", "at": "2026-12-04T22:44:03Z", "detail": None},
        STEP_EXAMPLE,
        {"step": "approved", "at": "2026-12-04T22:44:03Z", "detail": None},
        {"step": "provisioning", "at": "2026-12-04T22:44:05Z", "detail": None},
        {"step": "ready", "at": "2026-12-04T22:46:31Z", "detail": None},
    ],
    "workload_id": "wl-001a2433a995562feca1c",
    "created_by": "token:0eb685578843c699",
    "created_at": "2026-12-04T22:44:03Z",
    "updated_at": "2026-12-04T22:46:31Z",
}


class StepPublic(BaseModel):
    """One step of a request's lifecycle, as it happened."""

    model_config = ConfigDict(use_attribute_docstrings=True, json_schema_extra={"examples": [STEP_EXAMPLE]})

    step: str
    """``submitted``, ``policy-checked``, ``quota-reserved``, ``capacity-warning``, ``pending-approval``,
    ``approved``, ``rejected``, ``cancelled``, ``provisioning``, ``ready`` or ``failed``."""
    at: public.Timestamp
    """When the step happened (ISO 8601, UTC, to the second)."""
    detail: str | None = None
    """What a ``capacity-warning`` step warns of (a warning, not a refusal)."""


class PlacementPublic(BaseModel):
    """What a workload holds in one center, the role it plays there and what was created there."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, json_schema_extra={"examples": [PLACEMENT_EXAMPLE]}
    )

    center: str
    """The center: a local one (``qd-a``, ``qd-b``) or the DR center (``dz-dr``)."""
    role: str
    """``active`` (serves, active-active), ``primary`` (serves alone), ``standby`` or ``dr`` (held copies)."""
    amounts: dict[str, int]
    """The quota the placement's reservation takes (or took) in this center, per resource."""
    state: str
    """``reserved`` (quota held, nothing runs), ``creating``, ``ready``, ``drained``, ``failed``,
    ``deleting`` or ``deleted``."""
    resources: list[dict[str, Any]]
    """What was created here: ``{kind, name, id}`` each (``kind``: ``server``, ``volume``, ``bucket``
    or ``namespace``); empty while only quota is held."""


class RequestPublic(BaseModel):
    """A request from the catalog: what was asked, its decision and its lifecycle step by step."""

    model_config = ConfigDict(
        use_attribute_docstrings=True, from_attributes=True, json_schema_extra={"examples": [REQUEST_EXAMPLE]}
    )

    id: str
    """The request id: ``req-`` then 13 hex digits of the creation time in ms and 8 random hex digits."""
    department: str
    """The org node the request is for (e.g. ``hrss-insurance``)."""
    offering: str
    """The catalog offering ordered (e.g. ``vm.medium``)."""
    count: int
    """How many units of the offering, 1 to the topology's limit (100 as shipped)."""
    tier: str
    """The protection tier: ``platinum``, ``gold``, ``silver`` or ``bronze``."""
    data_class: str
    """One of the topology's data classes (as shipped ``public``, ``internal``, ``sensitive`` or
    ``secret``)."""
    preferred_center: str | None
    """The local center the department asked to serve from; ``null``: placement chose."""
    name: str
    """The workload's name; the request id when the department gave none."""
    state: str
    """``pending-approval``, ``approved``, ``provisioning``, ``ready``, ``rejected``, ``cancelled`` or
    ``failed``."""
    needs_approval: bool
    """Whether an operator had to approve it (the policies did not approve it automatically)."""
    approval_policy_ids: list[str]
    """The policies that decided on automatic approval: the one that approved it, or those that
    held it for an operator (e.g. ``approval-size-threshold``)."""
    reasons: list[str]
    """Why it waits for an operator, why it was rejected or why it failed, oldest first; empty if none."""
    steps: list[StepPublic]
    """The lifecycle so far, oldest first."""
    workload_id: str | None
    """The workload the request made (``GET /v1/workloads/{id}``); written at admission."""
    created_by: str
    """The principal that submitted it: ``token:<token id>`` over the API, ``local:<user>`` at the console."""
    created_at: public.Timestamp
    """When it was submitted (ISO 8601, UTC, to the second)."""
    updated_at: public.Timestamp
    """When it last changed (ISO 8601, UTC, to the second)."""


def _public(record: requests.RequestRecord) -> RequestPublic:
    return RequestPublic.model_validate(record)


def new_id(prefix: str, now: float) -> str:
    """Ids that sort by creation time (for stable pagination), then random.

    The random part tells apart ids of one millisecond; it guards nothing (who may read a request
    is checked on every read), so it needs no system call (``model.ids``).
    """
    return f"{prefix}-{int(now * 1000):013x}{ids.random_hex(8)}"


def _validate(ctx: ctx_module.Context, body: RequestCreate) -> tuple[topo.Offering, topo.Tier]:
    topology = ctx.topology
    offering = topology.offering(body.offering)
    tier = topology.tier(body.tier)
    most = topology.max_count(offering)
    if not 1 <= body.count <= most:
        raise errors.InvalidInput(f"must be between 1 and {most}", field="count")
    topology.check_data_class(body.data_class)
    placement.check_preferred_center(topology, body.preferred_center)
    if body.name and (len(body.name) > 40 or not topo.is_slug(body.name)):
        raise errors.InvalidInput("lower-case ASCII letters, digits and '-', at most 40", field="name")
    return offering, tier


def _department_of(ctx: ctx_module.Context, principal: identity.Principal, body: RequestCreate) -> str:
    if identity.is_department(principal):
        if body.department not in (None, principal.department):
            raise errors.InvalidInput("a department orders for itself only", field="department")
        return principal.department
    if not body.department:
        raise errors.InvalidInput("name the department this request is for", field="department")
    return body.department


def _fingerprint(body: RequestCreate) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(), sort_keys=True).encode()).hexdigest()


class _KeyTaken(Exception):
    """Another submission with the same idempotency key committed first."""


def submit(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    body: RequestCreate,
    idempotency_key: str | None = None,
) -> tuple[RequestPublic, bool]:
    """Admit a request; returns it and whether it was created now (``False``: an idempotent replay).

    A refusal (policy or quota) is audited with its reason and changes nothing else. The
    request is checked and written by the admission thread, together with whatever other
    callers queued meanwhile (see ``_Admitter``); inside a unit of work, in this thread.
    """
    if ctx.store.current_unit() is not None:
        # Inside a unit of work the writes commit with the unit: never mix others' in.
        job = _Job(principal, body, idempotency_key, contextvars.copy_context(), _ignore)
        _admit_jobs(ctx, [job])
        return job.result()
    finished = threading.Event()
    job = _Job(principal, body, idempotency_key, contextvars.copy_context(), lambda _job: finished.set())
    _admitter(ctx).queue(job)
    finished.wait()
    return job.result()


async def submit_async(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    body: RequestCreate,
    idempotency_key: str | None = None,
) -> tuple[RequestPublic, bool]:
    """``submit`` for an event loop: waiting for the admission thread does not block the loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    waker = _waker_of(loop)
    job = _Job(principal, body, idempotency_key, contextvars.copy_context(), lambda _job: waker.wake(future))
    _admitter(ctx).queue(job)
    await future
    return job.result()


class _LoopWaker:
    """Wakes the waiting coroutines of one event loop from the admission thread.

    ``call_soon_threadsafe`` writes to the loop's wake-up pipe: a system call (which releases
    the interpreter's lock) on the admission thread and a read on the loop, for every call. The
    futures a batch settles are gathered instead, and the loop is woken once to settle them all.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[asyncio.Future[None]] = []

    def wake(self, future: asyncio.Future[None]) -> None:
        with self._lock:
            self._ready.append(future)
            first = len(self._ready) == 1
        if first:
            self._loop.call_soon_threadsafe(self._settle)

    def _settle(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for future in ready:
            if not future.done():
                future.set_result(None)


_WAKERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaker] = weakref.WeakKeyDictionary()
_WAKERS_LOCK = threading.Lock()


def _waker_of(loop: asyncio.AbstractEventLoop) -> _LoopWaker:
    waker = _WAKERS.get(loop)
    if waker is None:
        with _WAKERS_LOCK:
            waker = _WAKERS.setdefault(loop, _LoopWaker(loop))
    return waker


def _ignore(_job: _Job) -> None:
    pass


def submit_many(
    ctx: ctx_module.Context, *, principal: identity.Principal, bodies: list[RequestCreate]
) -> list[RequestPublic]:
    """Admit several requests of one principal together: all of them or none.

    Each is checked as ``submit`` checks it (fields, policy, placement); the quota of
    all of them is reserved in one step, so a batch that does not fit is refused whole,
    naming every shortfall, and nothing is admitted. For a caller that orders many
    alike things at once, such as a drill's canaries: one transaction instead of one each.
    """
    headroom: dict[str, dict[str, int | None]] = {}
    try:
        with _OneRead(ctx) as read:
            admissions = [
                _prepare(ctx, read, principal=principal, body=body, headroom=headroom) for body in bodies
            ]
        tickets = [
            _Ticket(
                admission=admission,
                principal=principal,
                idempotency_key=None,
                fingerprint="",
                scope=audit.current_scope(),
            )
            for admission in admissions
        ]
        with ctx.transaction() as tx:
            held = quotas.reserve_many(
                tx, asks=[ask for ticket in tickets for ask in ticket.asks()], now=ctx.clock.now()
            )
            reservations = iter(held)
            admitted = [
                _admitted(ctx, ticket, [next(reservations) for _ in ticket.admission.planned])
                for ticket in tickets
            ]
            _write(ctx, tx, admitted=admitted, audit_entries=[entry for _r, _w, entry in admitted])
    except (errors.QuotaExceeded, errors.PolicyDenied) as refused:
        _audit_refusal(ctx, principal, refused, detail={"requests": len(bodies)})
        raise
    return [_public(record) for record, _workload, _entry in admitted]


def _refusal_detail(body: RequestCreate) -> dict[str, Any]:
    return {"offering": body.offering, "count": body.count, "tier": body.tier}


def _audit_refusal(
    ctx: ctx_module.Context,
    principal: identity.Principal,
    refused: errors.QuotaExceeded | errors.PolicyDenied,
    *,
    detail: dict[str, Any],
) -> None:
    audit.record_refusal(
        ctx,
        principal=principal,
        action="request.create",
        target_type="Request",
        target_id="-",
        error=refused,
        detail=detail,
    )


@dataclasses.dataclass(frozen=True)
class _Admission:
    """A request checked and placed, ready to be written with its quota held."""

    body: RequestCreate
    offering: topo.Offering
    tier: topo.Tier
    department: str
    planned: list[placement.Placement]
    approval: policy_engine.Decision
    request_id: str
    workload_id: str
    now: float


class _OneRead:
    """The one read transaction of a request, opened when first needed (often it is not)."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        self._stack = contextlib.ExitStack()
        self._tx: Any = None

    def __call__(self) -> Any:
        if self._tx is None:
            self._tx = self._stack.enter_context(self._ctx.read())
        return self._tx

    def __enter__(self) -> _OneRead:
        return self

    def __exit__(self, *exc: Any) -> bool | None:
        return self._stack.__exit__(*exc)


def _prepare(
    ctx: ctx_module.Context,
    read: Callable[[], Any],
    *,
    principal: identity.Principal,
    body: RequestCreate,
    headroom: dict[str, dict[str, int | None]],
) -> _Admission:
    """Check one request (fields, policy) and place it; ``headroom`` caches each department's.

    What it reads of the store, it reads in the request's one read (``read``): the
    department's path (unless the principal carries it) and, when placement ranks centers,
    the department's vCPU headroom in each.
    """
    offering, tier = _validate(ctx, body)
    department = _department_of(ctx, principal, body)
    ranks_centers = _ranks_centers(tier, body)
    owner_path = principal.department_path if department == principal.department else ()
    if not owner_path:
        owner_path = tuple(orgs.get_node(read(), department, field="department").ancestor_ids)
    if ranks_centers and department not in headroom:
        headroom[department] = quotas.headroom(
            read(),
            chain=owner_path,
            centers=[c.name for c in ctx.topology.centers_with_role(topo.CenterRole.LOCAL)],
            resource=q.Resource.VCPU,
        )
    amounts = q.scale(offering.amounts(), body.count)
    size = {
        "vcpu_total": amounts.get(q.Resource.VCPU, 0),
        "ram_gb_total": amounts.get(q.Resource.RAM_GB, 0),
        "volume_gb_total": amounts.get(q.Resource.VOLUME_GB, 0),
        "object_gb_total": amounts.get(q.Resource.OBJECT_GB, 0),
        "instances": amounts.get(q.Resource.INSTANCES, 0),
        "data_class": body.data_class,
    }
    identity.authorize(
        ctx,
        principal=principal,
        action="request.create",
        resource_type="Request",
        resource_id="new",
        owner=department,
        owner_path=owner_path,
        context={"offering_in_catalog": True, **size},
    )
    planned = placement.plan(
        ctx,
        principal=principal,
        tier=tier,
        amounts=amounts,
        data_class=body.data_class,
        preferred_center=body.preferred_center,
        headroom_vcpu=headroom.get(department, {}),
    )
    approval = identity.policies(ctx).decide(
        principal=principal,
        action="request.auto_approve",
        resource=policy_engine.Resource(type="Request", id="new", owner=department, owner_path=owner_path),
        context=size,
    )
    now = ctx.clock.now()
    return _Admission(
        body=body,
        offering=offering,
        tier=tier,
        department=department,
        planned=planned,
        approval=approval,
        request_id=new_id("req", now),
        workload_id=new_id("wl", now),
        now=now,
    )


# --- writing admissions: one transaction for every request queued meanwhile --------------------------


@dataclasses.dataclass
class _Ticket:
    """An admission waiting for the writer, and what became of it."""

    admission: _Admission
    principal: identity.Principal
    idempotency_key: str | None
    fingerprint: str
    scope: audit.RequestScope
    """The request id and source of the call that submitted it (written on the admission thread)."""

    def asks(self) -> list[quotas.ReservationAsk]:
        a = self.admission
        return [
            quotas.ReservationAsk(
                node_id=a.department, center=p.center, amounts=p.amounts, purpose=f"{a.request_id} {p.role}"
            )
            for p in a.planned
        ]


@dataclasses.dataclass
class _Job:
    """A caller's request on its way through the admission thread, and what became of it."""

    principal: identity.Principal
    body: RequestCreate
    idempotency_key: str | None
    context: contextvars.Context
    """The caller's context (request id, source, log fields): its checks run inside it."""
    notify: Callable[[_Job], None]
    """Called once, from the admission thread, when ``outcome`` is set."""
    outcome: tuple[RequestPublic, bool] | BaseException | None = None

    def finish(self, outcome: tuple[RequestPublic, bool] | BaseException) -> None:
        self.outcome = outcome
        self.notify(self)

    def result(self) -> tuple[RequestPublic, bool]:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        assert self.outcome is not None
        return self.outcome


class _Admitter:
    """The admission thread of a context: checks and writes queued requests in batches (group commit).

    Callers queue a job and wait (a thread on an event, a coroutine on a future); one thread
    takes every job queued by then, checks them all in one read transaction (fields, policy,
    placement), then writes every checked one
    in one transaction: the counters of all their chains locked once, each request held or
    refused in queue order against what the ones before it took, one counter update per
    (node, center), one insert per table, one audit append. If a whole batch fails, each of
    its requests is written alone, so one bad request cannot fail the others. One thread
    does the work, instead of one per caller contending for the interpreter and the store;
    it ends after ``IDLE_S`` without work and the next job starts it again.
    """

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        self._jobs: collections.deque[_Job] = collections.deque()
        self._lock = threading.Lock()
        self._more = threading.Condition(self._lock)
        self._running = False

    def queue(self, job: _Job) -> None:
        with self._lock:
            self._jobs.append(job)
            if self._running:
                self._more.notify()
                return
            self._running = True
        threading.Thread(target=self._run, name="cloudctl-admission", daemon=True).start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._more.wait(IDLE_S)
                if not self._jobs:
                    self._running = False
                    return
                batch = [self._jobs.popleft() for _ in range(min(len(self._jobs), MAX_BATCH))]
            _admit_jobs(self._ctx, batch)


MAX_BATCH = 256
"""Admissions checked and written together at most."""
IDLE_S = 5.0
"""How long the admission thread waits for work before it ends."""


def _admitter(ctx: ctx_module.Context) -> _Admitter:
    admitter = ctx.cache.get("admitter")
    if admitter is None:
        admitter = ctx.cache.setdefault("admitter", _Admitter(ctx))
    assert isinstance(admitter, _Admitter)
    return admitter


def _admit_jobs(ctx: ctx_module.Context, jobs: list[_Job]) -> None:
    """Check ``jobs`` and write the checked ones in one transaction, then tell each caller.

    The checks read inside the writing transaction: one transaction a batch, not two. A
    policy refusal is audited after it, in a transaction of its own.
    """
    denied: list[tuple[_Job, errors.PolicyDenied]] = []
    checked: list[tuple[_Job, _Ticket]] = []
    try:
        try:
            with ctx.transaction() as tx:
                checked = _check_jobs(ctx, tx, jobs, denied=denied)
                outcomes = _admit_each(ctx, tx, [ticket for _job, ticket in checked]) if checked else []
        except Exception as error:
            if not checked and not denied:
                raise
            # One bad request must not fail the others: each is written alone.
            alone = len(checked) == 1
            outcomes = [error if alone else _write_alone(ctx, ticket) for _job, ticket in checked]
        for (job, _ticket), outcome in zip(checked, outcomes, strict=True):
            job.finish(job.context.run(_settled, ctx, job, outcome))
        for job, refused in denied:
            job.context.run(_audit_refusal, ctx, job.principal, refused, detail=_refusal_detail(job.body))
            job.finish(refused)
    except BaseException as error:  # never leave a caller waiting
        for job in jobs:
            if job.outcome is None:
                job.finish(error)
        if not isinstance(error, Exception):
            raise


def _check_jobs(
    ctx: ctx_module.Context,
    tx: Any,
    jobs: list[_Job],
    *,
    denied: list[tuple[_Job, errors.PolicyDenied]],
) -> list[tuple[_Job, _Ticket]]:
    """Each job checked in its caller's context: its ticket, added to ``denied``, or finished.

    A job finishes here when it fails a check (nothing was written for it) or replays an
    earlier request with its idempotency key.
    """
    checked: list[tuple[_Job, _Ticket]] = []
    headroom = _headroom_of_departments(ctx, tx, jobs)
    for job in jobs:
        try:
            ticket = job.context.run(_check, ctx, lambda: tx, job, headroom)
        except errors.PolicyDenied as policy_denied:
            denied.append((job, policy_denied))
            continue
        except Exception as error:
            job.finish(error)
            continue
        if isinstance(ticket, _Ticket):
            checked.append((job, ticket))
        else:
            job.finish((ticket, False))
    return checked


def _headroom_of_departments(
    ctx: ctx_module.Context, tx: Any, jobs: list[_Job]
) -> dict[str, dict[str, int | None]]:
    """The vCPU headroom of every department whose order placement will rank centers by it,
    read in one statement for the batch (``_prepare`` reads any other it needs itself)."""
    chains: dict[str, tuple[str, ...]] = {}
    for job in jobs:
        principal, body = job.principal, job.body
        if not principal.department_path or body.department not in (None, principal.department):
            continue
        tier = next((tier for tier in ctx.topology.tiers if tier.name == body.tier), None)
        if tier is not None and _ranks_centers(tier, body):
            chains[principal.department] = principal.department_path
    if not chains:
        return {}
    return quotas.headroom_many(
        tx,
        chains=chains,
        centers=[c.name for c in ctx.topology.centers_with_role(topo.CenterRole.LOCAL)],
        resource=q.Resource.VCPU,
    )


def _ranks_centers(tier: topo.Tier, body: RequestCreate) -> bool:
    """Whether placement chooses the center by headroom (not active-active, no preference)."""
    return tier.local is not topo.LocalPlacement.ACTIVE_ACTIVE and body.preferred_center is None


def _check(
    ctx: ctx_module.Context,
    read: Callable[[], Any],
    job: _Job,
    headroom: dict[str, dict[str, int | None]],
) -> _Ticket | RequestPublic:
    """The job's ticket for the writer, or the request an idempotent replay returns."""
    principal = job.principal
    if job.idempotency_key is not None:
        replay = _replay_in(read(), principal=principal, key=job.idempotency_key, body=job.body)
        if replay is not None:
            return replay
    return _Ticket(
        admission=_prepare(ctx, read, principal=principal, body=job.body, headroom=headroom),
        principal=principal,
        idempotency_key=job.idempotency_key,
        fingerprint=_fingerprint(job.body),
        scope=audit.current_scope(),
    )


def _settled(
    ctx: ctx_module.Context, job: _Job, outcome: requests.RequestRecord | BaseException
) -> tuple[RequestPublic, bool] | BaseException:
    if isinstance(outcome, _KeyTaken):
        replay = _replay(ctx, principal=job.principal, key=job.idempotency_key or "", body=job.body)
        assert replay is not None
        return replay, False
    if isinstance(outcome, BaseException):
        return outcome
    return _public(outcome), True


def _write_alone(ctx: ctx_module.Context, ticket: _Ticket) -> requests.RequestRecord | BaseException:
    try:
        with ctx.transaction() as tx:
            return _admit_each(ctx, tx, [ticket])[0]
    except Exception as error:
        return error


def _admit_each(
    ctx: ctx_module.Context, tx: Any, tickets: list[_Ticket]
) -> list[requests.RequestRecord | BaseException]:
    """Hold or refuse each ticket in order, then write what was admitted and audit every decision."""
    now = ctx.clock.now()

    def claim_key(index: int) -> bool:
        ticket = tickets[index]
        if ticket.idempotency_key is None:
            return True
        return requests.claim_idempotency_key(
            tx,
            principal=ticket.principal.id,
            key=ticket.idempotency_key,
            fingerprint=ticket.fingerprint,
            target_id=ticket.admission.request_id,
            now=ticket.admission.now,
        )

    held = quotas.hold_each(tx, groups=[ticket.asks() for ticket in tickets], now=now, accept=claim_key)
    outcomes: list[requests.RequestRecord | BaseException] = []
    admitted = []
    audit_entries = []
    for ticket, reservations in zip(tickets, held, strict=True):
        if reservations is None:
            outcomes.append(_KeyTaken())
        elif isinstance(reservations, errors.QuotaExceeded):
            outcomes.append(audit.mark_recorded(reservations))
            audit_entries.append(
                _audit_entry(
                    ctx,
                    ticket,
                    target_id="-",
                    outcome="refused",
                    detail={**_refusal_detail(ticket.admission.body), "reason": reservations.one_line()},
                )
            )
        else:
            record, workload, entry = _admitted(ctx, ticket, reservations)
            admitted.append((record, workload, entry))
            audit_entries.append(entry)
            outcomes.append(record)
    _write(ctx, tx, admitted=admitted, audit_entries=audit_entries)
    return outcomes


def _write(
    ctx: ctx_module.Context,
    tx: Any,
    *,
    admitted: list[tuple[requests.RequestRecord, requests.WorkloadRecord, audit_store.Entry]],
    audit_entries: list[audit_store.Entry],
) -> None:
    requests.insert_requests(tx, [record for record, _workload, _entry in admitted])
    requests.insert_workloads(tx, [workload for _record, workload, _entry in admitted])
    audit.append_entries(ctx, audit_entries, tx=tx)


def _audit_entry(
    ctx: ctx_module.Context, ticket: _Ticket, *, target_id: str, outcome: str, detail: dict[str, Any]
) -> audit_store.Entry:
    with audit.request_scope(ticket.scope.request_id, source=ticket.scope.source):
        return audit.entry(
            ctx,
            principal=ticket.principal,
            action="request.create",
            target_type="Request",
            target_id=target_id,
            outcome=outcome,
            detail=detail,
        )


def _admitted(
    ctx: ctx_module.Context, ticket: _Ticket, reservations: list[quotas.Reservation]
) -> tuple[requests.RequestRecord, requests.WorkloadRecord, audit_store.Entry]:
    """The request, workload and audit entry of an admission whose quota is held."""
    admission = ticket.admission
    body, now = admission.body, admission.now
    needs_approval = not admission.approval.allowed
    final_state = (
        states.WorkloadState.PENDING_APPROVAL if needs_approval else states.WorkloadState.APPROVED
    ).value
    steps: list[dict[str, Any]] = [
        {"step": step, "at": now} for step in ("submitted", "policy-checked", "quota-reserved")
    ]
    steps += [
        {"step": "capacity-warning", "at": now, "detail": p.warning} for p in admission.planned if p.warning
    ]
    steps.append({"step": final_state, "at": now})
    record = requests.RequestRecord(
        id=admission.request_id,
        department=admission.department,
        offering=admission.offering.name,
        count=body.count,
        tier=admission.tier.name,
        data_class=body.data_class,
        preferred_center=body.preferred_center,
        name=body.name or admission.request_id,
        state=final_state,
        needs_approval=needs_approval,
        approval_policy_ids=list(admission.approval.policy_ids),
        reasons=[] if not needs_approval else list(admission.approval.reasons),
        steps=steps,
        workload_id=admission.workload_id,
        created_by=ticket.principal.id,
        created_at=now,
        updated_at=now,
        resource_version=1,
    )
    workload = requests.WorkloadRecord(
        id=admission.workload_id,
        request_id=admission.request_id,
        department=admission.department,
        name=record.name,
        offering=admission.offering.name,
        count=body.count,
        tier=admission.tier.name,
        data_class=body.data_class,
        state=final_state,
        reasons=[],
        created_at=now,
        updated_at=now,
        resource_version=1,
        placements=[
            requests.PlacementRecord(
                workload_id=admission.workload_id,
                center=p.center,
                role=p.role,
                reservation_id=reservation.id,
                resources=[],
                state=states.PlacementState.RESERVED.value,
            )
            for p, reservation in zip(admission.planned, reservations, strict=True)
        ],
    )
    entry = _audit_entry(
        ctx,
        ticket,
        target_id=admission.request_id,
        outcome="success",
        detail={
            "offering": admission.offering.name,
            "count": body.count,
            "tier": admission.tier.name,
            "state": final_state,
        },
    )
    return record, workload, entry


def _replay(
    ctx: ctx_module.Context, *, principal: identity.Principal, key: str, body: RequestCreate
) -> RequestPublic | None:
    with ctx.read() as tx:
        return _replay_in(tx, principal=principal, key=key, body=body)


def _replay_in(
    tx: Any, *, principal: identity.Principal, key: str, body: RequestCreate
) -> RequestPublic | None:
    found = requests.find_idempotency_key(tx, principal=principal.id, key=key)
    if found is None:
        return None
    fingerprint, request_id = found
    if fingerprint != _fingerprint(body):
        raise errors.Conflict(
            "this Idempotency-Key was used with a different request body", field="idempotency_key"
        )
    return _public(requests.get_request(tx, request_id))


def _owned_request(
    ctx: ctx_module.Context, tx: Any, *, principal: identity.Principal, request_id: str, action: str
) -> requests.RequestRecord:
    record = requests.find_request(tx, request_id)
    if record is None:
        raise errors.NotFound(f"no request {request_id!r}", field="request")
    node_path = _path(tx, record.department)
    identity.authorize(
        ctx,
        principal=principal,
        action=action,
        resource_type="Request",
        resource_id=request_id,
        owner=record.department,
        owner_path=node_path,
        hide_as_missing=True,
    )
    return record


def _path(tx: Any, department: str) -> tuple[str, ...]:
    node = orgs.find_node(tx, department)
    return tuple(node.ancestor_ids) if node else (department,)


def get(ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str) -> RequestPublic:
    with ctx.read() as tx:
        return _public(
            _owned_request(ctx, tx, principal=principal, request_id=request_id, action="request.read")
        )


def list_requests(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    state: str | None = None,
    department: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[RequestPublic], str | None]:
    """A page of requests the principal may see, and the cursor of the next page (or ``None``)."""
    if state is not None and state not in set(states.WorkloadState):
        raise errors.InvalidInput(
            f"{state!r} is not a request state ({', '.join(states.WorkloadState)})", field="state"
        )
    departments = visible_departments(
        ctx, principal=principal, department=department, action="request.read", resource_type="Request"
    )
    with ctx.read() as tx:
        page, next_cursor = pages.one_page(
            lambda size: requests.list_requests(
                tx, departments=departments, states=[state] if state else None, after=cursor, limit=size
            ),
            limit=limit,
            cursor_of=lambda record: record.id,
        )
    return [_public(record) for record in page], next_cursor


def visible_departments(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    department: str | None,
    action: str,
    resource_type: str,
) -> list[str] | None:
    """The departments a listing covers: a department's own subtree, or what an operator filters."""
    if identity.is_department(principal):
        with ctx.read() as tx:
            subtree = [node.id for node in orgs.list_nodes(tx, under=principal.department)]
        if department is not None:
            if department not in subtree:
                raise errors.NotFound(f"no org node {department!r}", field="department")
            return [department]
        return subtree
    identity.authorize(
        ctx, principal=principal, action=action, resource_type=resource_type, resource_id="all"
    )
    if department is None:
        return None
    with ctx.read() as tx:  # a typo is refused, never answered with an empty list
        orgs.get_node(tx, department, field="department")
    return [department]


@audit.audits_refusals(action="request.approve", target_type="Request", target="request_id")
def approve(ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str) -> RequestPublic:
    return _decide(ctx, principal=principal, request_id=request_id, action="request.approve", reason=None)


@audit.audits_refusals(action="request.reject", target_type="Request", target="request_id")
def reject(
    ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str, reason: str
) -> RequestPublic:
    if not reason.strip():
        raise errors.InvalidInput("say why the request is rejected", field="reason")
    topo.check_one_line(reason, field="reason")
    return _decide(ctx, principal=principal, request_id=request_id, action="request.reject", reason=reason)


@audit.audits_refusals(action="request.cancel", target_type="Request", target="request_id")
def cancel(ctx: ctx_module.Context, *, principal: identity.Principal, request_id: str) -> RequestPublic:
    return _decide(
        ctx, principal=principal, request_id=request_id, action="request.cancel", reason="cancelled"
    )


def _decide(
    ctx: ctx_module.Context,
    *,
    principal: identity.Principal,
    request_id: str,
    action: str,
    reason: str | None,
) -> RequestPublic:
    allowed_from = {
        "request.approve": (states.WorkloadState.PENDING_APPROVAL,),
        "request.reject": (states.WorkloadState.PENDING_APPROVAL,),
        "request.cancel": (states.WorkloadState.PENDING_APPROVAL, states.WorkloadState.APPROVED),
    }[action]
    target = {
        "request.approve": states.WorkloadState.APPROVED,
        "request.reject": states.WorkloadState.REJECTED,
        "request.cancel": states.WorkloadState.CANCELLED,
    }[action].value
    now = ctx.clock.now()
    with ctx.transaction() as tx:
        record = _owned_request(ctx, tx, principal=principal, request_id=request_id, action=action)
        record = requests.get_request(tx, request_id, for_update=True)
        if record.state not in allowed_from:
            raise errors.Conflict(
                f"request {request_id} is {record.state}; only a {' or '.join(allowed_from)} request can be "
                f"{target}",
                field="state",
            )
        reasons = record.reasons if reason is None else [*record.reasons, reason]
        updated = requests.update_request(tx, record, state=target, reasons=reasons, step=target, now=now)
        workload = requests.get_workload(tx, record.workload_id or "", for_update=True)
        if target == states.WorkloadState.APPROVED:
            requests.update_workload(tx, workload, state=target, now=now)
        else:
            quotas.release_reservations(tx, [p.reservation_id for p in workload.placements], now=now)
            requests.update_workload(tx, workload, state=target, reasons=reasons, now=now)
        audit.record(
            ctx,
            principal=principal,
            action=action,
            target_type="Request",
            target_id=request_id,
            outcome="success",
            detail={"reason": reason or ""},
            tx=tx,
        )
    return _public(updated)
