"""The HTTP API for departments and operators (FastAPI): the only package that imports FastAPI."""
