"""``observatory datasets import``: any supported format → the stored form under the root."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from server.datasets.arrays import Imported, Progress, no_progress
from server.datasets.images import is_image_folder, read_image_folder
from server.datasets.layouts import cifar_variant, mnist_dir, read_cifar, read_mnist, read_npz
from server.datasets.store import DatasetError, Manifest, check_name, write_dataset
from server.datasets.text import read_text

Format = Literal["npz", "image_folder", "text", "cifar", "mnist"]
Reader = Callable[..., Imported]
READERS: dict[str, Reader] = {
    "npz": read_npz,
    "image_folder": read_image_folder,
    "text": read_text,
    "cifar": read_cifar,
    "mnist": read_mnist,
}


def detect(path: Path) -> Format:
    """The format of ``path`` from its layout (a file by its suffix, a folder by its files)."""
    if path.is_file():
        if path.suffix == ".npz":
            return "npz"
        if path.suffix in (".txt", ".md", ".text", ""):
            return "text"
    elif path.is_dir():
        if cifar_variant(path):
            return "cifar"
        if mnist_dir(path):
            return "mnist"
        if is_image_folder(path):
            return "image_folder"
    raise DatasetError(f"{path}: cannot tell its format; pass --format")


def import_dataset(
    path: Path,
    root: Path,
    name: str,
    fmt: Format | None = None,
    progress: Progress = no_progress,
    **options: Any,
) -> Manifest:
    """Read ``path`` (``fmt``, or detected) and store it as data set ``name`` under ``root``.

    ``options`` go to the format's reader (``text``: tokens, context, test_fraction;
    ``image_folder``: test_fraction)."""
    check_name(name)
    if not path.exists():
        raise DatasetError(f"{path}: no such file or folder")
    imported = READERS[fmt or detect(path)](path, name, progress, **options)
    write_dataset(root, imported.manifest, imported.arrays)
    return imported.manifest
