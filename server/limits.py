"""What a run will cost, computed from its config at submit time (no torch, no worker code).

The parameter count is computed analytically for each task's model, the data set's size from the
task's shapes (inputs and labels of both splits, as the worker holds them), and each probe's
cost: how often it runs, its work per call, and the model-sized float32 vectors it holds at once
(a Lanczos basis, per-example gradients, weight snapshots), which is what exhausts memory on a
large model.  ``tests/unit/test_limits.py`` checks the counts against the models and data sets the
worker builds, for every task and model kind.

A config above a limit is refused with 422 naming the field and the limit (``check_limits``), so
that it never reaches a worker; the dashboard reads the same numbers from
``POST /api/runs/validate`` before submitting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi.exceptions import RequestValidationError

from server import model_params
from server.config import Settings
from server.schemas import (
    CollapseProbe,
    DatasetTask,
    DigitsTask,
    GaussianMixtureTask,
    GrokkingProbe,
    HessianProbe,
    LandscapeProbe,
    ModularTask,
    OpposingProbe,
    OpposingSignalsTask,
    ProbeCostPublic,
    RunConfig,
    RunCostPublic,
)
from server.task_base import PluginTask
from server.task_specs import task_spec

log = logging.getLogger(__name__)
FLOAT32, INT64 = 4, 8
DIGITS_EXAMPLES, DIGITS_PIXELS = 1797, 64  # scikit-learn's load_digits()


def mlp_parameters(
    in_dim: int, hidden: int, depth: int, out_dim: int, batch_norm: bool = False
) -> int:
    """``worker.training.models.mlp``: Linear layers with biases, BatchNorm's weight and bias."""
    widths = [in_dim] + [hidden] * depth
    hidden_layers = sum(w * hidden + hidden + 2 * hidden * batch_norm for w in widths[:-1])
    return hidden_layers + widths[-1] * out_dim + out_dim


def _modular_parameters(task: ModularTask) -> int:
    p, d, h = task.p, task.embed_dim, task.hidden
    if task.model == "mlp":  # EmbeddingMLP
        return p * d + (2 * d * h + h) + (h * p + p)
    # ModularTransformer: embed, pos, qkv, attn_out, MLP, unembed, two optional LayerNorms
    norms = 4 * d * task.layer_norm
    return (p + 1) * d + 3 * d + 4 * d * d + (d * h + h) + (h * d + d) + d * p + norms


def _digits_parameters(task: DigitsTask) -> int:
    if task.model == "cnn":  # DigitsCNN: two 3x3 convolutions, 2x2 pooling of 8x8, a linear head
        c = task.hidden
        return (9 * c + c) + (9 * c * c + c) + (16 * c * 10 + 10)
    return mlp_parameters(DIGITS_PIXELS, task.hidden, task.depth, 10, task.batch_norm)


def _mixture_parameters(task: GaussianMixtureTask | OpposingSignalsTask) -> int:
    return mlp_parameters(task.dim, task.hidden, task.depth, task.n_classes)


PARAMETERS: dict[str, Callable[[Any], int]] = {
    "modular": _modular_parameters,
    "digits": _digits_parameters,
    "gaussian_mixture": _mixture_parameters,
    "opposing_signals": _mixture_parameters,
}


def count_parameters(config: RunConfig) -> int:
    """What ``sum(p.numel() for p in model.parameters())`` of the built model will be (a plugin's
    task states its own: ``PluginTask.parameter_count``)."""
    if config.model is not None:  # RunConfig's validation checked that the task has a spec
        return model_params.count(config.model, task_spec(config.task))
    if isinstance(config.task, PluginTask):
        return _plugin_count(config.task, "parameter_count")
    return PARAMETERS[config.task.kind](config.task)


def _plugin_count(task: PluginTask, method: str) -> Any:
    """A plugin task's own count: a plugin's bug is a 422 on ``task``, logged, never a 500."""
    try:
        value = getattr(task, method)()
        numbers = value if isinstance(value, tuple) else (value,)
        if not all(type(n) is int and n >= 0 for n in numbers):
            raise TypeError(f"{method}() returned {value!r}, not non-negative integers")
    except Exception:
        log.exception("task plugin %r: %s() failed", task.kind, method)
        msg = f"the plugin of task {task.kind!r} could not compute its {method}"
        raise RequestValidationError(
            [{"loc": ("body", "task"), "msg": msg, "type": "plugin_error"}]
        ) from None
    return value


def _split_train(n: int, train_fraction: float) -> int:
    """Training examples of ``worker.training.tasks._split``."""
    return max(1, min(n - 1, round(train_fraction * n)))


def dataset_size(config: RunConfig) -> tuple[int, int]:
    """Elements and bytes of the inputs and labels of both splits."""
    task = config.task
    if isinstance(task, DatasetTask):  # resolved at submit (server.api.datasets)
        return task.held()
    if isinstance(task, PluginTask):
        return _plugin_count(task, "dataset_size")
    if isinstance(task, ModularTask):
        n = task.p * (task.p - 1 if task.op == "div" else task.p)
        return 3 * n, 3 * n * INT64  # (a, b) pairs and the label, all int64
    if isinstance(task, DigitsTask):
        n_train = _split_train(DIGITS_EXAMPLES, 1 - task.test_fraction)
        n = DIGITS_EXAMPLES - n_train + min(n_train, task.train_size or n_train)
        return n * (DIGITS_PIXELS + 1), n * (DIGITS_PIXELS * FLOAT32 + INT64)
    n = task.n_train + task.n_test
    return n * (task.dim + 1), n * (task.dim * FLOAT32 + INT64)


