"""The API reference answers questions: every operation, parameter and field is described, and
every operation shows a request and a response example that the API itself would accept or give.

The examples are checked against the models the routes use (bodies as strictly as the API reads
them), so an example can never drift from what the API does.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import TypeAdapter

from cloudctl.api import app as api_app

APP = api_app.create_app()
SPEC = APP.openapi()
SCHEMAS: dict[str, Any] = SPEC["components"]["schemas"]
OPERATIONS = [
    (method.upper(), path, operation)
    for path, methods in SPEC["paths"].items()
    for method, operation in methods.items()
]


@dataclasses.dataclass(frozen=True)
class Route:
    """One operation as served: its full path, and the models it reads and answers."""

    method: str
    path: str
    body: Any  # the body's type, or None
    response_model: Any
    status_code: int | None


def _routes(routes: list[Any]) -> Iterator[Route]:
    for route in routes:
        if isinstance(route, APIRoute):
            contexts: list[Any] = [route]
        elif hasattr(route, "effective_route_contexts"):  # a router included as a whole
            contexts = list(route.effective_route_contexts())
        else:
            continue
        for context in contexts:
            original = getattr(context, "original_route", context)
            if not (isinstance(original, APIRoute) and context.include_in_schema):
                continue
            body = original.body_field.field_info.annotation if original.body_field else None
            for method in sorted(context.methods):
                yield Route(method, context.path, body, context.response_model, context.status_code)


ROUTES = list(_routes(APP.routes))
JSON = "application/json"


def _id(method: str, path: str) -> str:
    return f"{method} {path}"


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def _examples(schema: dict[str, Any]) -> list[Any]:
    """The examples of a schema, of the model it refers to, or of each item of a list of them."""
    own = list(schema.get("examples") or [])
    if own:
        return own
    resolved = _resolve(schema)
    if resolved is not schema:
        return list(resolved.get("examples") or [])
    if schema.get("type") == "array" and "items" in schema:
        return [[item] for item in _examples(schema["items"])]
    return []


@pytest.mark.parametrize(
    ("method", "path", "operation"), OPERATIONS, ids=[_id(m, p) for m, p, _ in OPERATIONS]
)
def test_every_operation_says_what_it_does(method: str, path: str, operation: dict[str, Any]) -> None:
    assert operation.get("summary"), "no summary"
    assert len(operation.get("description", "")) >= 20, "no description"
    missing = [p["name"] for p in operation.get("parameters", []) if not p.get("description")]
    assert missing == [], f"parameters without a description: {missing}"
    unshown = [
        p["name"]
        for p in operation.get("parameters", [])
        if not (p.get("example") is not None or p.get("examples") or p["schema"].get("examples"))
    ]
    assert unshown == [], f"parameters without an example: {unshown}"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_schema_and_field_is_described(name: str) -> None:
    schema = SCHEMAS[name]
    assert schema.get("description"), f"{name}: no description (the model's docstring)"
    missing = [field for field, prop in schema.get("properties", {}).items() if not prop.get("description")]
    assert missing == [], f"{name}: fields without a description: {missing}"


def _request_example(route: Route, operation: dict[str, Any]) -> None:
    content = operation.get("requestBody", {}).get("content", {})
    if route.body is None:
        assert not content
        return
    examples = _examples(content[JSON]["schema"])
    assert examples, "no request example"
    adapter: TypeAdapter[Any] = TypeAdapter(route.body)
    for example in examples:
        adapter.validate_json(json.dumps(example))  # as strictly as the API reads a body


def _response_example(route: Route, operation: dict[str, Any]) -> None:
    success = next(answer for code, answer in operation["responses"].items() if code.startswith("2"))
    if route.status_code == 204:
        return
    content = success.get("content", {})
    if route.response_model is None:  # not JSON: the example sits on its media type
        assert any(media.get("example") or media.get("examples") for media in content.values()), (
            f"no response example in {sorted(content)}"
        )
        return
    examples = _examples(content[JSON]["schema"])
    assert examples, "no response example"
    adapter: TypeAdapter[Any] = TypeAdapter(route.response_model)
    for example in examples:
        adapter.validate_json(json.dumps(example))


def test_the_routes_found_are_the_operations_documented() -> None:
    assert sorted((r.method, r.path) for r in ROUTES) == sorted((m, p) for m, p, _ in OPERATIONS)


@pytest.mark.parametrize("route", ROUTES, ids=[_id(r.method, r.path) for r in ROUTES])
def test_every_operation_shows_a_request_and_a_response_example(route: Route) -> None:
    operation = SPEC["paths"][route.path][route.method.lower()]
    _request_example(route, operation)
    _response_example(route, operation)
