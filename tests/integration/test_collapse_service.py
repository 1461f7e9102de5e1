"""Issue 7 end to end: the neural-collapse preset shows NC1 falling ≥ 10× in a real worker.

``observatory up`` (SQLite, embedded broker, a worker) trains the preset exactly as the dashboard
submits it (from ``/api/presets``); the test reads back what the dashboard reads: ``nc.nc1`` and
``train.acc`` from ``/metrics`` (every point) and the cosine matrices from the array routes.

"The end of the first epoch with 100 % train accuracy": the preset trains on minibatches of 128
of the 1,348 training examples, 10 steps an epoch (``worker.training.loop.Batches`` draws a new
permutation when fewer than a batch are left), and logs ``train.acc`` on the full train set at θ_s
and runs the probe at θ_s every 10 steps.  So step 10·e holds θ after e epochs, and the first
logged step with ``train.acc == 1`` is the end of the first epoch at 100 %.  (In a full-batch run
every step is an epoch.)
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from server.schemas import RunConfig
from tests.conftest import Service
from worker.probes.collapse import terminal_phase_drop
from worker.training.tasks import build_task

pytestmark = pytest.mark.integration

PRESET = "neural collapse: digits MLP"


def get(api: str, path: str, **params: object) -> dict:
    response = httpx.get(f"{api}{path}", params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def test_preset_run_shows_nc1_falling_tenfold_after_the_fit(service: Service) -> None:
    api = service.url
    presets = httpx.get(f"{api}/api/presets", timeout=30).json()
    (preset,) = [p for p in presets if p["name"] == PRESET]
    config = preset["config"] | {"device": "cpu"}
    cfg = RunConfig.model_validate(config)
    epoch = len(build_task(cfg.task, cfg.seed).train_y) // cfg.batch_size
    assert cfg.log_every == cfg.probes.collapse.every == epoch == 10
    assert cfg.train_metrics == "full"

    path = service.submit(config).removeprefix(api)
    service.completed(api + path, timeout=150)

    metrics = get(api, f"{path}/metrics", names="nc.nc1,train.acc", max_points=0)
    got = {s["name"]: dict(zip(s["steps"], s["values"], strict=True)) for s in metrics["series"]}
    nc1, acc = got["nc.nc1"], got["train.acc"]
    assert sorted(nc1) == sorted(acc) == list(range(0, cfg.steps + 1, epoch))
    first, last, ratio = terminal_phase_drop(acc, nc1)
    assert last == cfg.steps and acc[last] == 1.0
    assert all(a < 1.0 for s, a in acc.items() if s < first)
    # Fitted within the first tenth of the run, so most of it is terminal phase.
    assert 0 < first <= cfg.steps // 10
    assert ratio >= 10, f"NC1 {nc1[first]:.4g} at step {first} -> {nc1[last]:.4g}"
    # A trend, not one lucky end point: NC1 is ≥ 3× below the fit halfway through the terminal
    # phase, and ≥ 10× below it on average over the last tenth of the run.
    assert nc1[first] / nc1[(first + last) // 2 // epoch * epoch] >= 3
    tail = [v for s, v in nc1.items() if s >= 0.9 * cfg.steps]
    assert nc1[first] / np.mean(tail) >= 10

    # The class means approach a simplex ETF: the cosines the heatmap shows, against −1/(C−1).
    listing = get(api, f"{path}/arrays/collapse")
    assert listing["steps"] == list(range(0, cfg.steps + 1, epoch))
    spread = {}
    for step in (first, last):
        body = get(api, f"{path}/arrays/collapse/{step}")
        cosines = np.array(body["arrays"]["cosines"])
        off = cosines[~np.eye(10, dtype=bool)]
        spread[step] = np.abs(off - body["meta"]["etf"]).max()
    assert spread[last] < spread[first] / 2
