"""Simulated compute of one center: ``base.Compute`` over the center's ``CenterCore``.

Servers, their ports on a network's L2 segment, volume attachment and project quotas.

Invariants:

- A server consumes ``vcpu``, ``ram_gb``, ``instances`` and its ``disk_gb`` as
  ``volume_gb`` (boot from volume, as the catalog's VM offerings assume), of the
  center's capacity and of its project's quota, in the transaction that creates it;
  deleting it frees them and detaches its volumes.
- Server names are unique per center.
- A server is ``build`` until ``server_boot_s`` after its creation, then ``active``;
  the status is computed on read from the clock, so nothing needs to tick.
- An address is held by one server per segment (``GLOBAL_CENTER``, kind ``port``, keyed
  ``<segment>/<address>``): the centers a network is stretched over share it. A server
  claims its address by inserting that port document (``claim``): the key is unique, so two
  servers created at once never get the same address, and no lock is held while the rest of
  the creation runs (two centers of a segment allocate side by side). An address given back
  (kind ``freed-address``) is taken first, lowest first; else the next host after the
  highest this process handed out, read from the backend when the process first allocates
  on the segment (``_SegmentAllocator``, a hint: a candidate another process claimed first is
  passed over). So with one process allocating, a server gets the lowest free host. A
  server of the same name created in another center of the segment takes the address over
  (the server moved); deleting that server hands it back to the one that held it first, if
  it still exists.
"""

from __future__ import annotations

import heapq
import ipaddress
import threading
import uuid
import weakref
from collections.abc import Mapping

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.drivers.simulator import state
from cloudctl.drivers.simulator.core import (
    KIND_FREED_ADDRESS,
    KIND_PORT,
    KIND_PROJECT_QUOTA,
    KIND_SEGMENT,
    KIND_SERVER,
    KIND_VOLUME,
)
from cloudctl.model import quotas


