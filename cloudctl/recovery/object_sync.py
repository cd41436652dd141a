"""Object replication between centers, done by cloudctl itself: ``sync_bucket``.

S3 servers here accept a replication configuration but do not replicate, so cloudctl
copies a bucket from a source center to a target center through any two
``base.ObjectStorage`` drivers (simulator, S3, one of each). Whoever wrote the objects
(cloudctl or any other client of the source bucket), a pass finds them in the listing.

One pass:

1. List the source bucket (one request per page, no HEAD per object). What the target
   holds is taken from the ``Manifest`` of the last pass when there is one, so a pass
   lists the source only; without one (the first pass, or a lost manifest) the target is
   listed too, and created with the source's versioning if missing.
2. Decide per source key by content (ETag and size, as ``rclone --checksum`` does):
   **unchanged** when the target holds the same; **copy** otherwise.
3. Copy in parallel: one GET from the source (the driver verifies the bytes against their
   sha256), one PUT at the target (``put_replica``: the digests come from the source, the
   target server checks the bytes against Content-MD5). No HEAD before or after; each
   byte is hashed once. ``parallelism`` bounds each side: at most that many requests to
   the source and that many to the target at once (as each of rclone's ``--transfers``
   reads from one side while it writes to the other), so one object is read while
   another is written; at most ``2 * parallelism`` objects are held in memory.
4. With ``delete_extraneous`` (the default), delete target keys the source lacks (in a
   versioned target this leaves a delete marker: the history stays for its retention).
5. With ``verify_target_bytes`` (a scrub), every unchanged object is also read back from
   the target; a copy that is damaged, missing, or replaced by other bytes (its sha256
   differs from the one the manifest recorded) is re-sent and named in the report.

Invariants:

- Version ids are per center (each target write makes its own), so "unchanged" is
  decided by content, never by version id.
- A source object that fails verification is reported and not copied: the target
  keeps its last good copy. Errors of one object are collected in the report and the
  pass goes on; an unreachable source or target listing raises.
- Resumable: each verified copy is recorded in the manifest as it lands (the file
  manifest appends and fsyncs a line), so a pass killed part-way is followed by one that
  copies only what was not recorded.
  Use one manifest per (source, target, bucket); anything that changes the target
  behind cloudctl's back is found by a ``verify_target_bytes`` pass (a scrub).
- ``on_progress`` runs in the calling thread after each object is dealt with; if it
  raises, no further work starts, the copies already running finish (and are
  recorded), and the exception propagates: this is how a crash is simulated.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import functools
import json
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Generic, Protocol, TypeVar

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base

DEFAULT_PARALLELISM = 8
COMPACT_SLACK_LINES = 64

T = TypeVar("T")


# --- manifests ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Synced:
    """One object as the last pass left it at the target: the source's ETag and size, and
    its sha256 (``""`` when the pass did not read it)."""

    key: str
    etag: str
    size_bytes: int
    sha256: str = ""


class Manifest(Protocol):
    """What the target holds, as of the last pass, so that a pass needs no target listing."""

    def load(self) -> dict[str, Synced] | None:
        """Every object recorded; ``None`` when there is no manifest (nothing recorded yet)."""
        ...

    def record(self, synced: Synced) -> None:
        """Remember one object that is at the target, verified; thread-safe and durable."""
        ...

    def save(self, entries: Mapping[str, Synced]) -> None:
        """Replace everything with ``entries`` (the state at the end of a pass)."""
        ...


class InMemoryManifest:
    """A manifest that lives as long as the object (tests, one process)."""

    def __init__(self) -> None:
        self._entries: dict[str, Synced] | None = None
        self._lock = threading.Lock()

    def load(self) -> dict[str, Synced] | None:
        with self._lock:
            return None if self._entries is None else dict(self._entries)

    def record(self, synced: Synced) -> None:
        with self._lock:
            if self._entries is None:
                self._entries = {}
            self._entries[synced.key] = synced

    def save(self, entries: Mapping[str, Synced]) -> None:
        with self._lock:
            self._entries = dict(entries)


class JsonFileManifest:
    """A manifest in a JSON Lines file that survives the process.

    ``record`` appends one line and fsyncs it, so a crash loses at most the line being
    written; a torn line is ignored on load, and the last line of a key wins. ``save``
    writes a new file and renames it over the old one, so a reader sees the old manifest
    or the new, never half of one; ``load`` compacts a file that grew past twice its keys.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def load(self) -> dict[str, Synced] | None:
        with self._lock:
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                return None
        entries: dict[str, Synced] = {}
        for line in lines:
            try:
                raw = json.loads(line)
                synced = Synced(
                    key=str(raw["key"]),
                    etag=str(raw["etag"]),
                    size_bytes=int(raw["size_bytes"]),
                    sha256=str(raw.get("sha256", "")),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash
            entries[synced.key] = synced
        if len(lines) > 2 * len(entries) + COMPACT_SLACK_LINES:
            self.save(entries)  # records of changed objects piled up: keep one line per key
        return entries

    def record(self, synced: Synced) -> None:
        line = _manifest_line(synced)
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())

    def save(self, entries: Mapping[str, Synced]) -> None:
        text = "".join(_manifest_line(entries[key]) for key in sorted(entries))
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fresh = self.path.with_name(self.path.name + ".new")
            with fresh.open("w", encoding="utf-8") as file:
                file.write(text)
                file.flush()
                os.fsync(file.fileno())
            fresh.replace(self.path)


