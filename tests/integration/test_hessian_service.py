"""Issue 4 end to end: an SGD run on digits reaches the edge of stability in a real worker.

``observatory up`` (SQLite, embedded broker, a worker) trains the preset-like run below; the test
reads back what the dashboard reads: the ``eos.crossed`` event, the sharpness and threshold series
from ``/metrics``, and the eigenvalues and density from ``/spectra`` and ``/spectra/{step}``.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.conftest import Service

pytestmark = pytest.mark.integration

LR = 0.2
CONFIG = {
    "name": "eos-test",
    "task": {"kind": "digits", "hidden": 32, "train_size": 500},
    "optimizer": {"name": "sgd", "lr": LR},
    "steps": 300,
    "log_every": 10,
    "seed": 1,
    "device": "cpu",
    "probes": {
        "hessian": {
            "every": 10,
            "k": 3,
            "batch_size": 500,
            "density": True,
            "density_starts": 1,
            "density_steps": 16,
        }
    },
}


def test_sgd_on_digits_reaches_and_hovers_at_the_edge_of_stability(service: Service) -> None:
    url = service.submit(CONFIG)
    service.completed(url, timeout=120)

    threshold = 2 / LR
    [event] = httpx.get(f"{url}/events").json()["data"]
    assert event["kind"] == "eos.crossed"
    crossed = event["step"]
    assert event["payload"]["step"] == crossed
    assert event["payload"]["threshold"] == pytest.approx(threshold)
    assert event["payload"]["lambda_max"] >= threshold

    names = "hessian.lambda_max,hessian.threshold,hessian.eig.0,hessian.eig.2,hessian.lambda_min"
    metrics = httpx.get(f"{url}/metrics", params={"names": names}).json()
    got = {s["name"]: dict(zip(s["steps"], s["values"], strict=True)) for s in metrics["series"]}
    sharp = got["hessian.lambda_max"]
    assert sorted(sharp) == list(range(0, 301, 10))
    assert list(got["hessian.threshold"].values()) == [pytest.approx(threshold)] * len(sharp)
    assert got["hessian.eig.0"] == sharp
    assert all(got["hessian.eig.2"][s] <= sharp[s] for s in sharp)
    assert all(got["hessian.lambda_min"][s] <= got["hessian.eig.2"][s] for s in sharp)
    # Progressive sharpening from far below, a crossing at the first step ≥ 2/lr, then hovering:
    # over the 150 steps after the crossing λ_max stays in [0.85, 1.5]·2/lr with a mean within
    # 15 %.  (With cross-entropy, λ_max later drifts down as the loss goes to 0: Cohen et al.
    # 2021, §3.2, so the band is asserted over that window.)
    assert sharp[0] < 0.1 * threshold
    assert crossed >= 50 and all(sharp[s] < threshold for s in sharp if s < crossed)
    window = np.array([sharp[s] for s in sharp if crossed <= s <= crossed + 150]) / threshold
    assert len(window) >= 6  # where it crosses depends on the CPU's float kernels
    assert window.min() > 0.85 and window.max() < 1.5
    assert window.mean() == pytest.approx(1.0, abs=0.15)

    # What the density and spectrum panels read.
    steps = httpx.get(f"{url}/spectra").json()
    assert steps["probe"] == "hessian" and steps["steps"] == list(range(0, 301, 10))
    assert all(m["cost"]["n_hvp"] > 0 and m["threshold"] == threshold for m in steps["meta"])
    at = httpx.get(f"{url}/spectra/{crossed}").json()
    assert at["step"] == crossed and at["meta"]["lambda_max"] == pytest.approx(sharp[crossed])
    eigenvalues = at["arrays"]["eigenvalues"]
    assert len(eigenvalues) == 6 and eigenvalues[0] == pytest.approx(sharp[crossed])
    grid, dens = np.array(at["arrays"]["density_grid"]), np.array(at["arrays"]["density"])
    assert grid.shape == dens.shape and np.trapezoid(dens, grid) == pytest.approx(1.0, rel=1e-6)
    assert httpx.get(f"{url}/spectra/5").status_code == 404
