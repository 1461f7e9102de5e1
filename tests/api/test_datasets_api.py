"""``GET /api/datasets`` lists this server's disk and what workers published; a ``dataset`` task
is checked at submit against that catalog (name, model, probes, augmentation, limits)."""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from server import model_params
from server.config import Settings
from server.datasets import Manifest, read_manifest
from server.db import session_scope
from server.model_schemas import GptModel
from server.store import datasets as catalog

GPT = {"kind": "gpt", "layers": 1, "heads": 2, "width": 8, "context": 64}
REMOTE = Manifest(
    name="cifar10", kind="image", source="cifar10", shape=(3, 32, 32), n_classes=10,
    train=50_000, test=10_000, dtype="uint8", classes=[f"c{i}" for i in range(10)],
)  # fmt: skip


@pytest.fixture
def datasets(settings: Settings, demo_datasets: Path) -> Path:
    """The demo data sets on this server's disk, and cifar10 published by a worker elsewhere."""
    root = Path(shutil.copytree(demo_datasets, settings.resolved_datasets_dir))
    with session_scope(settings.resolved_database_url) as session:
        catalog.publish(session, worker="celery@gpu1", manifests=[REMOTE])
    return root


def run(task: dict, model: dict | None = GPT, **more: object) -> dict:
    return {"task": {"kind": "dataset", **task}, "model": model, "steps": 5, **more}


def test_the_list_is_the_servers_disk_and_the_workers_catalogs(
    client: TestClient, datasets: Path
) -> None:
    body = client.get("/api/datasets").json()
    by_name = {d["name"]: d for d in body["data"]}
    assert body["count"] == 4
    assert sorted(by_name) == ["cifar10", "digits", "digits-images", "stdlib-text"]
    assert by_name["cifar10"]["locations"] == ["celery@gpu1"]
    assert by_name["digits-images"]["locations"] == ["server"]
    assert by_name["digits-images"]["shape"] == [1, 8, 8]
    assert by_name["cifar10"]["elements"] == 60_000 * (3 * 32 * 32 + 1)
    assert by_name["cifar10"]["bytes"] == 60_000 * (3 * 32 * 32 * 4 + 8)
    text = read_manifest(datasets, "stdlib-text")
    assert by_name["stdlib-text"]["n_classes"] == text.vocab


def test_validate_counts_the_zoo_model_on_the_data(client: TestClient, datasets: Path) -> None:
    response = client.post("/api/runs/validate", json=run({"name": "stdlib-text", "subset": 10}))
    assert response.status_code == 200, response.text
    text = read_manifest(datasets, "stdlib-text")
    assert response.json()["parameters"] == model_params.count(GptModel(**GPT), text.spec)
    assert response.json()["dataset_elements"] == (10 + text.test) * 2 * 64


@pytest.mark.parametrize(
    ("config", "loc", "words"),
    [
        (run({"name": "../etc"}), ["task", "dataset", "name"], "not a data set name"),
        (run({"name": "/etc/passwd"}), ["task", "dataset", "name"], "no path"),
        (run({"name": "nowhere"}), ["task", "dataset", "name"], "no worker has a data set"),
        (run({"name": "digits"}, None), ["model"], "needs a model from the zoo"),
        (run({"name": "digits-images"}), ["model", "kind"], "gpt needs next-token data"),
        (run({"name": "stdlib-text"}, {**GPT, "context": 32}), ["model", "context"],
         "at least the data's context (64)"),
        (run({"name": "cifar10"}, {"kind": "vit", "patch_size": 5}), ["model", "patch_size"],
         "must divide the image's height and width [32, 32]"),
        (run({"name": "stdlib-text", "augment": True}), ["task", "dataset", "augment"],
         "crops and flips need images"),
        (run({"name": "stdlib-text"}, probes={"collapse": {}}), ["probes", "collapse"],
         "neural collapse needs a classification task"),
        (run({"name": "cifar10", "subset": 1000}, {"kind": "mlp", "widths": [8192] * 2}),
         ["model"], "parameters of the model"),
        (run({"name": "cifar10", "subset": 20_000}, {"kind": "mlp"}), ["task"],
         "data set elements: 92,190,000, above the limit"),
    ],
)  # fmt: skip
def test_a_dataset_task_that_cannot_run_is_refused_naming_the_field(
    client: TestClient, datasets: Path, config: dict, loc: list, words: str
) -> None:
    for path in ("/api/runs", "/api/runs/validate"):
        response = client.post(path, json=config)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert [d["loc"][1:] for d in detail] == [loc] and words in detail[0]["msg"]
    assert client.get("/api/runs").json()["count"] == 0


def test_a_symlink_out_of_the_root_is_refused_at_submit(
    client: TestClient, datasets: Path, tmp_path: Path
) -> None:
    outside = Path(shutil.copytree(datasets / "digits", tmp_path / "elsewhere"))
    (datasets / "escape").symlink_to(outside, target_is_directory=True)
    response = client.post("/api/runs", json=run({"name": "escape"}, {"kind": "mlp"}))
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "loc": ["body", "task", "dataset", "name"],
            "msg": "data set 'escape' resolves outside OBS_DATASETS_DIR; refused",
            "type": "value_error",
        }
    ]


def image_tasks(client: TestClient) -> dict[str, dict]:
    offered = client.get("/api/presets").json()
    return {p["name"]: p["config"]["task"] for p in offered if "ResNet" in p["name"]}


def test_the_image_presets_train_on_a_workers_cifar10_when_one_has_it(
    client: TestClient, settings: Settings, demo_datasets: Path
) -> None:
    shutil.copytree(demo_datasets, settings.resolved_datasets_dir)
    tasks = image_tasks(client)
    assert len(tasks) == 2
    assert all((t["name"], t["subset"]) == ("digits-images", None) for t in tasks.values())
    # a worker's "cifar10" that is not CIFAR-shaped is not the papers' data
    with session_scope(settings.resolved_database_url) as session:
        text = read_manifest(settings.resolved_datasets_dir, "stdlib-text")
        catalog.publish(session, worker="celery@gpu1", manifests=[replace(text, name="cifar10")])
    assert all(t["name"] == "digits-images" for t in image_tasks(client).values())
    with session_scope(settings.resolved_database_url) as session:
        catalog.publish(session, worker="celery@gpu1", manifests=[REMOTE])
    tasks = image_tasks(client)
    assert all(
        (t["name"], t["subset"], t["normalize"]) == ("cifar10", 5000, True) for t in tasks.values()
    )
    for name in tasks:  # what the form sends back is accepted as it is
        config = next(p["config"] for p in client.get("/api/presets").json() if p["name"] == name)
        assert client.post("/api/runs/validate", json=config).status_code == 200, name