def _manifest_line(synced: Synced) -> str:
    fields = {
        "key": synced.key,
        "etag": synced.etag,
        "size_bytes": synced.size_bytes,
        "sha256": synced.sha256,
    }
    return json.dumps(fields, ensure_ascii=False) + "\n"


# --- what a pass reports ------------------------------------------------------------------


class SyncAction(enum.StrEnum):
    COPIED = "copied"
    """New or changed at the source; sent to the target."""
    RESENT = "resent"
    """The target's copy was damaged, missing or replaced; sent again."""
    UNCHANGED = "unchanged"
    VERIFIED = "verified"
    """Unchanged, and its bytes at the target were read back and verified."""
    DELETED = "deleted"
    FAILED = "failed"


@dataclasses.dataclass(frozen=True)
class SyncProgress:
    """One object dealt with; passed to ``on_progress``."""

    key: str
    action: SyncAction
    size_bytes: int
    objects_done: int
    objects_total: int


@dataclasses.dataclass(frozen=True)
class SyncError:
    key: str
    reason: str


@dataclasses.dataclass(frozen=True)
class SyncReport:
    """What one pass of ``sync_bucket`` did; ``objects_copied`` includes ``objects_resent``."""

    bucket: str
    source_center: str
    target_center: str
    objects_examined: int
    objects_unchanged: int
    objects_copied: int
    objects_resent: int
    bytes_copied: int
    objects_deleted: int
    objects_reverified: int
    errors: tuple[SyncError, ...]
    duration_s: float
    resent_keys: tuple[str, ...] = ()
    """The keys whose target copy was found wrong and re-sent (a scrub's findings)."""
    copied_keys: tuple[str, ...] = ()
    """The keys sent because the source had them new or changed."""

    @property
    def succeeded(self) -> bool:
        return not self.errors


# --- one pass -----------------------------------------------------------------------------

Copier = Callable[[str], int]
"""Copies one key from the source to the target, verified on arrival; the bytes moved."""


@dataclasses.dataclass(frozen=True)
class _Outcome:
    key: str
    action: SyncAction
    size_bytes: int
    error: str | None = None
    synced: Synced | None = None


