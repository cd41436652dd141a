"""cloudctl: the control plane of a two-sites-four-centers government cloud.

Start reading at ``docs/architecture.md``. Everything lives in the layer that owns it
(``model``, ``store``, ``drivers``, ``policy``, ``reconcile``, ``recovery``, ``services``,
``api``, ``cli``); the package itself offers only what every layer may use:

- ``__version__``: the release this package is;
- ``errors``: the exception tree (every error cloudctl raises on purpose, with its exit code).

A program that embeds cloudctl opens a context with ``cloudctl.services.context.open_context``
(``cloudctl.settings.Settings`` says where the state and the topology are).
"""

from __future__ import annotations

from cloudctl import errors

__all__ = ["__version__", "errors"]


def __getattr__(name: str) -> str:
    """``__version__``, read from the installed distribution on first use: looking it up scans
    the environment's metadata (tens of milliseconds), which no command start should pay."""
    if name != "__version__":
        raise AttributeError(f"module 'cloudctl' has no attribute {name!r}")
    from importlib import metadata

    try:
        version = metadata.version("cloudctl")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        version = "0+unknown"
    globals()["__version__"] = version
    return version
