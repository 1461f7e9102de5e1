"""The base classes of every task schema, built-in or from a plugin.

Kept apart from ``server.schemas`` because a plugin's schema module derives from them while
``server.schemas`` is still building the task union out of the installed plugins; importing them
must not import ``server.schemas`` (nor torch: the API process imports every plugin's schema).
"""

from __future__ import annotations

from abc import abstractmethod

from server.dataspec import DataSpec
from server.schema_base import KindBase


class TaskBase(KindBase):
    """A task of the ``kind`` union."""


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

    def data_spec(self) -> DataSpec | None:
        """The shape of the builder's data, so that a zoo model (``RunConfig.model``) can be
        trained on it; ``None`` (the default): the task keeps its own model."""
        return None
