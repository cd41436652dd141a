"""The portal and the API name a refused input by one rule."""

from __future__ import annotations

import pydantic
import pytest
from fastapi.exceptions import RequestValidationError

from cloudctl.api import problems
from cloudctl.api.ui import web


class _Order(pydantic.BaseModel):
    count: int
    name: str = pydantic.Field(max_length=5)


def _model_error(data: dict[str, object]) -> pydantic.ValidationError:
    with pytest.raises(pydantic.ValidationError) as caught:
        _Order.model_validate(data)
    return caught.value


def test_a_form_field_is_named_as_the_api_names_it() -> None:
    error = _model_error({"count": "many", "name": "ok"})
    assert web.validation_message(error) == ("count", problems.field_and_reason(error)[1])
    assert web.validation_message(error)[1].startswith("Input should be a valid integer")


def test_request_locations_are_dropped_from_the_field_name() -> None:
    error = RequestValidationError(
        [{"type": "missing", "loc": ("header", "x-tenant"), "msg": "Field required", "input": None}]
    )
    assert problems.field_and_reason(error) == ("x-tenant", "Field required")
    assert web.validation_message(error) == ("x-tenant", "Field required")


def test_a_body_that_is_not_json_is_the_body() -> None:
    error = RequestValidationError(
        [
            {
                "type": "json_invalid",
                "loc": ("body", 7),
                "msg": "JSON decode error",
                "ctx": {"error": "Expecting value"},
            }
        ]
    )
    assert problems.field_and_reason(error) == ("body", "not valid JSON (Expecting value, at character 7)")
    assert web.validation_message(error)[0] == "body"


def test_an_error_without_a_location_is_the_form() -> None:
    error = RequestValidationError([{"type": "value_error", "loc": (), "msg": "Value error, bad"}])
    assert web.validation_message(error) == ("form", "Value error, bad")
