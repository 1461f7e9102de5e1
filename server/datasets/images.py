"""``image_folder``: torchvision's ImageFolder layout, decoded once with Pillow into uint8 arrays.

``root/<class>/<image>`` (one split, a seeded test split is set aside), or ``root/train/<class>/…``
beside ``root/test/<class>/…`` (or ``val``).  Classes are the sub-folders in sorted order, as
torchvision numbers them.  Every image must have the same size; all grayscale images stay one
channel, anything else becomes RGB.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from server.datasets.arrays import Imported, Progress, classification, split_off_test
from server.datasets.store import DatasetError

EXTENSIONS = {".png", ".jpg", ".jpeg"}
TEST_SPLITS = ("test", "val")


def _classes(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path, classes: list[str]) -> list[tuple[Path, int]]:
    files = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if class_dir.is_dir():
            images = sorted(p for p in class_dir.iterdir() if p.suffix.lower() in EXTENSIONS)
            files += [(p, label) for p in images]
    return files


def is_image_folder(path: Path) -> bool:
    if not path.is_dir():
        return False
    folder = path / "train" if (path / "train").is_dir() else path
    return any(_files(folder, _classes(folder)))


def _decode(files: list[tuple[Path, int]], progress: Progress, start: int, total: int):  # noqa: ANN202
    images, modes = [], set()
    for i, (file, _label) in enumerate(files):
        try:
            with Image.open(file) as image:
                image.load()
                modes.add("L" if image.mode in ("L", "1") else "RGB")
                images.append(image.convert("L" if image.mode in ("L", "1") else "RGB"))
        except (OSError, UnidentifiedImageError) as error:
            raise DatasetError(f"{file.name}: not a readable PNG/JPEG ({error})") from None
        progress(start + i + 1, total)
    return images, modes


def _to_array(images: list[Image.Image], mode: str, files: list[tuple[Path, int]]) -> np.ndarray:
    size = images[0].size
    for image, (file, _label) in zip(images, files, strict=True):
        if image.size != size:
            raise DatasetError(
                f"{file.parent.name}/{file.name} is {image.size[0]}x{image.size[1]}, other images "
                f"are {size[0]}x{size[1]}: resize them to one size first"
            )
    arrays = [np.asarray(image.convert(mode), dtype=np.uint8) for image in images]
    stacked = np.stack(arrays)
    return stacked[:, None] if mode == "L" else stacked.transpose(0, 3, 1, 2)


def read_image_folder(
    path: Path, name: str, progress: Progress, test_fraction: float = 0.2
) -> Imported:
    train_dir = path / "train"
    test_dir = next((path / s for s in TEST_SPLITS if (path / s).is_dir()), None)
    presplit = train_dir.is_dir() and test_dir is not None
    classes = _classes(train_dir if presplit else path)
    folders = {"train": train_dir, "test": test_dir} if presplit else {"all": path}
    listed = {split: _files(folder, classes) for split, folder in folders.items()}  # type: ignore[arg-type]
    if not all(listed.values()):
        raise DatasetError(f"{path.name}: no PNG/JPEG images in class sub-folders")
    total = sum(len(files) for files in listed.values())
    decoded, modes, done = {}, set(), 0
    for split, files in listed.items():
        decoded[split], split_modes = _decode(files, progress, done, total)
        modes |= split_modes
        done += len(files)
    mode = "L" if modes == {"L"} else "RGB"
    arrays = {
        split: (_to_array(decoded[split], mode, files), np.array([lab for _f, lab in files]))
        for split, files in listed.items()
    }
    splits = arrays if presplit else split_off_test(*arrays["all"], test_fraction)
    return classification(name, "image_folder", splits, classes)
