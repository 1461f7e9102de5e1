"""The model zoo: ``RunConfig.model`` built for the task's data (``server.model_schemas``).

``build_model(config, spec)`` seeds nothing: the caller seeds, as the task builders do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from server.dataspec import DataSpec
from worker.training.zoo.convnets import build_cnn, build_resnet
from worker.training.zoo.dense import build_mlp
from worker.training.zoo.transformers import GPT, ViT

__all__ = ["BUILDERS", "build_model", "with_model"]

BUILDERS: dict[str, Callable[[Any, DataSpec], nn.Module]] = {
    "mlp": build_mlp,
    "cnn": build_cnn,
    "resnet": build_resnet,
    "vit": ViT,
    "gpt": GPT,
}


def build_model(config: Any, spec: DataSpec) -> nn.Module:
    """A freshly initialised model of ``config.kind`` for data of ``spec``."""
    return BUILDERS[config.kind](config, spec)


def with_model(task: Any, config: Any, spec: DataSpec, seed: int) -> Any:
    """``task`` (a ``worker.training.tasks.Task``) with the zoo model of ``config``, initialised
    from ``seed``, and its inputs in the shape of ``spec`` (digits' flat pixels become images)."""
    torch.manual_seed(seed)
    shape = (-1, *spec.shape)
    return dataclasses.replace(
        task,
        train_x=task.train_x.reshape(shape),
        test_x=task.test_x.reshape(shape),
        model=build_model(config, spec),
    )
