"""Policy as code: Cedar policies decide who may do what, what may be requested, and where it goes.

The policies and their schema live in ``policies/`` (``schema.cedarschema`` + ``*.cedar``).
``engine.PolicyEngine.load(directory)`` parses them once; ``decide`` / ``require`` evaluate
requests in-process with cedarpy and report the ``@id`` of every policy that decided.
``cedar`` is the typed boundary around cedarpy (the only module that imports it).

This package sits in the backends layer: it imports ``cloudctl.model``, ``cloudctl.errors``
and libraries, never the store, the drivers or the services.
"""
