"""``S3ObjectStorage``: the ``base.ObjectStorage`` Protocol over an S3-compatible API (boto3).

One instance talks to the S3 endpoint of one center (Ceph RGW, MinIO, AWS; moto in tests),
with path-style addressing so that any endpoint URL works.

Invariants:

- ``put_object`` stores the hex sha256 of the bytes as user metadata (``x-amz-meta-sha256``)
  and checks that the ETag the server reports is the MD5 of what was sent, so the stored
  bytes are the bytes given. ``get_object`` recomputes both and raises
  ``base.ChecksumMismatchError`` when the bytes do not match the recorded sha256 (an
  object someone replaced behind cloudctl's back, or damaged at rest).
- ``ObjectInfo.etag`` is the server's ETag without quotes (the MD5 hex of single-part
  uploads, which is all this driver makes); ``version_id`` is the server's (``"null"``
  in an unversioned bucket); times are whole epoch seconds, as S3 headers carry them.
- S3 listings do not carry user metadata, so ``list_objects`` learns each object's
  sha256 from a HEAD request, made in parallel and remembered per
  (bucket, key, ETag, size, last-modified second): listing a bucket again costs one
  listing and no HEADs for objects that did not change. An object written by another
  tool (no sha256 metadata) is read once to compute it.
- "Holds objects" means current objects: ``delete_bucket`` of a versioned bucket whose
  objects are all deleted removes the old versions and delete markers, then the bucket.
  ``delete_object`` leaves the object's history (a delete marker) in a versioned bucket.
- ``create_bucket`` of an existing bucket raises ``errors.Conflict`` even on S3 servers
  that answer 200 to re-creating one's own bucket (us-east-1 semantics): it asks first.
- The data path (``get_object``, the PUTs of ``put_object`` and ``put_replica``, and the pages
  of ``list_object_entries``) goes through ``wire.ObjectWire``: the same requests, signed by
  botocore's signer and sent on a pooled connection without the client's per-request cost;
  everything else goes through the botocore client.
- Every call is retried and mapped by the shared ``drivers.calls.Caller`` with the rules of ``calls``;
  nothing from botocore escapes.
"""

from __future__ import annotations

import base64
import concurrent.futures
import email.utils
import functools
import hashlib
import json
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base
from cloudctl.drivers.s3 import calls, wire

SHA256_METADATA_KEY = "sha256"
"""User metadata key of the sha256; on the wire the header ``x-amz-meta-sha256``."""
UNVERSIONED = base.UNVERSIONED
MAX_OBJECT_KEY_BYTES = 1024
HEAD_PARALLELISM = 16
DELETE_BATCH_SIZE = 1000
CHECKSUM_CACHE_MAX_ENTRIES = 200_000
DEFAULT_REGION = "us-east-1"
RETENTION_RULE_ID = "cloudctl-retention"
RETENTION_SID = "KeepHistoryForRetention"
GRANT_SID_PREFIX = "CloudctlGrant"
"""Sid of a grant's statements: this, ``List`` or ``Read``, then the grant id in hexadecimal (a Sid
holds letters and digits only; hex gives the id back exactly)."""
DEFAULT_ACCOUNT_ID = "123456789012"
"""The account whose IAM users stand for departments when none is configured."""
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")

_CacheKey = tuple[str, str, str, int, float]


def department_bucket_name(department: str, *, prefix: str = "dept-") -> str:
    """The bucket name of a department in every center: ``dept-<department>``, lower case."""
    name = f"{prefix}{department}".lower().replace("_", "-")
    _check_bucket_name(name)
    return name


