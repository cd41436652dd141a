"""``OpenStackBlockStorage``: the ``base.BlockStorage`` Protocol over Cinder (volumes, snapshots).

Invariants:

- Volumes and snapshots are created in their department's project (a snapshot in its
  volume's project), so Cinder charges that project's ``gigabytes`` quota; reads and
  deletes go through the admin connection across all projects.
- Creates return once Cinder reports ``available`` (``errors.OperationFailed`` if it
  reports an error instead, or nothing within ``cloudctl.operation_timeout_s``); deletes
  return once Cinder no longer lists the thing. Waits are on the injected clock.
- Volume names are unique per center, as in the simulator (checked before creating; see
  ``compute`` for why a race is tolerated).
- ``delete_volume`` of a volume that still has snapshots raises ``errors.Conflict``
  (checked first; Cinder's own 400 for it maps to the same).
- Cinder's statuses map onto four: ``available`` → available; ``creating``,
  ``downloading`` → creating; ``error*`` → error; everything else (attached, busy,
  deleting ...) → in-use, meaning "not free for a new use".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.openstack import cloud as cloud_module
from cloudctl.drivers.openstack import compute

_CREATING = frozenset({"creating", "downloading"})
SNAPSHOT_CREATING = "creating"
"""Cinder's word for a snapshot still being made (OpenStack's vocabulary, not a cloudctl state)."""


def volume_status(cinder_status: str | None) -> base.VolumeStatus:
    status = (cinder_status or "").lower()
    if status == "available":
        return base.VolumeStatus.AVAILABLE
    if status in _CREATING:
        return base.VolumeStatus.CREATING
    if status.startswith("error"):
        return base.VolumeStatus.ERROR
    return base.VolumeStatus.IN_USE


class OpenStackBlockStorage:
    """Volumes and snapshots of one center's OpenStack cloud."""

    def __init__(self, cloud: cloud_module.Cloud) -> None:
        self._cloud = cloud
        self.center = cloud.center

    # --- volumes -------------------------------------------------------------------------

    def create_volume(
        self, *, name: str, project: str, size_gb: int, snapshot_id: str | None = None
    ) -> base.Volume:
        if isinstance(size_gb, bool) or not isinstance(size_gb, int) or size_gb <= 0:
            raise errors.InvalidInput(f"must be positive, not {size_gb!r}", field="size_gb")
        if self.find_volume(name) is not None:
            raise errors.Conflict(f"a volume named {name!r} exists in center {self.center}", field="name")
        if snapshot_id is not None:
            snapshot = self.get_snapshot(snapshot_id)
            if size_gb < snapshot.size_gb:
                raise errors.InvalidInput(
                    f"{size_gb} is smaller than snapshot {snapshot_id} ({snapshot.size_gb})", field="size_gb"
                )
        connection = self._cloud.project_connection(project)
        created = self._cloud.call(
            lambda: connection.block_storage.create_volume(name=name, size=size_gb, snapshot_id=snapshot_id),
            what=f"volume {name}",
            project=project,
        )
        return self._settled_volume(str(created.id))

    def get_volume(self, volume_id: str) -> base.Volume:
        return self._volume(self._cinder_volume(volume_id))

    def find_volume(self, name: str) -> base.Volume | None:
        matches = [volume for volume in self._cinder_volumes(name=name) if volume.name == name]
        return self._volume(matches[0]) if matches else None

    def list_volumes(
        self, *, project: str | None = None, name_prefixes: Sequence[str] = ()
    ) -> list[base.Volume]:
        # Cinder's own filter on part of a name needs microversion 3.34 and the cloud's
        # resource-filter settings to allow it: the listing is filtered here instead.
        if project is None:
            volumes = self._cinder_volumes()
        else:
            project_id = self._cloud.find_project_id(project)
            if project_id is None:
                return []
            volumes = self._cinder_volumes(project_id=project_id)
        starts = tuple(name_prefixes)
        return [
            self._volume(volume) for volume in volumes if not starts or (volume.name or "").startswith(starts)
        ]

    def delete_volume(self, volume_id: str, *, ignore_missing: bool = True) -> None:
        try:
            self._cinder_volume(volume_id)
        except errors.NotFound:
            if ignore_missing:
                return
            raise
        snapshots = self.list_snapshots(volume_id=volume_id)
        if snapshots:
            raise errors.Conflict(
                f"volume {volume_id} still has snapshots: {', '.join(s.id for s in snapshots)}",
                field="volume",
            )
        self._delete("volume", volume_id, exists=self._volume_exists, ignore_missing=ignore_missing)

    def _settled_volume(self, volume_id: str) -> base.Volume:
        settled: list[Any] = []

        def done() -> bool:
            found = self._cinder_volume(volume_id)
            settled[:] = [found]
            return volume_status(found.status) is not base.VolumeStatus.CREATING

        self._cloud.wait_until(done, what=f"creation of volume {volume_id}")
        volume = self._volume(settled[0])
        if volume.status is not base.VolumeStatus.AVAILABLE:
            raise errors.OperationFailed(
                f"volume {volume_id} is {settled[0].status} instead of available", field="status"
            )
        return volume

    def _cinder_volume(self, volume_id: str) -> Any:
        return self._cloud.call(
            lambda: self._cloud.admin.block_storage.get_volume(volume_id), what=f"volume {volume_id}"
        )

    def _cinder_volumes(self, **query: str) -> list[Any]:
        return self._cloud.call(
            lambda: sorted(
                self._cloud.admin.block_storage.volumes(details=True, all_projects=True, **query),
                key=lambda volume: (volume.created_at or "", volume.id),
            ),
            what="volumes",
        )

    def _delete(
        self, kind: str, item_id: str, *, exists: Callable[[str], bool], ignore_missing: bool
    ) -> None:
        """Cinder's ``delete_<kind>``, then wait until ``exists`` says it is gone. Cinder answers 400
        for what it cannot delete now (snapshots, attached, busy): that is ``errors.Conflict``."""
        try:
            self._cloud.call(
                lambda: getattr(self._cloud.admin.block_storage, f"delete_{kind}")(
                    item_id, ignore_missing=False
                ),
                what=f"{kind} {item_id}",
            )
        except errors.NotFound:
            if ignore_missing:
                return
            raise
        except errors.InvalidInput as refused:
            raise errors.Conflict(refused.reason, field=kind) from refused
        self._cloud.wait_until(lambda: not exists(item_id), what=f"deletion of {kind} {item_id}")

    def _volume_exists(self, volume_id: str) -> bool:
        try:
            self._cinder_volume(volume_id)
        except errors.NotFound:
            return False
        return True

    def _volume(self, found: Any) -> base.Volume:
        return base.Volume(
            id=str(found.id),
            name=str(found.name),
            project=self._cloud.project_name(str(found.project_id)),
            center=self.center,
            size_gb=int(found.size),
            status=volume_status(found.status),
            created_at=compute.epoch_s(found.created_at),
            source_snapshot_id=str(found.snapshot_id) if found.snapshot_id else None,
        )

    # --- snapshots -----------------------------------------------------------------------

    def create_snapshot(self, volume_id: str, *, name: str) -> base.Snapshot:
        volume = self.get_volume(volume_id)
        connection = self._cloud.project_connection(volume.project)
        created = self._cloud.call(
            lambda: connection.block_storage.create_snapshot(volume_id=volume_id, name=name),
            what=f"snapshot {name}",
            project=volume.project,
        )
        snapshot_id = str(created.id)
        settled: list[Any] = []

        def done() -> bool:
            found = self._cinder_snapshot(snapshot_id)
            settled[:] = [found]
            return (found.status or "").lower() != SNAPSHOT_CREATING

        self._cloud.wait_until(done, what=f"creation of snapshot {snapshot_id}")
        if (settled[0].status or "").lower() != "available":
            raise errors.OperationFailed(
                f"snapshot {snapshot_id} is {settled[0].status} instead of available", field="status"
            )
        return self._snapshot(settled[0])

    def get_snapshot(self, snapshot_id: str) -> base.Snapshot:
        return self._snapshot(self._cinder_snapshot(snapshot_id))

    def list_snapshots(self, *, volume_id: str | None = None) -> list[base.Snapshot]:
        query = {} if volume_id is None else {"volume_id": volume_id}
        found = self._cloud.call(
            lambda: sorted(
                self._cloud.admin.block_storage.snapshots(details=True, all_projects=True, **query),
                key=lambda snapshot: (snapshot.created_at or "", snapshot.id),
            ),
            what="snapshots",
        )
        return [self._snapshot(snapshot) for snapshot in found]

    def delete_snapshot(self, snapshot_id: str, *, ignore_missing: bool = True) -> None:
        self._delete("snapshot", snapshot_id, exists=self._snapshot_exists, ignore_missing=ignore_missing)

    def _cinder_snapshot(self, snapshot_id: str) -> Any:
        return self._cloud.call(
            lambda: self._cloud.admin.block_storage.get_snapshot(snapshot_id), what=f"snapshot {snapshot_id}"
        )

    def _snapshot_exists(self, snapshot_id: str) -> bool:
        try:
            self._cinder_snapshot(snapshot_id)
        except errors.NotFound:
            return False
        return True

    def _snapshot(self, found: Any) -> base.Snapshot:
        return base.Snapshot(
            id=str(found.id),
            name=str(found.name),
            volume_id=str(found.volume_id),
            center=self.center,
            size_gb=int(found.size),
            created_at=compute.epoch_s(found.created_at),
        )
