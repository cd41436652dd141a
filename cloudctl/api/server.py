"""Running the management center: the API on uvicorn plus the reconcile loop, stopped cleanly.

Invariant: on SIGINT or SIGTERM uvicorn stops accepting, finishes the requests in
flight, and then the reconcile loop finishes the step it is in; every step is its
own transaction, so whatever was in flight resumes on the next start.

Every ``audit_checkpoint_interval_s`` a housekeeping thread verifies the audit records
written since the newest checkpoint and signs the head into the checkpoint file
(outside the database), and writes the summary records of failed-authentication
bursts whose window closed.
"""

from __future__ import annotations

import logging
import threading

import uvicorn

from cloudctl import errors, logs
from cloudctl.api import app as api_app
from cloudctl.services import audit, identity, provisioning
from cloudctl.services import context as ctx_module

log = logging.getLogger("cloudctl.serve")


class Housekeeping:
    """Audit checkpoints and failed-authentication summaries, at an interval, on a thread."""

    def __init__(self, ctx: ctx_module.Context, *, interval_s: float) -> None:
        self._ctx = ctx
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cloudctl-housekeeping", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self.once(everything=True)

    def once(self, *, everything: bool = False) -> None:
        try:
            identity.flush_failed_authentications(self._ctx, everything=everything)
            written = audit.checkpoint(self._ctx)
            if not written.written:
                log.error("audit chain does not verify; no checkpoint written: %s", written.problem)
        except errors.CloudctlError as error:
            log.warning("audit housekeeping: %s", error.one_line())

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.once()


def serve(ctx: ctx_module.Context, *, host: str, port: int, reconcile_interval_s: float = 1.0) -> None:
    ctx.require_initialised()
    loop = provisioning.Loop(ctx, interval_s=reconcile_interval_s)
    logs.configure()
    # uvicorn's own records go through cloudctl's handler; the API writes its own access line.
    config = uvicorn.Config(
        api_app.create_app(context=ctx),
        host=host,
        port=port,
        log_level="info",
        log_config=None,
        access_log=False,
    )
    server = uvicorn.Server(config)
    housekeeping = Housekeeping(ctx, interval_s=ctx.settings.audit_checkpoint_interval_s)
    housekeeping.once()
    loop.start()
    housekeeping.start()
    try:
        server.run()
    finally:
        housekeeping.stop()
        stopped = loop.stop(timeout_s=60)
        log.info(
            "reconcile loop %s",
            "stopped" if stopped else "still busy after 60 s; its step resumes next start",
        )
