"""The driver Protocols, one per capability, and the dataclasses they return.

Every backend (the simulator, OpenStack, S3, DNS, Kubernetes) implements these
small Protocols for one center; ``CenterDrivers`` bundles the five of a center.
The contract every implementation keeps (``tests/contract`` checks it):

- Results are the frozen dataclasses below, never SDK objects; sizes carry their
  unit in the name (``_gb``, ``_bytes``), times are epoch seconds (``_at``) or
  durations (``_s``).
- Verbs follow ``create_x`` / ``get_x`` / ``find_x`` / ``list_xs`` /
  ``delete_x(..., ignore_missing=True)``; arguments after the first are keyword-only.
- ``get_x`` of something missing raises ``errors.NotFound``; ``find_x`` returns
  ``None``; ``delete_x`` of something missing returns quietly unless
  ``ignore_missing=False``, which raises ``errors.NotFound``. Deleting twice is
  therefore harmless.
- A duplicate name, something still in use, or a request over the backend's
  capacity raises ``errors.Conflict`` (``errors.QuotaExceeded`` when a project
  quota is the limit); an unreachable backend raises ``errors.BackendUnavailable``
  (the simulator's injected faults raise its subclass ``errors.InjectedFault``).
- Stored bytes come back exactly as written or not at all: a read whose sha256
  does not match raises ``ChecksumMismatchError``.
- What every backend does alike is written once here: the argument checks of a call
  (``check_record_target``, ``check_record_values``, ``check_ipv4``) and waiting for a server
  (``ServerWaits``).
"""

from __future__ import annotations

import abc
import dataclasses
import enum
import ipaddress
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Protocol

from cloudctl import clock as clocks
from cloudctl import errors


class ChecksumMismatchError(errors.OperationFailed):
    """Stored bytes no longer match the sha256 recorded when they were written."""

    def __init__(self, *, center: str, what: str, expected_sha256: str, actual_sha256: str) -> None:
        self.center = center
        self.what = what
        self.expected_sha256 = expected_sha256
        self.actual_sha256 = actual_sha256
        super().__init__(
            f"{what} in center {center} is corrupt: sha256 {actual_sha256[:12]}..., "
            f"expected {expected_sha256[:12]}...",
            field="checksum",
        )


# --- compute ------------------------------------------------------------------------------


class ServerStatus(enum.StrEnum):
    BUILD = "build"
    ACTIVE = "active"
    SHUTOFF = "shutoff"
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class Server:
    id: str
    name: str
    project: str
    center: str
    vcpu: int
    ram_gb: int
    disk_gb: int
    status: ServerStatus
    created_at: float
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict, hash=False)
    addresses: tuple[str, ...] = ()
    """The IPv4 fixed addresses of the server's ports, in port order (none known: empty)."""


@dataclasses.dataclass(frozen=True)
class PortRequest:
    """The port a server is made with: on the center's network ``network`` (the topology's name),
    whose subnet is ``subnet``, at ``address``, or at one the backend picks when ``None``.

    An address another server's port holds on the segment is ``errors.Conflict`` (the port of a
    server of the same name in another center of a stretched segment moves: the server moved);
    one outside the subnet is ``errors.InvalidInput``."""

    network: str
    subnet: str
    address: str | None = None
    segment: str = ""
    """The L2 segment of the network: centers a network is stretched over share one, and an
    address is held once in it; empty: the network is this center's alone."""
    pool: tuple[str, str] | None = None
    """The addresses (first and last, both included) this center hands out on the network
    itself (``Topology.allocation_pool``), so that centers whose networks a map joins never
    pick the same one; ``None``: any of the subnet's. OpenStack makes it the subnet's allocation
    pool; the simulator, whose segment is one address space, needs none."""


@dataclasses.dataclass(frozen=True)
class ProjectQuota:
    """A project's limits in one center (absent resources are unlimited) and its usage there."""

    project: str
    center: str
    limits: Mapping[str, int] = dataclasses.field(hash=False)
    used: Mapping[str, int] = dataclasses.field(hash=False)


