"""The model zoo (``worker.training.zoo``): submit-time parameter counts against the built
models, and a few training steps of each kind on data of its shape."""

from __future__ import annotations

import pytest
import torch
from pydantic import TypeAdapter
from torch import nn

from server.dataspec import DataSpec
from server.limits import count_parameters
from server.model_params import COUNTS, count
from server.model_schemas import ModelConfig
from server.schemas import RunConfig
from server.task_specs import task_spec
from worker.training.tasks import build_task
from worker.training.zoo import BUILDERS, build_model

MODEL = TypeAdapter(ModelConfig)
IMAGE = DataSpec("image", (3, 8, 8), 4)
GREY = DataSpec("image", (1, 12, 12), 5)
VECTOR = DataSpec("vector", (7,), 3)
TEXT = DataSpec("tokens", (12,), 11, target="next_token", vocab=11)

CASES = [
    ({"kind": "mlp", "widths": [9]}, VECTOR),
    ({"kind": "mlp", "widths": [8, 5, 6], "activation": "gelu", "norm": "batchnorm"}, IMAGE),
    ({"kind": "mlp", "widths": [4, 4], "activation": "tanh", "norm": "layernorm"}, VECTOR),
    ({"kind": "cnn", "channels": [4, 6], "convs": 2}, IMAGE),
    ({"kind": "cnn", "channels": [6, 8, 4], "convs": 1, "norm": "none", "pool": "avg"}, GREY),
    ({"kind": "resnet", "depth": 8, "width": 0.25}, IMAGE),
    ({"kind": "resnet", "depth": 14, "width": 0.5, "norm": "none"}, GREY),
    ({"kind": "resnet", "depth": 18, "width": 0.0625}, IMAGE),
    ({"kind": "resnet", "depth": 18, "width": 0.1, "norm": "none"}, GREY),
    ({"kind": "vit", "patch_size": 4, "depth": 2, "width": 12, "heads": 3, "mlp_ratio": 2}, IMAGE),
    ({"kind": "vit", "patch_size": 3, "depth": 1, "width": 8, "heads": 2}, GREY),
    ({"kind": "gpt", "layers": 2, "heads": 2, "width": 8, "context": 12}, TEXT),
    ({"kind": "gpt", "layers": 1, "heads": 1, "width": 6, "context": 16,
      "tied_embeddings": False, "mlp_ratio": 2}, TEXT),
]  # fmt: skip


def test_every_kind_has_a_builder_a_count_and_cases() -> None:
    kinds = {case["kind"] for case, _ in CASES}
    assert set(BUILDERS) == set(COUNTS) == kinds


@pytest.mark.parametrize(("case", "spec"), CASES, ids=lambda c: str(c))
def test_the_count_at_submit_equals_the_built_model(case: dict, spec: DataSpec) -> None:
    config = MODEL.validate_python(case)
    assert config.check(spec) == []
    model = build_model(config, spec)
    assert count(config, spec) == sum(p.numel() for p in model.parameters())


def _batch(spec: DataSpec, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A forced easy problem: ``n`` fixed random examples (memorized), or a counting sequence
    (next token = token + 1 mod vocab) for next-token data."""
    gen = torch.Generator().manual_seed(0)
    if spec.target == "next_token":
        start = torch.randint(spec.vocab, (n, 1), generator=gen)
        seq = (start + torch.arange(spec.shape[0] + 1)) % spec.vocab
        return seq[:, :-1], seq[:, 1:]
    x = torch.randn(n, *spec.shape, generator=gen)
    return x, torch.arange(n) % spec.n_classes


def _loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(out.flatten(0, -2), y.flatten())


@pytest.mark.parametrize(("case", "spec"), CASES, ids=lambda c: str(c))
def test_each_kind_trains_with_finite_decreasing_loss(case: dict, spec: DataSpec) -> None:
    torch.manual_seed(0)
    model = build_model(MODEL.validate_python(case), spec)
    x, y = _batch(spec, 16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(25):
        loss = _loss(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < 0.95 * losses[0]


@pytest.mark.parametrize(
    ("task", "model"),
    [
        ({"kind": "digits"}, {"kind": "cnn", "channels": [4, 8]}),
        ({"kind": "gaussian_mixture", "dim": 6, "n_classes": 3}, {"kind": "mlp", "widths": [5]}),
    ],
)
def test_a_task_with_a_zoo_model_has_inputs_of_its_spec(task: dict, model: dict) -> None:
    config = RunConfig.model_validate({"task": task, "model": model})
    built = build_task(config.task, config.seed, config.model)
    assert built.train_x.shape[1:] == built.test_x.shape[1:] == task_spec(config.task).shape
    assert count_parameters(config) == sum(p.numel() for p in built.model.parameters())


def test_a_deep_resnet_without_batchnorm_keeps_its_scale_at_initialisation() -> None:
    """He-normal convolutions and Fixup's 1/√L on each residual branch: the features of a
    ResNet-110 have the scale of a ResNet-8's (unscaled, the variance would double per block)."""
    x = torch.randn(64, *IMAGE.shape, generator=torch.Generator().manual_seed(1))
    scales = []
    for depth in (8, 110):
        torch.manual_seed(0)
        model = build_model(
            MODEL.validate_python(
                {"kind": "resnet", "depth": depth, "width": 0.25, "norm": "none"}
            ),
            IMAGE,
        )
        with torch.no_grad():
            scales.append(model.features(x).pow(2).mean().item())
    assert 0.25 < scales[1] / scales[0] < 4
