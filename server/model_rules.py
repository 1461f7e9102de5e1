"""Submit-time rules that tie a run's model, data, probes and precision together.

A combination the worker could not run is a 422 naming the field and the reason, raised from
``RunConfig``'s validation (so the CLI and ``POST /api/runs/validate`` see it too):

- ``model``: the zoo model must take the task's data (``ModelConfig.check`` against the task's
  ``DataSpec``); a task kind without a spec keeps its built-in model.
- ``probes.collapse`` and ``probes.grokking`` need a classification task (one label per
  example); on next-token data the opposing probe's per-example losses are per sequence (the
  mean over its positions), and the Hessian and landscape probes use the mean loss as always.
- ``amp: fp16`` and ``compile`` are CUDA options: refused with ``device: cpu``; a run with
  ``device: auto`` that lands on a CPU worker runs without them and says so in an event
  (``worker.training.precision``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import ValidationError

from server.task_specs import SPECS, task_spec
from server.validation import field_error

if TYPE_CHECKING:
    from server.schemas import RunConfig

CLASSIFICATION_PROBES = {
    "collapse": "neural collapse needs a classification task (class means of features)",
    "grokking": "grokking's accuracies and NTK-label alignment need one class label per example",
}


def check_run(config: RunConfig) -> None:
    """Raise a ``ValidationError`` at the first field of ``config`` that breaks a rule."""
    if error := _model_error(config) or _probe_error(config) or _precision_error(config):
        raise error


def _model_error(config: RunConfig) -> ValidationError | None:
    if config.model is None:
        return None
    spec = task_spec(config.task)
    if spec is None and config.task.kind in SPECS:  # a data set's: checked once it is resolved
        return None
    if spec is None:
        return field_error(
            config, "model", message=f"task kind {config.task.kind!r} keeps its own model"
        )
    for field, reason in config.model.check(spec):
        return field_error(config, "model", field, message=reason)
    return None


def _probe_error(config: RunConfig) -> ValidationError | None:
    spec = task_spec(config.task)
    if spec is None or spec.target == "class":
        return None
    for probe, reason in CLASSIFICATION_PROBES.items():
        if getattr(config.probes, probe) is not None:
            return field_error(config, "probes", probe, message=reason)
    return None


def _precision_error(config: RunConfig) -> ValidationError | None:
    if config.device != "cpu":
        return None
    if config.amp == "fp16":
        return field_error(config, "amp", message="fp16 needs a CUDA device (use bf16 on a CPU)")
    if config.compile:
        return field_error(config, "compile", message="torch.compile is a CUDA option here")
    return None