class Compute(Protocol):
    """Servers and the per-project quotas that bound them."""

    def create_server(
        self,
        *,
        name: str,
        project: str,
        vcpu: int,
        ram_gb: int,
        disk_gb: int,
        metadata: Mapping[str, str] | None = None,
        port: PortRequest | None = None,
    ) -> Server:
        """Make a server; with ``port``, its one port is on that network (at that address);
        without, it is attached as the backend's default says."""
        ...

    def get_server(self, server_id: str) -> Server: ...

    def find_server(self, name: str) -> Server | None: ...

    def list_servers(self, *, project: str | None = None) -> list[Server]: ...

    def delete_server(self, server_id: str, *, ignore_missing: bool = True) -> None: ...

    def start_server(self, server_id: str) -> Server: ...

    def stop_server(self, server_id: str) -> Server: ...

    def wait_for_status(
        self,
        server_id: str,
        *,
        status: ServerStatus,
        timeout_s: float,
        poll_interval_s: float = 2.0,
    ) -> Server:
        """Poll until the server has ``status``; ``errors.OperationFailed`` on timeout or error."""
        ...

    def attach_volume(self, server_id: str, *, volume_id: str) -> None:
        """Attach a volume of the same center to the server; returns once it is attached
        (the volume is then ``in-use``). Attached to that server already: nothing to do.
        ``errors.Conflict`` when the volume is attached elsewhere; deleting the server detaches it."""
        ...

    def attached_volumes(self, server_id: str) -> list[str]:
        """Ids of the volumes attached to the server, sorted."""
        ...

    def set_project_quota(self, project: str, *, amounts: Mapping[str, int]) -> ProjectQuota:
        """Replace the project's limits; keys are ``quotas.Resource`` names."""
        ...

    def get_project_quota(self, project: str) -> ProjectQuota: ...


class ServerWaits(abc.ABC):
    """``Compute.wait_for_status`` written once: a backend's compute class mixes it in and gives
    ``get_server`` and the clock its waits run on (``_waits_on``); a class that lacks either
    cannot be made."""

    @abc.abstractmethod
    def get_server(self, server_id: str) -> Server: ...

    @abc.abstractmethod
    def _waits_on(self) -> clocks.Clock: ...

    def wait_for_status(
        self,
        server_id: str,
        *,
        status: ServerStatus,
        timeout_s: float,
        poll_interval_s: float = 2.0,
    ) -> Server:
        """Poll until the server has ``status``; ``errors.OperationFailed`` when it goes to error or
        the time runs out."""
        clock = self._waits_on()
        deadline = clock.now() + timeout_s
        while True:
            server = self.get_server(server_id)
            if server.status is status:
                return server
            if server.status is ServerStatus.ERROR:
                raise errors.OperationFailed(
                    f"server {server_id} went to error while waiting for {status.value}", field="status"
                )
            remaining_s = deadline - clock.now()
            if remaining_s <= 0:
                raise errors.OperationFailed(
                    f"server {server_id} still {server.status.value} after {timeout_s:g} s, "
                    f"waiting for {status.value}",
                    field="status",
                )
            clock.sleep(min(poll_interval_s, remaining_s))


# --- block storage ------------------------------------------------------------------------


class VolumeStatus(enum.StrEnum):
    CREATING = "creating"
    AVAILABLE = "available"
    IN_USE = "in-use"
    ERROR = "error"


@dataclasses.dataclass(frozen=True)
class Volume:
    id: str
    name: str
    project: str
    center: str
    size_gb: int
    status: VolumeStatus
    created_at: float
    source_snapshot_id: str | None = None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    id: str
    name: str
    volume_id: str
    center: str
    size_gb: int
    created_at: float


class BlockStorage(Protocol):
    """Volumes and their snapshots."""

    def create_volume(
        self, *, name: str, project: str, size_gb: int, snapshot_id: str | None = None
    ) -> Volume: ...

    def get_volume(self, volume_id: str) -> Volume: ...

    def find_volume(self, name: str) -> Volume | None: ...

    def list_volumes(self, *, project: str | None = None, name_prefixes: Sequence[str] = ()) -> list[Volume]:
        """The volumes (of ``project`` if given) whose name starts with one of ``name_prefixes``
        (if any are given)."""
        ...

    def delete_volume(self, volume_id: str, *, ignore_missing: bool = True) -> None:
        """Delete a volume; ``errors.Conflict`` while it still has snapshots."""
        ...

    def create_snapshot(self, volume_id: str, *, name: str) -> Snapshot: ...

    def get_snapshot(self, snapshot_id: str) -> Snapshot: ...

    def list_snapshots(self, *, volume_id: str | None = None) -> list[Snapshot]: ...

    def delete_snapshot(self, snapshot_id: str, *, ignore_missing: bool = True) -> None: ...


