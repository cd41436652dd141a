"""Replication over S3: ``object_sync.sync_bucket`` between two moto servers, against ``rclone sync``.

Setup: two ``moto_server`` processes (one per center: the first local center and the DR
center of the topology), started with ``tests.integration.moto_servers``; a source bucket
(unversioned, so both tools write plain objects) holding ``size`` objects of 1 MiB (64 KiB
with ``--smoke``), written through ``S3ObjectStorage`` so each carries its sha256.

Each round, baseline first:

1. **full**: both target buckets emptied; ``rclone sync`` to one, ``sync_bucket`` to the other;
2. 1% of the source objects (at least one) rewritten with new bytes;
3. **incremental**: ``rclone sync`` and ``sync_bucket`` again.

``sync_bucket`` runs with its default parallelism (at most 8 GETs at the source and 8 PUTs
at the target at once); rclone with ``--transfers`` and ``--checkers`` set to the same number
(8 transfers, each streaming a GET into a PUT: also 8 requests per side), and ``--checksum``
so that, like ``sync_bucket``, it decides by content (MD5/ETag and size) rather than
modification time. The full pass uses
fresh drivers; both use a ``JsonFileManifest`` (removed before the full pass, whose target
was emptied), so the incremental pass lists the source only, while rclone lists both sides.
Where a goal (``GOALS``) is missed, that pass is run once more under cProfile and the
profile goes into the result's details.

rclone is Debian's package; when it is missing, setup installs it with ``apt-get``. With
``--smoke`` nothing is installed: the baseline is a tiny built-in copy loop (boto3, the same
parallelism, ETag and size comparison, no verification), and the result says so.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common, recovery
from cloudctl.drivers import s3
from cloudctl.model import topology as topo
from cloudctl.recovery import object_sync
from tests.integration import moto_servers

NAME = "s3-sync"
DEFAULT_SIZE = 1000
SMOKE_SIZE = 20
OBJECT_BYTES = 1024 * 1024
SMOKE_OBJECT_BYTES = 64 * 1024
CHANGED_FRACTION = 0.01
SOURCE_BUCKET = "bench-source"
TARGET_BUCKET_SUBJECT = SOURCE_BUCKET
"""``sync_bucket`` copies a bucket to the bucket of the same name in the target center."""
TARGET_BUCKET_BASELINE = "bench-target-baseline"
RCLONE_TIMEOUT_S = 1800
GOALS = {"full": 1.0, "incremental": 0.5}
"""Highest acceptable time ratio to rclone per phase (1.0: as fast; 0.5: twice as fast)."""
PROFILE_BUDGET_S = 120.0


def ensure_rclone() -> str:
    """The rclone executable, installed from Debian's package if missing."""
    found = shutil.which("rclone")
    if found:
        return found
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "rclone"]):
        finished = subprocess.run(
            [*sudo, *command], env=environment, capture_output=True, text=True, check=False
        )
        if finished.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {finished.stderr.strip()[-400:]}")
    found = shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone is still missing after apt-get install rclone")
    return found


def rclone_environment(servers: dict[str, moto_servers.MotoServer], config_file: Path) -> dict[str, str]:
    """rclone remotes ``source:`` and ``target:`` for the two servers, from environment variables only."""
    # AWS_* settings of the machine (a CA bundle, credentials) are for real AWS endpoints; the
    # AWS SDK inside rclone refuses a CA bundle with its own transport, and loopback needs none.
    environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    environment["RCLONE_CONFIG"] = str(config_file)
    for remote, server in servers.items():
        prefix = f"RCLONE_CONFIG_{remote.upper()}_"
        environment.update(
            {
                f"{prefix}TYPE": "s3",
                f"{prefix}PROVIDER": "Other",
                f"{prefix}ENV_AUTH": "false",
                f"{prefix}ACCESS_KEY_ID": moto_servers.ACCESS_KEY,
                f"{prefix}SECRET_ACCESS_KEY": moto_servers.SECRET_KEY,
                f"{prefix}REGION": moto_servers.REGION,
                f"{prefix}ENDPOINT": server.endpoint_url,
                f"{prefix}FORCE_PATH_STYLE": "true",
            }
        )
    return environment


def rclone_sync(executable: str, environment: dict[str, str], *, parallelism: int) -> None:
    command = [
        executable,
        "sync",
        f"source:{SOURCE_BUCKET}",
        f"target:{TARGET_BUCKET_BASELINE}",
        "--checksum",
        "--transfers",
        str(parallelism),
        "--checkers",
        str(parallelism),
        "--quiet",
    ]
    finished = subprocess.run(
        command, env=environment, capture_output=True, text=True, check=False, timeout=RCLONE_TIMEOUT_S
    )
    if finished.returncode != 0:
        raise RuntimeError(f"rclone sync failed ({finished.returncode}): {finished.stderr.strip()[-400:]}")