class SimulatedCompute(base.ServerWaits):
    """The simulator's ``base.Compute`` for one center."""

    def __init__(self, core: sim_core.CenterCore, *, server_boot_s: float) -> None:
        self._core = core
        self.name = core.name
        self._server_boot_s = server_boot_s

    # --- project quotas ----------------------------------------------------------------

    def set_project_quota(self, project: str, *, amounts: Mapping[str, int]) -> base.ProjectQuota:
        limits = quotas.as_names(quotas.amounts_from(amounts, field="amounts"))
        with self._core.writing("set_project_quota") as transaction:
            transaction.put(self.name, KIND_PROJECT_QUOTA, project, {"project": project, "limits": limits})
            used = self._core.project_used(transaction, project)
        return base.ProjectQuota(project=project, center=self.name, limits=limits, used=used)

    def get_project_quota(self, project: str) -> base.ProjectQuota:
        with self._core.reading("get_project_quota") as transaction:
            quota = transaction.get(self.name, KIND_PROJECT_QUOTA, project)
            used = self._core.project_used(transaction, project)
        limits: dict[str, int] = dict(quota["limits"]) if quota else {}
        return base.ProjectQuota(project=project, center=self.name, limits=limits, used=used)

    # --- servers -----------------------------------------------------------------------

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
        base.check_sizes(vcpu=vcpu, ram_gb=ram_gb, disk_gb=disk_gb)
        subnet = _port_subnet(port)
        taken = ""
        try:
            with self._core.writing("create_server", lock_now=False) as transaction:
                now = self._core.clock.now()
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
                # A free address first: claiming it takes no lock, so the center's writers
                # queue for the usage row only behind what must be checked under it. One asked
                # for may be a server's that moved: it is taken over under the lock, as before.
                claim_first = port is not None and port.address is None
                if port is not None and subnet is not None and claim_first:
                    taken = self._take_address(transaction, port, subnet, server=doc)
                    doc["addresses"] = [taken]
                self._core.hold_usage(transaction)
                if transaction.find_by(self.name, KIND_SERVER, field="name", value=name):
                    raise errors.Conflict(
                        f"a server named {name!r} exists in center {self.name}", field="name"
                    )
                deltas = {"vcpu": vcpu, "ram_gb": ram_gb, "volume_gb": disk_gb, "instances": 1}
                self._core.charge_project(transaction, project, deltas)
                self._core.consume(transaction, **deltas)
                if port is not None and subnet is not None and not claim_first:
                    doc["addresses"] = [self._take_address(transaction, port, subnet, server=doc)]
                transaction.put(self.name, KIND_SERVER, doc["id"], doc)
        except BaseException:
            if port is not None and port.address is None and taken:
                # The claim went with the transaction: the address may be handed out again.
                segment = port.segment or f"{self.name}/{port.network}"
                _allocator(self._core.backend, segment).give_back(taken)
            raise
        return self._server(doc)

    def _take_address(
        self,
        transaction: state.StateTransaction,
        port: base.PortRequest,
        subnet: ipaddress.IPv4Network,
        *,
        server: state.Doc,
    ) -> str:
        """Claim ``port.address`` (or the lowest free host after the gateway) on the port's L2
        segment, which the centers a network is stretched over share. The address of a server of
        the same name in another center of the segment moves to this one (the server moved)."""
        segment = port.segment or f"{self.name}/{port.network}"
        prefix = f"{segment}/"
        if port.address is not None:
            address = port.address
            self._take_given_address(transaction, port, f"{prefix}{address}", server=server)
        else:
            address = self._claim_free_address(transaction, port, subnet, segment, server=server)
        server["port_keys"] = [f"{prefix}{address}"]
        return address

    def _port_doc(self, port: base.PortRequest, segment: str, address: str, server: state.Doc) -> state.Doc:
        return {
            "segment": segment,
            "network": port.network,
            "address": address,
            "center": self.name,
            "server_id": server["id"],
            "server_name": server["name"],
            "moved_from": None,
        }

    def _take_given_address(
        self, transaction: state.StateTransaction, port: base.PortRequest, key: str, *, server: state.Doc
    ) -> None:
        """Hold the address a port asks for: claimed if free; taken over if a server of the
        same name holds it (the server moved); ``Conflict`` if another server holds it."""
        segment, address = key.rsplit("/", 1)
        doc = self._port_doc(port, segment, address, server)
        for _attempt in range(2):
            holder = transaction.get(state.GLOBAL_CENTER, KIND_PORT, key)  # locks it if it is there
            if holder is None:
                if transaction.claim(state.GLOBAL_CENTER, KIND_PORT, key, doc):
                    return
                continue  # claimed meanwhile: read (and lock) who holds it now
            if holder["server_name"] != server["name"]:
                raise errors.Conflict(
                    f"{address} is in use on network {port.network} of center {self.name}",
                    field="address",
                )
            transaction.put(state.GLOBAL_CENTER, KIND_PORT, key, {**doc, "moved_from": holder})
            return
        raise errors.Conflict(
            f"{address} is in use on network {port.network} of center {self.name}", field="address"
        )

    def _claim_free_address(
        self,
        transaction: state.StateTransaction,
        port: base.PortRequest,
        subnet: ipaddress.IPv4Network,
        segment: str,
        *,
        server: state.Doc,
    ) -> str:
        """Claim the lowest host given back on the segment, else the next one after the highest
        this process knows taken; the port document's unique key decides between claimants,
        so no lock is held and two centers of the segment allocate side by side. A candidate
        another process claimed first is passed over."""
        prefix = f"{segment}/"
        given_back = transaction.keys(state.GLOBAL_CENTER, KIND_FREED_ADDRESS, key_prefix=prefix)
        for key in sorted(given_back, key=lambda key: _address_value(key[len(prefix) :])):
            address = key[len(prefix) :]
            doc = self._port_doc(port, segment, address, server)
            claimed = _in_subnet(address, subnet) and transaction.claim(
                state.GLOBAL_CENTER, KIND_PORT, key, doc
            )
            transaction.delete(state.GLOBAL_CENTER, KIND_FREED_ADDRESS, key)  # taken, by us or another
            if claimed:
                return address
        allocator = _allocator(self._core.backend, segment)
        while True:
            address = allocator.next_candidate(transaction, subnet, prefix)
            if not address:
                raise errors.Conflict(
                    f"network {port.network} of center {self.name} is full", field="address"
                )
            doc = self._port_doc(port, segment, address, server)
            try:
                claimed = transaction.claim(state.GLOBAL_CENTER, KIND_PORT, f"{prefix}{address}", doc)
            except BaseException:
                allocator.give_back(address)
                raise
            if claimed:
                return address

    def get_server(self, server_id: str) -> base.Server:
        return self._server(self._core.fetch("get_server", KIND_SERVER, server_id, what="server"))

    def find_server(self, name: str) -> base.Server | None:
        doc = self._core.find_named("find_server", KIND_SERVER, name)
        return self._server(doc) if doc else None

    def list_servers(self, *, project: str | None = None) -> list[base.Server]:
        docs = self._core.listed("list_servers", KIND_SERVER, field="project", value=project)
        return [self._server(doc) for doc in docs]

    def delete_server(self, server_id: str, *, ignore_missing: bool = True) -> None:
        self._core.delete(
            "delete_server",
            KIND_SERVER,
            server_id,
            what="server",
            ignore_missing=ignore_missing,
            release=self._release_server,
        )

    def _release_server(self, transaction: state.StateTransaction, doc: state.Doc) -> None:
        """Free what a server being deleted holds: capacity, quota, volumes, addresses."""
        server_id = doc["id"]
        deltas = {
            "vcpu": -doc["vcpu"],
            "ram_gb": -doc["ram_gb"],
            "volume_gb": -doc["disk_gb"],
            "instances": -1,
        }
        self._core.charge_project(transaction, doc["project"], deltas)
        self._core.consume(transaction, **deltas)
        for volume in transaction.find_all_by(self.name, KIND_VOLUME, where={"attached_to": server_id}):
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
                given_back = {"segment": port["segment"], "address": port["address"]}
                transaction.put(state.GLOBAL_CENTER, KIND_FREED_ADDRESS, key, given_back)

    # --- volumes of a server -----------------------------------------------------------

    def attach_volume(self, server_id: str, *, volume_id: str) -> None:
        with self._core.writing("attach_volume") as transaction:
            self._core.required(transaction, KIND_SERVER, server_id, what="server")
            volume = self._core.required(transaction, KIND_VOLUME, volume_id, what="volume")
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
        self._core.fetch("attached_volumes", KIND_SERVER, server_id, what="server")
        volumes = self._core.backend.find_all_by(self.name, KIND_VOLUME, where={"attached_to": server_id})
        return sorted(volume["id"] for volume in volumes)

    # --- power and status --------------------------------------------------------------

    def start_server(self, server_id: str) -> base.Server:
        return self._power(server_id, target=base.ServerStatus.ACTIVE, operation="start_server")

    def stop_server(self, server_id: str) -> base.Server:
        return self._power(server_id, target=base.ServerStatus.SHUTOFF, operation="stop_server")

    def _power(self, server_id: str, *, target: base.ServerStatus, operation: str) -> base.Server:
        with self._core.writing(operation) as transaction:
            doc = self._core.required(transaction, KIND_SERVER, server_id, what="server")
            current = self._status(doc)
            if current not in (base.ServerStatus.ACTIVE, base.ServerStatus.SHUTOFF):
                raise errors.Conflict(
                    f"server {server_id} is {current.value}; {operation} needs active or shutoff",
                    field="status",
                )
            doc["status"] = target.value
            transaction.put(self.name, KIND_SERVER, server_id, doc)
        return self._server(doc)

    def _waits_on(self) -> clocks.Clock:
        return self._core.clock

    def _status(self, doc: state.Doc) -> base.ServerStatus:
        status = base.ServerStatus(doc["status"])
        if status is base.ServerStatus.BUILD and self._core.clock.now() >= doc["ready_at"]:
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


