"""Centers, their capacity and the links between them, as last loaded from the topology.

Invariants: ``sync_topology`` makes the rows equal to the topology's centers and
links (adding quota counters for new centers) and never touches state that
operators or departments created (org nodes, limits, reservations). A center's
``state`` is the management center's last observation ("up" or "down").
"""

from __future__ import annotations

import dataclasses

import sqlalchemy as sa

from cloudctl import errors
from cloudctl.model import quotas as q
from cloudctl.model import states
from cloudctl.model import topology as topo
from cloudctl.store import quotas, schema


@dataclasses.dataclass(frozen=True)
class CenterRecord:
    name: str
    display_name: str
    site: str
    role: str
    state: str
    updated_at: float
    capacity: q.Amounts


@dataclasses.dataclass(frozen=True)
class LinkRecord:
    a: str
    b: str
    mode: str
    rtt_ms: float
    bandwidth_mbps: int


def sync_topology(tx: sa.Connection, topology: topo.Topology, *, now: float) -> None:
    known = {str(row[0]) for row in tx.execute(sa.select(schema.centers.c.name))}
    for center in topology.centers:
        values = {
            "display_name": center.display_name,
            "site": center.site,
            "role": center.role.value,
            "updated_at": now,
        }
        if center.name in known:
            tx.execute(schema.centers.update().where(schema.centers.c.name == center.name).values(**values))
        else:
            tx.execute(
                schema.centers.insert().values(name=center.name, state=states.CenterHealth.UP, **values)
            )
            quotas.add_center(tx, center=center.name)
        tx.execute(schema.center_capacity.delete().where(schema.center_capacity.c.center == center.name))
        tx.execute(
            schema.center_capacity.insert(),
            [
                {"center": center.name, "resource": resource.value, "total": total}
                for resource, total in center.capacity.amounts().items()
            ],
        )
    tx.execute(schema.links.delete())
    if topology.links:
        tx.execute(
            schema.links.insert(),
            [
                {
                    "a": link.between[0],
                    "b": link.between[1],
                    "mode": link.mode.value,
                    "rtt_ms": link.rtt_ms,
                    "bandwidth_mbps": link.bandwidth_mbps,
                }
                for link in topology.links
            ],
        )


def list_centers(tx: sa.Connection) -> list[CenterRecord]:
    capacity: dict[str, q.Amounts] = {}
    for row in tx.execute(sa.select(schema.center_capacity)):
        capacity.setdefault(str(row.center), {})[q.Resource(row.resource)] = int(row.total)
    return [
        CenterRecord(
            name=str(row.name),
            display_name=str(row.display_name),
            site=str(row.site),
            role=str(row.role),
            state=str(row.state),
            updated_at=float(row.updated_at),
            capacity=capacity.get(str(row.name), {}),
        )
        for row in tx.execute(sa.select(schema.centers).order_by(schema.centers.c.name))
    ]


def get_center(tx: sa.Connection, name: str) -> CenterRecord:
    for center in list_centers(tx):
        if center.name == name:
            return center
    raise errors.NotFound(f"no center {name!r}", field="center")


def set_center_state(tx: sa.Connection, name: str, *, state: str, now: float) -> None:
    result = tx.execute(
        schema.centers.update().where(schema.centers.c.name == name).values(state=state, updated_at=now)
    )
    if result.rowcount == 0:
        raise errors.NotFound(f"no center {name!r}", field="center")


def list_links(tx: sa.Connection) -> list[LinkRecord]:
    return [
        LinkRecord(
            a=str(row.a),
            b=str(row.b),
            mode=str(row.mode),
            rtt_ms=float(row.rtt_ms),
            bandwidth_mbps=int(row.bandwidth_mbps),
        )
        for row in tx.execute(sa.select(schema.links).order_by(schema.links.c.a, schema.links.c.b))
    ]


def get_setting(tx: sa.Connection, key: str) -> str | None:
    value = tx.execute(sa.select(schema.settings.c.value).where(schema.settings.c.key == key)).scalar()
    return None if value is None else str(value)


def put_setting(tx: sa.Connection, key: str, value: str) -> None:
    tx.execute(schema.settings.delete().where(schema.settings.c.key == key))
    tx.execute(schema.settings.insert().values(key=key, value=value))
