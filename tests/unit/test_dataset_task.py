"""The ``dataset`` task: what the server counts at submit equals what the worker builds, and the
options (subset, normalisation, augmentation, next-token losses) do what they say."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
import torch
from torch.nn import functional

from server.config import Settings
from server.datasets import read_manifest
from server.limits import count_parameters, dataset_size
from server.schemas import RunConfig
from worker.training.augment import CropFlip
from worker.training.datasets import build_dataset_task

VIT = {"kind": "vit", "patch_size": 4, "depth": 1, "width": 8, "heads": 2}
GPT = {"kind": "gpt", "layers": 1, "heads": 2, "width": 8, "context": 64}
CASES = [
    ({"name": "digits"}, {"kind": "mlp", "widths": [7, 5]}),
    ({"name": "digits-images", "subset": 100}, {"kind": "cnn", "channels": [4], "convs": 1}),
    ({"name": "digits-images"}, {"kind": "resnet", "depth": 20, "width": 0.25}),
    ({"name": "digits-images"}, VIT),
    ({"name": "stdlib-text", "subset": 10}, GPT),
]


def on_disk(root: Path) -> Settings:
    """A worker's settings with ``root`` as its data sets directory."""
    return Settings(datasets_dir=root)


def resolved(demo_datasets: Path, task: dict, model: dict, **run: object) -> RunConfig:
    """A config whose data set is resolved, as the API does at submit."""
    config = RunConfig.model_validate({"task": {"kind": "dataset", **task}, "model": model, **run})
    config.task.resolve(read_manifest(demo_datasets, config.task.name))
    return config


@pytest.mark.parametrize(("task", "model"), CASES, ids=lambda c: c.get("name", c.get("kind")))
def test_counts_at_submit_equal_the_built_model_and_data(
    demo_datasets: Path, task: dict, model: dict
) -> None:
    config = resolved(demo_datasets, task, model)
    made = build_dataset_task(config.task, config.seed, config.model, on_disk(demo_datasets))
    assert count_parameters(config) == sum(p.numel() for p in made.model.parameters())
    tensors = (made.train_x, made.train_y, made.test_x, made.test_y)
    elements = sum(t.numel() for t in tensors)
    assert dataset_size(config) == (elements, sum(t.numel() * t.element_size() for t in tensors))
    if "subset" in task:
        assert len(made.train_y) == task["subset"]


def built(demo_datasets: Path, task: dict, model: dict, seed: int = 0):  # noqa: ANN201
    config = resolved(demo_datasets, task, model, seed=seed)
    return build_dataset_task(config.task, config.seed, config.model, on_disk(demo_datasets))


def test_a_subset_is_a_seeded_draw_of_training_examples(demo_datasets: Path) -> None:
    model = {"kind": "mlp", "widths": [4]}
    full = built(demo_datasets, {"name": "digits"}, model)
    draws = [built(demo_datasets, {"name": "digits", "subset": 50}, model, s) for s in (0, 0, 1)]
    assert torch.equal(draws[0].train_x, draws[1].train_x)
    assert not torch.equal(draws[0].train_x, draws[2].train_x)
    rows = {tuple(r.tolist()) for r in full.train_x}
    assert all(tuple(r.tolist()) in rows for r in draws[2].train_x)


def test_normalisation_is_per_channel_over_the_training_split(demo_datasets: Path) -> None:
    model = {"kind": "cnn", "channels": [4], "convs": 1}
    task = built(demo_datasets, {"name": "digits-images", "normalize": True}, model)
    assert task.train_x.shape[1] == 1
    assert task.train_x.mean().abs() < 1e-5 and (task.train_x.std() - 1).abs() < 1e-4


def test_crops_and_flips_are_seeded_by_the_step_and_are_crops_and_flips() -> None:
    images = torch.rand(6, 2, 5, 5)
    augment = CropFlip(seed=3, padding=2)
    out = augment(images, 7)
    assert torch.equal(out, CropFlip(seed=3, padding=2)(images, 7))  # a resume replays it
    assert not torch.equal(out, augment(images, 8))
    padded = functional.pad(images, (2, 2, 2, 2))
    for image, got in zip(padded, out, strict=True):
        options = [
            image[:, dy : dy + 5, dx : dx + 5].flip(2)
            if flip
            else image[:, dy : dy + 5, dx : dx + 5]
            for dy, dx, flip in itertools.product(range(5), range(5), (False, True))
        ]
        assert any(torch.equal(got, option) for option in options)


def test_next_token_losses_are_per_sequence_means(demo_datasets: Path) -> None:
    task = built(demo_datasets, {"name": "stdlib-text", "subset": 4}, GPT)
    outputs = task.model(task.train_x)
    per_token = functional.cross_entropy(
        outputs.reshape(-1, outputs.shape[-1]), task.train_y.reshape(-1), reduction="none"
    ).view(4, 64)
    torch.testing.assert_close(task.example_loss_fn(outputs, task.train_y), per_token.mean(1))
    torch.testing.assert_close(task.loss_fn(outputs, task.train_y), per_token.mean())
    hits = (outputs.argmax(-1) == task.train_y).float().mean(1).sum()
    torch.testing.assert_close(task.correct(outputs, task.train_y), hits)
