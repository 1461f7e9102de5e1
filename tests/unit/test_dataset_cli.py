"""``observatory datasets import|list|make-demo`` on this machine's ``OBS_DATASETS_DIR``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from server.cli import app
from server.config import get_settings
from server.datasets import read_manifest


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("OBS_DATASETS_DIR", str(tmp_path / "datasets"))
    monkeypatch.setenv("COLUMNS", "200")  # rich's tables unwrapped
    get_settings.cache_clear()
    yield tmp_path / "datasets"
    get_settings.cache_clear()


def test_import_then_list(root: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("abcabcabd" * 50, encoding="utf-8")
    runner = CliRunner()
    result = runner.invoke(
        app,
        ["datasets", "import", str(tmp_path / "notes.txt"), "--name", "notes", "--context", "8"],
    )
    assert result.exit_code == 0, result.output
    assert "importing notes.txt (text)" in result.output
    manifest = read_manifest(root, "notes")
    assert (manifest.kind, manifest.shape, manifest.vocab, manifest.train) == ("text", (8,), 4, 44)
    listing = runner.invoke(app, ["datasets", "list"])
    assert listing.exit_code == 0
    assert "notes" in listing.output and "1 data sets in" in listing.output


def test_a_path_for_a_name_is_refused(root: Path, tmp_path: Path) -> None:
    arrays = {
        k: np.zeros((4, 2) if k[0] == "x" else 4, np.int64)
        for k in ("x_train", "y_train", "x_test", "y_test")
    }
    np.savez(tmp_path / "set.npz", **arrays)
    result = CliRunner().invoke(
        app, ["datasets", "import", str(tmp_path / "set.npz"), "--name", "../up"]
    )
    assert result.exit_code == 1
    assert "'../up' is not a data set name" in result.output
    assert not (tmp_path / "up").exists() and not root.exists()


def test_make_demo_writes_the_three_demo_sets(root: Path) -> None:
    result = CliRunner().invoke(app, ["datasets", "make-demo"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in root.iterdir()) == ["digits", "digits-images", "stdlib-text"]
    images = read_manifest(root, "digits-images")
    assert (images.kind, images.shape, images.n_classes) == ("image", (1, 8, 8), 10)
