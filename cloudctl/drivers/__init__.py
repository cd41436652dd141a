"""Backends behind small Protocols, one per capability (see ``drivers.base``).

Invariants: a driver returns cloudctl dataclasses from ``drivers.base``, never SDK
objects, and reports failures as ``cloudctl.errors``. Only ``drivers/<backend>/``
imports that backend's SDK. ``drivers.simulator`` is the embedded default backend
for every capability and the reference the driver contract tests hold others to.
Drivers never import the store (a sibling layer); services wire them together.
"""
