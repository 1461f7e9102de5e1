"""Array formats on disk: ``npz``, torchvision's CIFAR-10/100 (python batches) and MNIST (IDX).

None of them is ever downloaded: they are read where an operator put them.  ``npz`` is read with
``allow_pickle=False``.  CIFAR's batches are Python pickles; they are read by a restricted
unpickler that can build only dicts, lists, strings, numbers and numpy arrays, so a crafted file
cannot run code (any other global is refused with the name it asked for).
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from server.datasets.arrays import Imported, Progress, classification
from server.datasets.store import DatasetError

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
# What numpy arrays need to be unpickled (numpy 1.x and 2.x module names), and nothing else.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3: text to bytes
}
CIFAR = {
    "cifar10": (
        ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5"],
        "test_batch",
        "batches.meta",
        "labels",
        "label_names",
    ),
    "cifar100": (["train"], "test", "meta", "fine_labels", "fine_label_names"),
}
MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_npz(path: Path, name: str, progress: Progress) -> Imported:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in NPZ_KEYS if k not in data.files]
            if missing:
                raise DatasetError(f"{path.name}: missing arrays {missing} (needs {NPZ_KEYS})")
            x_train, y_train, x_test, y_test = (data[k] for k in NPZ_KEYS)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DatasetError(f"{path.name}: not a readable npz without pickles ({error})") from None
    progress(1, 1)
    splits = {"train": (x_train, y_train), "test": (x_test, y_test)}
    return classification(name, "npz", splits)


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in SAFE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only numpy arrays)")


def safe_unpickle(path: Path) -> Any:
    """A pickle holding only builtin containers and numpy arrays (CIFAR's python batches)."""
    try:
        with path.open("rb") as file:
            return _SafeUnpickler(io.BufferedReader(file), encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(f"{path.name} is missing") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DatasetError(f"{path.name}: not a CIFAR batch ({error})") from None


def _field(batch: Any, key: str, path: Path) -> Any:
    if not isinstance(batch, dict):
        raise DatasetError(f"{path.name}: not a CIFAR batch (a dict)")
    for candidate in (key, key.encode()):
        if candidate in batch:
            return batch[candidate]
    raise DatasetError(f"{path.name}: no {key!r} entry")


def cifar_variant(path: Path) -> str | None:
    """``cifar10`` or ``cifar100`` when ``path`` holds that layout."""
    for variant, (train, test, _meta, _labels, _names) in CIFAR.items():
        if all((path / f).is_file() for f in (*train, test)):
            return variant
    return None


def read_cifar(path: Path, name: str, progress: Progress) -> Imported:
    variant = cifar_variant(path)
    if variant is None:
        raise DatasetError(f"{path.name}: not torchvision's cifar-10/100-batches-py layout")
    train_files, test_file, meta_file, label_key, names_key = CIFAR[variant]
    files = [*train_files, test_file]
    parts: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    for done, file in enumerate(files, 1):
        batch = safe_unpickle(path / file)
        data = np.asarray(_field(batch, "data", path / file), dtype=np.uint8)
        labels = np.asarray(_field(batch, label_key, path / file), dtype=np.int64)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DatasetError(f"{file}: expected rows of 3072 pixels, got {data.shape}")
        split = "test" if file == test_file else "train"
        parts[split][0].append(data.reshape(-1, 3, 32, 32))
        parts[split][1].append(labels)
        progress(done, len(files))
    classes = None
    if (path / meta_file).is_file():
        names = _field(safe_unpickle(path / meta_file), names_key, path / meta_file)
        classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    splits = {s: (np.concatenate(x), np.concatenate(y)) for s, (x, y) in parts.items()}
    return classification(name, variant, splits, classes)


def _idx_file(path: Path, stem: str) -> Path | None:
    folders = (path, path / "raw")  # torchvision keeps the files in MNIST/raw/
    candidates = (folder / f"{stem}{gz}" for folder in folders for gz in ("", ".gz"))
    return next((c for c in candidates if c.is_file()), None)


def mnist_dir(path: Path) -> Path | None:
    """The folder holding the four IDX files: ``path``, or torchvision's ``MNIST/`` inside it."""
    for base in (path, path / "MNIST"):
        if all(_idx_file(base, stem) for pair in MNIST_FILES.values() for stem in pair):
            return base
    return None


def read_idx(path: Path) -> np.ndarray:
    """One IDX file (Yann LeCun's format: zero, zero, a dtype byte, the rank, big-endian sizes)."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as file:
            raw = file.read()
    except (OSError, EOFError) as error:
        raise DatasetError(f"{path.name}: unreadable ({error})") from None
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] not in IDX_DTYPES:
        raise DatasetError(f"{path.name}: not an IDX file")
    rank = raw[3]
    dims = np.frombuffer(raw, ">u4", count=rank, offset=4) if len(raw) >= 4 + 4 * rank else None
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    body = 4 + 4 * rank
    if dims is None or len(raw) - body != int(np.prod(dims)) * dtype.itemsize:
        raise DatasetError(f"{path.name}: truncated (its header promises more data)")
    return np.frombuffer(raw, dtype, offset=body).reshape(tuple(int(d) for d in dims))


def read_mnist(path: Path, name: str, progress: Progress) -> Imported:
    base = mnist_dir(path)
    if base is None:
        raise DatasetError(f"{path.name}: not the MNIST IDX layout ({MNIST_FILES})")
    splits = {}
    for done, (split, (images, labels)) in enumerate(MNIST_FILES.items(), 1):
        x = read_idx(_idx_file(base, images))  # type: ignore[arg-type]
        y = read_idx(_idx_file(base, labels))  # type: ignore[arg-type]
        splits[split] = (x, y)
        progress(done, len(MNIST_FILES))
    return classification(name, "mnist", splits, [str(d) for d in range(10)])
