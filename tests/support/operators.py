"""How tests run operator commands at the console: break-glass as the role each command needs.

``init``, ``serve``, ``demo``, ``login``, ``config`` and the plan-file commands (``drill list``,
``show``, ``due``) name no identity; every other command breaks glass as its role's operator
(tokens: secadmin, the audit log: auditor, the rest: sysadmin), which runs it through the API
in process, exactly as a remote command runs on the server.
"""

from __future__ import annotations

NO_IDENTITY = {
    ("init",),
    ("serve",),
    ("demo",),
    ("login",),
    ("config",),
    ("drill", "list"),
    ("drill", "show"),
    ("drill", "due"),
}
ROLE_OF = {"token": "secadmin", "audit": "auditor"}
REASON = "test at the console"


def _command(args: list[str]) -> list[str]:
    words = [arg for arg in args if not arg.startswith("-")]
    return words[:2]


def break_glass(args: list[str], *, role: str | None = None) -> list[str]:
    """The global options that make ``args`` a break-glass command (none for setup commands)."""
    words = _command(args)
    if not words or tuple(words[:1]) in NO_IDENTITY or tuple(words[:2]) in NO_IDENTITY:
        return []
    chosen = role or ROLE_OF.get(words[0], "sysadmin")
    if words[:3] == ["audit", "key"]:
        chosen = role or "secadmin"
    return ["--as", chosen, "--reason", REASON]
