"""Desired-state types of cloudctl: pydantic models and pure functions, no I/O.

Every other layer builds on these; this package imports nothing from cloudctl
except ``cloudctl.errors``.
"""
