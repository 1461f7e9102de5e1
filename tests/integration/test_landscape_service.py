"""Issue 5 in the service: a run with ``probes.landscape`` stores surfaces the API serves.

``observatory up`` (SQLite, embedded broker, a worker) trains a digits CNN with a PCA-trajectory
surface every 20 steps; the test reads back what the dashboard reads: ``/landscapes`` (steps and
metadata), ``/landscapes/{step}`` (grid, loss, accuracy, trajectory), the ``landscape.*`` scalars
from ``/metrics``, and the stored θ_s and directions.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.conftest import Service

pytestmark = pytest.mark.integration

CONFIG = {
    "name": "landscape-test",
    "task": {"kind": "digits", "model": "cnn", "hidden": 4},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "batch_size": 64,
    "steps": 60,
    "log_every": 10,
    "seed": 1,
    "device": "cpu",
    "probes": {
        "landscape": {
            "every": 20,
            "kind": "pca",
            "snapshot_every": 5,
            "resolution": 9,
            "range": 1.2,
            "eval_size": 128,
        }
    },
}


def test_pca_surfaces_are_served_per_step(service: Service) -> None:
    url = service.submit(CONFIG)
    service.completed(url, timeout=120)

    listing = httpx.get(f"{url}/landscapes").json()
    assert listing["probe"] == "landscape" and listing["steps"] == [20, 40, 60]  # 0: no path yet
    for meta in listing["meta"]:
        assert meta["kind"] == "pca" and meta["kinds"] == ["pca", "pca"]
        assert meta["bn_stats"] == "running" and meta["eval_size"] == 128
        assert meta["cost"]["n_points"] == 81 and meta["cost"]["seconds"] > 0
        assert meta["directions_stored"] is True

    names = "landscape.center_loss,landscape.curvature,landscape.pca_explained"
    metrics = httpx.get(f"{url}/metrics", params={"names": names}).json()
    got = {s["name"]: dict(zip(s["steps"], s["values"], strict=True)) for s in metrics["series"]}
    assert sorted(got["landscape.center_loss"]) == [20, 40, 60]

    at = httpx.get(f"{url}/landscapes/60").json()
    arrays = at["arrays"]
    loss, accuracy = np.array(arrays["loss"]), np.array(arrays["accuracy"])
    assert loss.shape == accuracy.shape == (9, 9) and np.isfinite(loss).all()
    assert loss[4, 4] == pytest.approx(got["landscape.center_loss"][60], rel=1e-6)
    assert loss.min() >= 0 and ((accuracy >= 0) & (accuracy <= 1)).all()
    assert at["meta"]["scalars"]["landscape.center_loss"] == got["landscape.center_loss"][60]
    trajectory = np.array(arrays["trajectory"])
    assert arrays["trajectory_steps"] == list(range(0, 61, 5))
    assert trajectory.shape == (13, 2)
    np.testing.assert_allclose(trajectory[-1], [0, 0], atol=1e-5)  # the path ends at θ_s
    coords = np.array(arrays["coords"])  # range 1.2 × the path's extent
    assert coords[-1] == pytest.approx(1.2 * np.abs(trajectory).max(), rel=1e-5)
    explained = arrays["explained_variance"]
    assert 1 >= explained[0] >= explained[1] >= 0
    assert sum(explained) == pytest.approx(got["landscape.pca_explained"][60])

    stored = httpx.get(f"{url}/arrays/landscape.directions/60").json()
    center = np.array(stored["arrays"]["center"])
    assert center.shape == np.array(stored["arrays"]["direction_1"]).shape
    assert center.size == sum(np.prod(s) for s in stored["meta"]["shapes"].values())
    assert httpx.get(f"{url}/landscapes/30").status_code == 404