class S3ObjectStorage:
    """Buckets and objects of one center on an S3-compatible endpoint."""

    def __init__(
        self,
        *,
        center: str,
        endpoint_url: str,
        access_key: str,
        secret_key: str,
        region: str = DEFAULT_REGION,
        clock: clocks.Clock | None = None,
        retry: calls.RetryPolicy | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
    ) -> None:
        self.center = center
        self.account_id = account_id
        self.endpoint_url = endpoint_url
        self._region = region
        retry = retry if retry is not None else calls.RetryPolicy()
        self._retry = retry
        self._client: Any = calls.make_client(
            "s3",
            endpoint_url=endpoint_url,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            retry=retry,
            max_pool_connections=2 * HEAD_PARALLELISM,
            s3_path_style=True,
        )
        self._wire = wire.ObjectWire(
            endpoint_url=endpoint_url,
            access_key=access_key,
            secret_key=secret_key,
            region=region,
            client_config=self._client.meta.config,
            verify=calls.certificate_verification(),
            max_pool_connections=2 * HEAD_PARALLELISM,
        )
        self._caller = calls.caller(
            center=center,
            service="object storage",
            endpoint_url=endpoint_url,
            clock=clock if clock is not None else clocks.SystemClock(),
            retry=retry,
        )
        self._checksums: dict[_CacheKey, tuple[str, str]] = {}
        self._checksums_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"S3ObjectStorage(center={self.center!r}, endpoint_url={self.endpoint_url!r})"

    @property
    def retry(self) -> calls.RetryPolicy:
        """How this driver's calls are retried and timed out."""
        return self._retry

    # --- buckets -----------------------------------------------------------------------

    def create_bucket(self, name: str, *, versioning: bool = True) -> base.Bucket:
        _check_bucket_name(name)
        if self._find_bucket_created_at(name) is not None:
            raise errors.Conflict(f"bucket {name!r} exists in center {self.center}", field="bucket")
        arguments: dict[str, Any] = {"Bucket": name}
        if self._region != DEFAULT_REGION:
            arguments["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
        self._caller.call(lambda: self._client.create_bucket(**arguments), what=f"bucket {name}")
        if versioning:
            self._caller.call(
                lambda: self._client.put_bucket_versioning(
                    Bucket=name, VersioningConfiguration={"Status": "Enabled"}
                ),
                what=f"bucket {name}",
            )
        return self.get_bucket(name)

    def ensure_bucket(self, name: str, *, versioning: bool = True) -> base.Bucket:
        """The bucket, created if missing; versioning is switched on if asked and off."""
        try:
            bucket = self.get_bucket(name)
        except errors.NotFound:
            try:
                return self.create_bucket(name, versioning=versioning)
            except errors.Conflict:
                bucket = self.get_bucket(name)  # another process created it meanwhile
        if versioning and not bucket.versioning:
            self._caller.call(
                lambda: self._client.put_bucket_versioning(
                    Bucket=name, VersioningConfiguration={"Status": "Enabled"}
                ),
                what=f"bucket {name}",
            )
            bucket = self.get_bucket(name)
        return bucket

    def get_bucket(self, name: str) -> base.Bucket:
        created_at = self._find_bucket_created_at(name)
        if created_at is None:
            raise errors.NotFound(f"no bucket {name!r} in center {self.center}", field="bucket")
        return self._bucket(name, created_at=created_at)

    def list_buckets(self) -> list[base.Bucket]:
        listing = self._caller.call(self._client.list_buckets, what="buckets")
        return [
            self._bucket(entry["Name"], created_at=_epoch_s(entry["CreationDate"]))
            for entry in sorted(listing.get("Buckets", []), key=lambda entry: str(entry["Name"]))
        ]

    def delete_bucket(self, name: str, *, ignore_missing: bool = True) -> None:
        try:
            listing = self._caller.call(
                lambda: self._client.list_objects_v2(Bucket=name, MaxKeys=1), what=f"bucket {name}"
            )
        except errors.NotFound:
            if ignore_missing:
                return
            raise
        if listing.get("KeyCount", 0):
            raise errors.Conflict(f"bucket {name!r} in center {self.center} is not empty", field="bucket")
        # The retention policy guards the history against the data path; the owner lifts it
        # when the bucket goes.
        self._caller.call(lambda: self._client.delete_bucket_policy(Bucket=name), what=f"bucket {name}")
        self._purge_history(name)
        self._caller.call(lambda: self._client.delete_bucket(Bucket=name), what=f"bucket {name}")
        self._forget_bucket(name)

    def _find_bucket_created_at(self, name: str) -> float | None:
        listing = self._caller.call(self._client.list_buckets, what="buckets")
        for entry in listing.get("Buckets", []):
            if entry["Name"] == name:
                return _epoch_s(entry["CreationDate"])
        return None

    def _bucket(self, name: str, *, created_at: float) -> base.Bucket:
        answer = self._caller.call(
            lambda: self._client.get_bucket_versioning(Bucket=name), what=f"bucket {name}"
        )
        return base.Bucket(
            name=name,
            center=self.center,
            versioning=answer.get("Status") == "Enabled",
            created_at=created_at,
        )

    def _purge_history(self, bucket: str) -> None:
        """Remove the old versions and delete markers a versioned bucket keeps."""
        doomed: list[dict[str, str]] = []
        for page in self._pages("list_object_versions", Bucket=bucket):
            for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
                doomed.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
        for start in range(0, len(doomed), DELETE_BATCH_SIZE):
            batch = doomed[start : start + DELETE_BATCH_SIZE]
            self._caller.call(
                functools.partial(
                    self._client.delete_objects, Bucket=bucket, Delete={"Objects": batch, "Quiet": True}
                ),
                what=f"bucket {bucket}",
            )

    # --- objects -----------------------------------------------------------------------

    def put_object(self, bucket: str, *, key: str, data: bytes) -> base.ObjectInfo:
        _check_object_key(key)
        sha256 = hashlib.sha256(data).hexdigest()
        md5_hex = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return self._put(bucket, key=key, data=data, sha256=sha256, md5_hex=md5_hex)

    def put_replica(self, bucket: str, *, data: bytes, source: base.ObjectInfo) -> base.ObjectInfo:
        _check_object_key(source.key)
        if len(data) != source.size_bytes:
            raise base.ChecksumMismatchError(
                center=self.center,
                what=f"replica of {source.bucket}/{source.key} from {source.center} ({len(data)} bytes, "
                f"expected {source.size_bytes})",
                expected_sha256=source.sha256,
                actual_sha256=hashlib.sha256(data).hexdigest(),
            )
        # A single-part upload's ETag is its MD5: the server checks the bytes against it.
        md5_hex = (
            source.etag
            if _is_plain_md5(source.etag)
            else hashlib.md5(data, usedforsecurity=False).hexdigest()
        )
        return self._put(bucket, key=source.key, data=data, sha256=source.sha256, md5_hex=md5_hex)

    def _put(self, bucket: str, *, key: str, data: bytes, sha256: str, md5_hex: str) -> base.ObjectInfo:
        """One PUT guarded by Content-MD5; no HEAD after it when the answer dates the write."""
        what = f"object {bucket}/{key}"
        try:
            headers = {
                "Content-MD5": base64.b64encode(bytes.fromhex(md5_hex)).decode("ascii"),
                f"x-amz-meta-{SHA256_METADATA_KEY}": sha256,
            }
            answer = self._caller.call(
                lambda: self._wire.put_object(bucket, key, body=data, headers=headers),
                what=f"bucket {bucket}",
            ).headers
        except errors.InvalidInput as refused:
            if "BadDigest" not in str(refused) and "InvalidDigest" not in str(refused):
                raise
            raise base.ChecksumMismatchError(
                center=self.center,
                what=f"{what} (the server refused the bytes: they are not the MD5 {md5_hex})",
                expected_sha256=sha256,
                actual_sha256=hashlib.sha256(data).hexdigest(),
            ) from refused
        stored_etag = _etag(answer)
        if stored_etag != md5_hex:
            raise errors.OperationFailed(
                f"center {self.center} stored other bytes than sent for {bucket}/{key}: "
                f"ETag {stored_etag}, MD5 sent {md5_hex}",
                field="checksum",
            )
        if "last-modified" not in answer:
            return self._head(bucket, key=key, version_id=answer.get("x-amz-version-id"))
        return self._answered(bucket, key, answer, size_bytes=len(data), sha256=sha256, etag=stored_etag)

    def get_object(self, bucket: str, *, key: str) -> tuple[bytes, base.ObjectInfo]:
        what = f"object {bucket}/{key}"

        answer = self._caller.call(lambda: self._wire.get_object(bucket, key), what=what)
        data, headers = answer.body, answer.headers
        actual_sha256 = hashlib.sha256(data).hexdigest()
        recorded_sha256 = headers.get(f"x-amz-meta-{SHA256_METADATA_KEY}")
        etag = _etag(headers)
        if recorded_sha256 is not None and recorded_sha256 != actual_sha256:
            raise base.ChecksumMismatchError(
                center=self.center, what=what, expected_sha256=recorded_sha256, actual_sha256=actual_sha256
            )
        # The sha256 written with the object vouches for the bytes; only an object another
        # tool wrote (no sha256) is checked against its ETag, at the cost of a second hash.
        if (
            recorded_sha256 is None
            and _is_plain_md5(etag)
            and hashlib.md5(data, usedforsecurity=False).hexdigest() != etag
        ):
            raise base.ChecksumMismatchError(
                center=self.center,
                what=f"{what} (bytes differ from the ETag {etag})",
                expected_sha256=recorded_sha256 or actual_sha256,
                actual_sha256=actual_sha256,
            )
        if "last-modified" not in headers:
            raise errors.OperationFailed(
                f"center {self.center} answered a GET of {bucket}/{key} without Last-Modified",
                field="endpoint_url",
            )
        info = self._answered(bucket, key, headers, size_bytes=len(data), sha256=actual_sha256, etag=etag)
        return data, info

    def _answered(
        self, bucket: str, key: str, headers: Mapping[str, str], *, size_bytes: int, sha256: str, etag: str
    ) -> base.ObjectInfo:
        """The object a GET, PUT or HEAD answered with ``headers`` (the HTTP headers: its version
        and time), remembered."""
        info = base.ObjectInfo(
            bucket=bucket,
            key=key,
            center=self.center,
            size_bytes=size_bytes,
            sha256=sha256,
            etag=etag,
            version_id=headers.get("x-amz-version-id") or UNVERSIONED,
            modified_at=_epoch_s(email.utils.parsedate_to_datetime(headers["last-modified"])),
        )
        self._remember(info)
        return info

    def head_object(self, bucket: str, *, key: str) -> base.ObjectInfo:
        return self._head(bucket, key=key, version_id=None)

    def list_objects(self, bucket: str, *, prefix: str = "") -> list[base.ObjectInfo]:
        entries = [
            entry
            for page in self._pages("list_objects_v2", Bucket=bucket, Prefix=prefix)
            for entry in page.get("Contents", [])
        ]
        known: dict[str, base.ObjectInfo] = {}
        unknown: list[str] = []
        for entry in entries:
            cached = self._recall(bucket, entry)
            if cached is None:
                unknown.append(entry["Key"])
            else:
                known[entry["Key"]] = cached
        if unknown:
            with concurrent.futures.ThreadPoolExecutor(
                max_workers=min(HEAD_PARALLELISM, len(unknown)), thread_name_prefix=f"s3-head-{self.center}"
            ) as pool:
                heads = pool.map(lambda key: self._head_if_present(bucket, key=key), unknown)
                known.update((info.key, info) for info in heads if info is not None)
        return sorted(known.values(), key=lambda info: info.key)

    def delete_object(self, bucket: str, *, key: str, ignore_missing: bool = True) -> None:
        try:
            self._caller.call(
                lambda: self._client.head_object(Bucket=bucket, Key=key), what=f"object {bucket}/{key}"
            )
        except errors.NotFound:
            # HEAD's 404 does not say whether the key or the bucket is missing: a missing
            # bucket is an error either way, as everywhere else.
            self.get_bucket(bucket)
            if ignore_missing:
                return
            raise
        self._caller.call(
            lambda: self._client.delete_object(Bucket=bucket, Key=key), what=f"object {bucket}/{key}"
        )

    def list_object_entries(self, bucket: str, *, prefix: str = "") -> list[base.ObjectEntry]:
        entries: list[base.ObjectEntry] = []
        token: str | None = None
        while True:
            page = self._caller.call(
                functools.partial(
                    self._wire.list_objects_page, bucket, prefix=prefix, continuation_token=token
                ),
                what=f"bucket {bucket}",
            )
            entries.extend(
                base.ObjectEntry(
                    key=listed.key,
                    size_bytes=listed.size_bytes,
                    etag=listed.etag,
                    modified_at=_epoch_s(listed.last_modified),
                )
                for listed in page.objects
            )
            if page.next_token is None:
                return entries
            token = page.next_token

    def set_retention(self, bucket: str, *, days: int) -> None:
        if days < 1:
            raise errors.InvalidInput(f"must be at least 1, not {days}", field="days")
        self.ensure_bucket(bucket, versioning=True)
        rules = [
            {
                "ID": RETENTION_RULE_ID,
                "Status": "Enabled",
                "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": days},
                "Expiration": {"ExpiredObjectDeleteMarker": True},
            }
        ]
        self._caller.call(
            lambda: self._client.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": rules}
            ),
            what=f"bucket {bucket}",
        )
        self._update_policy(
            bucket,
            lambda statements: [
                *(statement for statement in statements if statement.get("Sid") != RETENTION_SID),
                _retention_statement(bucket),
            ],
        )

    def list_object_versions(self, bucket: str, *, prefix: str = "") -> list[base.ObjectVersion]:
        found: list[base.ObjectVersion] = []
        for page in self._pages("list_object_versions", Bucket=bucket, Prefix=prefix):
            for entry in page.get("Versions", []):
                found.append(_version(entry, deleted=False))
            for entry in page.get("DeleteMarkers", []):
                found.append(_version(entry, deleted=True))
        return sorted(found, key=lambda version: (version.key, -version.modified_at, not version.is_latest))

    def restore_object_version(self, bucket: str, *, key: str, version_id: str) -> base.ObjectInfo:
        source = {"Bucket": bucket, "Key": key, "VersionId": version_id}
        answer = self._caller.call(
            lambda: self._client.copy_object(Bucket=bucket, Key=key, CopySource=source),
            what=f"object {bucket}/{key}",
        )
        return self._head(bucket, key=key, version_id=answer.get("VersionId"))

    # --- grants on prefixes ---------------------------------------------------------------

    def consumer_arn(self, consumer: str) -> str:
        """The IAM user that stands for a consumer department at this endpoint."""
        return f"arn:aws:iam::{self.account_id}:user/{consumer}"

    def grant_prefix_access(
        self, bucket: str, *, grant_id: str, prefix: str, consumer: str
    ) -> base.PrefixGrant:
        sid = _grant_sid(grant_id)
        self._update_policy(
            bucket,
            lambda statements: [
                *(s for s in statements if not str(s.get("Sid", "")).endswith(sid)),
                *_grant_statements(bucket, sid=sid, prefix=prefix, principal=self.consumer_arn(consumer)),
            ],
        )
        return base.PrefixGrant(grant_id=grant_id, bucket=bucket, prefix=prefix, consumer=consumer)

    def revoke_prefix_access(self, bucket: str, *, grant_id: str) -> None:
        sid = _grant_sid(grant_id)
        try:
            self._update_policy(
                bucket, lambda statements: [s for s in statements if not str(s.get("Sid", "")).endswith(sid)]
            )
        except errors.NotFound:
            return

    def list_prefix_grants(self, bucket: str) -> list[base.PrefixGrant]:
        found: dict[str, base.PrefixGrant] = {}
        for statement in self._policy_statements(bucket):
            sid = str(statement.get("Sid", ""))
            if not sid.startswith(f"{GRANT_SID_PREFIX}Read"):
                continue
            resource = str(statement["Resource"])
            principal = str(statement["Principal"]["AWS"])
            grant_id = _grant_id_of(sid.removeprefix(f"{GRANT_SID_PREFIX}Read"))
            found[grant_id] = base.PrefixGrant(
                grant_id=grant_id,
                bucket=bucket,
                prefix=resource.removeprefix(f"arn:aws:s3:::{bucket}/").removesuffix("*"),
                consumer=principal.rsplit("/", 1)[-1],
            )
        return [found[grant_id] for grant_id in sorted(found)]

    def _policy_statements(self, bucket: str) -> list[dict[str, Any]]:
        try:
            answer = self._caller.call(
                lambda: self._client.get_bucket_policy(Bucket=bucket), what=f"bucket {bucket}"
            )
        except errors.NotFound:
            self.get_bucket(bucket)  # a missing bucket raises; else NoSuchBucketPolicy: none yet
            return []
        statements = json.loads(answer["Policy"]).get("Statement", [])
        return [statements] if isinstance(statements, dict) else list(statements)

    def _update_policy(
        self, bucket: str, change: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]
    ) -> None:
        """Read the bucket policy, change its statements, write it back (or delete it when empty)."""
        statements = change(self._policy_statements(bucket))
        if statements:
            document = json.dumps({"Version": "2012-10-17", "Statement": statements})
            self._caller.call(
                lambda: self._client.put_bucket_policy(Bucket=bucket, Policy=document),
                what=f"bucket {bucket}",
            )
        else:
            self._caller.call(
                lambda: self._client.delete_bucket_policy(Bucket=bucket), what=f"bucket {bucket}"
            )

    def _head(self, bucket: str, *, key: str, version_id: str | None) -> base.ObjectInfo:
        arguments: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if version_id:
            arguments["VersionId"] = version_id
        headers = self._caller.call(
            lambda: self._client.head_object(**arguments), what=f"object {bucket}/{key}"
        )
        sha256 = headers.get("Metadata", {}).get(SHA256_METADATA_KEY)
        if sha256 is None:
            return self.get_object(bucket, key=key)[1]  # written by another tool: compute it
        return self._answered(
            bucket,
            key,
            headers["ResponseMetadata"]["HTTPHeaders"],
            size_bytes=headers["ContentLength"],
            sha256=sha256,
            etag=_etag(headers),
        )

    def _head_if_present(self, bucket: str, *, key: str) -> base.ObjectInfo | None:
        try:
            return self._head(bucket, key=key, version_id=None)
        except errors.NotFound:
            return None  # deleted since the listing

    # --- plumbing ----------------------------------------------------------------------

    def _pages(self, operation: str, **arguments: Any) -> Iterator[dict[str, Any]]:
        """The pages of ``list_objects_v2`` or ``list_object_versions``, each request retried alone."""
        what = f"bucket {arguments['Bucket']}"
        method = getattr(self._client, operation)
        markers: dict[str, str] = {}
        while True:
            page: dict[str, Any] = self._caller.call(
                functools.partial(method, **arguments, **markers), what=what
            )
            yield page
            if not page.get("IsTruncated"):
                return
            if operation == "list_objects_v2":
                markers = {"ContinuationToken": page["NextContinuationToken"]}
            else:
                markers = {"KeyMarker": page["NextKeyMarker"]}
                if page.get("NextVersionIdMarker"):
                    markers["VersionIdMarker"] = page["NextVersionIdMarker"]

    def _remember(self, info: base.ObjectInfo) -> None:
        key = (info.bucket, info.key, info.etag, info.size_bytes, info.modified_at)
        with self._checksums_lock:
            if len(self._checksums) >= CHECKSUM_CACHE_MAX_ENTRIES:
                self._checksums.clear()
            self._checksums[key] = (info.sha256, info.version_id)

    def _recall(self, bucket: str, entry: dict[str, Any]) -> base.ObjectInfo | None:
        etag = _etag(entry)
        modified_at = _epoch_s(entry["LastModified"])
        with self._checksums_lock:
            found = self._checksums.get((bucket, entry["Key"], etag, entry["Size"], modified_at))
        if found is None:
            return None
        sha256, version_id = found
        return base.ObjectInfo(
            bucket=bucket,
            key=entry["Key"],
            center=self.center,
            size_bytes=entry["Size"],
            sha256=sha256,
            etag=etag,
            version_id=version_id,
            modified_at=modified_at,
        )

    def _forget_bucket(self, bucket: str) -> None:
        with self._checksums_lock:
            for key in [key for key in self._checksums if key[0] == bucket]:
                del self._checksums[key]