def builtin_copy(source: Any, target: Any, *, parallelism: int) -> None:
    """The smoke baseline: list both sides, copy what differs by ETag and size, delete the rest."""

    def listing(client: Any, bucket: str) -> dict[str, tuple[str, int]]:
        found: dict[str, tuple[str, int]] = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for entry in page.get("Contents", []):
                found[entry["Key"]] = (entry["ETag"], int(entry["Size"]))
        return found

    have = listing(source, SOURCE_BUCKET)
    try:
        there = listing(target, TARGET_BUCKET_BASELINE)
    except target.exceptions.NoSuchBucket:
        target.create_bucket(Bucket=TARGET_BUCKET_BASELINE)
        there = {}

    def copy(key: str) -> None:
        body = source.get_object(Bucket=SOURCE_BUCKET, Key=key)["Body"].read()
        target.put_object(Bucket=TARGET_BUCKET_BASELINE, Key=key, Body=body)

    with concurrent.futures.ThreadPoolExecutor(max_workers=parallelism) as pool:
        list(pool.map(copy, [key for key, seen in have.items() if there.get(key) != seen]))
    for key in set(there) - set(have):
        target.delete_object(Bucket=TARGET_BUCKET_BASELINE, Key=key)


def driver(server: moto_servers.MotoServer) -> s3.S3ObjectStorage:
    return s3.S3ObjectStorage(
        center=server.center,
        endpoint_url=server.endpoint_url,
        access_key=moto_servers.ACCESS_KEY,
        secret_key=moto_servers.SECRET_KEY,
        region=moto_servers.REGION,
    )


def fill_source(storage: s3.S3ObjectStorage, *, objects: int, object_bytes: int) -> list[str]:
    storage.create_bucket(SOURCE_BUCKET, versioning=False)
    keys = [f"data/{index:06d}.bin" for index in range(objects)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=object_sync.DEFAULT_PARALLELISM) as pool:
        list(
            pool.map(
                lambda key: storage.put_object(SOURCE_BUCKET, key=key, data=os.urandom(object_bytes)), keys
            )
        )
    return keys


def centers_of(topology: topo.Topology) -> tuple[str, str]:
    local = topology.centers_with_role(topo.CenterRole.LOCAL)[0].name
    dr = topology.centers_with_role(topo.CenterRole.DR)[0].name
    return local, dr


