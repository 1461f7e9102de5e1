"""The ``dataset`` task in the worker: a stored data set (``server.datasets``) as tensors, with
the run's zoo model.

The name is checked again here, against this worker's own ``OBS_DATASETS_DIR`` (``resolve()``
containment: a symlink out of the root is refused), and so is the model against this disk's
manifest: the submit-time check saw the catalog, which may describe another worker's copy.
Every problem is a ``DatasetError`` whose message becomes the failed run's error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from server.config import Settings
from server.dataset_schemas import PADDING, DatasetTask
from server.datasets import DatasetError, Manifest, open_arrays, read_manifest
from worker.training.augment import CropFlip
from worker.training.task import Task
from worker.training.zoo import build_model

STD_FLOOR = 1e-6  # a constant channel (a blank border) is centred, not blown up


@dataclass(frozen=True)
class NextTokenTask(Task):
    """Next-token prediction: outputs ``(n, t, vocab)``, targets ``(n, t)``.

    The loss is the mean over every position; an example is a sequence, so per-example losses
    (the opposing probe's) and accuracies are each sequence's mean over its positions."""

    def loss_fn(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return functional.cross_entropy(outputs.flatten(0, 1), targets.flatten())

    def example_loss_fn(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        losses = functional.cross_entropy(outputs.transpose(1, 2), targets, reduction="none")
        return losses.mean(1)

    def loss_sum(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.example_loss_fn(outputs, targets).sum()

    def correct(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return (outputs.argmax(-1) == targets).float().mean(1).sum()


def _rows(array: np.ndarray, subset: np.ndarray | None) -> torch.Tensor:
    """Rows of a memory-mapped array, read into memory (only the chosen rows)."""
    return torch.from_numpy(np.array(array if subset is None else array[subset]))


def _windows(tokens: np.ndarray, n: int, context: int) -> tuple[torch.Tensor, torch.Tensor]:
    stream = torch.from_numpy(np.array(tokens[: n * context + 1]).astype(np.int64))
    return stream[:-1].view(n, context), stream[1:].view(n, context)


def _normalize(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per channel (images) or per feature (vectors): the training examples' mean and std."""
    dims = (0, 2, 3) if train_x.ndim == 4 else (0,)
    mean = train_x.mean(dims, keepdim=True)
    std = train_x.std(dims, keepdim=True).clamp_min(STD_FLOOR)
    return (train_x - mean) / std, (test_x - mean) / std


def _inputs(x: torch.Tensor) -> torch.Tensor:
    return x.float() / 255 if x.dtype == torch.uint8 else x.float()


def _check_model(manifest: Manifest, model: Any) -> None:
    if model is None:
        raise DatasetError("a dataset task needs a model from the zoo (RunConfig.model)")
    for field, reason in model.check(manifest.spec):
        raise DatasetError(f"model.{field}: {reason} (data set {manifest.name!r} on this worker)")


def _check_size(config: DatasetTask, settings: Settings) -> None:
    """This worker's limits, on its own copy (the submit-time check saw the catalog's)."""
    elements, size = config.held()
    for what, value, limit, env in (
        ("elements", elements, settings.max_dataset_elements, "OBS_MAX_DATASET_ELEMENTS"),
        ("bytes", size, settings.max_dataset_bytes, "OBS_MAX_DATASET_BYTES"),
    ):
        if value > limit:
            raise DatasetError(
                f"data set {config.name!r}: {value:,} {what} on this worker, above its limit "
                f"{limit:,} ({env}); use a subset"
            )


def build_dataset_task(config: DatasetTask, seed: int, model: Any, settings: Settings) -> Task:
    """The data set's tensors (subset, normalised) and ``model`` initialised from ``seed``, from
    ``settings``' data sets directory and within its limits."""
    root = settings.resolved_datasets_dir
    manifest = read_manifest(root, config.name)
    config.resolve(manifest)
    _check_model(manifest, model)
    _check_size(config, settings)
    arrays = open_arrays(root, manifest)
    subset = None
    if config.subset is not None and config.subset < manifest.train:
        subset = np.sort(np.random.default_rng(seed).choice(manifest.train, config.subset, False))
    spec = manifest.spec
    torch.manual_seed(seed)
    network: nn.Module = build_model(model, spec)
    if manifest.kind == "text":
        context = manifest.shape[0]
        train_x, train_y = _windows(arrays["tokens_train"], manifest.train, context)
        test_x, test_y = _windows(arrays["tokens_test"], manifest.test, context)
        if subset is not None:
            train_x, train_y = train_x[subset], train_y[subset]
        return NextTokenTask(train_x, train_y, test_x, test_y, network, spec.n_classes)
    train_x, test_x = (
        _inputs(_rows(arrays["x_train"], subset)),
        _inputs(_rows(arrays["x_test"], None)),
    )
    if config.normalize:
        train_x, test_x = _normalize(train_x, test_x)
    images = manifest.kind == "image"
    return Task(
        train_x,
        _rows(arrays["y_train"], subset),
        test_x,
        _rows(arrays["y_test"], None),
        network,
        spec.n_classes,
        image_shape=tuple(manifest.shape[1:]) if images and manifest.shape[0] == 1 else None,
        augment=CropFlip(seed, PADDING) if config.augment else None,
    )
