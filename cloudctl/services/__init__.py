"""Use cases shared by the CLI and the API: each takes a ``context.Context`` and keywords.

Services hold the business rules that span the store, the drivers and the
policies; entry points above them only parse input and render output.
"""
