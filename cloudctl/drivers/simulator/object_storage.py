"""Simulated object storage of one center: ``base.ObjectStorage`` over the center's ``CenterCore``.

Buckets, checksummed objects and their versions, retention, and prefix grants.

Invariants:

- Objects consume ``object_gb`` of the center's capacity: the stored bytes (kept
  versions included) rounded up to whole GiB. Buckets and grants consume nothing.
- Bucket names are unique per center (3-63 of a-z, 0-9, '.', '-'); an object key has
  1..``MAX_OBJECT_KEY_CHARS`` characters.
- An object keeps its sha256 next to its bytes; every read verifies it and raises
  ``base.ChecksumMismatchError`` on a mismatch, and ``put_replica`` refuses bytes that
  do not match the source's. ``corrupt_object`` is a test hook that breaks the bytes
  behind the checksum's back.
- An object's ``version_id`` is ``uuid4`` hex (``"null"`` when the bucket is
  unversioned). Only the newest version of an object keeps its bytes, except in a
  bucket with a retention (``set_retention``): there an overwritten or deleted object's
  version is kept (a delete leaves a marker) and counts as stored bytes until it has
  been noncurrent for the retention's days; expired versions of a key go when that key
  is next written or deleted, all of them with the bucket. A bucket with objects is not
  deleted.
"""

from __future__ import annotations

import hashlib
import re
import uuid

from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.simulator import core as sim_core
from cloudctl.drivers.simulator import state
from cloudctl.drivers.simulator.core import KIND_BUCKET, KIND_OBJECT, KIND_OBJECT_VERSION

