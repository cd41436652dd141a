"""Object replication between centers, done by cloudctl itself: ``sync_bucket``.

S3 servers here accept a replication configuration but do not replicate, so cloudctl
copies a bucket from a source center to a target center through any two
``base.ObjectStorage`` drivers (simulator, S3, one of each).

One pass:

1. List the source bucket and the target bucket (created with the source's versioning
   if missing). Listings carry each object's sha256, ETag and size.
2. Decide per source key: **unchanged** when the target has the same sha256, ETag and
   size (no bytes move); **copy** when the target lacks the key or has other content
   (the source changed); **re-send** when the target claims the source's sha256 but its
   ETag or size disagree (the target's copy was damaged or replaced behind our back).
3. Copy in parallel (a thread pool of ``parallelism`` workers): read from the source
   (the driver verifies the bytes against their sha256), write to the target, then
   check that the target reports the source's sha256, ETag and size. With
   ``verify_target_bytes`` every copy and every unchanged object is also read back
   from the target; a damaged unchanged copy is re-sent.
4. With ``delete_extraneous`` (the default), delete target keys the source lacks.

Invariants:

- Version ids are per center (each target write makes its own), so "unchanged" is
  decided by content (sha256, ETag, size), never by version id.
- A source object that fails verification is reported and not copied: the target
  keeps its last good copy. Errors of one object are collected in the report and the
  pass goes on; an unreachable source or target listing raises.
- Resumable: after each verified copy the key and its sha256 are recorded in the
  ``Checkpoint``; a later pass with the same checkpoint skips keys recorded with the
  sha256 the source still has, without examining the target. A pass that ends
  without errors clears the checkpoint. Use one checkpoint per (source, target, bucket).
- ``on_progress`` runs in the calling thread after each object is dealt with; if it
  raises, no further work starts, the copies already running finish (and are
  checkpointed), and the exception propagates: this is how a crash is simulated.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import enum
import functools
import json
import os
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from cloudctl import clock as clocks
from cloudctl import errors
from cloudctl.drivers import base

DEFAULT_PARALLELISM = 8


# --- checkpoints --------------------------------------------------------------------------


class Checkpoint(Protocol):
    """Which keys a pass has copied and verified, so that a re-run after a crash skips them."""

    def completed(self) -> Mapping[str, str]:
        """Key → sha256 of every object recorded since the last ``clear``."""
        ...

    def record(self, *, key: str, sha256: str) -> None:
        """Remember that ``key`` with content ``sha256`` is at the target, verified; thread-safe."""
        ...

    def clear(self) -> None:
        """Forget everything (a pass finished)."""
        ...


class InMemoryCheckpoint:
    """A checkpoint that lives as long as the object (tests, one process)."""

    def __init__(self) -> None:
        self._completed: dict[str, str] = {}
        self._lock = threading.Lock()

    def completed(self) -> Mapping[str, str]:
        with self._lock:
            return dict(self._completed)

    def record(self, *, key: str, sha256: str) -> None:
        with self._lock:
            self._completed[key] = sha256

    def clear(self) -> None:
        with self._lock:
            self._completed.clear()


class JsonFileCheckpoint:
    """A checkpoint in a JSON Lines file that survives the process.

    Each ``record`` appends one line ``{"key": ..., "sha256": ...}`` and flushes it, so
    a crash loses at most the line being written; a torn last line is ignored on load.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def completed(self) -> Mapping[str, str]:
        with self._lock:
            try:
                lines = self.path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                return {}
        completed: dict[str, str] = {}
        for line in lines:
            try:
                entry = json.loads(line)
                completed[str(entry["key"])] = str(entry["sha256"])
            except (ValueError, KeyError, TypeError):
                continue  # a line torn by a crash
        return completed

    def record(self, *, key: str, sha256: str) -> None:
        line = json.dumps({"key": key, "sha256": sha256}, ensure_ascii=False) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())

    def clear(self) -> None:
        with self._lock:
            self.path.unlink(missing_ok=True)


# --- what a pass reports ------------------------------------------------------------------


class SyncAction(enum.StrEnum):
    COPIED = "copied"
    """New or changed at the source; sent to the target."""
    RESENT = "resent"
    """The target's copy was damaged or replaced; sent again."""
    UNCHANGED = "unchanged"
    VERIFIED = "verified"
    """Unchanged, and its bytes at the target were read back and verified."""
    SKIPPED = "skipped"
    """Recorded in the checkpoint by an earlier, interrupted pass."""
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
    objects_skipped: int
    errors: tuple[SyncError, ...]
    duration_s: float

    @property
    def succeeded(self) -> bool:
        return not self.errors


# --- one pass -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Outcome:
    key: str
    action: SyncAction
    size_bytes: int
    error: str | None = None


