"""Calling a recovery hook: a command, or an HTTP request, bounded by the hook's timeout.

Invariants: a call never raises for what the hook did; it returns the outcome to record
(``ok``, how long it took, the exit code or HTTP status, the first line of what went
wrong), and the engine applies the hook's failure policy. A command gets the run, step
and phase in ``CLOUDCTL_RUN``, ``CLOUDCTL_STEP``, ``CLOUDCTL_HOOK_SCOPE``; an HTTP POST
gets them as its JSON body.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

from cloudctl.model import recovery as model

OUTPUT_KEPT_CHARS = 500


def call(hook: model.Hook, *, about: dict[str, Any]) -> dict[str, Any]:
    """Run the hook; the outcome to record with its step."""
    started = time.monotonic()
    if hook.command is not None:
        outcome = _command(hook, hook.command, about)
    else:
        assert hook.http is not None
        outcome = _http(hook, hook.http, about)
    return {
        "hook": hook.label,
        "when": hook.when,
        "scope": hook.scope,
        "on_failure": hook.on_failure.value,
        "elapsed_s": round(time.monotonic() - started, 3),
        **outcome,
    }


def _command(hook: model.Hook, command: model.CommandCall, about: dict[str, Any]) -> dict[str, Any]:
    env = {
        **os.environ,
        "CLOUDCTL_RUN": str(about.get("run", "")),
        "CLOUDCTL_STEP": str(about.get("step", "")),
        "CLOUDCTL_HOOK_SCOPE": f"{hook.when} {hook.scope}",
    }
    try:
        finished = subprocess.run(
            list(command.argv),
            capture_output=True,
            text=True,
            timeout=hook.timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"ok": False, "error": f"timed out after {hook.timeout_s:g} s"}
    except OSError as error:
        return {"ok": False, "error": f"could not start: {error.strerror or error}"}
    output = (finished.stdout or "")[-OUTPUT_KEPT_CHARS:]
    if finished.returncode != 0:
        last = (finished.stderr or finished.stdout or "").strip().splitlines()
        return {
            "ok": False,
            "exit_code": finished.returncode,
            "error": f"exit {finished.returncode}" + (f": {last[-1][:200]}" if last else ""),
            "output": output,
        }
    return {"ok": True, "exit_code": 0, "output": output}


def _http(hook: model.Hook, http: model.HttpCall, about: dict[str, Any]) -> dict[str, Any]:
    import httpx  # only a run with an HTTP hook needs it; a command's start does not

    body = {**about, "when": hook.when, "hook": hook.label}
    try:
        if http.method == "POST":
            response = httpx.post(http.url, json=body, timeout=hook.timeout_s)
        else:
            response = httpx.get(http.url, timeout=hook.timeout_s)
    except httpx.TimeoutException:
        return {"ok": False, "error": f"timed out after {hook.timeout_s:g} s"}
    except httpx.HTTPError as error:
        return {"ok": False, "error": f"{type(error).__name__}: {error}"[:300]}
    if not response.is_success:
        return {"ok": False, "status": response.status_code, "error": f"HTTP {response.status_code}"}
    return {"ok": True, "status": response.status_code}
