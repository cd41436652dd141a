"""One simulated center: all five driver Protocols of ``drivers.base`` over a state backend.

Every operation first meets the injected faults (a center that is down raises
``errors.InjectedFault`` at once), then waits the center's ``simulator.latency_ms``
on the injected clock, then fails with the center's effective API error rate, and
only then reads or changes state, in one backend transaction.

Invariants:

- Capacity (the topology's ``center.capacity``) is never overrun: the usage
  document of the center counts vCPU, RAM, volume GB, instances and stored object
  bytes, and changes in the same transaction as the thing that consumes it.
  Servers consume ``vcpu``, ``ram_gb``, ``instances`` and their ``disk_gb`` as
  ``volume_gb`` (boot from volume, as the catalog's VM offerings assume); volumes
  consume ``volume_gb``; namespaces consume ``vcpu`` and ``ram_gb`` (their quota);
  objects consume ``object_gb`` = stored bytes rounded up to whole GiB. Buckets,
  snapshots (copy-on-write) and DNS records consume nothing. Going over raises
  ``errors.Conflict`` naming the center and the resource; deleting frees.
- Project quotas, when set, bound the project's servers and volumes in this center
  (``vcpu``, ``ram_gb``, ``instances``, ``volume_gb``) and raise
  ``errors.QuotaExceeded``; other resources are stored and reported, not enforced.
- Names are unique per center: server names, volume names, bucket names,
  namespace names; a DNS record is unique per (zone, name, target center).
- Stored bytes (objects, volume blocks) keep their sha256 next to them; every read
  of the bytes verifies it and raises ``base.ChecksumMismatchError`` on a mismatch.
  ``corrupt_object`` and ``corrupt_volume_block`` are test hooks that break the
  bytes behind the checksum's back.
- A server is ``build`` until ``server_boot_s`` after its creation, then ``active``;
  the status is computed on read from the clock, so nothing needs to tick.
- Ids are ``uuid4`` hex; an object's ``version_id`` is too (``"null"`` when the
  bucket is unversioned). Only the newest version of an object keeps its bytes, except
  in a bucket with a retention (``set_retention``): there an overwritten or deleted
  object's version is kept (a delete leaves a marker) and counts as stored bytes until
  it has been noncurrent for the retention's days; expired versions of a key go when
  that key is next written or deleted, all of them with the bucket.
- Every mutating transaction reads the usage document first: on PostgreSQL that row
  lock serialises the writers of one center, so uniqueness and capacity checks hold.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import math
import re
import uuid
from collections.abc import Iterator, Mapping

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import faults, state
from cloudctl.model import quotas, topology

BYTES_PER_GB = 1024**3
BLOCK_SIZE_BYTES = 1024 * 1024
"""Size of one volume block; ``write_volume_block`` takes at most this many bytes."""
MAX_OBJECT_KEY_CHARS = 300
"""Longest object key the simulator stores (its state keys hold ``bucket/key``)."""
MAX_DNS_WEIGHT = 255
UNVERSIONED = "null"

KIND_USAGE = "usage"
KIND_SERVER = "server"
KIND_PROJECT_QUOTA = "project-quota"
KIND_PROJECT_USAGE = "project-usage"
KIND_VOLUME = "volume"
KIND_VOLUME_BLOCK = "volume-block"
KIND_SNAPSHOT = "snapshot"
KIND_SNAPSHOT_BLOCK = "snapshot-block"
KIND_BUCKET = "bucket"
KIND_OBJECT = "object"
KIND_OBJECT_VERSION = "object-version"
SECONDS_PER_DAY = 86400
KIND_NAMESPACE = "namespace"
KIND_DNS_RECORD = "dns-record"
KIND_PORT = "port"
USAGE_KEY = "center"

ENFORCED_PROJECT_RESOURCES = (
    quotas.Resource.VCPU,
    quotas.Resource.RAM_GB,
    quotas.Resource.INSTANCES,
    quotas.Resource.VOLUME_GB,
)
_USAGE_FIELDS = ("vcpu", "ram_gb", "volume_gb", "instances", "object_bytes")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_DNS_LABELS = re.compile(r"^[A-Za-z0-9_*]([A-Za-z0-9_.-]{0,251}[A-Za-z0-9])?$")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_gb(object_bytes: int) -> int:
    """Stored object bytes in whole GiB, rounded up."""
    return math.ceil(object_bytes / BYTES_PER_GB)


class SimulatedCenter:
    """The simulator's compute, block storage, object storage, containers and traffic
    drivers for one center of the topology."""

    def __init__(
        self,
        center: topology.Center,
        *,
        backend: state.StateBackend,
        clock: clocks.Clock,
        fault_book: faults.FaultBook,
        known_centers: frozenset[str],
        server_boot_s: float,
    ) -> None:
        self.name = center.name
        self._capacity = center.capacity.amounts()
        self._latency_s = center.simulator.latency_ms / 1000
        self._baseline_error_rate = center.simulator.error_rate
        self._backend = backend
        self._clock = clock
        self._faults = fault_book
        self._known_centers = known_centers
        self._server_boot_s = server_boot_s

    # --- plumbing ----------------------------------------------------------------------

    def _operate(self, operation: str) -> None:
        """Meet the injected faults and the latency of one API operation."""
        rate = self._faults.check_reachable(self.name, baseline_error_rate=self._baseline_error_rate)
        self._clock.sleep(self._latency_s)
        self._faults.roll(self.name, rate=rate, operation=operation)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[state.StateTransaction]:
        with self._backend.transaction() as transaction:
            # Lock the usage row first: on PostgreSQL it queues the other writers of this
            # center. A row that does not exist locks nothing, so make sure it exists.
            if transaction.get(self.name, KIND_USAGE, USAGE_KEY) is None:
                transaction.insert(self.name, KIND_USAGE, USAGE_KEY, _empty_usage())
                transaction.get(self.name, KIND_USAGE, USAGE_KEY)
            yield transaction

    def _not_found(self, what: str, name: str) -> errors.NotFound:
        return errors.NotFound(f"no {what} {name!r} in center {self.name}", field=what)

    def _require(self, doc: state.Doc | None, what: str, name: str) -> state.Doc:
        if doc is None:
            raise self._not_found(what, name)
        return doc

    # --- capacity ----------------------------------------------------------------------

    def capacity_total(self) -> dict[str, int]:
        return quotas.as_names(self._capacity)

    def capacity_used(self) -> dict[str, int]:
        """What is in use, per resource name; not subject to faults (an observer's view)."""
        return _usage_as_amounts(self._backend.get(self.name, KIND_USAGE, USAGE_KEY))

    def _consume(self, transaction: state.StateTransaction, **deltas: int) -> None:
        """Change usage by ``deltas`` (negative frees); ``Conflict`` if it would overrun."""
        usage = transaction.get(self.name, KIND_USAGE, USAGE_KEY) or {}
        before = _usage_as_amounts(usage)
        updated = {field: max(usage.get(field, 0) + deltas.get(field, 0), 0) for field in _USAGE_FIELDS}
        after = _usage_as_amounts(updated)
        for resource in quotas.RESOURCES:
            requested = after[resource.value] - before[resource.value]
            total = self._capacity.get(resource, 0)
            if requested > 0 and after[resource.value] > total:
                available = max(total - before[resource.value], 0)
                raise errors.Conflict(
                    f"center {self.name} is out of {resource.value}: requested {requested}, "
                    f"available {available} of {total}",
                    field=f"capacity.{resource.value}",
                )
        transaction.put(self.name, KIND_USAGE, USAGE_KEY, updated)

    # --- project quotas ----------------------------------------------------------------

    def set_project_quota(self, project: str, *, amounts: Mapping[str, int]) -> base.ProjectQuota:
        limits = quotas.as_names(quotas.amounts_from(amounts, field="amounts"))
        self._operate("set_project_quota")
        with self._writing() as transaction:
            transaction.put(self.name, KIND_PROJECT_QUOTA, project, {"project": project, "limits": limits})
            used = _project_used(transaction.get(self.name, KIND_PROJECT_USAGE, project))
        return base.ProjectQuota(project=project, center=self.name, limits=limits, used=used)

    def get_project_quota(self, project: str) -> base.ProjectQuota:
        self._operate("get_project_quota")
        with self._backend.transaction() as transaction:
            quota = transaction.get(self.name, KIND_PROJECT_QUOTA, project)
            used = _project_used(transaction.get(self.name, KIND_PROJECT_USAGE, project))
        limits: dict[str, int] = dict(quota["limits"]) if quota else {}
        return base.ProjectQuota(project=project, center=self.name, limits=limits, used=used)

    def _charge_project(
        self, transaction: state.StateTransaction, project: str, deltas: Mapping[str, int]
    ) -> None:
        """Change the project's usage; ``QuotaExceeded`` if an increase overruns a limit."""
        quota = transaction.get(self.name, KIND_PROJECT_QUOTA, project)
        limits: dict[str, int] = quota["limits"] if quota else {}
        used = _project_used(transaction.get(self.name, KIND_PROJECT_USAGE, project))
        shortfalls = [
            errors.Shortfall(
                node=project,
                center=self.name,
                resource=resource.value,
                limit=limits[resource.value],
                in_use=used[resource.value],
                requested=deltas[resource.value],
            )
            for resource in ENFORCED_PROJECT_RESOURCES
            if deltas.get(resource.value, 0) > 0
            and resource.value in limits
            and used[resource.value] + deltas[resource.value] > limits[resource.value]
        ]
        if shortfalls:
            raise errors.QuotaExceeded(shortfalls)
        updated = {field: max(value + deltas.get(field, 0), 0) for field, value in used.items()}
        transaction.put(self.name, KIND_PROJECT_USAGE, project, {"project": project, **updated})

    # --- compute -----------------------------------------------------------------------

    def create_server(
        self,
        *,
        name: str,
        project: str,
        vcpu: int,
        ram_gb: int,
        disk_gb: int,
        metadata: Mapping[str, str] | None = None,
        port: base.PortRequest | None = None,
    ) -> base.Server:
        _check_sizes(vcpu=vcpu, ram_gb=ram_gb, disk_gb=disk_gb)
        subnet = _port_subnet(port)
        self._operate("create_server")
        now = self._clock.now()
        doc: state.Doc = {
            "id": uuid.uuid4().hex,
            "name": name,
            "project": project,
            "vcpu": vcpu,
            "ram_gb": ram_gb,
            "disk_gb": disk_gb,
            "status": base.ServerStatus.BUILD.value,
            "ready_at": now + self._server_boot_s,
            "created_at": now,
            "metadata": dict(metadata or {}),
            "addresses": [],
        }
        with self._writing() as transaction:
            if transaction.find_by(self.name, KIND_SERVER, field="name", value=name):
                raise errors.Conflict(f"a server named {name!r} exists in center {self.name}", field="name")
            deltas = {"vcpu": vcpu, "ram_gb": ram_gb, "volume_gb": disk_gb, "instances": 1}
            self._charge_project(transaction, project, deltas)
            self._consume(transaction, **deltas)
            if port is not None and subnet is not None:
                doc["addresses"] = [self._take_address(transaction, port, subnet, server=doc)]
            transaction.put(self.name, KIND_SERVER, doc["id"], doc)
        return self._server(doc)

    def _take_address(
        self,
        transaction: state.StateTransaction,
        port: base.PortRequest,
        subnet: ipaddress.IPv4Network,
        *,
        server: state.Doc,
    ) -> str:
        """Hold ``port.address`` (or the lowest free host after the gateway) on the port's L2
        segment, which the centers a network is stretched over share. The address of a server of
        the same name in another center of the segment moves to this one (the server moved)."""
        segment = port.segment or f"{self.name}/{port.network}"
        held = {
            doc["address"]: doc
            for doc in transaction.list(state.GLOBAL_CENTER, KIND_PORT, key_prefix=f"{segment}/")
        }
        if port.address is not None:
            holder = held.get(port.address)
            if holder is not None and (holder["server_name"], holder["center"]) == (
                server["name"],
                self.name,
            ):
                holder = None
            if holder is not None and holder["server_name"] != server["name"]:
                raise errors.Conflict(
                    f"{port.address} is in use on network {port.network} of center {self.name}",
                    field="address",
                )
            address = port.address
        else:
            hosts = (str(host) for host in subnet.hosts())
            next(hosts, None)  # the gateway's
            address = next((host for host in hosts if host not in held), "")
            if not address:
                raise errors.Conflict(
                    f"network {port.network} of center {self.name} is full", field="address"
                )
        key = f"{segment}/{address}"
        moved_from = held.get(address)
        transaction.put(
            state.GLOBAL_CENTER,
            KIND_PORT,
            key,
            {
                "segment": segment,
                "network": port.network,
                "address": address,
                "center": self.name,
                "server_id": server["id"],
                "server_name": server["name"],
                "moved_from": moved_from,
            },
        )
        server["port_keys"] = [key]
        return address

    def get_server(self, server_id: str) -> base.Server:
        self._operate("get_server")
        doc = self._backend.get(self.name, KIND_SERVER, server_id)
        return self._server(self._require(doc, "server", server_id))

    def find_server(self, name: str) -> base.Server | None:
        self._operate("find_server")
        doc = self._backend.find_by(self.name, KIND_SERVER, field="name", value=name)
        return self._server(doc) if doc else None

    def list_servers(self, *, project: str | None = None) -> list[base.Server]:
        self._operate("list_servers")
        docs = self._backend.list(self.name, KIND_SERVER)
        return [self._server(doc) for doc in docs if project is None or doc["project"] == project]

    def delete_server(self, server_id: str, *, ignore_missing: bool = True) -> None:
        self._operate("delete_server")
        with self._writing() as transaction:
            doc = transaction.get(self.name, KIND_SERVER, server_id)
            if doc is None:
                if ignore_missing:
                    return
                raise self._not_found("server", server_id)
            deltas = {
                "vcpu": -doc["vcpu"],
                "ram_gb": -doc["ram_gb"],
                "volume_gb": -doc["disk_gb"],
                "instances": -1,
            }
            self._charge_project(transaction, doc["project"], deltas)
            self._consume(transaction, **deltas)
            for volume in transaction.list(self.name, KIND_VOLUME):
                if volume.get("attached_to") == server_id:
                    detached = {**volume, "attached_to": None, "status": base.VolumeStatus.AVAILABLE.value}
                    transaction.put(self.name, KIND_VOLUME, volume["id"], detached)
            for key in doc.get("port_keys", ()):
                port = transaction.get(state.GLOBAL_CENTER, KIND_PORT, key)
                if port is None or port["server_id"] != server_id:
                    continue  # its address moved on to a server of the same name elsewhere
                before = port.get("moved_from")
                if before and transaction.get(before["center"], KIND_SERVER, before["server_id"]):
                    transaction.put(state.GLOBAL_CENTER, KIND_PORT, key, before)  # it held it first
                else:
                    transaction.delete(state.GLOBAL_CENTER, KIND_PORT, key)
            transaction.delete(self.name, KIND_SERVER, server_id)

    def attach_volume(self, server_id: str, *, volume_id: str) -> None:
        self._operate("attach_volume")
        with self._writing() as transaction:
            self._require(transaction.get(self.name, KIND_SERVER, server_id), "server", server_id)
            volume = self._require(transaction.get(self.name, KIND_VOLUME, volume_id), "volume", volume_id)
            attached_to = volume.get("attached_to")
            if attached_to == server_id:
                return
            if attached_to is not None or volume["status"] != base.VolumeStatus.AVAILABLE.value:
                raise errors.Conflict(
                    f"volume {volume_id} is {volume['status']}"
                    + (f" (attached to server {attached_to})" if attached_to else ""),
                    field="volume",
                )
            attached = {**volume, "attached_to": server_id, "status": base.VolumeStatus.IN_USE.value}
            transaction.put(self.name, KIND_VOLUME, volume_id, attached)

    def attached_volumes(self, server_id: str) -> list[str]:
        self._operate("attached_volumes")
        self._require(self._backend.get(self.name, KIND_SERVER, server_id), "server", server_id)
        volumes = self._backend.list(self.name, KIND_VOLUME)
        return sorted(volume["id"] for volume in volumes if volume.get("attached_to") == server_id)

    def start_server(self, server_id: str) -> base.Server:
        return self._power(server_id, target=base.ServerStatus.ACTIVE, operation="start_server")

    def stop_server(self, server_id: str) -> base.Server:
        return self._power(server_id, target=base.ServerStatus.SHUTOFF, operation="stop_server")

    def _power(self, server_id: str, *, target: base.ServerStatus, operation: str) -> base.Server:
        self._operate(operation)
        with self._writing() as transaction:
            doc = self._require(transaction.get(self.name, KIND_SERVER, server_id), "server", server_id)
            current = self._status(doc)
            if current not in (base.ServerStatus.ACTIVE, base.ServerStatus.SHUTOFF):
                raise errors.Conflict(
                    f"server {server_id} is {current.value}; {operation} needs active or shutoff",
                    field="status",
                )
            doc["status"] = target.value
            transaction.put(self.name, KIND_SERVER, server_id, doc)
        return self._server(doc)

    def wait_for_status(
        self,
        server_id: str,
        *,
        status: base.ServerStatus,
        timeout_s: float,
        poll_interval_s: float = 2.0,
    ) -> base.Server:
        deadline = self._clock.now() + timeout_s
        while True:
            server = self.get_server(server_id)
            if server.status is status:
                return server
            if server.status is base.ServerStatus.ERROR:
                raise errors.OperationFailed(
                    f"server {server_id} went to error while waiting for {status.value}",
                    field="status",
                )
            remaining_s = deadline - self._clock.now()
            if remaining_s <= 0:
                raise errors.OperationFailed(
                    f"server {server_id} still {server.status.value} after {timeout_s:g} s, "
                    f"waiting for {status.value}",
                    field="status",
                )
            self._clock.sleep(min(poll_interval_s, remaining_s))

    def _status(self, doc: state.Doc) -> base.ServerStatus:
        status = base.ServerStatus(doc["status"])
        if status is base.ServerStatus.BUILD and self._clock.now() >= doc["ready_at"]:
            return base.ServerStatus.ACTIVE
        return status

    def _server(self, doc: state.Doc) -> base.Server:
        return base.Server(
            id=doc["id"],
            name=doc["name"],
            project=doc["project"],
            center=self.name,
            vcpu=doc["vcpu"],
            ram_gb=doc["ram_gb"],
            disk_gb=doc["disk_gb"],
            status=self._status(doc),
            created_at=doc["created_at"],
            metadata=dict(doc["metadata"]),
            addresses=tuple(doc.get("addresses", ())),
        )

    # --- block storage -----------------------------------------------------------------

    def create_volume(
        self, *, name: str, project: str, size_gb: int, snapshot_id: str | None = None
    ) -> base.Volume:
        if size_gb <= 0:
            raise errors.InvalidInput(f"must be positive, not {size_gb}", field="size_gb")
        self._operate("create_volume")
        doc: state.Doc = {
            "id": uuid.uuid4().hex,
            "name": name,
            "project": project,
            "size_gb": size_gb,
            "status": base.VolumeStatus.AVAILABLE.value,
            "created_at": self._clock.now(),
            "source_snapshot_id": snapshot_id,
        }
        with self._writing() as transaction:
            if transaction.find_by(self.name, KIND_VOLUME, field="name", value=name):
                raise errors.Conflict(f"a volume named {name!r} exists in center {self.name}", field="name")
            if snapshot_id is not None:
                snapshot = self._require(
                    transaction.get(self.name, KIND_SNAPSHOT, snapshot_id), "snapshot", snapshot_id
                )
                if size_gb < snapshot["size_gb"]:
                    raise errors.InvalidInput(
                        f"{size_gb} is smaller than snapshot {snapshot_id} ({snapshot['size_gb']})",
                        field="size_gb",
                    )
                self._copy_blocks(
                    transaction,
                    from_kind=KIND_SNAPSHOT_BLOCK,
                    from_id=snapshot_id,
                    to_kind=KIND_VOLUME_BLOCK,
                    to_id=doc["id"],
                )
            self._charge_project(transaction, project, {"volume_gb": size_gb})
            self._consume(transaction, volume_gb=size_gb)
            transaction.put(self.name, KIND_VOLUME, doc["id"], doc)
        return self._volume(doc)

    def get_volume(self, volume_id: str) -> base.Volume:
        self._operate("get_volume")
        doc = self._backend.get(self.name, KIND_VOLUME, volume_id)
        return self._volume(self._require(doc, "volume", volume_id))

    def find_volume(self, name: str) -> base.Volume | None:
        self._operate("find_volume")
        doc = self._backend.find_by(self.name, KIND_VOLUME, field="name", value=name)
        return self._volume(doc) if doc else None

    def list_volumes(self, *, project: str | None = None) -> list[base.Volume]:
        self._operate("list_volumes")
        docs = self._backend.list(self.name, KIND_VOLUME)
        return [self._volume(doc) for doc in docs if project is None or doc["project"] == project]

    def delete_volume(self, volume_id: str, *, ignore_missing: bool = True) -> None:
        self._operate("delete_volume")
        with self._writing() as transaction:
            doc = transaction.get(self.name, KIND_VOLUME, volume_id)
            if doc is None:
                if not ignore_missing:
                    raise self._not_found("volume", volume_id)
                return
            snapshots = [
                snapshot["id"]
                for snapshot in transaction.list(self.name, KIND_SNAPSHOT)
                if snapshot["volume_id"] == volume_id
            ]
            if snapshots:
                raise errors.Conflict(
                    f"volume {volume_id} still has snapshots: {', '.join(snapshots)}",
                    field="volume",
                )
            if doc.get("attached_to") is not None:
                raise errors.Conflict(
                    f"volume {volume_id} is attached to server {doc['attached_to']}", field="volume"
                )
            for block in transaction.list(self.name, KIND_VOLUME_BLOCK, key_prefix=f"{volume_id}/"):
                transaction.delete(self.name, KIND_VOLUME_BLOCK, _block_key(volume_id, block["index"]))
            self._charge_project(transaction, doc["project"], {"volume_gb": -doc["size_gb"]})
            self._consume(transaction, volume_gb=-doc["size_gb"])
            transaction.delete(self.name, KIND_VOLUME, volume_id)

    def create_snapshot(self, volume_id: str, *, name: str) -> base.Snapshot:
        self._operate("create_snapshot")
        with self._writing() as transaction:
            volume = self._require(transaction.get(self.name, KIND_VOLUME, volume_id), "volume", volume_id)
            doc: state.Doc = {
                "id": uuid.uuid4().hex,
                "name": name,
                "volume_id": volume_id,
                "size_gb": volume["size_gb"],
                "created_at": self._clock.now(),
            }
            self._copy_blocks(
                transaction,
                from_kind=KIND_VOLUME_BLOCK,
                from_id=volume_id,
                to_kind=KIND_SNAPSHOT_BLOCK,
                to_id=doc["id"],
            )
            transaction.put(self.name, KIND_SNAPSHOT, doc["id"], doc)
        return self._snapshot(doc)

    def get_snapshot(self, snapshot_id: str) -> base.Snapshot:
        self._operate("get_snapshot")
        doc = self._backend.get(self.name, KIND_SNAPSHOT, snapshot_id)
        return self._snapshot(self._require(doc, "snapshot", snapshot_id))

    def list_snapshots(self, *, volume_id: str | None = None) -> list[base.Snapshot]:
        self._operate("list_snapshots")
        docs = self._backend.list(self.name, KIND_SNAPSHOT)
        return [self._snapshot(doc) for doc in docs if volume_id is None or doc["volume_id"] == volume_id]

    def delete_snapshot(self, snapshot_id: str, *, ignore_missing: bool = True) -> None:
        self._operate("delete_snapshot")
        with self._writing() as transaction:
            if transaction.get(self.name, KIND_SNAPSHOT, snapshot_id) is None:
                if not ignore_missing:
                    raise self._not_found("snapshot", snapshot_id)
                return
            prefix = f"{snapshot_id}/"
            for block in transaction.list(self.name, KIND_SNAPSHOT_BLOCK, key_prefix=prefix):
                transaction.delete(self.name, KIND_SNAPSHOT_BLOCK, _block_key(snapshot_id, block["index"]))
            transaction.delete(self.name, KIND_SNAPSHOT, snapshot_id)

    def write_volume_block(self, volume_id: str, *, index: int, data: bytes) -> str:
        """Store one block of a volume (simulator only); its sha256."""
        if len(data) > BLOCK_SIZE_BYTES:
            raise errors.InvalidInput(
                f"{len(data)} bytes is more than a block ({BLOCK_SIZE_BYTES})", field="data"
            )
        self._operate("write_volume_block")
        checksum = sha256_hex(data)
        with self._writing() as transaction:
            volume = self._require(transaction.get(self.name, KIND_VOLUME, volume_id), "volume", volume_id)
            blocks = volume["size_gb"] * BYTES_PER_GB // BLOCK_SIZE_BYTES
            if not 0 <= index < blocks:
                raise errors.InvalidInput(
                    f"block {index} is outside volume {volume_id} (0..{blocks - 1})", field="index"
                )
            block = {"index": index, "sha256": checksum, "data_b64": _encode(data)}
            transaction.put(self.name, KIND_VOLUME_BLOCK, _block_key(volume_id, index), block)
        return checksum

    def read_volume_block(self, volume_id: str, *, index: int) -> bytes:
        """One block of a volume, verified (simulator only); empty if never written."""
        self._operate("read_volume_block")
        with self._backend.transaction() as transaction:
            self._require(transaction.get(self.name, KIND_VOLUME, volume_id), "volume", volume_id)
            block = transaction.get(self.name, KIND_VOLUME_BLOCK, _block_key(volume_id, index))
        if block is None:
            return b""
        return self._verified(block, what=f"block {index} of volume {volume_id}")

    def corrupt_volume_block(self, volume_id: str, *, index: int) -> None:
        """Test hook: change a stored block's bytes but not its recorded sha256."""
        self._corrupt(KIND_VOLUME_BLOCK, _block_key(volume_id, index), "volume block")

    def _copy_blocks(
        self,
        transaction: state.StateTransaction,
        *,
        from_kind: str,
        from_id: str,
        to_kind: str,
        to_id: str,
    ) -> None:
        for block in transaction.list(self.name, from_kind, key_prefix=f"{from_id}/"):
            transaction.put(self.name, to_kind, _block_key(to_id, block["index"]), block)

    def _volume(self, doc: state.Doc) -> base.Volume:
        return base.Volume(
            id=doc["id"],
            name=doc["name"],
            project=doc["project"],
            center=self.name,
            size_gb=doc["size_gb"],
            status=base.VolumeStatus(doc["status"]),
            created_at=doc["created_at"],
            source_snapshot_id=doc["source_snapshot_id"],
        )

    def _snapshot(self, doc: state.Doc) -> base.Snapshot:
        return base.Snapshot(
            id=doc["id"],
            name=doc["name"],
            volume_id=doc["volume_id"],
            center=self.name,
            size_gb=doc["size_gb"],
            created_at=doc["created_at"],
        )

    # --- object storage ----------------------------------------------------------------

    def create_bucket(self, name: str, *, versioning: bool = True) -> base.Bucket:
        if not _BUCKET_NAME.match(name) or ".." in name:
            raise errors.InvalidInput(
                f"{name!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')", field="bucket"
            )
        self._operate("create_bucket")
        doc = {"name": name, "versioning": versioning, "created_at": self._clock.now()}
        with self._writing() as transaction:
            if transaction.get(self.name, KIND_BUCKET, name) is not None:
                raise errors.Conflict(f"bucket {name!r} exists in center {self.name}", field="bucket")
            transaction.put(self.name, KIND_BUCKET, name, doc)
        return self._bucket(doc)

    def get_bucket(self, name: str) -> base.Bucket:
        self._operate("get_bucket")
        return self._bucket(self._require(self._backend.get(self.name, KIND_BUCKET, name), "bucket", name))

    def list_buckets(self) -> list[base.Bucket]:
        self._operate("list_buckets")
        return [self._bucket(doc) for doc in self._backend.list(self.name, KIND_BUCKET)]

    def delete_bucket(self, name: str, *, ignore_missing: bool = True) -> None:
        self._operate("delete_bucket")
        with self._writing() as transaction:
            if transaction.get(self.name, KIND_BUCKET, name) is None:
                if not ignore_missing:
                    raise self._not_found("bucket", name)
                return
            if transaction.list(self.name, KIND_OBJECT, key_prefix=f"{name}/"):
                raise errors.Conflict(f"bucket {name!r} in center {self.name} is not empty", field="bucket")
            for version in transaction.list(self.name, KIND_OBJECT_VERSION, key_prefix=f"{name}/"):
                self._drop_version(transaction, version)
            transaction.delete(self.name, KIND_BUCKET, name)

    def put_object(self, bucket: str, *, key: str, data: bytes) -> base.ObjectInfo:
        _check_object_key(key)
        self._operate("put_object")
        return self._store_object(bucket, key=key, data=data, version_id=None, modified_at=None)

    def put_replica(self, bucket: str, *, data: bytes, source: base.ObjectInfo) -> base.ObjectInfo:
        """Store a copy of ``source`` keeping its version id and time (simulator only).

        ``data`` must match the source's sha256, so bytes damaged on the way are refused.
        """
        actual = sha256_hex(data)
        if actual != source.sha256:
            raise base.ChecksumMismatchError(
                center=self.name,
                what=f"replica of {source.bucket}/{source.key} from {source.center}",
                expected_sha256=source.sha256,
                actual_sha256=actual,
            )
        self._operate("put_object")
        return self._store_object(
            bucket,
            key=source.key,
            data=data,
            version_id=source.version_id,
            modified_at=source.modified_at,
        )

    def _store_object(
        self,
        bucket: str,
        *,
        key: str,
        data: bytes,
        version_id: str | None,
        modified_at: float | None,
    ) -> base.ObjectInfo:
        with self._writing() as transaction:
            bucket_doc = self._require(transaction.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
            if version_id is None:
                version_id = uuid.uuid4().hex if bucket_doc["versioning"] else UNVERSIONED
            doc: state.Doc = {
                "bucket": bucket,
                "key": key,
                "size_bytes": len(data),
                "sha256": sha256_hex(data),
                "etag": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                "version_id": version_id,
                "modified_at": self._clock.now() if modified_at is None else modified_at,
                "data_b64": _encode(data),
            }
            previous = transaction.get(self.name, KIND_OBJECT, _object_key(bucket, key))
            previous_bytes = previous["size_bytes"] if previous else 0
            if previous is not None and self._keep_history(transaction, bucket_doc, key):
                self._keep_version(transaction, previous)
                previous_bytes = 0
            self._consume(transaction, object_bytes=len(data) - previous_bytes)
            transaction.put(self.name, KIND_OBJECT, _object_key(bucket, key), doc)
        return self._object_info(doc)

    def get_object(self, bucket: str, *, key: str) -> tuple[bytes, base.ObjectInfo]:
        self._operate("get_object")
        doc = self._object_doc(bucket, key)
        data = self._verified(doc, what=f"object {bucket}/{key}")
        return data, self._object_info(doc)

    def head_object(self, bucket: str, *, key: str) -> base.ObjectInfo:
        self._operate("head_object")
        return self._object_info(self._object_doc(bucket, key))

    def list_objects(self, bucket: str, *, prefix: str = "") -> list[base.ObjectInfo]:
        self._operate("list_objects")
        with self._backend.transaction() as transaction:
            self._require(transaction.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
            docs = transaction.list(self.name, KIND_OBJECT, key_prefix=_object_key(bucket, prefix))
        return [self._object_info(doc) for doc in docs]

    def delete_object(self, bucket: str, *, key: str, ignore_missing: bool = True) -> None:
        self._operate("delete_object")
        with self._writing() as transaction:
            bucket_doc = self._require(transaction.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
            doc = transaction.get(self.name, KIND_OBJECT, _object_key(bucket, key))
            if doc is None:
                if not ignore_missing:
                    raise self._not_found("object", f"{bucket}/{key}")
                return
            if self._keep_history(transaction, bucket_doc, key):
                self._keep_version(transaction, doc)
                marker: state.Doc = {
                    "bucket": bucket,
                    "key": key,
                    "version_id": uuid.uuid4().hex,
                    "deleted": True,
                    "size_bytes": 0,
                    "etag": "",
                    "modified_at": self._clock.now(),
                    "noncurrent_at": self._clock.now(),
                }
                transaction.put(self.name, KIND_OBJECT_VERSION, _version_key(marker), marker)
            else:
                self._consume(transaction, object_bytes=-doc["size_bytes"])
            transaction.delete(self.name, KIND_OBJECT, _object_key(bucket, key))

    def list_object_entries(self, bucket: str, *, prefix: str = "") -> list[base.ObjectEntry]:
        return [
            base.ObjectEntry(
                key=info.key, size_bytes=info.size_bytes, etag=info.etag, modified_at=info.modified_at
            )
            for info in self.list_objects(bucket, prefix=prefix)
        ]

    def set_retention(self, bucket: str, *, days: int) -> None:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise errors.InvalidInput(f"must be a whole number of days >= 1, not {days!r}", field="days")
        self._operate("set_retention")
        with self._writing() as transaction:
            doc = self._require(transaction.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
            doc.update(versioning=True, retention_days=days)
            transaction.put(self.name, KIND_BUCKET, bucket, doc)

    def list_object_versions(self, bucket: str, *, prefix: str = "") -> list[base.ObjectVersion]:
        self._operate("list_object_versions")
        with self._backend.transaction() as transaction:
            self._require(transaction.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
            current = transaction.list(self.name, KIND_OBJECT, key_prefix=_object_key(bucket, prefix))
            kept = transaction.list(self.name, KIND_OBJECT_VERSION, key_prefix=_object_key(bucket, prefix))
        versions = [_object_version(doc, is_latest=True) for doc in current]
        latest_marker: dict[str, state.Doc] = {}
        live = {doc["key"] for doc in current}
        for doc in kept:
            if doc.get("deleted") and doc["key"] not in live:
                newest = latest_marker.get(doc["key"])
                if newest is None or doc["modified_at"] >= newest["modified_at"]:
                    latest_marker[doc["key"]] = doc
        markers = {id(doc) for doc in latest_marker.values()}
        versions += [_object_version(doc, is_latest=id(doc) in markers) for doc in kept]
        return sorted(
            versions, key=lambda version: (version.key, -version.modified_at, not version.is_latest)
        )

    def restore_object_version(self, bucket: str, *, key: str, version_id: str) -> base.ObjectInfo:
        self._operate("restore_object_version")
        what = f"version {version_id} of {bucket}/{key}"
        current = self._backend.get(self.name, KIND_OBJECT, _object_key(bucket, key))
        if current is not None and current["version_id"] == version_id:
            return self._object_info(current)
        doc = self._backend.get(self.name, KIND_OBJECT_VERSION, f"{_object_key(bucket, key)}/{version_id}")
        doc = self._require(doc, "version", what)
        if doc.get("deleted"):
            raise errors.InvalidInput(f"{what} is a delete marker, not data", field="version_id")
        data = self._verified(doc, what=what)
        return self._store_object(bucket, key=key, data=data, version_id=None, modified_at=None)

    def grant_prefix_access(
        self, bucket: str, *, grant_id: str, prefix: str, consumer: str
    ) -> base.PrefixGrant:
        self._operate("grant_prefix_access")
        with self._writing() as transaction:
            doc = self._require(transaction.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
            granted = dict(doc.get("prefix_grants", {}))
            granted[grant_id] = {"prefix": prefix, "consumer": consumer}
            doc["prefix_grants"] = granted
            transaction.put(self.name, KIND_BUCKET, bucket, doc)
        return base.PrefixGrant(grant_id=grant_id, bucket=bucket, prefix=prefix, consumer=consumer)

    def revoke_prefix_access(self, bucket: str, *, grant_id: str) -> None:
        self._operate("revoke_prefix_access")
        with self._writing() as transaction:
            doc = transaction.get(self.name, KIND_BUCKET, bucket)
            if doc is None or grant_id not in doc.get("prefix_grants", {}):
                return
            doc["prefix_grants"] = {k: v for k, v in doc["prefix_grants"].items() if k != grant_id}
            transaction.put(self.name, KIND_BUCKET, bucket, doc)

    def list_prefix_grants(self, bucket: str) -> list[base.PrefixGrant]:
        self._operate("list_prefix_grants")
        doc = self._require(self._backend.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
        return [
            base.PrefixGrant(
                grant_id=grant_id, bucket=bucket, prefix=entry["prefix"], consumer=entry["consumer"]
            )
            for grant_id, entry in sorted(doc.get("prefix_grants", {}).items())
        ]

    def _keep_history(self, transaction: state.StateTransaction, bucket_doc: state.Doc, key: str) -> bool:
        """Whether the bucket keeps replaced versions (it has a retention); drops expired ones of ``key``."""
        days = bucket_doc.get("retention_days")
        if not days:
            return False
        expired_before = self._clock.now() - days * SECONDS_PER_DAY
        for version in transaction.list(
            self.name, KIND_OBJECT_VERSION, key_prefix=f"{_object_key(bucket_doc['name'], key)}/"
        ):
            if version["key"] == key and version["noncurrent_at"] <= expired_before:
                self._drop_version(transaction, version)
        return True

    def _keep_version(self, transaction: state.StateTransaction, doc: state.Doc) -> None:
        kept = {**doc, "noncurrent_at": self._clock.now()}
        transaction.put(self.name, KIND_OBJECT_VERSION, _version_key(kept), kept)

    def _drop_version(self, transaction: state.StateTransaction, doc: state.Doc) -> None:
        self._consume(transaction, object_bytes=-doc["size_bytes"])
        transaction.delete(self.name, KIND_OBJECT_VERSION, _version_key(doc))

    def corrupt_object(self, bucket: str, *, key: str) -> None:
        """Test hook: change a stored object's bytes but not its recorded sha256."""
        self._corrupt(KIND_OBJECT, _object_key(bucket, key), "object")

    def _object_doc(self, bucket: str, key: str) -> state.Doc:
        with self._backend.transaction() as transaction:
            self._require(transaction.get(self.name, KIND_BUCKET, bucket), "bucket", bucket)
            doc = transaction.get(self.name, KIND_OBJECT, _object_key(bucket, key))
        return self._require(doc, "object", f"{bucket}/{key}")

    def _object_info(self, doc: state.Doc) -> base.ObjectInfo:
        return base.ObjectInfo(
            bucket=doc["bucket"],
            key=doc["key"],
            center=self.name,
            size_bytes=doc["size_bytes"],
            sha256=doc["sha256"],
            etag=doc["etag"],
            version_id=doc["version_id"],
            modified_at=doc["modified_at"],
        )

    def _bucket(self, doc: state.Doc) -> base.Bucket:
        return base.Bucket(
            name=doc["name"],
            center=self.name,
            versioning=doc["versioning"],
            created_at=doc["created_at"],
        )

    # --- stored bytes ------------------------------------------------------------------

    def _verified(self, doc: state.Doc, *, what: str) -> bytes:
        data = base64.b64decode(doc["data_b64"])
        actual = sha256_hex(data)
        if actual != doc["sha256"]:
            raise base.ChecksumMismatchError(
                center=self.name, what=what, expected_sha256=doc["sha256"], actual_sha256=actual
            )
        return data

    def _corrupt(self, kind: str, key: str, what: str) -> None:
        with self._backend.transaction() as transaction:
            doc = self._require(transaction.get(self.name, kind, key), what, key)
            data = bytearray(base64.b64decode(doc["data_b64"]))
            if data:
                data[len(data) // 2] ^= 0xFF
            else:
                data.append(0)
            doc["data_b64"] = _encode(bytes(data))
            transaction.put(self.name, kind, key, doc)

    # --- containers --------------------------------------------------------------------

    def create_namespace(self, name: str, *, vcpu: int, ram_gb: int) -> base.Namespace:
        _check_sizes(vcpu=vcpu, ram_gb=ram_gb)
        self._operate("create_namespace")
        doc = {"name": name, "vcpu": vcpu, "ram_gb": ram_gb, "created_at": self._clock.now()}
        with self._writing() as transaction:
            if transaction.get(self.name, KIND_NAMESPACE, name) is not None:
                raise errors.Conflict(f"namespace {name!r} exists in center {self.name}", field="namespace")
            self._consume(transaction, vcpu=vcpu, ram_gb=ram_gb)
            transaction.put(self.name, KIND_NAMESPACE, name, doc)
        return self._namespace(doc)

    def get_namespace(self, name: str) -> base.Namespace:
        self._operate("get_namespace")
        doc = self._backend.get(self.name, KIND_NAMESPACE, name)
        return self._namespace(self._require(doc, "namespace", name))

    def list_namespaces(self) -> list[base.Namespace]:
        self._operate("list_namespaces")
        return [self._namespace(doc) for doc in self._backend.list(self.name, KIND_NAMESPACE)]

    def delete_namespace(self, name: str, *, ignore_missing: bool = True) -> None:
        self._operate("delete_namespace")
        with self._writing() as transaction:
            doc = transaction.get(self.name, KIND_NAMESPACE, name)
            if doc is None:
                if not ignore_missing:
                    raise self._not_found("namespace", name)
                return
            self._consume(transaction, vcpu=-doc["vcpu"], ram_gb=-doc["ram_gb"])
            transaction.delete(self.name, KIND_NAMESPACE, name)

    def set_namespace_quota(self, name: str, *, vcpu: int, ram_gb: int) -> base.Namespace:
        _check_sizes(vcpu=vcpu, ram_gb=ram_gb)
        self._operate("set_namespace_quota")
        with self._writing() as transaction:
            doc = self._require(transaction.get(self.name, KIND_NAMESPACE, name), "namespace", name)
            self._consume(transaction, vcpu=vcpu - doc["vcpu"], ram_gb=ram_gb - doc["ram_gb"])
            doc.update(vcpu=vcpu, ram_gb=ram_gb)
            transaction.put(self.name, KIND_NAMESPACE, name, doc)
        return self._namespace(doc)

    def _namespace(self, doc: state.Doc) -> base.Namespace:
        return base.Namespace(
            name=doc["name"],
            center=self.name,
            vcpu=doc["vcpu"],
            ram_gb=doc["ram_gb"],
            created_at=doc["created_at"],
        )

    # --- traffic -----------------------------------------------------------------------

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
        _check_dns_name(zone, field="zone")
        _check_dns_name(name, field="name")
        if target_center not in self._known_centers:
            known = ", ".join(sorted(self._known_centers))
            raise errors.NotFound(f"no center {target_center!r} (known: {known})", field="target_center")
        if not 0 <= weight <= MAX_DNS_WEIGHT:
            raise errors.InvalidInput(f"must be 0..{MAX_DNS_WEIGHT}, not {weight}", field="weight")
        if ttl_s < 0:
            raise errors.InvalidInput(f"must not be negative, not {ttl_s}", field="ttl_s")
        if address is not None:
            _check_ipv4(address, field="address")
        self._operate("upsert_record")
        doc: state.Doc = {
            "zone": zone,
            "name": name,
            "target_center": target_center,
            "weight": weight,
            "ttl_s": ttl_s,
            "updated_at": self._clock.now(),
            "address": address,
        }
        with self._writing() as transaction:
            transaction.put(self.name, KIND_DNS_RECORD, _record_key(zone, name, target_center), doc)
        return _record(doc)

    def get_record(self, zone: str, *, name: str, target_center: str) -> base.DnsRecord:
        self._operate("get_record")
        doc = self._backend.get(self.name, KIND_DNS_RECORD, _record_key(zone, name, target_center))
        return _record(self._require(doc, "record", f"{name} {target_center} in {zone}"))

    def list_records(self, zone: str, *, name: str | None = None) -> list[base.DnsRecord]:
        self._operate("list_records")
        prefix = f"{zone}/" if name is None else f"{zone}/{name}/"
        return [_record(doc) for doc in self._backend.list(self.name, KIND_DNS_RECORD, key_prefix=prefix)]

    def delete_record(self, zone: str, *, name: str, target_center: str, ignore_missing: bool = True) -> None:
        self._operate("delete_record")
        key = _record_key(zone, name, target_center)
        with self._writing() as transaction:
            if not transaction.delete(self.name, KIND_DNS_RECORD, key) and not ignore_missing:
                raise self._not_found("record", f"{name} {target_center} in {zone}")


# --- documents and their keys --------------------------------------------------------------


def _empty_usage() -> state.Doc:
    return dict.fromkeys(_USAGE_FIELDS, 0)


def _usage_as_amounts(usage: state.Doc | None) -> dict[str, int]:
    usage = usage or {}
    return {
        "vcpu": usage.get("vcpu", 0),
        "ram_gb": usage.get("ram_gb", 0),
        "volume_gb": usage.get("volume_gb", 0),
        "object_gb": object_gb(usage.get("object_bytes", 0)),
        "instances": usage.get("instances", 0),
    }


def _project_used(doc: state.Doc | None) -> dict[str, int]:
    doc = doc or {}
    return {resource.value: doc.get(resource.value, 0) for resource in ENFORCED_PROJECT_RESOURCES}


def _block_key(owner_id: str, index: int) -> str:
    # Zero-padded so that key order is block order.
    return f"{owner_id}/{index:010d}"


def _object_key(bucket: str, key: str) -> str:
    # Bucket names hold no '/', so the first '/' separates bucket from key.
    return f"{bucket}/{key}"


def _version_key(doc: state.Doc) -> str:
    return f"{_object_key(doc['bucket'], doc['key'])}/{doc['version_id']}"


def _object_version(doc: state.Doc, *, is_latest: bool) -> base.ObjectVersion:
    deleted = bool(doc.get("deleted"))
    return base.ObjectVersion(
        key=doc["key"],
        version_id=doc["version_id"],
        is_latest=is_latest,
        deleted=deleted,
        size_bytes=0 if deleted else doc["size_bytes"],
        etag=doc["etag"],
        modified_at=doc["modified_at"],
    )


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


def _check_ipv4(value: str, *, field: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(value)
    except ValueError:
        raise errors.InvalidInput(f"not an IPv4 address: {value!r}", field=field) from None


def _port_subnet(port: base.PortRequest | None) -> ipaddress.IPv4Network | None:
    """The subnet of a port request, checked (with its address) before anything is held."""
    if port is None:
        return None
    try:
        subnet = ipaddress.IPv4Network(port.subnet)
    except ValueError:
        raise errors.InvalidInput(f"not an IPv4 subnet: {port.subnet!r}", field="port.subnet") from None
    if port.address is not None and _check_ipv4(port.address, field="port.address") not in subnet:
        raise errors.InvalidInput(f"{port.address} is outside {subnet}", field="port.address")
    return subnet


def _encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _check_sizes(**sizes: int) -> None:
    for field, value in sizes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise errors.InvalidInput(f"must be a whole number >= 0, not {value!r}", field=field)


def _check_object_key(key: str) -> None:
    if not key or len(key) > MAX_OBJECT_KEY_CHARS:
        raise errors.InvalidInput(
            f"an object key has 1..{MAX_OBJECT_KEY_CHARS} characters, not {len(key)}", field="key"
        )


def _check_dns_name(value: str, *, field: str) -> None:
    if not _DNS_LABELS.match(value) or "/" in value:
        raise errors.InvalidInput(f"{value!r} is not a DNS name", field=field)
