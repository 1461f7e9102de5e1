"""Names, never paths: refused in the worker too (a symlink out of the root, a name that slipped
past the server), and a corrupt file fails the run with a message that says which file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from server.config import Settings, get_settings
from server.datasets import DatasetError, dataset_dir, open_arrays, read_manifest
from server.db import get_sessionmaker
from server.models import Run
from server.schemas import RunConfig
from server.store.runs import create_run
from worker.runner import execute_run

UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"  # notifications are best effort; nothing listens
CONFIG = {
    "task": {"kind": "dataset", "name": "digits"},
    "model": {"kind": "mlp", "widths": [4]},
    "steps": 3,
    "device": "cpu",
}


@pytest.fixture
def root(demo_datasets: Path, tmp_path: Path) -> Path:
    """A copy of the demo data sets that a test may damage."""
    return Path(shutil.copytree(demo_datasets, tmp_path / "datasets"))


@pytest.mark.parametrize("name", ["..", "../etc", "/etc", "a/b", ".hidden", "-x", "a..b", ""])
def test_a_path_is_not_a_name(tmp_path: Path, name: str) -> None:
    with pytest.raises(DatasetError, match="not a data set name"):
        dataset_dir(tmp_path, name)


def test_a_symlink_out_of_the_root_is_refused(root: Path, tmp_path: Path) -> None:
    outside = Path(shutil.copytree(root / "digits", tmp_path / "elsewhere"))
    (root / "escape").symlink_to(outside, target_is_directory=True)
    with pytest.raises(DatasetError, match="resolves outside OBS_DATASETS_DIR"):
        read_manifest(root, "escape")


def test_an_array_linked_out_of_its_folder_is_refused(root: Path, tmp_path: Path) -> None:
    (tmp_path / "x.npy").write_bytes((root / "digits" / "x_test.npy").read_bytes())
    (root / "digits" / "x_test.npy").unlink()
    (root / "digits" / "x_test.npy").symlink_to(tmp_path / "x.npy")
    with pytest.raises(DatasetError, match="x_test.npy links out of its folder"):
        open_arrays(root, read_manifest(root, "digits"))


def run_in_worker(
    db_url: str, root: Path, monkeypatch: pytest.MonkeyPatch, config: dict, **env: str
) -> Run:
    """``config`` stored as the API would (unchecked here), then run by the worker's code."""
    monkeypatch.setenv("OBS_DATASETS_DIR", str(root))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()  # the worker's builder reads its settings
    settings = Settings(database_url=db_url, broker_url=UNREACHABLE_REDIS)
    with get_sessionmaker(db_url)() as session:
        run_id = create_run(session, config=RunConfig.model_validate(config)).id
        session.commit()
    try:
        assert execute_run(run_id, settings, "w1") == "failed"
    finally:
        get_settings.cache_clear()
    with get_sessionmaker(db_url)() as session:
        return session.get(Run, run_id)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_worker_refuses_a_symlink_out_of_its_root(
    db_url: str, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = Path(shutil.copytree(root / "digits", tmp_path / "elsewhere"))
    shutil.rmtree(root / "digits")
    (root / "digits").symlink_to(outside, target_is_directory=True)  # swapped after submit
    run = run_in_worker(db_url, root, monkeypatch, CONFIG)
    assert run.error == "data set 'digits' resolves outside OBS_DATASETS_DIR; refused"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_corrupt_file_fails_the_run_naming_it(
    db_url: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = root / "digits" / "x_train.npy"
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    run = run_in_worker(db_url, root, monkeypatch, CONFIG)
    assert run.error.startswith("data set 'digits': x_train.npy is missing or corrupt (")
    assert "Traceback" not in run.error


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_arrays_that_disagree_with_the_manifest_fail_the_run(
    db_url: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    np.save(root / "digits" / "y_test.npy", np.zeros(3, np.int64))
    run = run_in_worker(db_url, root, monkeypatch, CONFIG)
    assert run.error == (
        "data set 'digits': the test arrays hold (449, 64) and (3,), the manifest says "
        "(449, 64) and (449,)"
    )


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_model_that_does_not_fit_this_workers_copy_fails_the_run(
    db_url: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = {**CONFIG, "model": {"kind": "cnn", "channels": [4]}}  # digits here are vectors
    run = run_in_worker(db_url, root, monkeypatch, config)
    assert run.error.startswith("model.kind: cnn needs image input")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_workers_own_size_limits_apply(
    db_url: str, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {"OBS_MAX_DATASET_ELEMENTS": "1000"}
    run = run_in_worker(db_url, root, monkeypatch, CONFIG, **env)
    assert run.error == (
        "data set 'digits': 116,805 elements on this worker, above its limit 1,000 "
        "(OBS_MAX_DATASET_ELEMENTS); use a subset"
    )