MAX_OBJECT_KEY_CHARS = 300
"""Longest object key the simulator stores (its state keys hold ``bucket/key``)."""
UNVERSIONED = base.UNVERSIONED
SECONDS_PER_DAY = 86400

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class SimulatedObjectStorage:
    """The simulator's ``base.ObjectStorage`` for one center."""

    def __init__(self, core: sim_core.CenterCore) -> None:
        self._core = core
        self.name = core.name
        self.center = core.name

    # --- buckets -----------------------------------------------------------------------

    def create_bucket(self, name: str, *, versioning: bool = True) -> base.Bucket:
        if not _BUCKET_NAME.fullmatch(name) or ".." in name:
            raise errors.InvalidInput(
                f"{name!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')", field="bucket"
            )
        self._core.operate("create_bucket")
        doc = {"name": name, "versioning": versioning, "created_at": self._core.clock.now()}
        with self._core.writing() as transaction:
            if transaction.get(self.name, KIND_BUCKET, name) is not None:
                raise errors.Conflict(f"bucket {name!r} exists in center {self.name}", field="bucket")
            transaction.put(self.name, KIND_BUCKET, name, doc)
        return self._bucket(doc)

    def get_bucket(self, name: str) -> base.Bucket:
        return self._bucket(self._core.fetch("get_bucket", KIND_BUCKET, name, what="bucket"))

    def list_buckets(self) -> list[base.Bucket]:
        return [self._bucket(doc) for doc in self._core.listed("list_buckets", KIND_BUCKET)]

    def delete_bucket(self, name: str, *, ignore_missing: bool = True) -> None:
        self._core.delete(
            "delete_bucket",
            KIND_BUCKET,
            name,
            what="bucket",
            ignore_missing=ignore_missing,
            release=self._release_bucket,
        )

    def _release_bucket(self, transaction: state.StateTransaction, doc: state.Doc) -> None:
        """Refuse to delete a bucket with objects; else drop its kept versions."""
        name = doc["name"]
        if transaction.list(self.name, KIND_OBJECT, key_prefix=f"{name}/"):
            raise errors.Conflict(f"bucket {name!r} in center {self.name} is not empty", field="bucket")
        for version in transaction.list(self.name, KIND_OBJECT_VERSION, key_prefix=f"{name}/"):
            self._drop_version(transaction, version)

    def set_retention(self, bucket: str, *, days: int) -> None:
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise errors.InvalidInput(f"must be a whole number of days >= 1, not {days!r}", field="days")
        self._core.operate("set_retention")
        with self._core.writing() as transaction:
            doc = self._core.required(transaction, KIND_BUCKET, bucket, what="bucket")
            doc.update(versioning=True, retention_days=days)
            transaction.put(self.name, KIND_BUCKET, bucket, doc)

    # --- objects -----------------------------------------------------------------------

    def put_object(self, bucket: str, *, key: str, data: bytes) -> base.ObjectInfo:
        if not key or len(key) > MAX_OBJECT_KEY_CHARS:
            raise errors.InvalidInput(
                f"an object key has 1..{MAX_OBJECT_KEY_CHARS} characters, not {len(key)}", field="key"
            )
        self._core.operate("put_object")
        return self._store_object(bucket, key=key, data=data, version_id=None, modified_at=None)

    def put_replica(self, bucket: str, *, data: bytes, source: base.ObjectInfo) -> base.ObjectInfo:
        """Store a copy of ``source`` keeping its version id and time (simulator only).

        ``data`` must match the source's sha256, so bytes damaged on the way are refused.
        """
        actual = sim_core.sha256_hex(data)
        if actual != source.sha256:
            raise base.ChecksumMismatchError(
                center=self.name,
                what=f"replica of {source.bucket}/{source.key} from {source.center}",
                expected_sha256=source.sha256,
                actual_sha256=actual,
            )
        self._core.operate("put_object")
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
        with self._core.writing() as transaction:
            bucket_doc = self._core.required(transaction, KIND_BUCKET, bucket, what="bucket")
            if version_id is None:
                version_id = uuid.uuid4().hex if bucket_doc["versioning"] else UNVERSIONED
            doc: state.Doc = {
                "bucket": bucket,
                "key": key,
                "size_bytes": len(data),
                "sha256": sim_core.sha256_hex(data),
                "etag": hashlib.md5(data, usedforsecurity=False).hexdigest(),
                "version_id": version_id,
                "modified_at": self._core.clock.now() if modified_at is None else modified_at,
                "data_b64": sim_core.encode(data),
            }
            previous = transaction.get(self.name, KIND_OBJECT, _object_key(bucket, key))
            previous_bytes = previous["size_bytes"] if previous else 0
            if previous is not None and self._keep_history(transaction, bucket_doc, key):
                self._keep_version(transaction, previous)
                previous_bytes = 0
            self._core.consume(transaction, object_bytes=len(data) - previous_bytes)
            transaction.put(self.name, KIND_OBJECT, _object_key(bucket, key), doc)
        return self._object_info(doc)

    def get_object(self, bucket: str, *, key: str) -> tuple[bytes, base.ObjectInfo]:
        self._core.operate("get_object")
        doc = self._object_doc(bucket, key)
        data = self._core.verified(doc, what=f"object {bucket}/{key}")
        return data, self._object_info(doc)

    def head_object(self, bucket: str, *, key: str) -> base.ObjectInfo:
        self._core.operate("head_object")
        return self._object_info(self._object_doc(bucket, key))

    def list_objects(self, bucket: str, *, prefix: str = "") -> list[base.ObjectInfo]:
        self._core.operate("list_objects")
        with self._core.backend.transaction() as transaction:
            self._core.required(transaction, KIND_BUCKET, bucket, what="bucket")
            docs = transaction.list(self.name, KIND_OBJECT, key_prefix=_object_key(bucket, prefix))
        return [self._object_info(doc) for doc in docs]

    def list_object_entries(self, bucket: str, *, prefix: str = "") -> list[base.ObjectEntry]:
        return [
            base.ObjectEntry(
                key=info.key, size_bytes=info.size_bytes, etag=info.etag, modified_at=info.modified_at
            )
            for info in self.list_objects(bucket, prefix=prefix)
        ]

    def delete_object(self, bucket: str, *, key: str, ignore_missing: bool = True) -> None:
        self._core.operate("delete_object")
        with self._core.writing() as transaction:
            bucket_doc = self._core.required(transaction, KIND_BUCKET, bucket, what="bucket")
            doc = self._core.to_delete(
                transaction,
                KIND_OBJECT,
                _object_key(bucket, key),
                what="object",
                ignore_missing=ignore_missing,
            )
            if doc is None:
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
                    "modified_at": self._core.clock.now(),
                    "noncurrent_at": self._core.clock.now(),
                }
                transaction.put(self.name, KIND_OBJECT_VERSION, _version_key(marker), marker)
            else:
                self._core.consume(transaction, object_bytes=-doc["size_bytes"])
            transaction.delete(self.name, KIND_OBJECT, _object_key(bucket, key))

    def corrupt_object(self, bucket: str, *, key: str) -> None:
        """Test hook: change a stored object's bytes but not its recorded sha256."""
        self._core.corrupt(KIND_OBJECT, _object_key(bucket, key), "object")

    def _object_doc(self, bucket: str, key: str) -> state.Doc:
        with self._core.backend.transaction() as transaction:
            self._core.required(transaction, KIND_BUCKET, bucket, what="bucket")
            doc = transaction.get(self.name, KIND_OBJECT, _object_key(bucket, key))
        return self._core.require(doc, "object", f"{bucket}/{key}")

    # --- versions ----------------------------------------------------------------------

    def list_object_versions(self, bucket: str, *, prefix: str = "") -> list[base.ObjectVersion]:
        self._core.operate("list_object_versions")
        with self._core.backend.transaction() as transaction:
            self._core.required(transaction, KIND_BUCKET, bucket, what="bucket")
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
        self._core.operate("restore_object_version")
        what = f"version {version_id} of {bucket}/{key}"
        backend = self._core.backend
        current = backend.get(self.name, KIND_OBJECT, _object_key(bucket, key))
        if current is not None and current["version_id"] == version_id:
            return self._object_info(current)
        doc = backend.get(self.name, KIND_OBJECT_VERSION, f"{_object_key(bucket, key)}/{version_id}")
        doc = self._core.require(doc, "version", what)
        if doc.get("deleted"):
            raise errors.InvalidInput(f"{what} is a delete marker, not data", field="version_id")
        data = self._core.verified(doc, what=what)
        return self._store_object(bucket, key=key, data=data, version_id=None, modified_at=None)

    def _keep_history(self, transaction: state.StateTransaction, bucket_doc: state.Doc, key: str) -> bool:
        """Whether the bucket keeps replaced versions (it has a retention); drops expired ones of ``key``."""
        days = bucket_doc.get("retention_days")
        if not days:
            return False
        expired_before = self._core.clock.now() - days * SECONDS_PER_DAY
        for version in transaction.list(
            self.name, KIND_OBJECT_VERSION, key_prefix=f"{_object_key(bucket_doc['name'], key)}/"
        ):
            if version["key"] == key and version["noncurrent_at"] <= expired_before:
                self._drop_version(transaction, version)
        return True

    def _keep_version(self, transaction: state.StateTransaction, doc: state.Doc) -> None:
        kept = {**doc, "noncurrent_at": self._core.clock.now()}
        transaction.put(self.name, KIND_OBJECT_VERSION, _version_key(kept), kept)

    def _drop_version(self, transaction: state.StateTransaction, doc: state.Doc) -> None:
        self._core.consume(transaction, object_bytes=-doc["size_bytes"])
        transaction.delete(self.name, KIND_OBJECT_VERSION, _version_key(doc))

    # --- prefix grants -----------------------------------------------------------------

    def grant_prefix_access(
        self, bucket: str, *, grant_id: str, prefix: str, consumer: str
    ) -> base.PrefixGrant:
        self._core.operate("grant_prefix_access")
        with self._core.writing() as transaction:
            doc = self._core.required(transaction, KIND_BUCKET, bucket, what="bucket")
            granted = dict(doc.get("prefix_grants", {}))
            granted[grant_id] = {"prefix": prefix, "consumer": consumer}
            doc["prefix_grants"] = granted
            transaction.put(self.name, KIND_BUCKET, bucket, doc)
        return base.PrefixGrant(grant_id=grant_id, bucket=bucket, prefix=prefix, consumer=consumer)

    def revoke_prefix_access(self, bucket: str, *, grant_id: str) -> None:
        self._core.operate("revoke_prefix_access")
        with self._core.writing() as transaction:
            doc = transaction.get(self.name, KIND_BUCKET, bucket)
            if doc is None or grant_id not in doc.get("prefix_grants", {}):
                return
            doc["prefix_grants"] = {k: v for k, v in doc["prefix_grants"].items() if k != grant_id}
            transaction.put(self.name, KIND_BUCKET, bucket, doc)

    def list_prefix_grants(self, bucket: str) -> list[base.PrefixGrant]:
        doc = self._core.fetch("list_prefix_grants", KIND_BUCKET, bucket, what="bucket")
        return [
            base.PrefixGrant(
                grant_id=grant_id, bucket=bucket, prefix=entry["prefix"], consumer=entry["consumer"]
            )
            for grant_id, entry in sorted(doc.get("prefix_grants", {}).items())
        ]

    # --- documents ---------------------------------------------------------------------

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
