"""Simulated traffic (DNS) of one center: ``base.Traffic`` over the center's ``CenterCore``.

Invariants:

- A DNS record is unique per (zone, name, target center): upserting it again replaces
  it. Records consume nothing.
- A record's target center is one of the topology's centers; weights are 0..255, TTLs
  are not negative, an address is IPv4. All of it is checked before the operation meets
  faults or latency, and a bad value changes nothing.
"""

from __future__ import annotations

from cloudctl.drivers import base
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.drivers.simulator import state
from cloudctl.drivers.simulator.core import KIND_DNS_RECORD


class SimulatedTraffic:
    """The simulator's ``base.Traffic`` for one center (the DNS it serves)."""

    def __init__(self, core: sim_core.CenterCore, *, known_centers: frozenset[str]) -> None:
        self._core = core
        self.name = core.name
        self._known_centers = known_centers

    def upsert_record(
        self,
        zone: str,
        *,
        name: str,
        target_center: str,
        weight: int = 100,
        ttl_s: int = 60,
        address: str | None = None,
    ) -> base.DnsRecord:
        base.check_record_target(zone, name=name, target_center=target_center, centers=self._known_centers)
        address = base.check_record_values(weight=weight, ttl_s=ttl_s, address=address)
        self._core.operate("upsert_record")
        doc: state.Doc = {
            "zone": zone,
            "name": name,
            "target_center": target_center,
            "weight": weight,
            "ttl_s": ttl_s,
            "updated_at": self._core.clock.now(),
            "address": address,
        }
        with self._core.writing() as transaction:
            transaction.put(self.name, KIND_DNS_RECORD, _record_key(zone, name, target_center), doc)
        return _record(doc)

    def get_record(self, zone: str, *, name: str, target_center: str) -> base.DnsRecord:
        self._core.operate("get_record")
        doc = self._core.backend.get(self.name, KIND_DNS_RECORD, _record_key(zone, name, target_center))
        return _record(self._core.require(doc, "record", f"{name} {target_center} in {zone}"))

    def list_records(self, zone: str, *, name: str | None = None) -> list[base.DnsRecord]:
        self._core.operate("list_records")
        prefix = f"{zone}/" if name is None else f"{zone}/{name}/"
        docs = self._core.backend.list(self.name, KIND_DNS_RECORD, key_prefix=prefix)
        return [_record(doc) for doc in docs]

    def delete_record(self, zone: str, *, name: str, target_center: str, ignore_missing: bool = True) -> None:
        self._core.operate("delete_record")
        key = _record_key(zone, name, target_center)
        with self._core.writing() as transaction:
            if not transaction.delete(self.name, KIND_DNS_RECORD, key) and not ignore_missing:
                raise self._core.not_found("record", f"{name} {target_center} in {zone}")


def _record_key(zone: str, name: str, target_center: str) -> str:
    return f"{zone}/{name}/{target_center}"


def _record(doc: state.Doc) -> base.DnsRecord:
    return base.DnsRecord(
        zone=doc["zone"],
        name=doc["name"],
        target_center=doc["target_center"],
        weight=doc["weight"],
        ttl_s=doc["ttl_s"],
        updated_at=doc["updated_at"],
        address=doc.get("address"),
    )