# --- object storage -----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Bucket:
    name: str
    center: str
    versioning: bool
    created_at: float


UNVERSIONED = "null"
"""The version id of an object in a bucket that keeps no versions (S3's own spelling)."""


@dataclasses.dataclass(frozen=True)
class ObjectInfo:
    """What is known of a stored object without its bytes.

    ``sha256`` is the hex digest of the bytes; ``etag`` is the S3-style MD5 hex
    digest; ``version_id`` names this content (``"null"`` in an unversioned bucket).
    """

    bucket: str
    key: str
    center: str
    size_bytes: int
    sha256: str
    etag: str
    version_id: str
    modified_at: float


@dataclasses.dataclass(frozen=True)
class ObjectEntry:
    """One line of a bucket listing: what the listing itself says, with no read or HEAD per object."""

    key: str
    size_bytes: int
    etag: str
    modified_at: float


@dataclasses.dataclass(frozen=True)
class ObjectVersion:
    """One version of an object in a versioned bucket, or a delete marker (``deleted``)."""

    key: str
    version_id: str
    is_latest: bool
    deleted: bool
    size_bytes: int
    etag: str
    modified_at: float


@dataclasses.dataclass(frozen=True)
class PrefixGrant:
    """Read access to the keys under ``prefix`` of a bucket for one consumer department, as the
    backend holds it (an S3 bucket policy statement, or the simulator's record of one)."""

    grant_id: str
    bucket: str
    prefix: str
    consumer: str


