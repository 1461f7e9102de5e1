"""Classification arrays → the stored form: shapes, dtypes and labels checked once, at import."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from server.datasets.store import DatasetError, Manifest

Progress = Callable[[int, int], None]  # (done, total): the CLI's progress bar


def no_progress(done: int, total: int) -> None:
    """The default ``Progress``: nothing to show."""


@dataclass(frozen=True)
class Imported:
    """A data set read from some format, ready to be written (``store.write_dataset``)."""

    manifest: Manifest
    arrays: dict[str, np.ndarray]


def _images_first(x: np.ndarray, what: str) -> np.ndarray:
    """(N, H, W) → (N, 1, H, W); (N, H, W, C) with C in 1, 3, 4 → (N, C, H, W)."""
    if x.ndim == 3:
        return x[:, None]
    if x.shape[1] in (1, 3, 4):
        return x
    if x.shape[3] in (1, 3, 4):
        return x.transpose(0, 3, 1, 2)
    raise DatasetError(f"{what}: cannot tell the channel axis of images shaped {x.shape[1:]}")


def _inputs(x: np.ndarray, what: str) -> np.ndarray:
    if x.ndim not in (2, 3, 4) or len(x) == 0:
        raise DatasetError(f"{what}: expected (N, features) or images (N, [C,] H, W [, C])")
    if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.number):
        raise DatasetError(f"{what}: inputs of dtype {x.dtype} are not numbers")
    if x.ndim > 2:
        x = _images_first(x, what)
    if x.dtype != np.uint8:
        x = x.astype(np.float32)
        if not np.isfinite(x).all():
            raise DatasetError(f"{what}: inputs hold NaN or infinity")
    return x


def _labels(y: np.ndarray, n: int, what: str) -> np.ndarray:
    if y.ndim != 1 or len(y) != n or not np.issubdtype(y.dtype, np.integer):
        raise DatasetError(f"{what}: labels must be {n} integers, got {y.dtype} {y.shape}")
    if len(y) and y.min() < 0:
        raise DatasetError(f"{what}: labels must not be negative")
    return y.astype(np.int64)


def classification(
    name: str,
    source: str,
    splits: dict[str, tuple[np.ndarray, np.ndarray]],
    classes: list[str] | None = None,
) -> Imported:
    """``splits["train"]`` and ``splits["test"]``: (inputs, labels) of one classification set."""
    arrays = {}
    for split in ("train", "test"):
        x, y = splits[split]
        what = f"{source} {split} split"
        arrays[f"x_{split}"] = _inputs(np.asarray(x), what)
        arrays[f"y_{split}"] = _labels(np.asarray(y), len(x), what)
    x_train, x_test = arrays["x_train"], arrays["x_test"]
    if x_train.shape[1:] != x_test.shape[1:] or x_train.dtype != x_test.dtype:
        raise DatasetError(f"{source}: train and test inputs differ in shape or dtype")
    n_classes = int(max(arrays["y_train"].max(), arrays["y_test"].max(initial=0))) + 1
    if classes and len(classes) < n_classes:
        raise DatasetError(f"{source}: labels up to {n_classes - 1} but {len(classes)} classes")
    manifest = Manifest(
        name=name,
        kind="vector" if x_train.ndim == 2 else "image",
        source=source,
        shape=tuple(int(s) for s in x_train.shape[1:]),
        n_classes=len(classes) if classes else n_classes,
        train=len(x_train),
        test=len(x_test),
        dtype=str(x_train.dtype),
        classes=list(classes or []),
    )
    return Imported(manifest, arrays)


def split_off_test(
    x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A seeded random train/test split of one set (for layouts that ship a single split)."""
    if len(y) < 2:
        raise DatasetError("a data set needs at least two examples to split off a test set")
    order = np.random.default_rng(seed).permutation(len(y))
    cut = max(1, min(len(y) - 1, round((1 - test_fraction) * len(y))))
    train, test = order[:cut], order[cut:]
    return {"train": (x[train], y[train]), "test": (x[test], y[test])}