def run(*, size: int | None = None, smoke: bool = False, rounds: int | None = None) -> common.BenchResult:
    objects = size or (SMOKE_SIZE if smoke else DEFAULT_SIZE)
    rounds = rounds or (1 if smoke else 3)
    object_bytes = SMOKE_OBJECT_BYTES if smoke else OBJECT_BYTES
    changed = max(1, round(objects * CHANGED_FRACTION))
    parallelism = object_sync.DEFAULT_PARALLELISM
    rclone = None if smoke else ensure_rclone()
    baseline_name = (
        f"rclone sync --checksum --transfers {parallelism} --checkers {parallelism}"
        if rclone
        else f"built-in boto3 copy loop ({parallelism} threads, ETag+size) — smoke run, rclone not used"
    )
    result = common.BenchResult(name=NAME, size=objects, smoke=smoke, baseline=baseline_name)
    result.notes.append(
        f"{objects} objects of {object_bytes // 1024} KiB between two moto servers; incremental pass after "
        f"rewriting {changed} object(s); {rounds} round(s), medians; baseline first in each round"
    )
    if smoke:
        result.notes.append("smoke: compared against the built-in copy loop, not rclone (nothing installed)")
    source_center, target_center = centers_of(topo.parse(common.SHIPPED_TOPOLOGY.read_text(encoding="utf-8")))
    phases = ("baseline_full_s", "subject_full_s", "baseline_incremental_s", "subject_incremental_s")
    timings: dict[str, list[float]] = {key: [] for key in phases}
    reports: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="cloudctl-bench-s3-") as directory:
        servers = moto_servers.start([source_center, target_center], log_dir=Path(directory))
        try:
            by_role = {"source": servers[0], "target": servers[1]}
            config_file = Path(directory) / "rclone.conf"
            config_file.write_text("", encoding="utf-8")
            environment = rclone_environment(by_role, config_file)
            started = time.perf_counter()
            keys = fill_source(driver(by_role["source"]), objects=objects, object_bytes=object_bytes)
            result.details["fill_source_s"] = round(time.perf_counter() - started, 2)
            manifest_path = Path(directory) / "manifest.jsonl"
            raw_source = moto_servers.raw_client(by_role["source"])
            raw_target = moto_servers.raw_client(by_role["target"])

            def baseline() -> None:
                if rclone:
                    rclone_sync(rclone, environment, parallelism=parallelism)
                else:
                    builtin_copy(raw_source, raw_target, parallelism=parallelism)

            for round_index in range(rounds):
                for bucket in (TARGET_BUCKET_BASELINE, TARGET_BUCKET_SUBJECT):
                    moto_servers.purge_bucket(by_role["target"], bucket)
                source, target = driver(by_role["source"]), driver(by_role["target"])
                manifest_path.unlink(missing_ok=True)  # the target was emptied: nothing synced yet

                def subject(source: s3.S3ObjectStorage = source, target: s3.S3ObjectStorage = target) -> Any:
                    return object_sync.sync_bucket(
                        source=source,
                        target=target,
                        bucket=SOURCE_BUCKET,
                        parallelism=parallelism,
                        manifest=object_sync.JsonFileManifest(manifest_path),
                    )

                timings["baseline_full_s"].append(common.timed(baseline)[0])
                seconds, full = common.timed(subject)
                timings["subject_full_s"].append(seconds)
                rewrite = keys[round_index * changed % len(keys) :][:changed] or keys[:changed]
                storage = driver(by_role["source"])
                for key in rewrite:
                    storage.put_object(SOURCE_BUCKET, key=key, data=os.urandom(object_bytes))
                timings["baseline_incremental_s"].append(common.timed(baseline)[0])
                seconds, incremental = common.timed(subject)
                timings["subject_incremental_s"].append(seconds)
                for report in (full, incremental):
                    if report.errors:
                        raise RuntimeError(f"sync_bucket reported errors: {report.errors[:3]}")
                reports.append(
                    {
                        "full_copied": full.objects_copied,
                        "incremental_copied": incremental.objects_copied,
                        "incremental_unchanged": incremental.objects_unchanged,
                    }
                )
                _check_copies(raw_source, raw_target)
            missed = _missed_goals(timings)
            for phase in missed:
                prepare = _prepare_profile(
                    phase, by_role, keys=keys, object_bytes=object_bytes, manifest=manifest_path
                )
                result.details[f"profile_{phase}"] = recovery.profiled(prepare, budget_s=PROFILE_BUDGET_S)
        finally:
            moto_servers.stop(servers)
    full_goal, incremental_goal = GOALS["full"], GOALS["incremental"]
    result.notes.append(
        f"goals: full pass at most {full_goal:g}× rclone's time, incremental at most {incremental_goal:g}×"
    )
    result.details["rounds"] = {key: [round(v, 3) for v in values] for key, values in timings.items()}
    result.details["sync_bucket_reports"] = reports
    megabytes = objects * object_bytes / 1024**2
    for phase, copied_mib in (("full", megabytes), ("incremental", changed * object_bytes / 1024**2)):
        subject_s = common.median(timings[f"subject_{phase}_s"])
        baseline_s = common.median(timings[f"baseline_{phase}_s"])
        result.add(
            f"{phase} pass time",
            unit="s",
            subject=subject_s,
            baseline=baseline_s,
            meaning="times the baseline's time (lower is better)",
        )
        if subject_s:
            result.details[f"{phase}_subject_mib_per_s"] = round(copied_mib / subject_s, 1)
    return result


def _check_copies(source: Any, target: Any) -> None:
    """Both targets hold what the source holds (by ETag): a benchmark of a broken copy is worthless."""

    def etags(client: Any, bucket: str) -> dict[str, str]:
        return {
            entry["Key"]: entry["ETag"]
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for entry in page.get("Contents", [])
        }

    expected = etags(source, SOURCE_BUCKET)
    for bucket in (TARGET_BUCKET_SUBJECT, TARGET_BUCKET_BASELINE):
        if etags(target, bucket) != expected:
            raise RuntimeError(f"{bucket} does not match the source after the incremental pass")


def _missed_goals(timings: dict[str, list[float]]) -> list[str]:
    missed = []
    for phase, goal in GOALS.items():
        ratio = common.ratio(
            common.median(timings[f"subject_{phase}_s"]), common.median(timings[f"baseline_{phase}_s"])
        )
        if ratio is not None and ratio > goal:
            missed.append(phase)
    return missed


def _prepare_profile(
    phase: str,
    by_role: dict[str, moto_servers.MotoServer],
    *,
    keys: list[str],
    object_bytes: int,
    manifest: Path,
) -> Callable[[], None]:
    """The pass of ``phase`` again, set up as in a round, for cProfile (the main thread's view:
    the copies run in worker threads, so their own time shows as waits here)."""
    source, target = driver(by_role["source"]), driver(by_role["target"])
    if phase == "full":
        moto_servers.purge_bucket(by_role["target"], TARGET_BUCKET_SUBJECT)
        manifest.unlink(missing_ok=True)
    else:
        for key in keys[: max(1, round(len(keys) * CHANGED_FRACTION))]:
            source.put_object(SOURCE_BUCKET, key=key, data=os.urandom(object_bytes))

    def work() -> None:
        object_sync.sync_bucket(
            source=source,
            target=target,
            bucket=SOURCE_BUCKET,
            parallelism=object_sync.DEFAULT_PARALLELISM,
            manifest=object_sync.JsonFileManifest(manifest),
        )

    return work
