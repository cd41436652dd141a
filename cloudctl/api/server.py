"""Running the management center: the API on uvicorn plus the reconcile loop, stopped cleanly.

Invariant: on SIGINT or SIGTERM uvicorn stops accepting, finishes the requests in
flight, and then the reconcile loop finishes the step it is in; every step is its
own transaction, so whatever was in flight resumes on the next start.
"""

from __future__ import annotations

import logging

import uvicorn

from cloudctl import logs
from cloudctl.api import app as api_app
from cloudctl.services import context as ctx_module
from cloudctl.services import provisioning

log = logging.getLogger("cloudctl.serve")


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
    loop.start()
    try:
        server.run()
    finally:
        stopped = loop.stop(timeout_s=60)
        log.info(
            "reconcile loop %s",
            "stopped" if stopped else "still busy after 60 s; its step resumes next start",
        )