class ObjectStorage(Protocol):
    """Buckets and the objects in them."""

    center: str
    """The center the buckets are in."""

    def create_bucket(self, name: str, *, versioning: bool = True) -> Bucket: ...

    def get_bucket(self, name: str) -> Bucket: ...

    def list_buckets(self) -> list[Bucket]: ...

    def delete_bucket(self, name: str, *, ignore_missing: bool = True) -> None:
        """Delete an empty bucket; ``errors.Conflict`` while it holds objects."""
        ...

    def put_object(self, bucket: str, *, key: str, data: bytes) -> ObjectInfo: ...

    def get_object(self, bucket: str, *, key: str) -> tuple[bytes, ObjectInfo]:
        """The object's bytes, verified against its sha256, and its info."""
        ...

    def head_object(self, bucket: str, *, key: str) -> ObjectInfo: ...

    def list_objects(self, bucket: str, *, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted by key."""
        ...

    def delete_object(self, bucket: str, *, key: str, ignore_missing: bool = True) -> None: ...

    def list_object_entries(self, bucket: str, *, prefix: str = "") -> list[ObjectEntry]:
        """Like ``list_objects`` but only what the listing says (no sha256): one request per page."""
        ...

    def put_replica(self, bucket: str, *, data: bytes, source: ObjectInfo) -> ObjectInfo:
        """Store ``data``, read from ``source`` and verified against its sha256, under its key.

        The digests come from ``source`` (nothing is hashed again); the store checks the
        bytes against the MD5 on arrival and refuses others (``ChecksumMismatchError``).
        """
        ...

    def set_retention(self, bucket: str, *, days: int) -> None:
        """Keep overwritten and deleted versions (and delete markers) ``days`` days, and refuse
        their removal through the data path meanwhile; the bucket becomes versioned."""
        ...

    def list_object_versions(self, bucket: str, *, prefix: str = "") -> list[ObjectVersion]:
        """Every kept version and delete marker, by key then newest first."""
        ...

    def restore_object_version(self, bucket: str, *, key: str, version_id: str) -> ObjectInfo:
        """Make a kept version the current object again (a new version with its bytes)."""
        ...

    def grant_prefix_access(self, bucket: str, *, grant_id: str, prefix: str, consumer: str) -> PrefixGrant:
        """Let ``consumer`` read (get and list) the keys under ``prefix``, and nothing else of the
        bucket; granting the same ``grant_id`` again replaces it. Other grants and the retention
        guard stay as they are."""
        ...

    def revoke_prefix_access(self, bucket: str, *, grant_id: str) -> None:
        """Withdraw one grant; quiet when it (or the bucket) is gone."""
        ...

    def list_prefix_grants(self, bucket: str) -> list[PrefixGrant]:
        """The grants the backend holds on the bucket, by grant id."""
        ...


# --- containers ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Namespace:
    """A container namespace and the resource quota that caps what runs in it."""

    name: str
    center: str
    vcpu: int
    ram_gb: int
    created_at: float


class Containers(Protocol):
    """Namespaces with quotas (Kubernetes ``Namespace`` + ``ResourceQuota``)."""

    def create_namespace(self, name: str, *, vcpu: int, ram_gb: int) -> Namespace: ...

    def get_namespace(self, name: str) -> Namespace: ...

    def list_namespaces(self) -> list[Namespace]: ...

    def delete_namespace(self, name: str, *, ignore_missing: bool = True) -> None: ...

    def set_namespace_quota(self, name: str, *, vcpu: int, ram_gb: int) -> Namespace: ...


# --- traffic ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class DnsRecord:
    """One weighted target of a failover name: ``name`` in ``zone`` served by ``target_center``.

    A name may have one record per target center (Route 53's set identifier);
    traffic goes to the targets with a weight above zero in proportion to it.
    """

    zone: str
    name: str
    target_center: str
    weight: int
    ttl_s: int
    updated_at: float
    address: str | None = None
    """The IPv4 address the record points at when it points at the workload's own address;
    ``None``: the center's endpoint (or the driver's address for the center)."""


MAX_DNS_WEIGHT = 255
_DNS_NAME = re.compile(r"^[A-Za-z0-9_*]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$")


def check_dns_name(value: str, *, field: str) -> None:
    """``errors.InvalidInput`` unless ``value`` is a DNS name (labels of letters, digits, ``_``,
    ``-``, a leading ``*``) with no ``/`` (a record's key joins zone, name and center with it)."""
    if not _DNS_NAME.fullmatch(value) or "/" in value:
        raise errors.InvalidInput(f"{value!r} is not a DNS name", field=field)


def check_sizes(**sizes: int) -> None:
    """Sizes a backend is asked for (vCPUs, GB): whole numbers, none negative."""
    for field, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise errors.InvalidInput(f"must be a whole number >= 0, not {value!r}", field=field)


def check_ipv4(value: str, *, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise errors.InvalidInput(f"not an IPv4 address: {value!r}", field=field) from None


def check_record_target(zone: str, *, name: str, target_center: str, centers: Collection[str]) -> None:
    """Where ``Traffic.upsert_record`` puts a record, checked by every backend before it changes
    anything: DNS names, and a target among ``centers``."""
    check_dns_name(zone, field="zone")
    check_dns_name(name, field="name")
    if target_center not in centers:
        known = ", ".join(sorted(centers))
        raise errors.NotFound(f"no center {target_center!r} (known: {known})", field="target_center")


def check_record_values(*, weight: int, ttl_s: int, address: str | None) -> str | None:
    """What ``Traffic.upsert_record`` records, checked by every backend before it changes anything:
    weight 0..``MAX_DNS_WEIGHT``, a TTL not negative, an IPv4 address. Returns the address in its
    canonical form (``None`` when none was given)."""
    if not 0 <= weight <= MAX_DNS_WEIGHT:
        raise errors.InvalidInput(f"must be 0..{MAX_DNS_WEIGHT}, not {weight}", field="weight")
    if ttl_s < 0:
        raise errors.InvalidInput(f"must not be negative, not {ttl_s}", field="ttl_s")
    return None if address is None else str(check_ipv4(address, field="address"))


class Traffic(Protocol):
    """DNS / GSLB records that steer users to a center."""

    def upsert_record(
        self,
        zone: str,
        *,
        name: str,
        target_center: str,
        weight: int = 100,
        ttl_s: int = 60,
        address: str | None = None,
    ) -> DnsRecord:
        """Create or replace the record of ``name`` for ``target_center``; ``address``: the
        workload's address there, which a driver that answers with addresses points at (one
        that answers with names keeps its name and records nothing)."""
        ...

    def get_record(self, zone: str, *, name: str, target_center: str) -> DnsRecord: ...

    def list_records(self, zone: str, *, name: str | None = None) -> list[DnsRecord]:
        """Records of the zone (of one name if given), sorted by name then target center."""
        ...

    def delete_record(
        self, zone: str, *, name: str, target_center: str, ignore_missing: bool = True
    ) -> None: ...


# --- one center ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CenterDrivers:
    """The five capability drivers of one center, as the topology names them."""

    center: str
    compute: Compute
    block_storage: BlockStorage
    object_storage: ObjectStorage
    containers: Containers
    traffic: Traffic
