"""The zoo's fully connected network."""

from __future__ import annotations

import math

from torch import nn

from server.dataspec import DataSpec
from server.model_schemas import MlpModel

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
NORMS: dict[str, type[nn.Module]] = {"batchnorm": nn.BatchNorm1d, "layernorm": nn.LayerNorm}


def build_mlp(config: MlpModel, spec: DataSpec) -> nn.Sequential:
    """Flatten, then Linear–norm–activation per hidden width, then the linear classifier
    (``head``, the last ``nn.Linear``: the collapse probe's classifier)."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(spec.shape)
    for hidden in config.widths:
        norm = [NORMS[config.norm](hidden)] if config.norm != "none" else []
        layers += [nn.Linear(width, hidden), *norm, ACTIVATIONS[config.activation]()]
        width = hidden
    model = nn.Sequential(*layers)
    model.add_module("head", nn.Linear(width, spec.n_classes))
    return model