def sync_bucket(
    *,
    source: base.ObjectStorage,
    target: base.ObjectStorage,
    bucket: str,
    parallelism: int = DEFAULT_PARALLELISM,
    checkpoint: Checkpoint | None = None,
    on_progress: Callable[[SyncProgress], None] | None = None,
    delete_extraneous: bool = True,
    verify_target_bytes: bool = False,
    clock: clocks.Clock | None = None,
) -> SyncReport:
    """Make ``bucket`` at ``target`` hold what it holds at ``source``; one incremental pass.

    ``clock`` times the pass (default: the system clock).
    """
    if parallelism < 1:
        raise errors.InvalidInput(f"must be at least 1, not {parallelism}", field="parallelism")
    clock = clock if clock is not None else clocks.SystemClock()
    started_at = clock.now()

    source_bucket = source.get_bucket(bucket)
    try:
        target_bucket = target.get_bucket(bucket)
    except errors.NotFound:
        target_bucket = target.create_bucket(bucket, versioning=source_bucket.versioning)
    source_objects = source.list_objects(bucket)
    target_objects = {info.key: info for info in target.list_objects(bucket)}
    done_before = dict(checkpoint.completed()) if checkpoint is not None else {}
    replicator = _Replicator(
        source=source,
        target=target,
        bucket=bucket,
        checkpoint=checkpoint,
        verify_target_bytes=verify_target_bytes,
    )

    settled: list[_Outcome] = []
    work: list[Callable[[], _Outcome]] = []
    for info in source_objects:
        if done_before.get(info.key) == info.sha256:
            settled.append(_Outcome(info.key, SyncAction.SKIPPED, info.size_bytes))
            continue
        at_target = target_objects.get(info.key)
        if at_target is None or at_target.sha256 != info.sha256:
            work.append(functools.partial(replicator.copy, info, action=SyncAction.COPIED))
        elif (at_target.etag, at_target.size_bytes) != (info.etag, info.size_bytes):
            work.append(functools.partial(replicator.copy, info, action=SyncAction.RESENT))
        elif verify_target_bytes:
            work.append(functools.partial(replicator.verify_or_resend, info))
        else:
            settled.append(_Outcome(info.key, SyncAction.UNCHANGED, info.size_bytes))
    if delete_extraneous:
        present = {info.key for info in source_objects}
        work.extend(
            functools.partial(replicator.delete, key) for key in sorted(set(target_objects) - present)
        )

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
        source_center=source_bucket.center,
        target_center=target_bucket.center,
        objects_examined=len(source_objects),
        duration_s=clock.now() - started_at,
    )
    if checkpoint is not None and report.succeeded:
        checkpoint.clear()
    return report


@dataclasses.dataclass(frozen=True)
class _Replicator:
    """The work on one object; each method returns an outcome and raises nothing cloudctl raises."""

    source: base.ObjectStorage
    target: base.ObjectStorage
    bucket: str
    checkpoint: Checkpoint | None
    verify_target_bytes: bool

    def copy(self, info: base.ObjectInfo, *, action: SyncAction) -> _Outcome:
        try:
            return _Outcome(info.key, action, self._send(info))
        except errors.CloudctlError as error:
            return _Outcome(info.key, SyncAction.FAILED, 0, error=str(error))

    def verify_or_resend(self, info: base.ObjectInfo) -> _Outcome:
        try:
            self.target.get_object(self.bucket, key=info.key)  # verifies the bytes against their sha256
        except (base.ChecksumMismatchError, errors.NotFound):  # damaged, or deleted since the listing
            return self.copy(info, action=SyncAction.RESENT)
        except errors.CloudctlError as error:
            return _Outcome(info.key, SyncAction.FAILED, 0, error=f"read back at target: {error}")
        self._record(info.key, info.sha256)
        return _Outcome(info.key, SyncAction.VERIFIED, info.size_bytes)

    def delete(self, key: str) -> _Outcome:
        try:
            self.target.delete_object(self.bucket, key=key, ignore_missing=True)
        except errors.CloudctlError as error:
            return _Outcome(key, SyncAction.FAILED, 0, error=f"delete at target: {error}")
        return _Outcome(key, SyncAction.DELETED, 0)

    def _send(self, info: base.ObjectInfo) -> int:
        """Copy one object and verify the copy; the bytes sent."""
        data, current = self.source.get_object(self.bucket, key=info.key)  # verified against its sha256
        written = self.target.put_object(self.bucket, key=info.key, data=data)
        expected = (current.sha256, current.etag, current.size_bytes)
        if (written.sha256, written.etag, written.size_bytes) != expected:
            raise errors.OperationFailed(
                f"the copy of {self.bucket}/{info.key} in center {written.center} does not match the "
                f"source: sha256 {written.sha256[:12]}... etag {written.etag}, expected sha256 "
                f"{current.sha256[:12]}... etag {current.etag}",
                field="checksum",
            )
        if self.verify_target_bytes:
            self.target.get_object(self.bucket, key=info.key)  # ChecksumMismatchError if damaged
        self._record(info.key, current.sha256)
        return len(data)

    def _record(self, key: str, sha256: str) -> None:
        if self.checkpoint is not None:
            self.checkpoint.record(key=key, sha256=sha256)


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
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=parallelism, thread_name_prefix="object-sync")
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
        objects_skipped=count(SyncAction.SKIPPED),
        errors=tuple(
            SyncError(key=outcome.key, reason=outcome.error or "failed")
            for outcome in sorted(outcomes, key=lambda outcome: outcome.key)
            if outcome.action is SyncAction.FAILED
        ),
        duration_s=duration_s,
    )
