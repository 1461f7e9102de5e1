"""Models and timings shared by the benchmarks, in plain PyTorch.

Importable without the project's service dependencies, so that benchmarks run in a separate
environment beside a peer package (``bench/landscape_vs_loss_landscapes.py``) can use them.
"""

from __future__ import annotations

import copy
import statistics
import time

import torch
from sklearn.datasets import load_digits
from torch import Tensor, nn

from worker.training.models import DigitsCNN


class Block(nn.Module):
    """ResNet basic block (He et al. 2016): two 3x3 conv-BN, identity or 1x1 projection."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = nn.Sequential()
        if stride != 1 or cin != cout:
            self.skip = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.skip(x))


def resnet18(classes: int = 10) -> nn.Module:
    """ResNet-18 for 32x32 RGB inputs (CIFAR stem: one 3x3 conv, no max-pool), 11.2 M parameters."""
    layers: list[nn.Module] = [nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes)]
    return nn.Sequential(*layers)


def sgd_step_seconds(model: nn.Module, x: Tensor, y: Tensor, repeats: int) -> float:
    """Median wall time of one SGD training step (forward, backward, update) on ``(x, y)``,
    after one warm-up step, on a copy of ``model`` (the caller's weights stay as they are)."""
    work = copy.deepcopy(model).train()
    opt = torch.optim.SGD(work.parameters(), lr=0.01, momentum=0.9)
    times = []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(work(x), y).backward()
        opt.step()
        if x.is_cuda:  # kernels run asynchronously: wait for them before reading the clock
            torch.cuda.synchronize(x.device)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The registry's split: 75 % train (seeded permutation), then the first 512 as eval subset."""
    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    cut = round(0.75 * len(y))
    return x[order[:cut]], y[order[:cut]], x[order[:512]], y[order[:512]]


def train_digits_cnn(train_x: Tensor, train_y: Tensor, channels: int) -> nn.Module:
    """DigitsCNN(channels) after 60 full-batch Adam steps, so the surface has a basin."""
    torch.manual_seed(0)
    model = DigitsCNN(channels)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(train_x), train_y).backward()
        opt.step()
    return model.eval()
