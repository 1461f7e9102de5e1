"""The stored form of a data set: ``<root>/<name>/manifest.json`` beside one ``.npy`` per array.

Only names reach this module, never paths: a name is one path segment of a safe alphabet, and the
directory it names must resolve inside the root (a symlink out of it is refused), checked again
whenever a data set is opened.  Arrays are ``.npy`` files opened memory-mapped with
``allow_pickle=False``, so nothing in a data set is ever executed and a large set is not read
into memory until it is used.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from server.dataspec import DataSpec

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
NAME_RULE = "a data set name: 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-'"
FLOAT32, INT64 = 4, 8
ARRAYS = ("x_train", "y_train", "x_test", "y_test")
TEXT_ARRAYS = ("tokens_train", "tokens_test")


class DatasetError(Exception):
    """A data set that cannot be used: a bad name, a path out of the root, a corrupt file.

    Its message is meant for the user (stored as the run's error, shown by the CLI)."""


def check_name(name: str) -> str:
    """``name`` if it is a safe data set name (never a path), else ``DatasetError``."""
    if not NAME_RE.fullmatch(name) or ".." in name:
        raise DatasetError(f"{name!r} is not {NAME_RULE} (a name under OBS_DATASETS_DIR, no path)")
    return name


def dataset_dir(root: Path, name: str) -> Path:
    """The directory of data set ``name``, resolved and proven to lie inside ``root``."""
    check_name(name)
    base = root.resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or path == base:
        raise DatasetError(f"data set {name!r} resolves outside OBS_DATASETS_DIR; refused")
    return path


@dataclass(frozen=True)
class Manifest:
    """What a data set holds, readable without opening its arrays (the catalog publishes it).

    ``kind``: ``vector`` (float features), ``image`` (``shape`` = channels, height, width) or
    ``text`` (``shape`` = (context,), next-token targets over ``vocab`` tokens).  ``train`` and
    ``test`` count examples (for text: context windows).  ``alphabet`` maps character ids back to
    characters (character-level text); ``classes`` names the class ids when known.
    """

    name: str
    kind: Literal["vector", "image", "text"]
    source: str  # the format it was imported from: npz, image_folder, text, cifar10, mnist, …
    shape: tuple[int, ...]
    n_classes: int
    train: int
    test: int
    dtype: str  # stored dtype of the inputs (uint8 images are scaled to [0, 1] when loaded)
    classes: list[str] = field(default_factory=list)
    vocab: int | None = None
    alphabet: str | None = None
    tokens: Literal["char", "byte"] | None = None
    version: int = FORMAT_VERSION

    @property
    def spec(self) -> DataSpec:
        """The data's side of the model zoo's contract (``server.dataspec``)."""
        if self.kind == "text":
            return DataSpec("tokens", self.shape, self.n_classes, "next_token", self.vocab)
        return DataSpec(self.kind, self.shape, self.n_classes)

    def held(self, train: int | None = None) -> tuple[int, int]:
        """Elements and bytes the worker holds: inputs as float32 (tokens as int64) and int64
        targets, both splits; ``train`` caps the training examples (a subset)."""
        n = min(self.train, train or self.train) + self.test
        features = math.prod(self.shape)
        if self.kind == "text":
            return 2 * n * features, 2 * n * features * INT64
        return n * (features + 1), n * (features * FLOAT32 + INT64)

    def decode(self, ids: np.ndarray) -> str:
        """Token ids of this text set as text: bytes as UTF-8 (undecodable ones as U+FFFD),
        characters through the alphabet."""
        if self.tokens == "byte":
            return bytes(int(i) for i in ids).decode("utf-8", errors="replace")
        alphabet = self.alphabet or ""
        return "".join(alphabet[i] if 0 <= i < len(alphabet) else "\ufffd" for i in map(int, ids))

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["shape"] = list(self.shape)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**{**known, "shape": tuple(known["shape"])})


def read_manifest(root: Path, name: str) -> Manifest:
    path = dataset_dir(root, name) / MANIFEST
    try:
        return Manifest.from_json(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise DatasetError(f"no data set named {name!r} in OBS_DATASETS_DIR") from None
    except (ValueError, TypeError, KeyError) as error:
        raise DatasetError(f"data set {name!r}: its {MANIFEST} is unreadable ({error})") from None


def write_dataset(root: Path, manifest: Manifest, arrays: dict[str, np.ndarray]) -> Path:
    """Store ``arrays`` as ``.npy`` files and the manifest last (a half-written set is unlisted)."""
    directory = dataset_dir(root, manifest.name)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MANIFEST).unlink(missing_ok=True)
    for key, array in arrays.items():
        np.save(directory / f"{key}.npy", np.ascontiguousarray(array), allow_pickle=False)
    (directory / MANIFEST).write_text(json.dumps(manifest.to_json(), indent=1), encoding="utf-8")
    return directory


def open_arrays(root: Path, manifest: Manifest) -> dict[str, np.ndarray]:
    """The stored arrays, memory-mapped; a missing, truncated or mismatched file is a
    ``DatasetError`` naming it."""
    directory = dataset_dir(root, manifest.name)
    keys = TEXT_ARRAYS if manifest.kind == "text" else ARRAYS
    arrays = {}
    for key in keys:
        path = directory / f"{key}.npy"
        if not path.resolve().is_relative_to(directory):
            raise DatasetError(f"data set {manifest.name!r}: {key}.npy links out of its folder")
        try:
            arrays[key] = np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError, EOFError) as error:
            raise DatasetError(
                f"data set {manifest.name!r}: {key}.npy is missing or corrupt ({error})"
            ) from None
    _check_shapes(manifest, arrays)
    return arrays


def _check_shapes(manifest: Manifest, arrays: dict[str, np.ndarray]) -> None:
    if manifest.kind == "text":
        expected = {
            key: n * manifest.shape[0] + 1
            for key, n in (("tokens_train", manifest.train), ("tokens_test", manifest.test))
        }
        for key, needed in expected.items():
            if arrays[key].ndim != 1 or len(arrays[key]) < needed:
                raise DatasetError(
                    f"data set {manifest.name!r}: {key}.npy holds {arrays[key].shape}, "
                    f"the manifest needs at least {needed} tokens"
                )
        return
    for split, n in (("train", manifest.train), ("test", manifest.test)):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.shape != (n, *manifest.shape) or y.shape != (n,):
            raise DatasetError(
                f"data set {manifest.name!r}: the {split} arrays hold {x.shape} and {y.shape}, "
                f"the manifest says {(n, *manifest.shape)} and {(n,)}"
            )


def scan(root: Path) -> Iterator[Manifest]:
    """Every readable data set under ``root`` (others are skipped: the catalog lists what a run
    can use)."""
    if not root.is_dir():
        return
    for entry in sorted(root.iterdir()):
        if NAME_RE.fullmatch(entry.name) and (entry / MANIFEST).is_file():
            try:
                yield read_manifest(root, entry.name)
            except DatasetError:
                continue
