"""Validation rules the schemas share: free text, cross-field errors that name their field, and
JSON types as the published JSON schema states them.

Pydantic's lax mode turns ``"5"`` and ``true`` into the integer 5 and 1, and ``"yes"`` into
``True``: a request the OpenAPI document calls invalid would be accepted.  Integral floats
(``5.0``) stay integers, as JSON Schema has it.
"""

from __future__ import annotations

import types
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

# Free text a user names things with: no control characters (PostgreSQL cannot store NUL in text;
# the others only garble the dashboard).  A lone surrogate fails any constrained str anyway.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
# A series name where a query parameter names it (``sort_series``, ``summary``): 1 to 128
# printable characters (the ``series.name`` column's width), no comma (lists are comma-separated).
SERIES_NAME = r"[^,\x00-\x1f\x7f]{1,128}"


def located_error(title: str, loc: tuple, value: Any, message: str) -> ValidationError:
    """A validation error at ``loc`` (relative to the model being validated)."""
    detail = InitErrorDetails(
        type=PydanticCustomError("value_error", "{reason}", {"reason": message}),
        loc=loc,
        input=value,
    )
    return ValidationError.from_exception_data(title, [detail])


def field_error(model: BaseModel, *path: str, message: str) -> ValidationError:
    """A cross-field rule's error located at the field ``path`` names (a model validator's own
    errors name only the model): ``raise field_error(self, "embed_dim", message="...")``."""
    value: Any = model
    for name in path:
        value = getattr(value, name)
    return located_error(type(model).__name__, path, value, message)


def coerced_json_type(annotation: Any, value: Any) -> str | None:
    """The JSON type ``annotation`` expects where lax mode would coerce ``value`` into it, else
    ``None``: a string or boolean for a number, anything but a boolean for a boolean."""
    origin = get_origin(annotation)
    if origin is Annotated:
        return coerced_json_type(get_args(annotation)[0], value)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        options = [a for a in get_args(annotation) if a is not type(None)]
        expected = [coerced_json_type(a, value) for a in options]
        return expected[0] if all(expected) else None
    if origin is Literal:
        literals = get_args(annotation)
        loose = isinstance(value, bool) and not any(isinstance(v, bool) for v in literals)
        return "one of " + ", ".join(map(str, literals)) if loose else None
    if origin in (tuple, list) and isinstance(value, list):
        args = get_args(annotation)
        items = zip(args, value, strict=False) if origin is tuple else ((args[0], v) for v in value)
        return next(filter(None, (coerced_json_type(a, v) for a, v in items)), None)
    if annotation is bool:
        return None if isinstance(value, bool) else "a boolean"
    if annotation is int:
        return "an integer" if isinstance(value, bool | str) else None
    if annotation is float:
        return "a number" if isinstance(value, bool | str) else None
    return None


def check_json_types(model: type[BaseModel], data: Any) -> None:
    """Raise a 422-ready error for the first field of ``data`` that lax mode would coerce."""
    if not isinstance(data, dict):
        return
    for name, field in model.model_fields.items():
        if name in data and (expected := coerced_json_type(field.annotation, data[name])):
            message = f"Input should be {expected}"
            raise located_error(model.__name__, (name,), data[name], message)
