"""Each format round-trips: the source on disk → ``import`` → listed → the worker's tensors, which
must equal the source read directly (by independent code: numpy, Pillow, pickle, struct)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from server.config import Settings
from server.dataset_schemas import DatasetTask
from server.datasets import DatasetError, scan
from server.datasets.importer import import_dataset
from server.datasets.layouts import read_idx, safe_unpickle
from server.model_schemas import GptModel, MlpModel
from worker.training.datasets import build_dataset_task

RNG = np.random.default_rng(0)
MLP = MlpModel(widths=[4])


def load(root: Path, name: str, model: object = MLP, **options: object):  # noqa: ANN201
    """The worker's view of a stored data set (its builder, as ``build_task`` calls it)."""
    return build_dataset_task(
        DatasetTask(name=name, **options), 0, model, Settings(datasets_dir=root)
    )


def assert_same(built, x_train, y_train, x_test, y_test) -> None:  # noqa: ANN001
    for got, want in zip(
        (built.train_x, built.train_y, built.test_x, built.test_y),
        (x_train, y_train, x_test, y_test),
        strict=True,
    ):
        want = torch.as_tensor(np.asarray(want))
        assert got.dtype == want.dtype and torch.equal(got, want)


def test_npz(tmp_path: Path) -> None:
    arrays = {
        "x_train": RNG.normal(size=(20, 5)).astype(np.float32),
        "y_train": RNG.integers(0, 3, 20),
        "x_test": RNG.normal(size=(7, 5)).astype(np.float32),
        "y_test": RNG.integers(0, 3, 7),
    }
    np.savez(tmp_path / "set.npz", **arrays)
    manifest = import_dataset(tmp_path / "set.npz", tmp_path / "root", "vectors")
    assert [m.name for m in scan(tmp_path / "root")] == ["vectors"]
    assert (manifest.kind, manifest.shape, manifest.n_classes) == ("vector", (5,), 3)
    assert_same(load(tmp_path / "root", "vectors"), *arrays.values())


