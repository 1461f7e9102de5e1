"""The :class:`~server.dataspec.DataSpec` of each task kind, computed from its config alone.

A task kind whose data a zoo model can take registers its spec here (``SPECS[kind]``); a kind
without one keeps its built-in model (``RunConfig.model`` is then refused at submit).  Shared by
the server's checks and the worker's builder, so both see the same shapes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from server.dataspec import DataSpec
from server.task_base import PluginTask

if TYPE_CHECKING:  # server.schemas validates a RunConfig with these specs
    from server.dataset_schemas import DatasetTask
    from server.schemas import DigitsTask, GaussianMixtureTask, ModularTask, OpposingSignalsTask


log = logging.getLogger(__name__)


def _modular(task: ModularTask) -> DataSpec:
    return DataSpec("tokens", (2,), task.p, vocab=task.p)


def _digits(task: DigitsTask) -> DataSpec:
    return DataSpec("image", (1, 8, 8), 10)


def _mixture(task: GaussianMixtureTask | OpposingSignalsTask) -> DataSpec:
    return DataSpec("vector", (task.dim,), task.n_classes)


def _dataset(task: DatasetTask) -> DataSpec | None:
    """Known once the data set is resolved (at submit from the catalog, in the worker from its
    disk: ``server.api.datasets.resolve_task``); ``None`` before."""
    return task.spec


SPECS: dict[str, Callable[[Any], DataSpec | None]] = {
    "modular": _modular,
    "digits": _digits,
    "gaussian_mixture": _mixture,
    "opposing_signals": _mixture,
    "dataset": _dataset,
}


def _plugin_spec(task: PluginTask) -> DataSpec | None:
    """A plugin task's own spec; a plugin's bug is a ``ValueError`` (a 422 at submit), logged."""
    try:
        spec = task.data_spec()
        if spec is not None and not isinstance(spec, DataSpec):
            raise TypeError(f"data_spec() returned {type(spec).__name__}, not a DataSpec")
    except Exception:
        log.exception("task plugin %r: data_spec() failed", task.kind)
        raise ValueError(f"the plugin of task {task.kind!r} could not state its data") from None
    return spec


def task_spec(task: Any) -> DataSpec | None:
    """The shape contract of ``task``'s data, or ``None`` for a kind that registered none (a
    plugin's task states its own: ``PluginTask.data_spec``)."""
    if isinstance(task, PluginTask):
        return _plugin_spec(task)
    spec = SPECS.get(task.kind)
    return spec(task) if spec else None
