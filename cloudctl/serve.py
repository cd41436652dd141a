"""Composition root of the management center: where the command line meets the API.

``cli`` and ``api`` are independent entry points; neither imports the other (import-linter
says so). This module sits above both and assembles them:

- ``cloudctl serve`` (registered into the command table by name, like every command module):
  the API, the reconcilers and housekeeping, over the state the global options name;
- ``local_api(context, principal)``: the same API in this process, answering as one
  break-glass identity, as the transport a command uses when it breaks glass.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from cloudctl.cli import common, inprocess, output


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)


@common.handles_errors
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    reconcile_interval_s: Annotated[float, typer.Option(help="Seconds between reconcile passes.")] = 1.0,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes on the port; the reconcilers stay in this one.")
    ] = 1,
    provision_workers: Annotated[
        int, typer.Option(min=1, help="Objects the provisioning reconciler works on at once.")
    ] = 16,
    per_center: Annotated[
        int, typer.Option(min=1, help="... of which at most this many touch one center ...")
    ] = 8,
    per_backend: Annotated[
        int, typer.Option(min=1, help="... and this many one backend (an OpenStack cloud, the simulator).")
    ] = 16,
) -> None:
    """Run one replica of the management center: the HTTP API and /metrics; the reconcilers and
    periodic passes while the database elects it leader (Ctrl-C or SIGTERM stops cleanly)."""
    from cloudctl.api import server
    from cloudctl.services import provisioning, scrape

    state = common.state_of(ctx)
    state.context.require_initialised()
    scrape.token(state.context)  # made before the first scrape, so Prometheus can be given it
    server.serve(
        state.context,
        host=host,
        port=port,
        announce=lambda: output.stderr.print(
            f"cloudctl serving on http://{host}:{port} (API under /v1, docs at /docs; /metrics "
            f"for the scrape token in {scrape.token_file(state.context)})",
            soft_wrap=True,
        ),
        reconcile_interval_s=reconcile_interval_s,
        workers=workers,
        bounds=provisioning.Bounds(workers=provision_workers, per_center=per_center, per_backend=per_backend),
    )


def local_api(context: Any, principal: Any) -> inprocess.AsgiTransport:
    """The API over ``context`` in this process, every request answered as ``principal``."""
    from cloudctl.api import app as api_app
    from cloudctl.services import audit

    application = api_app.create_app(context=context, acting_as=principal)
    return inprocess.AsgiTransport(application, client_host=audit.local_source())
