"""The API reference (``/docs``, ``/redoc``) served from files shipped inside the package.

FastAPI's default reference pages load Swagger UI and ReDoc from a public CDN (and ReDoc's
fonts from Google): on a government intranet without internet access they render blank.
Here the same pages point at ``/docs/static/...``, unmodified release files of Swagger UI and
ReDoc vendored in ``static/`` with their licences (``static/VENDORED.md`` names versions and
checksums). Invariant: no page of the reference names a host other than the one serving it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi import docs
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/docs/static"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'self'; base-uri 'none'; object-src 'none'"
)
"""The reference pages fetch nothing from another origin, not even an image the libraries name
(ReDoc's logo on its CDN, Swagger UI's validator badge): the browser refuses before asking.
FastAPI's pages start the libraries with an inline script, hence ``'unsafe-inline'``."""


def _offline(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def install(app: FastAPI) -> None:
    """Serve ``/docs``, ``/docs/oauth2-redirect`` and ``/redoc`` from the vendored assets.

    The app must be created with ``docs_url=None, redoc_url=None`` so these replace FastAPI's.
    """
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="docs-static")
    oauth2_redirect = "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _offline(
            docs.get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} — API 参考 API reference",
                swagger_js_url=f"{root}{STATIC_PREFIX}/swagger-ui/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{STATIC_PREFIX}/swagger-ui/swagger-ui.css",
                swagger_favicon_url=f"{root}{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
                oauth2_redirect_url=f"{root}{oauth2_redirect}",
                swagger_ui_parameters={"validatorUrl": None},
            )
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    def swagger_ui_redirect() -> HTMLResponse:
        return docs.get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _offline(
            docs.get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} — API 参考 API reference",
                redoc_js_url=f"{root}{STATIC_PREFIX}/redoc/redoc.standalone.js",
                redoc_favicon_url=f"{root}{STATIC_PREFIX}/swagger-ui/favicon-32x32.png",
                with_google_fonts=False,
            )
        )
