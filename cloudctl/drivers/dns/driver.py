"""``Route53Traffic``: the ``base.Traffic`` Protocol over a Route 53-compatible API (boto3).

A failover name (``portal`` in zone ``gov.example``) is a weighted record set: one record
per target center, ``SetIdentifier`` = the center's name, ``Weight`` and TTL as given.
Traffic goes to the centers whose weight is above zero; ``switch`` moves all of it to one
center in a single change batch, which Route 53 applies atomically (all or nothing), so
resolvers never see a state with no target or with two half-switched targets.

What a record points to (decided here, documented for operators):

- By default a CNAME to ``<name>.<center>.<zone>`` (``portal.qd-a.gov.example``), the
  center's own endpoint for the service, which that center's DNS / load balancer serves.
  ``endpoint_template`` changes the pattern (fields ``name``, ``center``, ``zone``).
- With ``center_addresses`` (center → IPv4 address), an A record to that address instead, or
  to the workload's own address in that center when ``upsert_record`` is given one (a failover
  that kept or re-mapped the workload's address); read back as ``DnsRecord.address``. Without
  ``center_addresses`` a given address is not used (the record stays a CNAME).

Invariants:

- Hosted zones are looked up by name and created on first ``upsert_record``; the
  lookup and creation are serialised in this process, so one zone name has one zone
  (Route 53 itself allows duplicates). Reads of a zone that does not exist find nothing.
- Route 53 keeps no time per record, so each record has a companion TXT record
  ``_cloudctl.<name>`` (same set identifier) holding ``updated_at``, changed in the same
  batch as the record; a record made by another tool reads as ``updated_at`` 0.
- Names are relative to the zone (``portal``), as in every ``base.Traffic``; records of
  another type or without a set identifier are not cloudctl's and are not listed.
- Every call is retried and mapped by the shared ``drivers.calls.Caller`` with the rules of ``calls``
  (those of ``drivers.s3``).
"""

from __future__ import annotations

import functools
import re
import threading
import uuid
from collections.abc import Collection, Mapping
from typing import Any

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.s3 import calls

DEFAULT_REGION = "us-east-1"
DEFAULT_ENDPOINT_TEMPLATE = "{name}.{center}.{zone}"
META_LABEL = "_cloudctl"
"""First label of the companion TXT record that keeps a record's ``updated_at``."""
FULL_WEIGHT = 100
_OCTAL_ESCAPE = re.compile(r"\\(\d{3})")

RecordSet = dict[str, Any]