def sync_bucket(
    *,
    source: base.ObjectStorage,
    target: base.ObjectStorage,
    bucket: str,
    parallelism: int = DEFAULT_PARALLELISM,
    manifest: Manifest | None = None,
    on_progress: Callable[[SyncProgress], None] | None = None,
    delete_extraneous: bool = True,
    verify_target_bytes: bool = False,
    copy: Copier | None = None,
    synced_since: Sequence[Synced] = (),
    clock: clocks.Clock | None = None,
) -> SyncReport:
    """Make ``bucket`` at ``target`` hold what it holds at ``source``; one incremental pass.

    ``copy`` moves one key instead of a GET here and a PUT there (the simulator's
    link-aware transport); ``synced_since`` are objects copied to the target since the last
    pass by other means (the replication engine's change log), taken as what the target
    holds; ``clock`` times the pass (default: the system clock).
    """
    if parallelism < 1:
        raise errors.InvalidInput(f"must be at least 1, not {parallelism}", field="parallelism")
    clock = clock if clock is not None else clocks.SystemClock()
    started_at = clock.now()

    # The source listing is the longest request of an incremental pass: with workers to
    # spare it runs while the target bucket is looked up and the manifest is read. The source
    # is asked nothing else meanwhile (its listing says whether the bucket is there); its
    # bucket is looked up only to make a missing target bucket like it.
    background = parallelism > 1
    listing = _Prefetch(lambda: source.list_object_entries(bucket), background=background)
    target_lookup = _Prefetch(lambda: _bucket_or_none(target, bucket), background=background)
    try:
        found = target_lookup.result()
        if found is None:
            versioning = source.get_bucket(bucket).versioning
            target.create_bucket(bucket, versioning=versioning)
        # A target bucket made now holds nothing, whatever the manifest remembers of the old one.
        recorded = manifest.load() if manifest is not None and found is not None else None
        known = recorded
        if manifest is not None and recorded is not None:
            for synced in synced_since:
                manifest.record(synced)
                recorded[synced.key] = synced
        if known is None:
            known = {
                entry.key: Synced(key=entry.key, etag=entry.etag, size_bytes=entry.size_bytes)
                for entry in target.list_object_entries(bucket)
            }
    finally:
        target_lookup.close()
        source_entries = listing.result()
    replicator = _Replicator(
        source=source,
        target=target,
        bucket=bucket,
        manifest=manifest,
        copier=copy,
        reads=threading.BoundedSemaphore(parallelism),
        writes=threading.BoundedSemaphore(parallelism),
    )

    settled: list[_Outcome] = []
    work: list[Callable[[], _Outcome]] = []
    for entry in source_entries:
        at_target = known.get(entry.key)
        if at_target is None or (at_target.etag, at_target.size_bytes) != (entry.etag, entry.size_bytes):
            work.append(functools.partial(replicator.copy, entry, action=SyncAction.COPIED))
        elif verify_target_bytes:
            work.append(functools.partial(replicator.verify_or_resend, entry, at_target))
        else:
            settled.append(_Outcome(entry.key, SyncAction.UNCHANGED, entry.size_bytes, synced=at_target))
    present = {entry.key for entry in source_entries}
    extraneous = sorted(set(known) - present)
    if delete_extraneous:
        work.extend(functools.partial(replicator.delete, key) for key in extraneous)

    outcomes = _run(
        settled=settled,
        work=work,
        parallelism=parallelism,
        on_progress=on_progress,
        objects_total=len(settled) + len(work),
    )
    report = _report(
        outcomes,
        bucket=bucket,
        source_center=source.center,
        target_center=target.center,
        objects_examined=len(source_entries),
        duration_s=clock.now() - started_at,
    )
    # Copies were recorded as they landed; the whole manifest is written again only when
    # the pass learnt something a record does not say (a rebuilt manifest, deletes, reads).
    rewrite = recorded is None or any(o.action in (SyncAction.DELETED, SyncAction.VERIFIED) for o in outcomes)
    if manifest is not None and rewrite:
        manifest.save(_manifest_after(known, outcomes, kept=[] if delete_extraneous else extraneous))
    return report


def _bucket_or_none(storage: base.ObjectStorage, bucket: str) -> base.Bucket | None:
    try:
        return storage.get_bucket(bucket)
    except errors.NotFound:
        return None


