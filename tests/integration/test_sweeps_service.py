"""Sweeps through the embedded service's real worker: a 3 × 2 grid submitted by
``observatory sweep`` trains six runs, each with its point's config; its phase-diagram summary
equals what the test computes from each run's /metrics; cancelling a sweep cancels every
unfinished run; and the edge-of-stability preset, reduced, puts λ_max's plateau near 2/η for
every η that crossed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Service, wait_for

SHORT = {
    "task": {"kind": "gaussian_mixture", "hidden": 8, "n_train": 256, "n_test": 64},
    "steps": 30,
    "log_every": 5,
    "device": "cpu",
}
GRID = {"optimizer.lr": [0.001, 0.01, 0.1], "seed": [0, 1]}


def get(url: str, **params: object) -> dict:
    response = httpx.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def finished(service: Service, sweep_id: int, timeout: float) -> dict:
    def done() -> dict | None:
        sweep = get(f"{service.url}/api/sweeps/{sweep_id}")
        unfinished = sweep["statuses"].get("queued", 0) + sweep["statuses"].get("running", 0)
        return None if unfinished else sweep

    return wait_for(done, timeout, f"sweep {sweep_id} to finish\n{service.log}", interval=0.5)


def submit(service: Service, body: dict) -> dict:
    response = httpx.post(f"{service.url}/api/sweeps", json=body, timeout=60)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_grid_trains_one_run_per_point_and_cancels_the_rest(
    service: Service, tmp_path: Path
) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps(SHORT))
    command = [sys.executable, "-m", "server.cli", "sweep", str(base), "--name", "grid"]
    command += ["--axis", "optimizer.lr=0.001,0.01,0.1", "--axis", "seed=0,1"]
    cli = subprocess.run(
        [*command, "--api", service.url], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr + service.log
    (sweep,) = get(f"{service.url}/api/sweeps")["data"]
    assert f"sweep {sweep['id']}: 6 runs queued" in cli.stdout
    assert f"sweep {sweep['id']}: completed" in cli.stdout
    done = finished(service, sweep["id"], timeout=10)
    assert done["status"] == "completed" and done["statuses"] == {"completed": 6}
    points = sorted((r["config"]["optimizer"]["lr"], r["config"]["seed"]) for r in done["runs"])
    assert points == sorted((lr, s) for lr in GRID["optimizer.lr"] for s in GRID["seed"])
    for run in done["runs"]:
        config = run["config"]
        assert run["name"] == f"grid lr={config['optimizer']['lr']} seed={config['seed']}"
        assert run["step"] == 30 and config["task"]["hidden"] == 8

    summary = get(
        f"{service.url}/api/sweeps/{sweep['id']}/summary", series="train.loss", stat="min"
    )
    losses = {}
    for point in summary["points"]:
        metrics = get(
            f"{service.url}/api/runs/{point['run_id']}/metrics", names="train.loss", max_points=0
        )
        (series,) = metrics["series"]
        assert series["steps"] == list(range(0, 31, 5))
        assert point["summary"] == pytest.approx(min(series["values"]), rel=1e-12)
        losses[point["axes"]["optimizer.lr"], point["axes"]["seed"]] = point["summary"]
    assert len(set(losses.values())) == 6  # each run trained its own point

    long = {**SHORT, "steps": 200_000, "log_every": 100}
    sweep = submit(service, {"base": long, "axes": GRID})
    ids = [r["id"] for r in sweep["runs"]]
    wait_for(
        lambda: get(f"{service.url}/api/runs/{ids[0]}")["step"] > 0,
        120,
        f"the first run to train\n{service.log}",
    )
    cancelled = httpx.post(f"{service.url}/api/sweeps/{sweep['id']}/cancel", timeout=30).json()
    assert all(r["cancel_requested"] for r in cancelled["runs"])
    done = finished(service, sweep["id"], timeout=60)
    assert done["statuses"] == {"cancelled": 6} and done["status"] == "cancelled"
    first = get(f"{service.url}/api/runs/{ids[0]}")
    assert 0 < first["step"] < 200_000 and first["started_at"] is not None
    assert all(r["started_at"] is None for r in done["runs"][1:])  # never trained


@pytest.mark.slow
def test_the_eos_preset_plateaus_near_two_over_eta(service: Service) -> None:
    """The preset with two learning rates and fewer steps.  Where λ_max crosses depends on the
    CPU's float kernels: a tolerant property, checked only for the runs that crossed."""
    presets = get(f"{service.url}/api/sweeps/presets")
    preset = next(p for p in presets if p["name"] == "edge of stability across learning rates")
    body = preset["sweep"]
    body["base"]["steps"] = 300
    body["axes"] = {"optimizer.lr": [0.3, 0.4]}
    sweep = submit(service, body)
    assert finished(service, sweep["id"], timeout=300)["status"] == "completed"
    summary = get(f"{service.url}/api/sweeps/{sweep['id']}/summary", **preset["summary"])
    crossed = [p for p in summary["points"] if p["summary"] is not None]
    assert crossed, "no learning rate reached the edge of stability"
    for point in crossed:
        threshold = 2 / point["axes"]["optimizer.lr"]
        assert abs(point["summary"] - threshold) <= 0.2 * threshold, (point, threshold)
