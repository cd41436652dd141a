"""The management database's DR copy on two real PostgreSQL clusters (scripts/ensure-postgres-pair.sh):
streaming, lag, promotion with the old primary fenced (restarts included), a superseded site
fencing itself when it comes back, failback re-seeding the old site, and a PostgreSQL restart
under admission load losing nothing admitted.

Outcomes are read with SQLAlchemy on the raw tables and PostgreSQL's own functions, not
through cloudctl. The tests poll with bounded deadlines; they never sleep for time.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from cloudctl import clock as clocks
from cloudctl.model import drill_formats, drills
from cloudctl.services import drills as drill_service
from cloudctl.services import identity, leader, mgmt, setup
from cloudctl.services import requests as requests_service
from cloudctl.store import db
from tests.conftest import POLICIES, ROOT, TOPOLOGY, make_context
from tests.e2e.test_serve_crash import free_port, poll

PAIR = ROOT / "scripts" / "ensure-postgres-pair.sh"
HRSS = identity.Principal(
    id="test:hrss", role="dept-admin", department="hrss-insurance", department_path=("hrss-insurance",)
)

BREAK_GLASS_REASON = "promote the DR copy: Qingdao lost"


class Pair:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.primary_port = free_port()
        self.standby_port = free_port()
        self.primary_url, self.standby_url = self.script("start").split()

    def script(self, *args: str) -> str:
        ports = ["--primary-port", str(self.primary_port), "--standby-port", str(self.standby_port)]
        finished = subprocess.run(
            [str(PAIR), *args, "--dir", str(self.directory), *ports],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert finished.returncode == 0, finished.stderr
        return finished.stdout

    def cli(self, *args: str, home: Path, code: int = 0) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "CLOUDCTL_HOME": str(home),
            "CLOUDCTL_DATABASE_URL": self.primary_url,
            "CLOUDCTL_MGMT_STANDBY_URL": self.standby_url,
            "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
            "CLOUDCTL_POLICIES": str(POLICIES),
        }
        glass = ["--as", "sysadmin", "--reason", BREAK_GLASS_REASON] if args[:1] == ("mgmt",) else []
        finished = subprocess.run(
            [sys.executable, "-m", "cloudctl", *glass, *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert finished.returncode == code, finished.stderr
        return finished


@pytest.fixture
def pair() -> Iterator[Pair]:
    directory = Path(tempfile.mkdtemp(prefix="cloudctl-pg-pair-"))
    directory.chmod(0o755)  # the clusters run as the postgres user
    made = Pair(directory)
    yield made
    subprocess.run(
        [str(PAIR), "stop", "--dir", str(directory)], capture_output=True, timeout=120, check=False
    )
    for data in directory.glob("qingdao*"):
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *_pg_ctl(), "-D", str(data), "-m", "immediate", "stop"]
            if os.geteuid() == 0
            else [*_pg_ctl(), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=120,
            check=False,
        )
    shutil.rmtree(directory, ignore_errors=True)


def _pg_ctl() -> list[str]:
    bindir = sorted(Path("/usr/lib/postgresql").glob("*/bin"))[-1]
    return [str(bindir / "pg_ctl")]


@pytest.fixture
def home(pair: Pair) -> Path:
    path = pair.directory / "home"
    path.mkdir()
    store = db.Store(pair.primary_url)
    setup.initialise(make_context(store, clocks.SystemClock(), path))
    store.dispose()
    return path


def raw(database_url: str, statement: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(db.normalise_url(database_url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as connection:
            result = connection.execute(sa.text(statement), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        engine.dispose()


def refuses_writes(url: str) -> bool:
    try:
        raw(url, "INSERT INTO settings (key, value) VALUES (:k, 'x')", k=f"probe-{os.urandom(4).hex()}")
    except sa.exc.DBAPIError as error:
        return "read-only transaction" in str(error.orig)
    return False


def admit(pair: Pair, home: Path, count: int) -> list[str]:
    store = db.Store(pair.primary_url)
    ctx = make_context(store, clocks.SystemClock(), home)
    made = []
    for index in range(count):
        body = requests_service.RequestCreate(
            offering="vm.small", count=1, tier="bronze", preferred_center="qd-a", name=f"mgmt-{index}"
        )
        request, _created = requests_service.submit(ctx, principal=HRSS, body=body)
        made.append(request.id)
    ctx.close()
    return made


def status(pair: Pair, home: Path) -> dict[str, Any]:
    return dict(json.loads(pair.cli("mgmt", "status", "-o", "json", home=home).stdout))


def test_the_standby_streams_and_a_promotion_fences_the_old_primary_for_good(pair: Pair, home: Path) -> None:
    admitted = admit(pair, home, 5)
    poll(
        lambda: status(pair, home)["lag_bytes"] == 0, what="the standby to replay everything", deadline_s=120
    )
    shown = status(pair, home)
    assert (shown["primary"]["role"], shown["standby"]["role"], shown["receiver"]) == (
        "primary",
        "standby",
        "streaming",
    )
    assert [link["name"] for link in shown["streaming_to"]] == ["dezhou"]
    assert "lag:" in pair.cli("mgmt", "status", home=home).stdout

    promoted = json.loads(pair.cli("mgmt", "promote", "-o", "json", home=home).stdout)
    assert (promoted["promoted_now"], promoted["old_primary_fenced"]) == (True, True)
    assert promoted["lag_bytes_at_promotion"] == 0

    assert raw(pair.standby_url, "SELECT pg_is_in_recovery()") == [(False,)]
    ids = {row[0] for row in raw(pair.standby_url, "SELECT id FROM requests")}
    assert set(admitted) <= ids  # nothing admitted is lost
    assert raw(pair.standby_url, "SELECT count(*) FROM audit_records WHERE action = 'mgmt.promote'") == [(1,)]
    glass = raw(
        pair.standby_url, "SELECT actor, role, detail FROM audit_records WHERE action = 'break-glass'"
    )
    assert [(actor.startswith("breakglass:"), role) for actor, role, _ in glass] == [(True, "sysadmin")]
    detail = glass[0][2] if isinstance(glass[0][2], dict) else json.loads(glass[0][2])
    assert detail["reason"] == BREAK_GLASS_REASON and detail["host"]
    assert not refuses_writes(pair.standby_url)
    assert refuses_writes(pair.primary_url)
    pair.script("stop-site", "qingdao")
    pair.script("start-site", "qingdao")
    assert refuses_writes(pair.primary_url)  # still fenced after a restart
    again = json.loads(pair.cli("mgmt", "promote", "-o", "json", home=home).stdout)
    assert again["promoted_now"] is False

    # A serve in Dezhou, on the promoted database, leads and carries on with what Qingdao admitted.
    port = free_port()
    env = {
        **os.environ,
        "CLOUDCTL_HOME": str(home),
        "CLOUDCTL_DATABASE_URL": pair.standby_url,
        "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
        "CLOUDCTL_POLICIES": str(POLICIES),
    }
    command = [
        sys.executable,
        "-m",
        "cloudctl",
        "serve",
        "--port",
        str(port),
        "--reconcile-interval-s",
        "0.2",
    ]
    dezhou = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def provisioned_in_dezhou() -> bool:
            states = dict(raw(pair.standby_url, "SELECT id, state FROM requests"))
            return all(states.get(request_id) == "ready" for request_id in admitted)

        poll(
            provisioned_in_dezhou, what="the Dezhou serve to provision what Qingdao admitted", deadline_s=180
        )
        assert raw(
            pair.standby_url, "SELECT role FROM replicas WHERE api_url = :url", url=f"http://127.0.0.1:{port}"
        ) == [("leader",)]
    finally:
        dezhou.terminate()
        assert dezhou.wait(90) == 0

    back = json.loads(
        pair.cli(
            "mgmt", "failback", "--data-dir", str(pair.directory / "qingdao"), "--port",
            str(pair.primary_port), "--from", pair.standby_url, "-o", "json", home=home,
        ).stdout
    )  # fmt: skip
    assert back["standby"]["role"] == "standby"
    assert back["kept_aside"] and Path(back["kept_aside"]).is_dir()  # the old data is kept, not deleted
    raw(pair.standby_url, "INSERT INTO settings (key, value) VALUES ('after-failback', 'dz')")
    poll(
        lambda: raw(pair.primary_url, "SELECT value FROM settings WHERE key = 'after-failback'") == [("dz",)],
        what="the re-seeded old site to stream from the promoted one",
        deadline_s=120,
    )
    assert raw(pair.primary_url, "SELECT pg_is_in_recovery()") == [(True,)]


def test_an_old_primary_that_was_away_at_promotion_fences_itself_when_it_comes_back(
    pair: Pair, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replicated = admit(pair, home, 2)
    poll(
        lambda: status(pair, home)["lag_bytes"] == 0, what="the standby to replay everything", deadline_s=120
    )
    acknowledged = {request_id: float(index) for index, request_id in enumerate(replicated)}
    pair.script("stop-site", "dezhou")  # the DR link goes first: what follows never reaches Dezhou
    stranded = admit(pair, home, 3)
    acknowledged.update({request_id: 10.0 + index for index, request_id in enumerate(stranded)})
    pair.script("stop-site", "qingdao")
    pair.script("start-site", "dezhou")
    promoted = json.loads(pair.cli("mgmt", "promote", "-o", "json", home=home).stdout)
    assert (promoted["promoted_now"], promoted["old_primary_fenced"]) == (True, False)
    loss = mgmt.records_lost(promoted=pair.standby_url, acknowledged=acknowledged)
    assert (loss.acknowledged, loss.lost, loss.lost_keys) == (5, 3, stranded)
    assert loss.rpo_s == 2.0  # from the first lost acknowledgement (10.0) to the last (12.0)
    pair.script("start-site", "qingdao")
    assert not refuses_writes(pair.primary_url)  # back, and nobody could tell it yet

    monkeypatch.setenv("CLOUDCTL_MGMT_STANDBY_URL", pair.standby_url)
    store = db.Store(pair.primary_url)
    ctx = make_context(store, clocks.SystemClock(), home)
    old_site = leader.Leadership(ctx, api_url="http://old-site")
    try:
        old_site.tick()
        assert old_site.superseded_by is not None
        assert not old_site.is_leader
    finally:
        ctx.close()
    assert refuses_writes(pair.primary_url)


def test_a_postgresql_restart_under_admission_load_loses_nothing_admitted(pair: Pair, home: Path) -> None:
    store = db.Store(pair.primary_url)
    ctx = make_context(store, clocks.SystemClock(), home)
    secret = identity.create_token(
        ctx, principal=identity.local_operator("secadmin"), role="dept-admin", department="bigdata"
    ).secret
    ctx.close()
    port = free_port()
    env = {
        **os.environ,
        "CLOUDCTL_HOME": str(home),
        "CLOUDCTL_DATABASE_URL": pair.primary_url,
        "CLOUDCTL_TOPOLOGY": str(TOPOLOGY),
        "CLOUDCTL_POLICIES": str(POLICIES),
    }
    serve = subprocess.Popen(
        [sys.executable, "-m", "cloudctl", "serve", "--port", str(port), "--reconcile-interval-s", "0.2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    orders = 24
    admitted: dict[int, str] = {}
    refused: list[int] = []
    restart_now = threading.Event()

    def client() -> None:
        for index in range(orders):
            if index == orders // 3:
                restart_now.set()
            while index not in admitted:  # an order the server did not acknowledge is sent again
                try:
                    answer = httpx.post(
                        f"http://127.0.0.1:{port}/v1/requests",
                        json={
                            "offering": "vm.small",
                            "count": 1,
                            "tier": "bronze",
                            "name": f"restart-{index}",
                        },
                        headers={"Authorization": f"Bearer {secret}", "Idempotency-Key": f"restart-{index}"},
                        timeout=60,
                    )
                except httpx.HTTPError:
                    refused.append(index)
                    continue
                if answer.status_code in (200, 201):
                    admitted[index] = answer.json()["id"]
                else:
                    refused.append(index)

    try:
        poll(lambda: _answers(port), what="serve to answer", deadline_s=90)
        sender = threading.Thread(target=client)
        sender.start()
        poll(restart_now.is_set, what="admission to be under way")
        pair.script("stop-site", "qingdao")
        pair.script("start-site", "qingdao")
        sender.join(300)
        assert not sender.is_alive()

        def all_ready() -> bool:
            try:
                states = dict(raw(pair.primary_url, "SELECT id, state FROM requests"))
            except sa.exc.OperationalError:
                return False
            return all(states.get(request_id) == "ready" for request_id in admitted.values())

        poll(all_ready, what="every admitted order to be provisioned after the restart")
    finally:
        serve.terminate()
        serve.wait(60)
    stored = raw(pair.primary_url, "SELECT id FROM requests WHERE name LIKE 'restart-%'")
    assert sorted(row[0] for row in stored) == sorted(admitted.values())  # each admitted once, none lost
    assert len(admitted) == orders


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


# --- the drill that loses the whole Qingdao site ----------------------------------------------------


def _site_drill(pair: Pair, home: Path, monkeypatch: pytest.MonkeyPatch, **scenario: object) -> Any:
    """Run the shipped ``lose-qingdao-site`` plan (``scenario`` overrides) on the pair, from the
    Qingdao primary; returns the report and the context, which then points at Dezhou."""
    monkeypatch.setenv("CLOUDCTL_MGMT_STANDBY_URL", pair.standby_url)
    poll(
        lambda: status(pair, home)["lag_bytes"] == 0, what="the standby to replay everything", deadline_s=120
    )
    data = yaml.safe_load((ROOT / "dr" / "drills" / "lose-qingdao-site.yaml").read_text(encoding="utf-8"))
    data["scenario"].update(scenario)
    plan = drills.DrillPlan.model_validate(data)
    store = db.Store(pair.primary_url)
    ctx = make_context(store, clocks.SystemClock(), home)
    return ctx, plan


def _change_keys(url: str, workload_ids: list[str]) -> set[str]:
    rows = raw(url, "SELECT workload_id, seq FROM changes WHERE workload_id = ANY(:ids)", ids=workload_ids)
    return {f"changes:{workload_id}:{seq}" for workload_id, seq in rows}


def test_the_lose_qingdao_site_drill_recovers_from_dezhou_and_loses_no_management_record(
    pair: Pair, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, plan = _site_drill(pair, home, monkeypatch)
    report = drill_service.run_drill(ctx, plan=plan)

    state = report.management
    assert state is not None and report.passed, [m.describe() for m in drill_formats.missed(report)]
    assert state.promoted.startswith(f"127.0.0.1:{pair.standby_port}")
    assert state.old_primary_fenced and refuses_writes(pair.primary_url)
    canaries = [w.workload_id for w in report.workloads]
    kept = _change_keys(pair.standby_url, canaries)
    assert state.acknowledged >= len(kept) > 100  # every canary write, and the canaries' requests
    assert (state.lost, state.lost_keys, state.rpo_s, state.met) == (0, [], 0.0, True)
    assert {w.recovered_in for w in report.workloads} == {"dz-dr"}
    # Recovery was driven from Dezhou: the failover runs and the finished drill are in the promoted
    # database; Qingdao's, fenced at the fault, still shows the drill running and no failover.
    assert raw(pair.standby_url, "SELECT state FROM drill_runs WHERE id = :id", id=report.run_id) == [
        ("done",)
    ]
    assert raw(pair.primary_url, "SELECT state FROM drill_runs WHERE id = :id", id=report.run_id) == [
        ("running",)
    ]
    done = raw(pair.standby_url, "SELECT count(*) FROM recovery_runs WHERE state = 'done'")
    assert done[0][0] >= 1 and raw(pair.primary_url, "SELECT count(*) FROM recovery_runs") == [(0,)]
    assert raw(pair.standby_url, "SELECT count(*) FROM audit_records WHERE action = 'mgmt.promote'") == [(1,)]
    assert ctx.settings.database_url == pair.standby_url  # whoever started the drill followed it
    ctx.close()


def test_a_management_standby_cut_off_before_the_warm_up_loses_exactly_what_it_missed(
    pair: Pair, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, plan = _site_drill(pair, home, monkeypatch, management_rpo_s=0.001)

    def cut_the_stream(step: Any) -> None:
        if step.step == "canaries ready":  # the warm-up's writes never reach Dezhou
            engine = sa.create_engine(
                db.normalise_url(pair.standby_url), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
            )
            with engine.connect() as connection:  # ALTER SYSTEM runs outside a transaction
                connection.execute(sa.text("ALTER SYSTEM SET primary_conninfo = ''"))
                connection.execute(sa.text("SELECT pg_reload_conf()"))
            engine.dispose()
            poll(
                lambda: raw(pair.standby_url, "SELECT count(*) FROM pg_stat_wal_receiver") == [(0,)],
                what="the standby to stop receiving",
                deadline_s=60,
            )

    report = drill_service.run_drill(ctx, plan=plan, on_step=cut_the_stream)

    state = report.management
    assert state is not None
    canaries = [w.workload_id for w in report.workloads]
    # The answer, known from both databases: committed in Qingdao, absent from the promoted one.
    missing = _change_keys(pair.primary_url, canaries) - _change_keys(pair.standby_url, canaries)
    assert len(missing) > 100
    assert state.lost == len(missing)
    assert set(state.lost_keys) <= missing and len(state.lost_keys) == 20
    assert state.rpo_s > 0 and not state.met and not report.passed
    assert any(m.subject == "management state" for m in drill_formats.missed(report))
    ctx.close()