class Route53Traffic:
    """Weighted failover records of the zones of one DNS service (Route 53 API)."""

    def __init__(
        self,
        *,
        center: str,
        endpoint_url: str,
        access_key: str,
        secret_key: str,
        centers: Collection[str],
        region: str = DEFAULT_REGION,
        center_addresses: Mapping[str, str] | None = None,
        endpoint_template: str = DEFAULT_ENDPOINT_TEMPLATE,
        clock: clocks.Clock | None = None,
        retry: calls.RetryPolicy | None = None,
    ) -> None:
        self.center = center
        self.endpoint_url = endpoint_url
        self._centers = frozenset(centers)
        self._addresses = dict(center_addresses or {})
        unknown = sorted(set(self._addresses) - self._centers)
        if unknown:
            raise errors.InvalidInput(f"not centers: {', '.join(unknown)}", field="center_addresses")
        self._record_type = "A" if self._addresses else "CNAME"
        self._endpoint_template = endpoint_template
        self._clock = clock if clock is not None else clocks.SystemClock()
        retry = retry if retry is not None else calls.RetryPolicy()
        self._retry = retry
        self._client: Any = calls.make_client(
            "route53",
            endpoint_url=endpoint_url,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            retry=retry,
        )
        self._caller = calls.caller(
            center=center, service="DNS", endpoint_url=endpoint_url, clock=self._clock, retry=retry
        )
        self._zone_ids: dict[str, str] = {}
        self._zones_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Route53Traffic(center={self.center!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def retry(self) -> calls.RetryPolicy:
        """How this driver's calls are retried and timed out."""
        return self._retry

    # --- the Traffic Protocol ----------------------------------------------------------

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
        base.check_record_target(zone, name=name, target_center=target_center, centers=self._centers)
        if name.lower().startswith(f"{META_LABEL}."):
            raise errors.InvalidInput(f"names under {META_LABEL}. are cloudctl's own", field="name")
        if self._addresses and target_center not in self._addresses:
            raise errors.InvalidInput(
                f"no address for center {target_center} in center_addresses", field="target_center"
            )
        address = base.check_record_values(weight=weight, ttl_s=ttl_s, address=address)
        zone_id = self._ensure_zone(zone)
        record = base.DnsRecord(
            zone=zone,
            name=name,
            target_center=target_center,
            weight=weight,
            ttl_s=ttl_s,
            updated_at=self._clock.now(),
            address=address if self._addresses and address != self._addresses[target_center] else None,
        )
        self._change(zone_id, zone=zone, changes=self._upserts(record))
        return record

    def get_record(self, zone: str, *, name: str, target_center: str) -> base.DnsRecord:
        for record in self.list_records(zone, name=name):
            if record.target_center == target_center:
                return record
        raise errors.NotFound(f"no record {name} {target_center} in {zone}", field="record")

    def list_records(self, zone: str, *, name: str | None = None) -> list[base.DnsRecord]:
        zone_id = self._find_zone(zone)
        if zone_id is None:
            return []
        return self._records(zone, self._record_sets(zone_id, zone=zone), name=name)

    def delete_record(self, zone: str, *, name: str, target_center: str, ignore_missing: bool = True) -> None:
        zone_id = self._find_zone(zone)
        sets = self._record_sets(zone_id, zone=zone) if zone_id is not None else []
        doomed = [
            record_set
            for record_set in sets
            if record_set.get("SetIdentifier") == target_center
            and (
                (record_set["Type"] == self._record_type and _name_of(record_set) == _fqdn(name, zone))
                or (record_set["Type"] == "TXT" and _name_of(record_set) == _fqdn(_meta_name(name), zone))
            )
        ]
        if zone_id is None or not any(record_set["Type"] == self._record_type for record_set in doomed):
            if ignore_missing:
                return
            raise errors.NotFound(f"no record {name} {target_center} in {zone}", field="record")
        self._change(zone_id, zone=zone, changes=[_change("DELETE", record_set) for record_set in doomed])

    # --- failover and failback ---------------------------------------------------------

    def switch(self, zone: str, *, name: str, to_center: str) -> list[base.DnsRecord]:
        """Send all traffic of ``name`` to ``to_center``: its weight 100, every other 0.

        One change batch, so Route 53 applies all weights or none. ``to_center`` must
        already have a record (``errors.NotFound`` otherwise); the TTLs are kept.
        """
        current = self.list_records(zone, name=name)
        if to_center not in [record.target_center for record in current]:
            raise errors.NotFound(
                f"no record {name} {to_center} in {zone} to switch to "
                f"(targets: {', '.join(record.target_center for record in current) or 'none'})",
                field="to_center",
            )
        now = self._clock.now()
        switched = [
            base.DnsRecord(
                zone=zone,
                name=name,
                target_center=record.target_center,
                weight=FULL_WEIGHT if record.target_center == to_center else 0,
                ttl_s=record.ttl_s,
                updated_at=now,
                address=record.address,
            )
            for record in current
        ]
        changes = [change for record in switched for change in self._upserts(record)]
        self._change(self._ensure_zone(zone), zone=zone, changes=changes)
        return switched

    # --- zones -------------------------------------------------------------------------

    def _find_zone(self, zone: str) -> str | None:
        """The hosted zone id of ``zone``, or ``None`` when there is no such zone."""
        with self._zones_lock:
            return self._lookup_zone(zone)

    def _ensure_zone(self, zone: str) -> str:
        """The hosted zone id of ``zone``, creating the zone if there is none."""
        with self._zones_lock:
            zone_id = self._lookup_zone(zone)
            if zone_id is None:
                created = self._caller.call(
                    lambda: self._client.create_hosted_zone(Name=zone, CallerReference=uuid.uuid4().hex),
                    what=f"zone {zone}",
                )
                zone_id = str(created["HostedZone"]["Id"])
                self._zone_ids[zone] = zone_id
            return zone_id

    def _lookup_zone(self, zone: str) -> str | None:
        if zone in self._zone_ids:
            return self._zone_ids[zone]
        answer = self._caller.call(
            lambda: self._client.list_hosted_zones_by_name(DNSName=zone, MaxItems="1"),
            what=f"zone {zone}",
        )
        for hosted in answer.get("HostedZones", []):
            if _unescape(hosted["Name"]).rstrip(".").lower() == zone.lower():
                self._zone_ids[zone] = str(hosted["Id"])
                return self._zone_ids[zone]
        return None

    def _forget_zone(self, zone: str) -> None:
        with self._zones_lock:
            self._zone_ids.pop(zone, None)

    def _record_sets(self, zone_id: str, *, zone: str) -> list[RecordSet]:
        sets: list[RecordSet] = []
        start: dict[str, str] = {}
        while True:
            try:
                page = self._caller.call(
                    functools.partial(self._client.list_resource_record_sets, HostedZoneId=zone_id, **start),
                    what=f"zone {zone}",
                )
            except errors.NotFound:
                self._forget_zone(zone)  # deleted behind our back
                return []
            sets.extend(page.get("ResourceRecordSets", []))
            if not page.get("IsTruncated"):
                return sets
            start = {"StartRecordName": page["NextRecordName"], "StartRecordType": page["NextRecordType"]}
            if page.get("NextRecordIdentifier"):
                start["StartRecordIdentifier"] = page["NextRecordIdentifier"]

    def _change(self, zone_id: str, *, zone: str, changes: list[dict[str, Any]]) -> None:
        try:
            self._caller.call(
                lambda: self._client.change_resource_record_sets(
                    HostedZoneId=zone_id,
                    ChangeBatch={"Comment": "cloudctl", "Changes": changes},
                ),
                what=f"zone {zone}",
            )
        except errors.NotFound:
            self._forget_zone(zone)
            raise

    # --- records -----------------------------------------------------------------------

    def _value(self, record: base.DnsRecord) -> str:
        if self._addresses:
            return record.address or self._addresses[record.target_center]
        return self._endpoint_template.format(name=record.name, center=record.target_center, zone=record.zone)

    def _upserts(self, record: base.DnsRecord) -> list[dict[str, Any]]:
        """The record and its companion TXT record, as two UPSERT changes."""
        common = {"SetIdentifier": record.target_center, "Weight": record.weight, "TTL": record.ttl_s}
        return [
            _change(
                "UPSERT",
                {
                    "Name": _fqdn(record.name, record.zone),
                    "Type": self._record_type,
                    "ResourceRecords": [{"Value": self._value(record)}],
                    **common,
                },
            ),
            _change(
                "UPSERT",
                {
                    "Name": _fqdn(_meta_name(record.name), record.zone),
                    "Type": "TXT",
                    "ResourceRecords": [{"Value": f'"updated_at={record.updated_at!r}"'}],
                    **common,
                },
            ),
        ]

    def _records(self, zone: str, sets: list[RecordSet], *, name: str | None) -> list[base.DnsRecord]:
        updated_at: dict[tuple[str, str], float] = {}
        for record_set in sets:
            relative = _relative(_name_of(record_set), zone)
            if record_set["Type"] == "TXT" and relative and relative.startswith(f"{META_LABEL}."):
                updated_at[relative.removeprefix(f"{META_LABEL}."), record_set.get("SetIdentifier", "")] = (
                    _updated_at(record_set)
                )
        records = []
        for record_set in sets:
            relative = _relative(_name_of(record_set), zone)
            if (
                record_set["Type"] != self._record_type
                or "SetIdentifier" not in record_set
                or not relative
                or relative.startswith(f"{META_LABEL}.")
                or (name is not None and relative != name.lower())
            ):
                continue
            target = record_set["SetIdentifier"]
            value = (record_set.get("ResourceRecords") or [{}])[0].get("Value")
            own = value if self._addresses and value != self._addresses.get(target) else None
            records.append(
                base.DnsRecord(
                    zone=zone,
                    name=relative,
                    target_center=target,
                    weight=int(record_set.get("Weight", 0)),
                    ttl_s=int(record_set.get("TTL", 0)),
                    updated_at=updated_at.get((relative, target), 0.0),
                    address=own,
                )
            )
        return sorted(records, key=lambda record: (record.name, record.target_center))


def _change(action: str, record_set: RecordSet) -> dict[str, Any]:
    # Names go without the trailing dot: Route 53 takes both, and moto matches a DELETE
    # against earlier changes by the name as it was sent.
    sent = {**record_set, "Name": _unescape(record_set["Name"]).rstrip(".")}
    return {"Action": action, "ResourceRecordSet": sent}


def _meta_name(name: str) -> str:
    return f"{META_LABEL}.{name}"


def _fqdn(name: str, zone: str) -> str:
    return f"{name}.{zone}".lower()


def _name_of(record_set: RecordSet) -> str:
    return _unescape(record_set["Name"]).rstrip(".").lower()


def _relative(fqdn: str, zone: str) -> str | None:
    suffix = f".{zone.lower()}"
    return fqdn.removesuffix(suffix) if fqdn.endswith(suffix) else None


def _unescape(name: str) -> str:
    """Route 53 returns some characters as octal escapes (``\\052`` for ``*``)."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), name)


def _updated_at(record_set: RecordSet) -> float:
    values = [entry["Value"].strip('"') for entry in record_set.get("ResourceRecords", [])]
    for value in values:
        if value.startswith("updated_at="):
            try:
                return float(value.removeprefix("updated_at="))
            except ValueError:
                return 0.0
    return 0.0
