"""The submit-time cost of a config (``server.limits``) against what the worker really builds."""

from __future__ import annotations

from typing import Literal, get_args, get_origin

import pytest

from server.limits import PROBE_COSTS, count_parameters, dataset_size
from server.schemas import DatasetTask, ProbesConfig, RunConfig, TaskConfig
from worker.training.tasks import build_task

TASKS = [
    {"kind": "modular", "p": 7, "model": "mlp", "embed_dim": 5, "hidden": 11},
    {"kind": "modular", "p": 7, "op": "div", "model": "mlp", "embed_dim": 3, "hidden": 4},
    {"kind": "modular", "p": 7, "model": "transformer", "embed_dim": 8, "heads": 2, "hidden": 9},
    {"kind": "modular", "p": 5, "model": "transformer", "embed_dim": 6, "heads": 3, "hidden": 4,
     "layer_norm": True},
    {"kind": "digits", "model": "mlp", "hidden": 12, "depth": 2},
    {"kind": "digits", "model": "mlp", "hidden": 7, "depth": 3, "batch_norm": True,
     "test_fraction": 0.3, "train_size": 100},
    {"kind": "digits", "model": "cnn", "hidden": 4, "test_fraction": 0.1},
    {"kind": "gaussian_mixture", "n_classes": 3, "dim": 5, "hidden": 7, "depth": 1,
     "n_train": 40, "n_test": 20},
    {"kind": "opposing_signals", "n_train": 64, "n_test": 32, "dim": 8, "n_classes": 3,
     "hidden": 6, "depth": 2},
    # the example plugin (examples/observatory-plugin-example, installed by scripts/setup.sh)
    {"kind": "sparse_parity", "n_bits": 10, "k": 3, "n_train": 20, "n_test": 12, "hidden": 7,
     "depth": 2},
]  # fmt: skip


def test_the_table_covers_every_task_and_model_kind() -> None:
    covered = {(t["kind"], t.get("model")) for t in TASKS}
    for cls in get_args(get_args(TaskConfig)[0]):
        if cls is DatasetTask:  # data from disk: tests/unit/test_dataset_task.py, per data kind
            continue
        model = cls.model_fields.get("model")
        models = get_args(model.annotation) if model else (None,)
        assert model is None or get_origin(model.annotation) is Literal
        for name in models:
            assert (cls.model_fields["kind"].default, name) in covered


@pytest.mark.parametrize("task", TASKS, ids=lambda t: f"{t['kind']}-{t.get('model')}")
def test_counts_equal_the_built_model_and_data(task: dict) -> None:
    config = RunConfig.model_validate({"task": task})
    built = build_task(config.task, config.seed)
    assert count_parameters(config) == sum(p.numel() for p in built.model.parameters())
    tensors = (built.train_x, built.train_y, built.test_x, built.test_y)
    elements = sum(t.numel() for t in tensors)
    assert dataset_size(config) == (elements, sum(t.numel() * t.element_size() for t in tensors))


def test_every_probe_has_a_cost() -> None:
    assert set(PROBE_COSTS) == set(ProbesConfig.model_fields)