def _lanczos_vectors(n_wanted: int) -> int:
    """Basis of ``worker.probes.linalg.lanczos``: ``ncv + 1`` vectors, ncv = max(2n + 1, 20)."""
    return max(2 * n_wanted + 1, 20) + 1


def _hessian_cost(entry: HessianProbe) -> tuple[dict[str, int], int]:
    """Both ends: 2k pairs; the density's and Hutch++'s vectors are kept too."""
    density, trace = entry.density_steps * entry.density, entry.trace_probes * entry.trace
    return {"hvps": entry.max_hvps}, max(_lanczos_vectors(2 * entry.k), density, trace)


def _landscape_cost(entry: LandscapeProbe) -> tuple[dict[str, int], int]:
    """Directions, θ_s, θ₀ or (at least three) trajectory snapshots, a Hessian basis."""
    vectors = entry.dims + 2 + 3 * (entry.kind == "pca")
    vectors += _lanczos_vectors(2) * (entry.kind == "hessian")
    return {"example_forwards": entry.example_forwards}, vectors


def _grokking_cost(entry: GrokkingProbe) -> tuple[dict[str, int], int]:
    """θ₀; the NTK holds one projection's per-example gradients."""
    return {"example_forwards": 2 * entry.eval_examples}, 1 + entry.ntk_examples * entry.ntk


def _collapse_cost(entry: CollapseProbe) -> tuple[dict[str, int], int]:
    return {"example_forwards": 2 * entry.max_examples}, 0  # features, not weights


def _opposing_cost(entry: OpposingProbe) -> tuple[dict[str, int], int]:
    return {"example_forwards": entry.monitor_size}, 0  # per-example losses


# Per ProbesConfig field: (work per call, model-sized vectors held at once).
PROBE_COSTS: dict[str, Callable[[Any], tuple[dict[str, int], int]]] = {
    "hessian": _hessian_cost,
    "landscape": _landscape_cost,
    "grokking": _grokking_cost,
    "collapse": _collapse_cost,
    "opposing": _opposing_cost,
}


def probe_costs(config: RunConfig, parameters: int) -> dict[str, ProbeCostPublic]:
    """Per enabled probe: calls over the run, work per call, and the vectors it holds."""
    costs = {}
    for name in type(config.probes).model_fields:
        entry = getattr(config.probes, name)
        if entry is not None:
            work, vectors = PROBE_COSTS[name](entry)
            costs[name] = ProbeCostPublic(
                calls=config.steps // entry.every + 1,
                work=work,
                vectors=vectors,
                bytes=vectors * parameters * FLOAT32,
            )
    return costs


def run_cost(config: RunConfig, settings: Settings) -> RunCostPublic:
    parameters = count_parameters(config)
    elements, size = dataset_size(config)
    return RunCostPublic(
        parameters=parameters,
        max_parameters=settings.max_parameters,
        dataset_elements=elements,
        max_dataset_elements=settings.max_dataset_elements,
        dataset_bytes=size,
        max_dataset_bytes=settings.max_dataset_bytes,
        probes=probe_costs(config, parameters),
        max_probe_bytes=settings.max_probe_bytes,
    )


def check_limits(config: RunConfig, settings: Settings) -> RunCostPublic:
    """The run's cost, or a 422 (``RequestValidationError``) naming each limit it exceeds."""
    cost = run_cost(config, settings)
    errors = []

    def exceeds(loc: tuple, what: str, value: int, limit: int, env: str, advice: str) -> None:
        if value > limit:
            msg = f"{what}: {value:,}, above the limit {limit:,} ({env}); {advice}"
            errors.append({"loc": ("body", *loc), "msg": msg, "type": "limit_exceeded"})

    exceeds(
        ("task",) if config.model is None else ("model",),
        "parameters of the model",
        cost.parameters,
        cost.max_parameters,
        "OBS_MAX_PARAMETERS",
        "lower its widths, depth or embed_dim",
    )
    for what, value, limit, env in (
        ("elements", cost.dataset_elements, cost.max_dataset_elements, "OBS_MAX_DATASET_ELEMENTS"),
        ("bytes", cost.dataset_bytes, cost.max_dataset_bytes, "OBS_MAX_DATASET_BYTES"),
    ):
        exceeds(("task",), f"data set {what}", value, limit, env, "use fewer or smaller examples")
    for name, probe in cost.probes.items():
        exceeds(
            ("probes", name),
            f"bytes of the {probe.vectors} model-sized vectors the {name} probe holds",
            probe.bytes,
            cost.max_probe_bytes,
            "OBS_MAX_PROBE_BYTES",
            "use a smaller model or lower the probe's sizes",
        )
    if errors:
        raise RequestValidationError(errors)
    return cost
