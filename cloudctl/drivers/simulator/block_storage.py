"""Simulated block storage of one center: ``base.BlockStorage`` over the center's ``CenterCore``.

Volumes, their checksummed blocks, and snapshots.

Invariants:

- A volume consumes its ``size_gb`` as ``volume_gb`` of the center's capacity and of its
  project's quota; snapshots are copy-on-write and consume nothing.
- Volume names are unique per center.
- A volume is stored as blocks of ``BLOCK_SIZE_BYTES`` (simulator only:
  ``write_volume_block``, ``read_volume_block``), each with its sha256; a read verifies
  it and raises ``base.ChecksumMismatchError`` on a mismatch, and a block never written
  reads empty. ``corrupt_volume_block`` is a test hook that breaks a block behind its
  checksum's back.
- A snapshot holds a copy of the volume's blocks, and a volume made from a snapshot
  starts with a copy of them (at least the snapshot's size). A volume with snapshots,
  or attached to a server, is not deleted; deleting one deletes its blocks.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.drivers.simulator import state
from cloudctl.drivers.simulator.core import KIND_SNAPSHOT, KIND_SNAPSHOT_BLOCK, KIND_VOLUME, KIND_VOLUME_BLOCK

BLOCK_SIZE_BYTES = 1024 * 1024
"""Size of one volume block; ``write_volume_block`` takes at most this many bytes."""


class SimulatedBlockStorage:
    """The simulator's ``base.BlockStorage`` for one center."""

    def __init__(self, core: sim_core.CenterCore) -> None:
        self._core = core
        self.name = core.name

    # --- volumes -----------------------------------------------------------------------

    def create_volume(
        self, *, name: str, project: str, size_gb: int, snapshot_id: str | None = None
    ) -> base.Volume:
        if size_gb <= 0:
            raise errors.InvalidInput(f"must be positive, not {size_gb}", field="size_gb")
        self._core.operate("create_volume")
        doc: state.Doc = {
            "id": uuid.uuid4().hex,
            "name": name,
            "project": project,
            "size_gb": size_gb,
            "status": base.VolumeStatus.AVAILABLE.value,
            "created_at": self._core.clock.now(),
            "source_snapshot_id": snapshot_id,
        }
        with self._core.writing() as transaction:
            if transaction.find_by(self.name, KIND_VOLUME, field="name", value=name):
                raise errors.Conflict(f"a volume named {name!r} exists in center {self.name}", field="name")
            if snapshot_id is not None:
                snapshot = self._core.required(transaction, KIND_SNAPSHOT, snapshot_id, what="snapshot")
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
            self._core.charge_project(transaction, project, {"volume_gb": size_gb})
            self._core.consume(transaction, volume_gb=size_gb)
            transaction.put(self.name, KIND_VOLUME, doc["id"], doc)
        return self._volume(doc)

    def get_volume(self, volume_id: str) -> base.Volume:
        return self._volume(self._core.fetch("get_volume", KIND_VOLUME, volume_id, what="volume"))

    def find_volume(self, name: str) -> base.Volume | None:
        doc = self._core.find_named("find_volume", KIND_VOLUME, name)
        return self._volume(doc) if doc else None

    def list_volumes(
        self, *, project: str | None = None, name_prefixes: Sequence[str] = ()
    ) -> list[base.Volume]:
        docs = self._core.listed(
            "list_volumes", KIND_VOLUME, field="project", value=project, name_prefixes=name_prefixes
        )
        return [self._volume(doc) for doc in docs]

    def delete_volume(self, volume_id: str, *, ignore_missing: bool = True) -> None:
        self._core.delete(
            "delete_volume",
            KIND_VOLUME,
            volume_id,
            what="volume",
            ignore_missing=ignore_missing,
            release=self._release_volume,
        )

    def _release_volume(self, transaction: state.StateTransaction, doc: state.Doc) -> None:
        """Refuse to delete a volume with snapshots or attached; else free its blocks and size."""
        volume_id = doc["id"]
        snapshots = [
            snapshot["id"]
            for snapshot in transaction.find_all_by(self.name, KIND_SNAPSHOT, where={"volume_id": volume_id})
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
        self._delete_blocks(transaction, KIND_VOLUME_BLOCK, volume_id)
        self._core.charge_project(transaction, doc["project"], {"volume_gb": -doc["size_gb"]})
        self._core.consume(transaction, volume_gb=-doc["size_gb"])

    # --- snapshots ---------------------------------------------------------------------

    def create_snapshot(self, volume_id: str, *, name: str) -> base.Snapshot:
        self._core.operate("create_snapshot")
        with self._core.writing() as transaction:
            volume = self._core.required(transaction, KIND_VOLUME, volume_id, what="volume")
            doc: state.Doc = {
                "id": uuid.uuid4().hex,
                "name": name,
                "volume_id": volume_id,
                "size_gb": volume["size_gb"],
                "created_at": self._core.clock.now(),
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
        return self._snapshot(self._core.fetch("get_snapshot", KIND_SNAPSHOT, snapshot_id, what="snapshot"))

    def list_snapshots(self, *, volume_id: str | None = None) -> list[base.Snapshot]:
        docs = self._core.listed("list_snapshots", KIND_SNAPSHOT, field="volume_id", value=volume_id)
        return [self._snapshot(doc) for doc in docs]

    def delete_snapshot(self, snapshot_id: str, *, ignore_missing: bool = True) -> None:
        self._core.delete(
            "delete_snapshot",
            KIND_SNAPSHOT,
            snapshot_id,
            what="snapshot",
            ignore_missing=ignore_missing,
            release=lambda transaction, doc: self._delete_blocks(transaction, KIND_SNAPSHOT_BLOCK, doc["id"]),
        )

    # --- blocks (simulator only) -------------------------------------------------------

    def write_volume_block(self, volume_id: str, *, index: int, data: bytes) -> str:
        """Store one block of a volume (simulator only); its sha256."""
        if len(data) > BLOCK_SIZE_BYTES:
            raise errors.InvalidInput(
                f"{len(data)} bytes is more than a block ({BLOCK_SIZE_BYTES})", field="data"
            )
        self._core.operate("write_volume_block")
        checksum = sim_core.sha256_hex(data)
        with self._core.writing() as transaction:
            volume = self._core.required(transaction, KIND_VOLUME, volume_id, what="volume")
            blocks = volume["size_gb"] * sim_core.BYTES_PER_GB // BLOCK_SIZE_BYTES
            if not 0 <= index < blocks:
                raise errors.InvalidInput(
                    f"block {index} is outside volume {volume_id} (0..{blocks - 1})", field="index"
                )
            block = {"index": index, "sha256": checksum, "data_b64": sim_core.encode(data)}
            transaction.put(self.name, KIND_VOLUME_BLOCK, _block_key(volume_id, index), block)
        return checksum

    def read_volume_block(self, volume_id: str, *, index: int) -> bytes:
        """One block of a volume, verified (simulator only); empty if never written."""
        self._core.operate("read_volume_block")
        with self._core.backend.transaction() as transaction:
            self._core.required(transaction, KIND_VOLUME, volume_id, what="volume")
            block = transaction.get(self.name, KIND_VOLUME_BLOCK, _block_key(volume_id, index))
        if block is None:
            return b""
        return self._core.verified(block, what=f"block {index} of volume {volume_id}")

    def corrupt_volume_block(self, volume_id: str, *, index: int) -> None:
        """Test hook: change a stored block's bytes but not its recorded sha256."""
        self._core.corrupt(KIND_VOLUME_BLOCK, _block_key(volume_id, index), "volume block")

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

    def _delete_blocks(self, transaction: state.StateTransaction, kind: str, owner_id: str) -> None:
        for block in transaction.list(self.name, kind, key_prefix=f"{owner_id}/"):
            transaction.delete(self.name, kind, _block_key(owner_id, block["index"]))

    # --- documents ---------------------------------------------------------------------

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


def _block_key(owner_id: str, index: int) -> str:
    # Zero-padded so that key order is block order.
    return f"{owner_id}/{index:010d}"
