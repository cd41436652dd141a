"""Many departments and workloads, fast: the shortcut the scale and recovery benchmarks take.

Admitting 100,000 workloads through ``POST /v1/requests`` (or ``requests.submit``) and the
provisioning reconciler would take longer than the measurement itself. Instead:

1. one workload per template (tier, home center) goes the real way — admitted through
   ``services.requests.submit``, provisioned by the reconciler, protected by
   ``services.recovery.protect_ready_workloads`` — and its placements (centers, roles,
   states, reserved amounts, whether the quota was committed) and replication streams are
   read back as the template;
2. clones of the template are written straight into the store in transactions of
   ``CLONE_BATCH`` workloads: the quota counters move through ``quotas.reserve_many`` and
   ``quotas.commit_reservations`` (one ask per department and center for the batch, then
   split into one reservation row per placement), and the requests, workloads, placements
   and streams are the store's own records (``RequestRecord``, ``WorkloadRecord``,
   ``Stream``) written with one multi-row insert per table. Going through
   ``insert_request`` / ``insert_workload`` / ``reserve_many`` one workload at a time costs
   about 27 statements per workload (20 ms here): 100,000 workloads would take over half an
   hour of setup.

What the clones lack, by design: backend resources in the simulator (their placements
list none, so a deletion has nothing to delete in a center, and a failover starts fresh
servers) and data buckets. The store — which is what the control plane's passes read — holds
exactly what the real path writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from cloudctl.model import quotas as q
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, provisioning, recovery
from cloudctl.services import requests as requests_service
from cloudctl.store import db, orgs, quotas, replication, requests, schema

CLONE_BATCH = 5000
"""Workloads written per transaction."""


@dataclasses.dataclass(frozen=True)
class PlacementShape:
    center: str
    role: str
    state: str
    amounts: q.Amounts
    committed: bool


@dataclasses.dataclass(frozen=True)
class StreamShape:
    source: str
    target: str
    mode: str
    interval_s: float | None


@dataclasses.dataclass(frozen=True)
class WorkloadTemplate:
    """The shape of a workload admitted and provisioned the real way."""

    tier: str
    offering: str
    placements: tuple[PlacementShape, ...]
    streams: tuple[StreamShape, ...]


def department_principal(context: ctx_module.Context, department: str) -> identity.Principal:
    with context.read() as tx:
        path = tuple(orgs.get_node(tx, department).ancestor_ids)
    return identity.Principal(
        id=f"bench:{department}", role="dept-admin", department=department, department_path=path
    )


def admit_and_provision(
    context: ctx_module.Context, *, department: str, offering: str, tier: str, preferred_center: str
) -> str:
    """One workload the real way (admit, approve if needed, provision, protect); its id."""
    body = requests_service.RequestCreate(
        offering=offering, count=1, tier=tier, preferred_center=preferred_center, name=f"bench-{tier}"
    )
    request, _created = requests_service.submit(
        context, principal=department_principal(context, department), body=body
    )
    if request.state == "pending-approval":
        requests_service.approve(
            context, principal=identity.local_operator("sysadmin"), request_id=request.id
        )
    result = provisioning.reconcile(context, kind="request", object_id=request.id)
    if not result.done:
        raise RuntimeError(f"the template workload was not provisioned: {result.message}")
    recovery.protect_ready_workloads(context)
    assert request.workload_id is not None
    return request.workload_id


def template_of(context: ctx_module.Context, workload_id: str) -> WorkloadTemplate:
    with context.read() as tx:
        workload = requests.get_workload(tx, workload_id)
        placements = tuple(
            PlacementShape(
                center=p.center,
                role=p.role,
                state=p.state,
                amounts=dict(quotas.get_reservation(tx, p.reservation_id).amounts),
                committed=quotas.get_reservation(tx, p.reservation_id).state
                is quotas.ReservationState.COMMITTED,
            )
            for p in workload.placements
        )
        streams = tuple(
            StreamShape(source=s.source, target=s.target, mode=s.mode, interval_s=s.interval_s)
            for s in replication.list_streams(tx, workload_ids=[workload_id])
        )
    return WorkloadTemplate(
        tier=workload.tier, offering=workload.offering, placements=placements, streams=streams
    )


def make_template(
    context: ctx_module.Context, *, department: str, offering: str, tier: str, preferred_center: str
) -> WorkloadTemplate:
    workload_id = admit_and_provision(
        context, department=department, offering=offering, tier=tier, preferred_center=preferred_center
    )
    return template_of(context, workload_id)


def _batches(total: int, size: int) -> Iterator[range]:
    for start in range(0, total, size):
        yield range(start, min(start + size, total))


def clone_workloads(
    context: ctx_module.Context,
    *,
    templates: Sequence[WorkloadTemplate],
    departments: Sequence[str],
    count: int,
    prefix: str = "bench",
) -> list[str]:
    """Write ``count`` ready workloads shaped like ``templates`` (round robin), spread evenly
    over ``departments`` in contiguous blocks, in transactions of ``CLONE_BATCH``; their ids.

    Contiguous blocks keep the departments of one batch few, so the batch holds its quota
    with few asks.
    """
    made: list[str] = []
    now = context.clock.now()
    for batch in _batches(count, CLONE_BATCH):
        clones = [
            Clone(
                index=index,
                prefix=prefix,
                department=departments[index * len(departments) // count],
                template=templates[index % len(templates)],
            )
            for index in batch
        ]
        with context.store.transaction() as tx:
            _hold_quota(tx, clones, now=now)
            _insert_rows(tx, clones, now=now)
        made += [clone.workload_id for clone in clones]
    return made


@dataclasses.dataclass(frozen=True)
class Clone:
    index: int
    prefix: str
    department: str
    template: WorkloadTemplate

    @property
    def workload_id(self) -> str:
        return f"wl-{self.prefix}-{self.index:08d}"

    @property
    def request_id(self) -> str:
        return f"req-{self.prefix}-{self.index:08d}"

    def reservation_id(self, center: str) -> str:
        return f"res-{self.prefix}-{self.index:08d}-{center}"


def _hold_quota(tx: db.Transaction, clones: Sequence[Clone], *, now: float) -> None:
    """Hold (and, where the template did, commit) the quota of every clone's placements.

    The counters move through ``reserve_many`` and ``commit_reservations``, one ask per
    (department, center, committed) summing the batch; those batch reservations are then
    split into one reservation row per placement, as admission would have written them.
    The counters equal the sum of the live reservations before and after the split.
    """
    totals: dict[tuple[str, str, bool], q.Amounts] = {}
    for clone in clones:
        for shape in clone.template.placements:
            key = (clone.department, shape.center, shape.committed)
            totals[key] = q.add(totals.get(key, {}), shape.amounts)
    keys = sorted(totals)
    held = quotas.reserve_many(
        tx,
        asks=[
            quotas.ReservationAsk(node_id=node, center=center, amounts=totals[(node, center, done)])
            for node, center, done in keys
        ],
        now=now,
    )
    quotas.commit_reservations(
        tx, [r.id for r, (_n, _c, done) in zip(held, keys, strict=True) if done], now=now
    )
    tx.execute(schema.reservations.delete().where(schema.reservations.c.id.in_([r.id for r in held])))
    tx.execute(
        schema.reservations.insert(),
        [
            {
                "id": clone.reservation_id(shape.center),
                "node_id": clone.department,
                "center": shape.center,
                "amounts": q.as_names(shape.amounts),
                "state": (
                    quotas.ReservationState.COMMITTED if shape.committed else quotas.ReservationState.RESERVED
                ).value,
                "purpose": f"{clone.request_id} {shape.role}",
                "created_at": now,
                "updated_at": now,
            }
            for clone in clones
            for shape in clone.template.placements
        ],
    )


def _insert_rows(tx: db.Transaction, clones: Sequence[Clone], *, now: float) -> None:
    """Requests, workloads, placements and streams of the clones, one multi-row insert per table.

    The rows are the store's own records (``RequestRecord``, ``WorkloadRecord``, ``Stream``)
    as ``insert_request`` / ``insert_workload`` / ``upsert_stream`` would write them.
    """
    steps = [{"step": step, "at": now} for step in ("submitted", "policy-checked", "quota-reserved", "ready")]
    request_rows, workload_rows, placement_rows, stream_rows = [], [], [], []
    for clone in clones:
        template = clone.template
        request = requests.RequestRecord(
            id=clone.request_id,
            department=clone.department,
            offering=template.offering,
            count=1,
            tier=template.tier,
            data_class="internal",
            preferred_center=None,
            name=clone.workload_id,
            state="ready",
            needs_approval=False,
            approval_policy_ids=[],
            reasons=[],
            steps=steps,
            workload_id=clone.workload_id,
            created_by="bench",
            created_at=now,
            updated_at=now,
            resource_version=1,
        )
        workload = requests.WorkloadRecord(
            id=clone.workload_id,
            request_id=clone.request_id,
            department=clone.department,
            name=clone.workload_id,
            offering=template.offering,
            count=1,
            tier=template.tier,
            data_class="internal",
            state="ready",
            reasons=[],
            created_at=now,
            updated_at=now,
            resource_version=1,
            placements=[
                requests.PlacementRecord(
                    workload_id=clone.workload_id,
                    center=shape.center,
                    role=shape.role,
                    reservation_id=clone.reservation_id(shape.center),
                    resources=[],
                    state=shape.state,
                )
                for shape in template.placements
            ],
        )
        request_rows.append(dataclasses.asdict(request))
        workload_row = dataclasses.asdict(workload)
        placement_rows += workload_row.pop("placements")
        workload_rows.append(workload_row)
        stream_rows += [
            dataclasses.asdict(
                replication.Stream(
                    id=replication.stream_id(clone.workload_id, shape.source, shape.target),
                    workload_id=clone.workload_id,
                    department=clone.department,
                    tier=template.tier,
                    source=shape.source,
                    target=shape.target,
                    mode=shape.mode,
                    interval_s=shape.interval_s,
                    state="healthy",
                    last_seq=0,
                    last_consistent_at=now,
                    bytes_copied=0,
                    objects_copied=0,
                    objects_resent=0,
                    last_pass_at=now,
                    last_error="",
                    created_at=now,
                    updated_at=now,
                )
            )
            for shape in template.streams
        ]
    tx.execute(schema.requests.insert(), request_rows)
    tx.execute(schema.workloads.insert(), workload_rows)
    tx.execute(schema.placements.insert(), placement_rows)
    if stream_rows:
        tx.execute(schema.replication_streams.insert(), stream_rows)


def create_departments(
    context: ctx_module.Context, *, parent: str, count: int, prefix: str = "bench-dept"
) -> list[str]:
    """``count`` departments under ``parent``, without limits of their own (the parent's bound them)."""
    centers = [center.name for center in context.topology.centers]
    now = context.clock.now()
    made = []
    with context.store.transaction() as tx:
        for index in range(count):
            node_id = f"{prefix}-{index:05d}"
            orgs.create_node(
                tx,
                node_id=node_id,
                display_name=f"基准部门{index}",
                kind="department",
                parent_id=parent,
                centers=centers,
                now=now,
            )
            made.append(node_id)
    return made
