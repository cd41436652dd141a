"""Running the management center: the API on uvicorn, and the reconcilers while this replica leads.

``serve`` is one replica. Any number of replicas run against one PostgreSQL database:
each serves the API, and the one the database elects (``services.leader``) also runs
the reconcilers and the periodic passes. ``workers`` > 1 runs that many API processes
on one listening socket; the reconcilers stay in this (the supervising) process.

Invariant: on SIGINT or SIGTERM uvicorn stops accepting, finishes the requests in
flight, then the leader's loops finish the step each is in and the lease is given up,
so another replica takes over at once; every step is its own transaction, so whatever
was in flight resumes on the new leader.

Every replica writes, each ``auth_audit_aggregate_s``, the summary records of the bursts of
failed authentications it saw whose window closed, and all of them when it stops (that
count lives in the replica's memory). The audit checkpoints are a leader's pass.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from cloudctl import errors, logs
from cloudctl import settings as settings_module
from cloudctl.api import app as api_app
from cloudctl.model import states
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, leader
from cloudctl.services import provisioning as provisioning_service

log = logging.getLogger("cloudctl.serve")

STOP_TIMEOUT_S = 60.0


def serve(
    ctx: ctx_module.Context,
    *,
    host: str,
    port: int,
    reconcile_interval_s: float = 1.0,
    workers: int = 1,
    bounds: provisioning_service.Bounds | None = None,
    timing: leader.Timing | None = None,
    announce: Callable[[], None] | None = None,
) -> None:
    """Run one replica until SIGINT or SIGTERM; ``announce`` once this replica may run."""
    ctx.require_initialised()
    with leader.single_serve_guard(ctx):
        if announce is not None:
            announce()
        leadership = leader.Leadership(
            ctx,
            api_url=f"http://{host}:{port}",
            interval_s=reconcile_interval_s,
            bounds=bounds,
            timing=timing,
        )
        logs.configure()
        summaries = FailedAuthSummaries(ctx)
        summaries.start()
        leadership.start()
        log.info(
            "replica %s started as %s",
            leadership.replica_id,
            states.ReplicaRole.LEADER if leadership.is_leader else states.ReplicaRole.FOLLOWER,
        )
        try:
            if workers > 1:
                _run_workers(ctx, leadership.replica_id, host=host, port=port, workers=workers)
            else:
                _stop_quietly_on_signals()
                uvicorn.Server(_config(api_app.create_app(context=ctx), host=host, port=port)).run()
        finally:
            summaries.stop()
            stopped = leadership.stop(timeout_s=STOP_TIMEOUT_S)
            log.info(
                "replica %s %s",
                leadership.replica_id,
                "stopped" if stopped else "stopped with steps still busy; they resume on the next leader",
            )


class FailedAuthSummaries:
    """This replica's summary records of failed-authentication bursts, written as their windows close."""

    def __init__(self, ctx: ctx_module.Context) -> None:
        self._ctx = ctx
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloudctl-auth-summaries", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.once(everything=True)

    def once(self, *, everything: bool = False) -> None:
        try:
            identity.flush_failed_authentications(self._ctx, everything=everything)
        except errors.CloudctlError as error:
            log.warning("failed-authentication summaries: %s", error.one_line())

    def _run(self) -> None:
        while not self._stop.wait(max(self._ctx.settings.auth_audit_aggregate_s, 1.0)):
            self.once()


def _stop_quietly_on_signals() -> None:
    """Let SIGTERM and SIGINT end ``serve`` through its ``finally`` (the lease is given up).

    uvicorn handles both while it runs and, once it has shut down, raises the signal again
    with the handlers it found installed: these, which leave by ``SystemExit`` instead of
    killing the process before the reconcilers stop and the lease is released.
    """

    def leave(_signum: int, _frame: object) -> None:
        raise SystemExit(0)

    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, leave)


def _config(app: FastAPI | str, *, host: str, port: int, **extra: object) -> uvicorn.Config:
    # uvicorn's own records go through cloudctl's handler; the API writes its own access line.
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=None,
        access_log=False,
        # uvicorn would believe X-Forwarded-* from loopback by default; cloudctl believes
        # them from CLOUDCTL_TRUSTED_PROXIES alone (api/hardening.py).
        proxy_headers=False,
        timeout_graceful_shutdown=30,
        **extra,  # type: ignore[arg-type]
    )


def _run_workers(ctx: ctx_module.Context, replica_id: str, *, host: str, port: int, workers: int) -> None:
    """``workers`` API processes (spawned, so they share nothing but the socket and the settings)."""
    settings = ctx.settings
    os.environ.update(
        {
            "CLOUDCTL_HOME": str(settings.home.resolve()),
            "CLOUDCTL_TOPOLOGY": str(settings.topology.resolve()),
            "CLOUDCTL_POLICIES": str(settings.policies.resolve()),
            leader.REPLICA_ENV: replica_id,
        }
    )
    if settings.database_url:
        os.environ["CLOUDCTL_DATABASE_URL"] = settings.database_url
    config = _config("cloudctl.api.server:worker_app", host=host, port=port, factory=True, workers=workers)
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[config.bind_socket()]).run()


def worker_app() -> FastAPI:
    """The API of one worker process of ``serve --workers N`` (settings from ``CLOUDCTL_*``)."""
    logs.configure()
    return api_app.create_app(settings_module.Settings())
