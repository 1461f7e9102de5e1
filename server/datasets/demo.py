"""``observatory datasets make-demo``: small real data sets, written as source files in each
format and imported like a user's own (the tests and the README use them).

- ``digits-images``: scikit-learn's 1,797 handwritten digits as an image folder of 8x8 PNGs;
- ``digits``: the same digits as an ``npz`` of 64-feature vectors in [0, 1];
- ``stdlib-text``: documentation strings of Python standard-library modules, character level.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits

from server.datasets.arrays import Progress, no_progress, split_off_test
from server.datasets.importer import Format, import_dataset
from server.datasets.store import Manifest

DOC_MODULES = (
    "collections", "functools", "itertools", "json", "pathlib", "re", "string", "textwrap",
    "argparse", "dataclasses", "heapq", "bisect", "statistics", "fractions", "decimal",
)  # fmt: skip
TEXT_CONTEXT = 64


@dataclass(frozen=True)
class Source:
    """A demo data set's source on disk and how to import it."""

    name: str
    path: Path
    fmt: Format
    options: dict[str, Any] = field(default_factory=dict)


def stdlib_docstrings(max_chars: int = 200_000) -> str:
    """The module and public member docstrings of ``DOC_MODULES``, in a fixed order."""
    parts: list[str] = []
    for module_name in DOC_MODULES:
        module = importlib.import_module(module_name)
        members = [module, *(getattr(module, n) for n in sorted(getattr(module, "__all__", [])))]
        parts += [doc for doc in map(inspect.getdoc, members) if doc]
    return "\n\n".join(dict.fromkeys(parts))[:max_chars]  # each docstring once, in order


def write_sources(directory: Path) -> list[Source]:
    """The demo sets' source files under ``directory``."""
    digits = load_digits()
    pixels = np.round(digits.images * 255 / 16).astype(np.uint8)  # (1797, 8, 8)
    image_dir = directory / "digits-images"
    for i, (image, label) in enumerate(zip(pixels, digits.target, strict=True)):
        class_dir = image_dir / str(label)
        class_dir.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image, mode="L").save(class_dir / f"{i:04d}.png")
    splits = split_off_test(digits.data.astype(np.float32) / 16, digits.target, 0.25)
    npz = directory / "digits.npz"
    np.savez(
        npz,
        x_train=splits["train"][0],
        y_train=splits["train"][1],
        x_test=splits["test"][0],
        y_test=splits["test"][1],
    )
    text = directory / "stdlib-docstrings.txt"
    text.write_text(stdlib_docstrings(), encoding="utf-8")
    return [
        Source("digits-images", image_dir, "image_folder", {"test_fraction": 0.25}),
        Source("digits", npz, "npz"),
        Source("stdlib-text", text, "text", {"tokens": "char", "context": TEXT_CONTEXT}),
    ]


def make_demo(root: Path, sources: Path, progress: Progress = no_progress) -> list[Manifest]:
    """Write the demo sources under ``sources`` and import each into ``root``."""
    return [
        import_dataset(s.path, root, s.name, s.fmt, progress, **s.options)
        for s in write_sources(sources)
    ]