def test_image_folder_with_train_and_test_splits(tmp_path: Path) -> None:
    source, expected = tmp_path / "images", {}
    for split, n in (("train", 4), ("test", 2)):
        xs, ys = [], []
        for label, name in enumerate(["cat", "dog", "emu"]):
            (source / split / name).mkdir(parents=True)
            for i in range(n):
                pixels = RNG.integers(0, 256, (5, 6, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(source / split / name / f"{i}.png")
                xs.append(pixels.transpose(2, 0, 1).astype(np.float32) / 255)
                ys.append(label)
        expected[split] = (np.stack(xs), np.array(ys))
    manifest = import_dataset(source, tmp_path / "root", "pets")
    assert (manifest.kind, manifest.shape, manifest.classes) == (
        "image",
        (3, 5, 6),
        ["cat", "dog", "emu"],
    )
    assert_same(load(tmp_path / "root", "pets"), *expected["train"], *expected["test"])


def test_text_char_and_byte_level(tmp_path: Path) -> None:
    text = "the quick brown fox jumps over the lazy dog. " * 20 + "ünïcode ✓"
    (tmp_path / "corpus.txt").write_text(text, encoding="utf-8")
    for tokens in ("char", "byte"):
        name = f"text-{tokens}"
        manifest = import_dataset(
            tmp_path / "corpus.txt", tmp_path / "root", name, "text",
            tokens=tokens, context=16, test_fraction=0.25,
        )  # fmt: skip
        if tokens == "char":
            alphabet = sorted(set(text))
            ids = np.array([alphabet.index(c) for c in text])
        else:
            ids = np.frombuffer(text.encode(), np.uint8).astype(np.int64)
        cut = round(0.75 * len(ids))
        streams = {"train": ids[:cut], "test": ids[cut:]}
        windows = {s: (len(t) - 1) // 16 for s, t in streams.items()}
        assert (manifest.train, manifest.test, manifest.vocab) == (
            windows["train"], windows["test"], len(alphabet) if tokens == "char" else 256,
        )  # fmt: skip
        gpt = GptModel(layers=1, heads=1, width=8, context=16)
        expected = []
        for split, stream in streams.items():
            n = windows[split]
            expected += [stream[: n * 16].reshape(n, 16), stream[1 : n * 16 + 1].reshape(n, 16)]
        assert_same(load(tmp_path / "root", name, gpt), *expected)


# torchvision's two layouts: (train files, test file, meta file, label key, class-name key)
CIFAR_LAYOUTS = {
    "cifar10": ([f"data_batch_{i}" for i in range(1, 6)], "test_batch", "batches.meta", b"labels",
                b"label_names", 10),
    "cifar100": (["train"], "test", "meta", b"fine_labels", b"fine_label_names", 100),
}  # fmt: skip


def write_cifar(
    folder: Path, variant: str = "cifar10", per_batch: int = 3
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Batches as torchvision's files hold them: pickles (protocol 2) with bytes keys."""
    train, test, meta, label_key, names_key, classes = CIFAR_LAYOUTS[variant]
    folder.mkdir()
    parts: dict[str, list] = {"train": [], "test": []}
    for name in [*train, test]:
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = [int(v) for v in RNG.integers(0, classes, per_batch)]
        with (folder / name).open("wb") as file:
            pickle.dump({b"data": data, label_key: labels, b"batch_label": b"x"}, file, 2)
        parts["test" if name == test else "train"].append((data, labels))
    with (folder / meta).open("wb") as file:
        pickle.dump({names_key: [f"c{i}".encode() for i in range(classes)]}, file, 2)
    return {
        split: (
            np.concatenate([d for d, _ in batches]).reshape(-1, 3, 32, 32).astype(np.float32) / 255,
            np.concatenate([lab for _, lab in batches]),
        )
        for split, batches in parts.items()
    }


@pytest.mark.parametrize("variant", ["cifar10", "cifar100"])
def test_cifar_python_batches(tmp_path: Path, variant: str) -> None:
    expected = write_cifar(tmp_path / "batches", variant)
    manifest = import_dataset(tmp_path / "batches", tmp_path / "root", variant)
    assert (manifest.source, manifest.shape) == (variant, (3, 32, 32))
    assert manifest.classes == [f"c{i}" for i in range(CIFAR_LAYOUTS[variant][-1])]
    assert_same(load(tmp_path / "root", variant), *expected["train"], *expected["test"])


class Evil:
    def __reduce__(self):  # noqa: ANN204
        return (os.system, ("echo pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    write_cifar(tmp_path / "cifar")
    with (tmp_path / "cifar" / "test_batch").open("wb") as file:
        pickle.dump({b"data": Evil(), b"labels": []}, file, 2)
    with pytest.raises(DatasetError, match="refused to load posix.system"):
        safe_unpickle(tmp_path / "cifar" / "test_batch")
    with pytest.raises(DatasetError, match="test_batch: not a CIFAR batch"):
        import_dataset(tmp_path / "cifar", tmp_path / "root", "cifar")


def write_idx(path: Path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as file:
        file.write(header + array.astype(np.uint8).tobytes())


def test_mnist_idx_in_torchvisions_raw_folder(tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    expected = []
    for prefix, n in (("train", 6), ("t10k", 3)):
        images = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = RNG.integers(0, 10, n).astype(np.uint8)
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels)
        expected += [images[:, None].astype(np.float32) / 255, labels.astype(np.int64)]
    manifest = import_dataset(tmp_path, tmp_path / "root", "mnist")
    assert (manifest.source, manifest.shape) == ("mnist", (1, 28, 28))
    assert_same(load(tmp_path / "root", "mnist"), *expected)


def test_a_truncated_idx_file_is_refused(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28)))
    data = (tmp_path / "train-images-idx3-ubyte").read_bytes()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(data[:-10])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "train-images-idx3-ubyte")


def test_an_image_folder_with_a_broken_or_odd_sized_image_is_refused(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / "images" / label).mkdir(parents=True)
        for i in range(3):
            Image.new("L", (4, 4)).save(tmp_path / "images" / label / f"{i}.png")
    Image.new("L", (5, 4)).save(tmp_path / "images" / "b" / "odd.png")
    with pytest.raises(DatasetError, match=r"b/odd.png is 5x4, other images are 4x4"):
        import_dataset(tmp_path / "images", tmp_path / "root", "odd")
    (tmp_path / "images" / "b" / "odd.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError, match="odd.png: not a readable PNG/JPEG"):
        import_dataset(tmp_path / "images", tmp_path / "root", "odd")
    assert list(scan(tmp_path / "root")) == []


def test_text_windows_decode_back_to_their_characters(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("héllo wörld " * 20, encoding="utf-8")
    chars = import_dataset(tmp_path / "notes.txt", tmp_path / "root", "chars", context=8)
    ids = {c: i for i, c in enumerate(chars.alphabet)}
    assert chars.decode(np.array([ids[c] for c in "wörld"])) == "wörld"
    raw = import_dataset(
        tmp_path / "notes.txt", tmp_path / "root", "bytes", context=8, tokens="byte"
    )
    assert raw.decode(np.frombuffer("héllo".encode(), np.uint8)) == "héllo"
    assert raw.decode(np.array([0xC3])) == "\ufffd"  # half a character
