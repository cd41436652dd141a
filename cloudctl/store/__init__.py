"""Durable state (SQLAlchemy 2 Core + Alembic): the only package that imports SQLAlchemy.

Modules by resource kind: ``orgs`` (the org tree), ``quotas`` (limits, counters,
reservations), ``centers`` (centers, capacity, links, settings). ``db.Store``
opens the database and hands out transactions; every function here takes the
transaction as its first argument and the rest as keywords.
"""