class _Prefetch(Generic[T]):
    """``work()`` started now in a thread of its own (or run at once); ``result()`` waits for it."""

    def __init__(self, work: Callable[[], T], *, background: bool) -> None:
        self._work = work
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if background:
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="object-sync"
            )
            self._future = self._pool.submit(work)

    def result(self) -> T:
        if self._pool is None:
            return self._work()
        try:
            return self._future.result()
        finally:
            self.close()

    def close(self) -> None:
        """Wait for the work to end, whatever it returns or raises (after ``result``, nothing)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)


def _manifest_after(
    known: Mapping[str, Synced], outcomes: list[_Outcome], *, kept: list[str]
) -> dict[str, Synced]:
    """What the target holds after a pass: what it reported, plus what a failure left as it was."""
    after = {key: known[key] for key in kept}
    for outcome in outcomes:
        if outcome.synced is not None:
            after[outcome.key] = outcome.synced
        elif outcome.action is SyncAction.FAILED and outcome.key in known:
            after[outcome.key] = known[outcome.key]
    return after


@dataclasses.dataclass(frozen=True)
class _Replicator:
    """The work on one object; each method returns an outcome and raises nothing cloudctl raises."""

    source: base.ObjectStorage
    target: base.ObjectStorage
    bucket: str
    manifest: Manifest | None
    copier: Copier | None
    reads: threading.BoundedSemaphore
    """Held for each request to the source, and for reads at the target (a scrub)."""
    writes: threading.BoundedSemaphore
    """Held for each write or delete at the target."""

    def copy(self, entry: base.ObjectEntry, *, action: SyncAction) -> _Outcome:
        try:
            synced, moved = self._send(entry)
        except errors.CloudctlError as error:
            return _Outcome(entry.key, SyncAction.FAILED, 0, error=str(error))
        return _Outcome(entry.key, action, moved, synced=synced)

    def verify_or_resend(self, entry: base.ObjectEntry, recorded: Synced) -> _Outcome:
        try:
            with self.reads:
                _data, info = self.target.get_object(self.bucket, key=entry.key)  # verifies the sha256
        except (base.ChecksumMismatchError, errors.NotFound):  # damaged, or deleted behind our back
            return self.copy(entry, action=SyncAction.RESENT)
        except errors.CloudctlError as error:
            return _Outcome(entry.key, SyncAction.FAILED, 0, error=f"read back at target: {error}")
        replaced = info.size_bytes != entry.size_bytes or (recorded.sha256 and info.sha256 != recorded.sha256)
        if replaced or (_is_md5(entry.etag) and info.etag != entry.etag):
            return self.copy(entry, action=SyncAction.RESENT)  # other bytes, consistent with themselves
        synced = dataclasses.replace(recorded, sha256=info.sha256)
        return _Outcome(entry.key, SyncAction.VERIFIED, entry.size_bytes, synced=synced)

    def delete(self, key: str) -> _Outcome:
        try:
            with self.writes:
                self.target.delete_object(self.bucket, key=key, ignore_missing=True)
        except errors.CloudctlError as error:
            return _Outcome(key, SyncAction.FAILED, 0, error=f"delete at target: {error}")
        return _Outcome(key, SyncAction.DELETED, 0)

    def _send(self, entry: base.ObjectEntry) -> tuple[Synced, int]:
        """Copy one object, verified on arrival; what the target now holds and the bytes sent."""
        if self.copier is not None:
            with self.writes:
                moved = self.copier(entry.key)
            synced = Synced(key=entry.key, etag=entry.etag, size_bytes=entry.size_bytes)
        else:
            with self.reads:
                data, current = self.source.get_object(self.bucket, key=entry.key)  # verified: its sha256
            with self.writes:
                self.target.put_replica(self.bucket, data=data, source=current)  # checked: Content-MD5
            synced = Synced(
                key=entry.key, etag=current.etag, size_bytes=current.size_bytes, sha256=current.sha256
            )
            moved = len(data)
        if self.manifest is not None:
            self.manifest.record(synced)
        return synced, moved


def _is_md5(etag: str) -> bool:
    return len(etag) == 32 and all(character in "0123456789abcdef" for character in etag)


def _run(
    *,
    settled: list[_Outcome],
    work: list[Callable[[], _Outcome]],
    parallelism: int,
    on_progress: Callable[[SyncProgress], None] | None,
    objects_total: int,
) -> list[_Outcome]:
    outcomes: list[_Outcome] = []

    def progressed(outcome: _Outcome) -> None:
        outcomes.append(outcome)
        if on_progress is not None:
            on_progress(
                SyncProgress(
                    key=outcome.key,
                    action=outcome.action,
                    size_bytes=outcome.size_bytes,
                    objects_done=len(outcomes),
                    objects_total=objects_total,
                )
            )

    for outcome in settled:
        progressed(outcome)
    if parallelism == 1:
        # One worker is the calling thread: a pass run inside the caller's store transaction (a
        # simulated center's state in a unit of work) must not wait on that transaction's locks.
        for job in work:
            progressed(job())
        return outcomes
    # Twice the workers: each side's semaphore lets ``parallelism`` of them at it at once.
    pool = concurrent.futures.ThreadPoolExecutor(
        max_workers=2 * parallelism, thread_name_prefix="object-sync"
    )
    try:
        futures = [pool.submit(job) for job in work]
        for future in concurrent.futures.as_completed(futures):
            progressed(future.result())
    finally:
        # On an exception (on_progress raising, a bug) start nothing new; let running copies end.
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


def _report(
    outcomes: list[_Outcome],
    *,
    bucket: str,
    source_center: str,
    target_center: str,
    objects_examined: int,
    duration_s: float,
) -> SyncReport:
    def count(*actions: SyncAction) -> int:
        return sum(1 for outcome in outcomes if outcome.action in actions)

    sent = (SyncAction.COPIED, SyncAction.RESENT)
    return SyncReport(
        bucket=bucket,
        source_center=source_center,
        target_center=target_center,
        objects_examined=objects_examined,
        objects_unchanged=count(SyncAction.UNCHANGED, SyncAction.VERIFIED),
        objects_copied=count(*sent),
        objects_resent=count(SyncAction.RESENT),
        bytes_copied=sum(outcome.size_bytes for outcome in outcomes if outcome.action in sent),
        objects_deleted=count(SyncAction.DELETED),
        objects_reverified=count(SyncAction.VERIFIED),
        errors=tuple(
            SyncError(key=outcome.key, reason=outcome.error or "failed")
            for outcome in sorted(outcomes, key=lambda outcome: outcome.key)
            if outcome.action is SyncAction.FAILED
        ),
        duration_s=duration_s,
        resent_keys=tuple(sorted(outcome.key for outcome in outcomes if outcome.action is SyncAction.RESENT)),
        copied_keys=tuple(sorted(outcome.key for outcome in outcomes if outcome.action is SyncAction.COPIED)),
    )
