"""Base classes every request schema shares (``server.schemas``, ``server.model_schemas``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

from server.validation import check_json_types


class Strict(BaseModel):
    """Unknown fields are 422, and so are NaN and ±Infinity (PostgreSQL's JSON has neither) and
    values of another JSON type than the schema's (``"5"`` or ``true`` for an integer)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _json_types(cls, data: Any) -> Any:
        check_json_types(cls, data)
        return data


def _kind_required(schema: dict[str, Any]) -> None:
    schema["required"] = ["kind", *schema.get("required", [])]


class KindBase(Strict):
    """A member of a ``kind`` union: the discriminator is required in a request (its default
    serves Python callers)."""

    model_config = ConfigDict(json_schema_extra=_kind_required)
