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
- An address is held by one server per segment (``GLOBAL_CENTER``, kind ``port``): the
  centers a network is stretched over share it and allocate from it under the segment's
  lock (kind ``segment``), so two servers created at once never get the same address. A
  server of the same name created in another center of the segment takes the address over
  (the server moved); deleting that server hands it back to the one that held it first, if
  it still exists.
"""

from __future__ import annotations

import ipaddress
import uuid
from collections.abc import Mapping

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.drivers.simulator import state
from cloudctl.drivers.simulator.core import (
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
        with self._core.writing("create_server") as transaction:
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
            if transaction.find_by(self.name, KIND_SERVER, field="name", value=name):
                raise errors.Conflict(f"a server named {name!r} exists in center {self.name}", field="name")
            deltas = {"vcpu": vcpu, "ram_gb": ram_gb, "volume_gb": disk_gb, "instances": 1}
            self._core.charge_project(transaction, project, deltas)
            self._core.consume(transaction, **deltas)
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
        prefix = f"{segment}/"
        # The centers a segment is stretched over allocate from it under their own usage locks:
        # the segment's lock makes two of them at once take different addresses.
        transaction.hold(state.GLOBAL_CENTER, KIND_SEGMENT, segment, empty={"segment": segment})
        # Only the candidate addresses are read, from the lowest that may be free (the segment
        # document's ``free_from``: every host below it is held), so allocating stays cheap as
        # the segment fills up.
        lock = transaction.get(state.GLOBAL_CENTER, KIND_SEGMENT, segment) or {"segment": segment}
        moved_from: state.Doc | None = None
        if port.address is not None:
            address = port.address
            moved_from = transaction.get(state.GLOBAL_CENTER, KIND_PORT, f"{prefix}{address}")
            holder = moved_from
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
        else:
            address = _lowest_free_host(transaction, subnet, prefix, free_from=lock.get("free_from", 0))
            if not address:
                raise errors.Conflict(
                    f"network {port.network} of center {self.name} is full", field="address"
                )
            lock["free_from"] = int(ipaddress.IPv4Address(address)) + 1
            transaction.put(state.GLOBAL_CENTER, KIND_SEGMENT, segment, lock)
        key = f"{prefix}{address}"
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
                _address_freed(transaction, port["segment"], port["address"])

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
        volumes = self._core.backend.list(self.name, KIND_VOLUME)
        return sorted(volume["id"] for volume in volumes if volume.get("attached_to") == server_id)

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


ADDRESS_WINDOW = 32
"""Candidate addresses read together when looking for the lowest free one."""


def _lowest_free_host(
    transaction: state.StateTransaction, subnet: ipaddress.IPv4Network, prefix: str, *, free_from: int
) -> str:
    """The lowest host address of ``subnet`` after the gateway's (the first), from ``free_from``
    on, that holds no port under ``prefix``; ``""`` when there is none."""
    hosts = subnet.hosts()
    first = next(hosts, None)
    if first is None:
        return ""
    last = int(subnet.broadcast_address) - 1 if subnet.prefixlen < 31 else int(subnet.broadcast_address)
    value = max(int(first) + 1, free_from)
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


def _address_freed(transaction: state.StateTransaction, segment: str, address: str) -> None:
    """Lower the segment's ``free_from`` to an address given back, under the segment's lock."""
    transaction.hold(state.GLOBAL_CENTER, KIND_SEGMENT, segment, empty={"segment": segment})
    lock = transaction.get(state.GLOBAL_CENTER, KIND_SEGMENT, segment) or {"segment": segment}
    value = int(ipaddress.IPv4Address(address))
    if lock.get("free_from", 0) > value:
        transaction.put(state.GLOBAL_CENTER, KIND_SEGMENT, segment, {**lock, "free_from": value})
