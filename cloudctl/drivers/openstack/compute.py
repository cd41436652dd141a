"""``OpenStackCompute``: the ``base.Compute`` Protocol over Nova (servers), Nova + Cinder + Neutron (quotas).

Invariants:

- A server is created in its department's project (``Cloud.project_connection``), from the
  cloud's image (``cloudctl.image`` in ``clouds.yaml``), with a flavor named after its size
  (``cloudctl-<vcpu>c-<ram_gb>g-<disk_gb>d``, made on first use, public) and attached by one
  port to the network ``cloudctl.network`` names (by default the department's own tenant
  network, made on the project's first server: see ``network``), or to no network at all.
  ``Server`` sizes are read back from the flavor Nova embeds in the server, ``project`` is the
  project's name.
- Server names are unique per center, as in the simulator: ``create_server`` refuses a name
  that any project already uses (``errors.Conflict``). The check and the create are two
  calls, so two creators racing on one name can both win; cloudctl's reconcilers never race
  on a name (one workload, one server name).
- ``delete_server`` returns when Nova no longer lists the server, so a ``get`` right after
  it raises ``errors.NotFound``, as the contract wants; it waits on the injected clock,
  at most ``cloudctl.operation_timeout_s``.
- Nova's statuses map onto four: ``ACTIVE`` → active, ``SHUTOFF`` and the parked ones
  (``PAUSED``, ``SUSPENDED``, ``SHELVED*``, ``SOFT_DELETED``) → shutoff, ``ERROR`` and
  ``UNKNOWN`` → error, anything still moving (``BUILD``, ``REBOOT``, ``MIGRATING`` ...) → build.
  ``DELETED`` counts as gone.
- Project quotas: ``vcpu`` → Nova ``cores``, ``ram_gb`` → Nova ``ram`` in MiB (× 1024),
  ``instances`` → Nova ``instances``, ``volume_gb`` → Cinder ``gigabytes``. Setting replaces
  all four: a resource not given becomes unlimited (-1), and unlimited resources are absent
  from ``ProjectQuota.limits``. OpenStack holds no project quota for ``object_gb`` (object
  storage is another driver's): it is kept as a project tag (``cloudctl:object_gb=<n>``),
  reported, not enforced, as in the simulator. ``used`` counts what Nova and Cinder count.
- Setting a project quota also sets the project's Neutron quota derived from the same limits
  (``network.quota_for``: networks, subnets, ports from ``instances``, routers, ...).
  ``ProjectQuota`` holds the tree's resources only; the Neutron side is read with
  ``get_network_quota`` (limits and usage under ``network.*`` keys), and a reconciler finds its
  drift by comparing ``get_derived_project_limits(project)`` with
  ``derived_project_limits(tree limits)``.
- The derived limits also hold what the tree's resources become in the backend's own units
  and counts, so that a drift no tree unit can show is still found:
  ``compute.ram_mib`` (Nova's ``ram``, exact: ``ProjectQuota`` rounds it down to whole GB),
  ``block_storage.volumes`` = ``volume_gb`` (a volume is at least 1 GB, so the count never
  binds before the gigabytes do) and ``block_storage.snapshots`` = ``volume_gb`` ×
  ``SNAPSHOTS_PER_VOLUME`` (replication points: a volume keeps a few; Cinder's default cap of
  10 per project would stop them at the fourth volume). Unlimited when ``volume_gb`` is.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.openstack import cloud as cloud_module
from cloudctl.drivers.openstack import network as network_module
from cloudctl.model import quotas

MIB_PER_GB = 1024
UNLIMITED = -1
SNAPSHOTS_PER_VOLUME = 16
"""Snapshots a project may hold per volume it may hold: replication points (``replication_points_kept``
per volume, one more while a new one is made) with room to spare."""
RAM_MIB_KEY = "compute.ram_mib"
VOLUMES_KEY = "block_storage.volumes"
SNAPSHOTS_KEY = "block_storage.snapshots"
OBJECT_GB_TAG_PREFIX = "cloudctl:object_gb="
IMAGE_USABLE = "active"
"""Glance's status of an image servers can boot from (OpenStack's vocabulary, not a cloudctl state)."""

_STATUS = {
    "ACTIVE": base.ServerStatus.ACTIVE,
    "SHUTOFF": base.ServerStatus.SHUTOFF,
    "PAUSED": base.ServerStatus.SHUTOFF,
    "SUSPENDED": base.ServerStatus.SHUTOFF,
    "SHELVED": base.ServerStatus.SHUTOFF,
    "SHELVED_OFFLOADED": base.ServerStatus.SHUTOFF,
    "SOFT_DELETED": base.ServerStatus.SHUTOFF,
    "ERROR": base.ServerStatus.ERROR,
    "UNKNOWN": base.ServerStatus.ERROR,
}
_POWER_STATES = (base.ServerStatus.ACTIVE, base.ServerStatus.SHUTOFF)


def flavor_name(*, vcpu: int, ram_gb: int, disk_gb: int) -> str:
    return f"cloudctl-{vcpu}c-{ram_gb}g-{disk_gb}d"


def epoch_s(timestamp: str | None) -> float:
    """An OpenStack timestamp (ISO 8601, with or without zone; UTC when without) as epoch seconds."""
    if not timestamp:
        return 0.0
    parsed = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _fixed_addresses(addresses: Any) -> tuple[str, ...]:
    """The IPv4 fixed addresses of Nova's ``addresses`` (network name → list of addresses)."""
    found = []
    for entries in (addresses or {}).values():
        for entry in entries or []:
            if entry.get("version") == 4 and entry.get("OS-EXT-IPS:type", "fixed") == "fixed":
                found.append(str(entry["addr"]))
    return tuple(found)


