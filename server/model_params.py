"""Parameter counts of the model zoo, in closed form (no torch in the server).

Each function mirrors its builder in ``worker.training.zoo``; ``tests/unit/test_zoo.py`` checks
every kind against ``sum(p.numel())`` of the built model.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from server.dataspec import DataSpec
from server.model_schemas import CnnModel, GptModel, MlpModel, ResNetModel, VitModel


def _conv(c_in: int, c_out: int, k: int, norm: str) -> int:
    """A k×k convolution (bias only without a norm) and its BatchNorm's weight and bias."""
    return c_in * c_out * k * k + (c_out if norm == "none" else 2 * c_out)


def _linear(n_in: int, n_out: int, bias: bool = True) -> int:
    return n_in * n_out + n_out * bias


def mlp(config: MlpModel, spec: DataSpec) -> int:
    widths = [math.prod(spec.shape), *config.widths]
    norms = 0 if config.norm == "none" else 2 * sum(config.widths)
    hidden = sum(_linear(a, b) for a, b in zip(widths, widths[1:], strict=False))
    return hidden + norms + _linear(widths[-1], spec.n_classes)


def cnn(config: CnnModel, spec: DataSpec) -> int:
    total, c_in = 0, spec.shape[0]
    for c in config.channels:
        total += _conv(c_in, c, 3, config.norm) + (config.convs - 1) * _conv(c, c, 3, config.norm)
        c_in = c
    return total + _linear(c_in, spec.n_classes)


def resnet(config: ResNetModel, spec: DataSpec) -> int:
    """Basic blocks; projection shortcuts (ResNet-18) where the shape changes."""
    channels, norm = config.stage_channels, config.norm
    total, c_in = _conv(spec.shape[0], channels[0], 3, norm), channels[0]
    for stage, c in enumerate(channels):
        for block in range(config.blocks_per_stage):
            total += _conv(c_in, c, 3, norm) + _conv(c, c, 3, norm)
            reshaped = c_in != c or (stage > 0 and block == 0)
            if config.depth == 18 and reshaped:
                total += _conv(c_in, c, 1, norm)
            c_in = c
    return total + _linear(c_in, spec.n_classes)


def transformer_block(width: int, mlp_ratio: int) -> int:
    """Pre-LayerNorm block: two LayerNorms, fused QKV and output projections, a GELU MLP."""
    hidden = mlp_ratio * width
    attention = _linear(width, 3 * width) + _linear(width, width)
    return 4 * width + attention + _linear(width, hidden) + _linear(hidden, width)


def vit(config: VitModel, spec: DataSpec) -> int:
    channels, height, width = spec.shape
    patches = (height // config.patch_size) * (width // config.patch_size)
    d = config.width
    embed = _linear(channels * config.patch_size**2, d) + d + (patches + 1) * d  # + class token
    blocks = config.depth * transformer_block(d, config.mlp_ratio)
    return embed + blocks + 2 * d + _linear(d, spec.n_classes)


def gpt(config: GptModel, spec: DataSpec) -> int:
    d, vocab = config.width, spec.vocab or 0
    embed = vocab * d + config.context * d
    blocks = config.layers * transformer_block(d, config.mlp_ratio)
    return embed + blocks + 2 * d + (0 if config.tied_embeddings else vocab * d)


COUNTS: dict[str, Callable[[Any, DataSpec], int]] = {
    "mlp": mlp,
    "cnn": cnn,
    "resnet": resnet,
    "vit": vit,
    "gpt": gpt,
}


def count(config: MlpModel | CnnModel | ResNetModel | VitModel | GptModel, spec: DataSpec) -> int:
    """``sum(p.numel() for p in model.parameters())`` of the zoo model built for ``spec``."""
    return COUNTS[config.kind](config, spec)
