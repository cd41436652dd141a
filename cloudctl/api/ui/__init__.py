"""The department portal under ``/ui``: server-rendered pages on the API's own app.

Chinese first, English second; Jinja2 templates, one stylesheet and a small script that
only refreshes live regions (every form works without it). Pages are thin: each calls the
same ``services`` function as the ``/v1`` operation it mirrors, with the signed-in
principal, so the portal adds no power the API does not give (see ``web`` for sessions,
CSRF and escaping; ``department`` and ``operators`` for the pages).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from cloudctl.api.ui import department, operators, sessions, signin, web

STATIC_DIR = web.HERE / "static"


def install(app: FastAPI) -> None:
    """Add the portal's pages and static files to ``app`` (whose ``state.context`` is set)."""
    app.state.portal_sessions = sessions.SessionStore(app.state.context.clock)
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
    for router in (signin.router, department.router, operators.router):
        app.include_router(router, prefix="/ui", include_in_schema=False)

    @app.get("/ui", include_in_schema=False)
    def portal_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=307)
