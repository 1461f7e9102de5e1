"""The base classes of every task schema, built-in or from a plugin.

Kept apart from ``server.schemas`` because a plugin's schema module derives from them while
``server.schemas`` is still building the task union out of the installed plugins; importing them
must not import ``server.schemas`` (nor torch: the API process imports every plugin's schema).
"""

from __future__ import annotations

from abc import abstractmethod
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


class TaskBase(Strict):
    """A task of the ``kind`` union: the discriminator is required in a request (its default
    serves Python callers)."""

    model_config = ConfigDict(json_schema_extra=_kind_required)


class PluginTask(TaskBase):
    """The schema of a task that a plugin package registers (docs/plugins.md).

    A subclass declares ``kind: Literal["<its kind>"] = "<its kind>"`` and its fields, and tells
    the server, in pure Python, what the worker will build from it, so that the limits
    (``OBS_MAX_PARAMETERS``, ``OBS_MAX_DATASET_*``) are checked at submit time like a built-in
    task's.  The class title (``model_config["title"]``) and docstring are what the form shows.
    """

    @abstractmethod
    def parameter_count(self) -> int:
        """``sum(p.numel() for p in model.parameters())`` of the model the builder returns."""

    @abstractmethod
    def dataset_size(self) -> tuple[int, int]:
        """Elements and bytes of the builder's ``train_x, train_y, test_x, test_y`` together."""
