"""The zoo's convolutional networks: VGG-style stages and residual networks (He et al. 2016).

Convolutions carry a bias only without BatchNorm (BatchNorm's shift replaces it).  The classifier
is the last ``nn.Linear`` (``head``) after global average pooling, where the collapse probe
reads the penultimate features.

Initialisation: He et al. (2015)'s normal initialisation of every convolution (fan-in, ReLU gain),
which keeps the activations' scale through conv-ReLU layers (PyTorch's default shrinks it by
about √3 per layer and leaves a deep network without BatchNorm nearly constant), biases zero.
Without BatchNorm, the last convolution of each residual branch is further scaled by 1/√L for
L blocks, as Fixup (Zhang et al. 2019) does, so that the sum of L branches keeps the scale
bounded instead of doubling the variance at every block.
"""

from __future__ import annotations

import torch
from torch import nn

from server.dataspec import DataSpec
from server.model_schemas import CnnModel, ResNetModel


def conv_norm(c_in: int, c_out: int, norm: str, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """``kernel``×``kernel`` convolution (same padding) followed by BatchNorm2d or nothing."""
    batchnorm = norm == "batchnorm"
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=not batchnorm)
    return nn.Sequential(conv, nn.BatchNorm2d(c_out) if batchnorm else nn.Identity())


class Classifier(nn.Module):
    """``features`` (an image to a feature map), global average pooling, the linear ``head``."""

    def __init__(self, features: nn.Module, channels: int, n_classes: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Linear(channels, n_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(images).mean(dim=(2, 3)))


def init_convs(model: nn.Module) -> None:
    """He-normal convolutions (fan-in, ReLU), zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)


def build_cnn(config: CnnModel, spec: DataSpec) -> Classifier:
    pool = nn.MaxPool2d if config.pool == "max" else nn.AvgPool2d
    stages: list[nn.Module] = []
    c_in = spec.shape[0]
    for c in config.channels:
        layers: list[nn.Module] = []
        for i in range(config.convs):
            layers += [conv_norm(c_in if i == 0 else c, c, config.norm), nn.ReLU()]
        stages.append(nn.Sequential(*layers, pool(2)))
        c_in = c
    model = Classifier(nn.Sequential(*stages), c_in, spec.n_classes)
    init_convs(model)
    return model


class BasicBlock(nn.Module):
    """Two 3×3 convolutions and a shortcut: identity, or where the shape changes, a 1×1
    projection (``projection``) or subsampling with zero-padded channels (He et al.'s option A,
    parameter-free, the CIFAR ResNets')."""

    def __init__(self, c_in: int, c_out: int, stride: int, norm: str, projection: bool) -> None:
        super().__init__()
        self.conv1 = conv_norm(c_in, c_out, norm, stride=stride)
        self.conv2 = conv_norm(c_out, c_out, norm)
        self.stride, self.pad = stride, c_out - c_in
        reshaped = stride != 1 or c_in != c_out
        self.project = conv_norm(c_in, c_out, norm, 1, stride) if projection and reshaped else None

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.project is not None:
            return self.project(x)
        x = x[:, :, :: self.stride, :: self.stride]
        return nn.functional.pad(x, (0, 0, 0, 0, 0, self.pad)) if self.pad else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(torch.relu(self.conv1(x)))
        return torch.relu(out + self.shortcut(x))


def build_resnet(config: ResNetModel, spec: DataSpec) -> Classifier:
    """Stem, then ``stages.<i>`` (the first block of each stage after the first has stride 2)."""
    channels = config.stage_channels
    stem = nn.Sequential(conv_norm(spec.shape[0], channels[0], config.norm), nn.ReLU())
    stages, c_in = [], channels[0]
    for i, c in enumerate(channels):
        blocks = []
        for b in range(config.blocks_per_stage):
            stride = 2 if i > 0 and b == 0 else 1
            blocks.append(BasicBlock(c_in, c, stride, config.norm, config.depth == 18))
            c_in = c
        stages.append(nn.Sequential(*blocks))
    features = nn.Sequential()
    features.add_module("stem", stem)
    features.add_module("stages", nn.Sequential(*stages))
    model = Classifier(features, c_in, spec.n_classes)
    init_convs(model)
    if config.norm == "none":
        blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
        with torch.no_grad():
            for block in blocks:
                block.conv2[0].weight.mul_(len(blocks) ** -0.5)
    return model