def _port_subnet(port: base.PortRequest | None) -> ipaddress.IPv4Network | None:
    """The subnet of a port request, checked (with its address) before anything is held."""
    if port is None:
        return None
    try:
        subnet = ipaddress.IPv4Network(port.subnet)
    except ValueError:
        raise errors.InvalidInput(f"not an IPv4 subnet: {port.subnet!r}", field="port.subnet") from None
    if port.address is not None and base.check_ipv4(port.address, field="port.address") not in subnet:
        raise errors.InvalidInput(f"{port.address} is outside {subnet}", field="port.address")
    return subnet


ADDRESS_WINDOW = 256
"""Candidate addresses read together when looking for the lowest free one."""


def _address_value(address: str) -> int:
    try:
        return int(ipaddress.IPv4Address(address))
    except ValueError:
        return -1


def _in_subnet(address: str, subnet: ipaddress.IPv4Network) -> bool:
    value = _address_value(address)
    return value >= 0 and ipaddress.IPv4Address(value) in subnet


class _SegmentAllocator:
    """Where one segment's next fresh address is looked for, in this process: a hint only,
    for the port documents' unique keys decide who holds an address.

    ``free_from`` starts at the segment's recorded one (every host below it is held or given
    back as a ``freed-address`` document) and moves past each address handed out, so threads
    of this process never try the same candidate; an address another process took is passed
    over when its claim fails. One handed out and not taken (the creating transaction failed)
    is offered again first. At the end of the subnet the whole subnet is searched once more,
    for holes left by transactions that failed without saying so.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free_from: int | None = None
        self._returned: list[int] = []

    def next_candidate(
        self, transaction: state.StateTransaction, subnet: ipaddress.IPv4Network, prefix: str
    ) -> str:
        """An address no thread of this process is trying, and that was free when last read;
        ``""`` when the subnet has none."""
        with self._lock:
            if self._returned:
                return str(ipaddress.IPv4Address(heapq.heappop(self._returned)))
            first, last = _host_range(subnet)
            if self._free_from is None or self._free_from > last:
                start = first if self._free_from is not None else _recorded_free_from(transaction, prefix)
                found = _lowest_free_host(transaction, subnet, prefix, free_from=start)
                if not found:
                    self._free_from = None
                    return ""
                self._free_from = int(ipaddress.IPv4Address(found))
            value = max(self._free_from, first)
            self._free_from = value + 1
            return str(ipaddress.IPv4Address(value))

    def give_back(self, address: str) -> None:
        """``address`` was handed out and not taken (its transaction failed): offer it first."""
        with self._lock:
            heapq.heappush(self._returned, int(ipaddress.IPv4Address(address)))


_ALLOCATORS: weakref.WeakKeyDictionary[object, dict[str, _SegmentAllocator]] = weakref.WeakKeyDictionary()
_ALLOCATORS_LOCK = threading.Lock()


def _allocator(backend: state.StateBackend, segment: str) -> _SegmentAllocator:
    """The allocator of ``segment`` over ``backend`` in this process (the centers of a segment
    share it, whichever ``Simulator`` drives them)."""
    with _ALLOCATORS_LOCK:
        segments = _ALLOCATORS.setdefault(backend, {})
        allocator = segments.get(segment)
        if allocator is None:
            allocator = segments[segment] = _SegmentAllocator()
        return allocator


def _recorded_free_from(transaction: state.StateTransaction, prefix: str) -> int:
    """The segment's recorded lowest maybe-free host (0: none recorded)."""
    segment = prefix[:-1]
    found = transaction.get_many(state.GLOBAL_CENTER, KIND_SEGMENT, [segment], fresh=True)
    return int(found.get(segment, {}).get("free_from", 0))


def _host_range(subnet: ipaddress.IPv4Network) -> tuple[int, int]:
    """The first and last host a server may get: after the gateway's, before the broadcast."""
    first = int(subnet.network_address) + (2 if subnet.prefixlen < 31 else 1)
    last = int(subnet.broadcast_address) - 1 if subnet.prefixlen < 31 else int(subnet.broadcast_address)
    return first, last


def _lowest_free_host(
    transaction: state.StateTransaction, subnet: ipaddress.IPv4Network, prefix: str, *, free_from: int
) -> str:
    """The lowest host address of ``subnet`` after the gateway's (the first), from ``free_from``
    on, that holds no port under ``prefix``; ``""`` when there is none."""
    first, last = _host_range(subnet)
    value = max(first, free_from)
    while value <= last:
        window = [str(ipaddress.IPv4Address(v)) for v in range(value, min(value + ADDRESS_WINDOW, last + 1))]
        held = transaction.get_many(
            state.GLOBAL_CENTER, KIND_PORT, [f"{prefix}{address}" for address in window], fresh=True
        )
        for address in window:
            if f"{prefix}{address}" not in held:
                return address
        value += ADDRESS_WINDOW
    return ""
