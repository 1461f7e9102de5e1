"""The model zoo: ``RunConfig.model`` built for the task's data (``server.model_schemas``).

``build_model(config, spec)`` seeds nothing: the caller seeds, as the task builders do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from server.dataspec import DataSpec
from worker.training.zoo.convnets import build_cnn, build_resnet
from worker.training.zoo.dense import build_mlp
from worker.training.zoo.transformers import GPT, ViT

__all__ = ["BUILDERS", "build_model"]

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