def _retention_statement(bucket: str) -> dict[str, Any]:
    """A bucket policy statement that refuses, to every principal, what would erase the kept history."""
    return {
        "Sid": RETENTION_SID,
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:DeleteObjectVersion", "s3:PutLifecycleConfiguration", "s3:PutBucketVersioning"],
        "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
    }


def _grant_sid(grant_id: str) -> str:
    return grant_id.encode("utf-8").hex()


def _grant_id_of(sid: str) -> str:
    try:
        return bytes.fromhex(sid).decode("utf-8")
    except ValueError:  # a statement written by hand, not by cloudctl: shown as it is
        return sid


def _grant_statements(bucket: str, *, sid: str, prefix: str, principal: str) -> list[dict[str, Any]]:
    """Read the objects under ``prefix``, and list the bucket only where the listing's prefix is
    under it: exactly the granted keys, nothing beside them."""
    return [
        {
            "Sid": f"{GRANT_SID_PREFIX}Read{sid}",
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
        },
        {
            "Sid": f"{GRANT_SID_PREFIX}List{sid}",
            "Effect": "Allow",
            "Principal": {"AWS": principal},
            "Action": "s3:ListBucket",
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
        },
    ]


def _version(entry: dict[str, Any], *, deleted: bool) -> base.ObjectVersion:
    return base.ObjectVersion(
        key=entry["Key"],
        version_id=entry.get("VersionId") or UNVERSIONED,
        is_latest=bool(entry.get("IsLatest")),
        deleted=deleted,
        size_bytes=0 if deleted else int(entry.get("Size", 0)),
        etag="" if deleted else _etag(entry),
        modified_at=_epoch_s(entry["LastModified"]),
    )


def _etag(headers: Mapping[str, Any]) -> str:
    return str(headers.get("ETag", "")).strip('"')


def _is_plain_md5(etag: str) -> bool:
    return len(etag) == 32 and all(character in "0123456789abcdef" for character in etag)


def _epoch_s(moment: Any) -> float:
    """A botocore datetime as whole epoch seconds (HTTP headers carry no fractions)."""
    return float(int(moment.timestamp()))


def _check_bucket_name(name: str) -> None:
    if not _BUCKET_NAME.fullmatch(name) or ".." in name:
        raise errors.InvalidInput(
            f"{name!r} is not a bucket name (3-63 of a-z, 0-9, '.', '-')", field="bucket"
        )


def _check_object_key(key: str) -> None:
    size = len(key.encode("utf-8"))
    if not key or size > MAX_OBJECT_KEY_BYTES:
        raise errors.InvalidInput(
            f"an object key has 1..{MAX_OBJECT_KEY_BYTES} bytes of UTF-8, not {size}", field="key"
        )