def server_status(nova_status: str | None) -> base.ServerStatus:
    return _STATUS.get((nova_status or "").upper(), base.ServerStatus.BUILD)


class OpenStackCompute(base.ServerWaits):
    """Servers and project quotas of one center's OpenStack cloud."""

    def __init__(self, cloud: cloud_module.Cloud) -> None:
        self._cloud = cloud
        self._network = network_module.OpenStackNetwork(cloud)
        self.center = cloud.center

    def ensure_project(self, name: str, *, domain: str = cloud_module.DEFAULT_DOMAIN) -> str:
        """The id of the department's project in this center, created when missing; idempotent."""
        return self._cloud.ensure_project(name, domain=domain)

    # --- servers -------------------------------------------------------------------------

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
        if self.find_server(name) is not None:
            raise errors.Conflict(f"a server named {name!r} exists in center {self.center}", field="name")
        flavor_id = self._flavor_id(vcpu=vcpu, ram_gb=ram_gb, disk_gb=disk_gb)
        image_id = self._image_id()
        connection = self._cloud.project_connection(project)
        networks = self._network.server_networks(
            project, fixed_ip=port.address if port else None, pool=port.pool if port else None
        )
        created = self._cloud.call(
            lambda: connection.compute.create_server(
                name=name,
                flavor_id=flavor_id,
                image_id=image_id,
                networks=networks,
                metadata=dict(metadata or {}),
            ),
            what=f"server {name}",
            project=project,
        )
        return self.get_server(str(created.id))

    def get_server(self, server_id: str) -> base.Server:
        found = self._cloud.call(
            lambda: self._cloud.admin.compute.get_server(server_id), what=f"server {server_id}"
        )
        if (found.status or "").upper() == "DELETED":
            raise errors.NotFound(f"no server {server_id} in center {self.center}", field="server")
        return self._server(found)

    def find_server(self, name: str) -> base.Server | None:
        matches = [server for server in self._nova_servers(name=name) if server.name == name]
        return self._server(matches[0]) if matches else None

    def list_servers(self, *, project: str | None = None) -> list[base.Server]:
        if project is None:
            return [self._server(server) for server in self._nova_servers()]
        project_id = self._cloud.find_project_id(project)
        if project_id is None:
            return []
        return [self._server(server) for server in self._nova_servers(project_id=project_id)]

    def delete_server(self, server_id: str, *, ignore_missing: bool = True) -> None:
        try:
            attached = self.attached_volumes(server_id)
            self._cloud.call(
                lambda: self._cloud.admin.compute.delete_server(server_id, ignore_missing=False),
                what=f"server {server_id}",
            )
        except errors.NotFound:
            if ignore_missing:
                return
            raise
        self._cloud.wait_until(lambda: not self._exists(server_id), what=f"deletion of server {server_id}")
        # Nova detaches the server's volumes as it deletes it; Cinder frees them a moment later.
        for volume_id in attached:
            self._cloud.wait_until(
                functools.partial(self._detached, volume_id, server_id),
                what=f"detachment of volume {volume_id} from server {server_id}",
            )

    def start_server(self, server_id: str) -> base.Server:
        return self._power(server_id, target=base.ServerStatus.ACTIVE)

    def stop_server(self, server_id: str) -> base.Server:
        return self._power(server_id, target=base.ServerStatus.SHUTOFF)

    def _waits_on(self) -> clocks.Clock:
        return self._cloud.clock

    def attach_volume(self, server_id: str, *, volume_id: str) -> None:
        """Nova attaches the Cinder volume; returns once Cinder reports it ``in-use`` on the server."""
        self.get_server(server_id)
        compute, storage = self._cloud.admin.compute, self._cloud.admin.block_storage
        volume = self._cloud.call(lambda: storage.get_volume(volume_id), what=f"volume {volume_id}")
        on = {str(item.get("server_id")) for item in volume.attachments or []}
        if server_id in on:
            return
        if on or (volume.status or "").lower() != "available":
            where = f" (attached to server {', '.join(sorted(on))})" if on else ""
            raise errors.Conflict(f"volume {volume_id} is {volume.status}{where}", field="volume")
        self._cloud.call(
            lambda: compute.create_volume_attachment(server_id, volume_id=volume_id),
            what=f"server {server_id}",
        )

        def attached() -> bool:
            found = self._cloud.call(lambda: storage.get_volume(volume_id), what=f"volume {volume_id}")
            if (found.status or "").lower().startswith("error"):
                raise errors.OperationFailed(
                    f"volume {volume_id} went to {found.status} while attaching to server {server_id}",
                    field="status",
                )
            servers = {str(item.get("server_id")) for item in found.attachments or []}
            return (found.status or "").lower() == "in-use" and server_id in servers

        self._cloud.wait_until(attached, what=f"attachment of volume {volume_id} to server {server_id}")

    def _detached(self, volume_id: str, server_id: str) -> bool:
        storage = self._cloud.admin.block_storage
        try:
            found = self._cloud.call(lambda: storage.get_volume(volume_id), what=f"volume {volume_id}")
        except errors.NotFound:
            return True
        servers = {str(item.get("server_id")) for item in found.attachments or []}
        return server_id not in servers and (found.status or "").lower() != "detaching"

    def attached_volumes(self, server_id: str) -> list[str]:
        self.get_server(server_id)
        compute = self._cloud.admin.compute
        found = self._cloud.call(
            lambda: list(compute.volume_attachments(server_id)), what=f"server {server_id}"
        )
        return sorted(str(item.volume_id) for item in found)

    def _power(self, server_id: str, *, target: base.ServerStatus) -> base.Server:
        server = self.get_server(server_id)
        if server.status is target:
            return server
        if server.status not in _POWER_STATES:
            verb = "start" if target is base.ServerStatus.ACTIVE else "stop"
            raise errors.Conflict(
                f"server {server_id} is {server.status.value}; {verb} needs active or shutoff", field="status"
            )
        compute = self._cloud.admin.compute
        action = compute.start_server if target is base.ServerStatus.ACTIVE else compute.stop_server
        self._cloud.call(lambda: action(server_id), what=f"server {server_id}")
        return self.get_server(server_id)

    def _exists(self, server_id: str) -> bool:
        try:
            self.get_server(server_id)
        except errors.NotFound:
            return False
        return True

    def _nova_servers(self, **query: str) -> list[Any]:
        """Servers of every project (or of ``project_id``), oldest first; ``name`` is a regex to Nova."""
        if "name" in query:
            query["name"] = f"^{_regex_literal(query['name'])}$"
        return self._cloud.call(
            lambda: sorted(
                self._cloud.admin.compute.servers(details=True, all_projects=True, **query),
                key=lambda server: (server.created_at or "", server.id),
            ),
            what="servers",
        )

    def _server(self, found: Any) -> base.Server:
        flavor = found.flavor
        return base.Server(
            id=str(found.id),
            name=str(found.name),
            project=self._cloud.project_name(str(found.project_id)),
            center=self.center,
            vcpu=int(flavor.vcpus or 0),
            ram_gb=math.ceil(int(flavor.ram or 0) / MIB_PER_GB),
            disk_gb=int(flavor.disk or 0),
            status=server_status(found.status),
            created_at=epoch_s(found.created_at),
            metadata=dict(found.metadata or {}),
            addresses=_fixed_addresses(found.addresses),
        )

    # --- what servers are made of --------------------------------------------------------

    def _flavor_id(self, *, vcpu: int, ram_gb: int, disk_gb: int) -> str:
        name = flavor_name(vcpu=vcpu, ram_gb=ram_gb, disk_gb=disk_gb)
        compute = self._cloud.admin.compute
        for _ in range(2):
            found = self._cloud.call(lambda: list(compute.flavors(is_public=None)), what=f"flavor {name}")
            for flavor in found:
                if flavor.name == name:
                    return str(flavor.id)
            try:
                created = self._cloud.call(
                    lambda: compute.create_flavor(
                        name=name, vcpus=vcpu, ram=ram_gb * MIB_PER_GB, disk=disk_gb, is_public=True
                    ),
                    what=f"flavor {name}",
                )
                return str(created.id)
            except errors.Conflict:
                continue  # made by someone else since we looked: take theirs
        raise errors.OperationFailed(
            f"flavor {name} could not be made in center {self.center}", field="flavor"
        )

    def _image_id(self) -> str:
        name = self._cloud.settings.image
        images = self._cloud.call(
            lambda: list(self._cloud.admin.image.images(name=name)), what=f"image {name}"
        )
        active = [image for image in images if image.status == IMAGE_USABLE]
        if not active:
            raise errors.OperationFailed(
                f"cloud {self._cloud.cloud_name} of center {self.center} has no active image {name!r} "
                "(clouds.yaml: cloudctl.image)",
                field="image",
            )
        return str(active[0].id)

    # --- project quotas ------------------------------------------------------------------

    def set_project_quota(self, project: str, *, amounts: Mapping[str, int]) -> base.ProjectQuota:
        limits = quotas.as_names(quotas.amounts_from(amounts, field="amounts"))
        project_id = self._cloud.ensure_project(project)
        admin = self._cloud.admin
        cores = limits.get("vcpu", UNLIMITED)
        ram_mib = limits["ram_gb"] * MIB_PER_GB if "ram_gb" in limits else UNLIMITED
        instances = limits.get("instances", UNLIMITED)
        self._cloud.call(
            lambda: admin.compute.update_quota_set(project_id, cores=cores, ram=ram_mib, instances=instances),
            what=f"project {project}",
        )
        gigabytes = limits.get("volume_gb", UNLIMITED)
        counts = volume_counts(limits)
        volumes = counts.get(VOLUMES_KEY, UNLIMITED)
        snapshots = counts.get(SNAPSHOTS_KEY, UNLIMITED)
        self._cloud.call(
            lambda: admin.block_storage.update_quota_set(
                project_id, gigabytes=gigabytes, volumes=volumes, snapshots=snapshots
            ),
            what=f"project {project}",
        )
        self._set_object_gb(project_id, limits.get("object_gb"), project=project)
        self._network.set_project_quota(project, limits=limits)
        return self.get_project_quota(project)

    def get_project_quota(self, project: str) -> base.ProjectQuota:
        project_id = self._cloud.find_project_id(project)
        if project_id is None:
            used = {resource: 0 for resource in ("vcpu", "ram_gb", "instances", "volume_gb")}
            return base.ProjectQuota(project=project, center=self.center, limits={}, used=used)
        admin = self._cloud.admin
        nova = self._cloud.call(
            lambda: admin.compute.get_quota_set(project_id, usage=True), what=f"project {project}"
        )
        cinder = self._cloud.call(
            lambda: admin.block_storage.get_quota_set(project_id, usage=True), what=f"project {project}"
        )
        raw_limits = {
            "vcpu": _limit(nova.cores),
            "ram_gb": None if _limit(nova.ram) is None else int(nova.ram) // MIB_PER_GB,
            "volume_gb": _limit(cinder.gigabytes),
            "instances": _limit(nova.instances),
            "object_gb": self._object_gb(project_id, project=project),
        }
        limits = {resource: value for resource, value in raw_limits.items() if value is not None}
        nova_used = nova.usage or {}
        cinder_used = cinder.usage or {}
        used = {
            "vcpu": int(nova_used.get("cores", 0)),
            "ram_gb": math.ceil(int(nova_used.get("ram", 0)) / MIB_PER_GB),
            "instances": int(nova_used.get("instances", 0)),
            "volume_gb": int(cinder_used.get("gigabytes", 0)),
        }
        ordered = quotas.as_names({quotas.Resource(name): value for name, value in limits.items()})
        return base.ProjectQuota(project=project, center=self.center, limits=ordered, used=used)

    def get_network_quota(self, project: str) -> base.ProjectQuota:
        """The project's Neutron quota: limits and usage under ``network.*`` keys (``network``)."""
        return self._network.get_project_quota(project)

    def derived_project_limits(self, amounts: Mapping[str, int]) -> dict[str, int]:
        """The limits beyond the tree's resources that ``set_project_quota(amounts)`` writes, and
        the tree's in the backend's own units (see the module's docstring)."""
        limits = quotas.as_names(quotas.amounts_from(amounts, field="amounts"))
        derived = self._network.quota_for(limits)
        if "ram_gb" in limits:
            derived[RAM_MIB_KEY] = limits["ram_gb"] * MIB_PER_GB
        derived.update(volume_counts(limits))
        return derived

    def get_derived_project_limits(self, project: str) -> dict[str, int]:
        """The limits beyond the tree's resources that the project holds now (Neutron's, Nova's
        RAM in MiB, Cinder's counts)."""
        derived = dict(self.get_network_quota(project).limits)
        project_id = self._cloud.find_project_id(project)
        if project_id is None:
            return derived
        admin = self._cloud.admin
        nova = self._cloud.call(lambda: admin.compute.get_quota_set(project_id), what=f"project {project}")
        cinder = self._cloud.call(
            lambda: admin.block_storage.get_quota_set(project_id), what=f"project {project}"
        )
        found = {
            RAM_MIB_KEY: _limit(nova.ram),
            VOLUMES_KEY: _limit(cinder.volumes),
            SNAPSHOTS_KEY: _limit(cinder.snapshots),
        }
        derived.update({key: value for key, value in found.items() if value is not None})
        return derived

    def _object_gb(self, project_id: str, *, project: str) -> int | None:
        found = self._cloud.call(
            lambda: self._cloud.identity.get_project(project_id), what=f"project {project}"
        )
        for tag in found.tags or []:
            if tag.startswith(OBJECT_GB_TAG_PREFIX):
                return int(tag.removeprefix(OBJECT_GB_TAG_PREFIX))
        return None

    def _set_object_gb(self, project_id: str, object_gb: int | None, *, project: str) -> None:
        identity = self._cloud.identity
        found = self._cloud.call(lambda: identity.get_project(project_id), what=f"project {project}")
        kept = [tag for tag in found.tags or [] if not tag.startswith(OBJECT_GB_TAG_PREFIX)]
        wanted = kept if object_gb is None else [*kept, f"{OBJECT_GB_TAG_PREFIX}{object_gb}"]
        if sorted(wanted) != sorted(found.tags or []):
            self._cloud.call(
                lambda: identity.update_project(project_id, tags=wanted), what=f"project {project}"
            )


def volume_counts(limits: Mapping[str, int]) -> dict[str, int]:
    """Cinder's volume and snapshot counts for tree limits (absent, unlimited, when ``volume_gb`` is)."""
    volume_gb = limits.get("volume_gb")
    if volume_gb is None:
        return {}
    return {VOLUMES_KEY: volume_gb, SNAPSHOTS_KEY: volume_gb * SNAPSHOTS_PER_VOLUME}


def _limit(value: Any) -> int | None:
    if value is None or int(value) < 0:
        return None
    return int(value)


def _regex_literal(text: str) -> str:
    """``text`` as a literal in the regular expressions of Nova's databases (and Python's)."""
    return "".join(_regex_char(char) for char in text)


def _regex_char(char: str) -> str:
    if char.isalnum() or char in "_ ":
        return char
    if char in "\\^":
        return f"\\{char}"
    return f"[{char}]"  # a one-character class: literal in every regex dialect


def _check_sizes(**sizes: int) -> None:
    base.check_sizes(**sizes)
    if sizes["vcpu"] < 1 or sizes["ram_gb"] < 1:
        raise errors.InvalidInput("an OpenStack server needs at least 1 vCPU and 1 GB of RAM", field="vcpu")
