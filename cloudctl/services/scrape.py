"""Who may read ``/metrics``: the scrape token, or a person the policies let read the centers.

``/metrics`` carries every department's quota gauges and every center's health, capacity and
links: what ``/v1/quota`` shows a department of its own subtree only, and ``/v1/status`` the
sysadmin only. So it is not open to whoever reaches the port.

- Prometheus presents the **scrape token** as a bearer token (``authorization: {type: Bearer,
  credentials_file: …}`` in its scrape config). It is a random secret in
  ``settings.metrics_token_file`` (default ``<home>/metrics.token``), made on first use and
  readable by the service user alone; replicas that share the file share the token. It reads
  ``/metrics`` and nothing else. A token made here looks like a person's (``cct_scrape.…``), so
  secret scanners and ``cloudctl --token-file`` know it: a cron job writes the textfile with
  ``cloudctl --token-file <home>/metrics.token metrics --write …``.
- A person's own token reads it too when the policies let them read the centers
  (``center.read``, as ``/v1/status``): that is what ``cloudctl metrics`` sends.

Invariants: the token is compared in constant time; anything else is authenticated as a person
(so a wrong secret counts toward the source's throttle, as at every other endpoint) and refused
401 or 403 before any state is read. A token file that cannot be used (missing, open to other
users, not one secret) accepts no scrape token and is logged; it does not change what anyone
else is answered, and a refusal never names the file.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from pathlib import Path

from cloudctl import errors
from cloudctl.services import context as ctx_module
from cloudctl.services import identity, private_files, status

log = logging.getLogger("cloudctl.scrape")

FIELD = "metrics_token_file"
_BEARER = "bearer "


def token_file(ctx: ctx_module.Context) -> Path:
    return ctx.settings.metrics_token_file or ctx.settings.home / "metrics.token"


def token(ctx: ctx_module.Context) -> str:
    """The scrape token; made (0600) on first use when the file is the default one."""
    path = token_file(ctx)
    if ctx.settings.metrics_token_file is None and not path.exists():
        private_files.create(path, f"{identity.TOKEN_PREFIX}scrape.{secrets.token_urlsafe(32)}\n")
    text = private_files.read(path, field=FIELD, missing=f"no scrape token at {str(path)!r}").strip()
    if len(text) < 32 or not text.isascii() or any(c.isspace() for c in text):
        raise errors.InvalidInput(
            f"{str(path)!r} must hold one secret of at least 32 characters and no spaces", field=FIELD
        )
    return text


def authorize(ctx: ctx_module.Context, *, authorization: str | None, source: str) -> None:
    """Let the scrape token or a person allowed ``center.read`` through; raise otherwise."""
    given = authorization or ""
    if given[: len(_BEARER)].lower() == _BEARER and _is_scrape_token(ctx, given[len(_BEARER) :].strip()):
        return
    principal = identity.authenticate(ctx, authorization=authorization, source=source)
    status.authorize_supervision(ctx, principal=principal)


def _is_scrape_token(ctx: ctx_module.Context, given: str) -> bool:
    try:
        expected = token(ctx)
    except errors.InvalidInput as unusable:
        log.warning("/metrics accepts no scrape token: %s", unusable.one_line())
        return False
    return hmac.compare_digest(given.encode(), expected.encode())
