"""Serve an app for the admission benchmark in its own process: ``python -m bench.serve``.

``--app cloudctl`` serves ``cloudctl.api.app.create_app`` over the given store and topology;
``--app noop`` serves a FastAPI app whose ``POST /noop`` parses a JSON body like the
request body and answers 201 without touching anything (an ``async`` route, like
``POST /v1/requests``, so no thread hop) — the ceiling of the web stack —
behind the same outer middleware as the API (``api.hardening``: limits, request ids, metrics,
access log); ``--app noop-bare`` the same app without it, to show what the middleware costs.
All are served the same way: uvicorn, one process, loopback, no uvicorn access log; all answer
``GET /healthz`` so the benchmark can poll until the server is up.

A separate process gives the server an interpreter (and a core) of its own instead of
sharing the benchmark's, where 32 client threads run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

from bench import common


class NoopBody(BaseModel):
    offering: str
    count: int = 1
    tier: str
    data_class: str = "internal"
    preferred_center: str | None = None
    name: str = ""


class NoopAnswer(BaseModel):
    id: str
    state: str


def noop_app(*, hardened: bool) -> FastAPI:
    app = FastAPI(title="noop")
    if hardened:
        from cloudctl import settings as settings_module
        from cloudctl.api import hardening

        app.add_middleware(hardening.Hardening, settings=settings_module.Settings())

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/noop", status_code=201)
    async def noop(body: NoopBody) -> NoopAnswer:
        return NoopAnswer(id="noop", state=f"accepted {body.offering}")

    return app


def cloudctl_app(*, database_url: str, home: Path, topology: Path) -> Any:
    from cloudctl import settings as settings_module
    from cloudctl.api import app as api_app

    settings = settings_module.Settings(
        home=home, database_url=database_url, topology=topology, policies=common.POLICIES
    )
    return api_app.create_app(settings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve", description=__doc__.splitlines()[0])
    parser.add_argument("--app", choices=["cloudctl", "noop", "noop-bare"], required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--home", type=Path, default=Path(".cloudctl-bench"))
    parser.add_argument("--topology", type=Path, default=common.SHIPPED_TOPOLOGY)
    arguments = parser.parse_args(argv)
    if arguments.app in ("noop", "noop-bare"):
        app = noop_app(hardened=arguments.app == "noop")
    else:
        if not arguments.database_url:
            parser.error("--app cloudctl needs --database-url")
        app = cloudctl_app(
            database_url=arguments.database_url, home=arguments.home, topology=arguments.topology
        )
    uvicorn.run(app, host="127.0.0.1", port=arguments.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
