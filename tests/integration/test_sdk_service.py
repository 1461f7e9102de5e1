"""The SDK against a real ``observatory serve`` on PostgreSQL: a user's script in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import torch

from tests.conftest import ROOT, Service, child_env, wait_for

pytestmark = pytest.mark.integration
SCRIPT = Path(__file__).with_name("sdk_script.py")


def start_script(service: Service, out: Path, *args: str) -> subprocess.Popen:
    out.mkdir(parents=True, exist_ok=True)
    env = child_env(
        out,
        OBS_API_URL=service.url,
        OBS_SPOOL_DIR=str(out / "spool"),
        OBS_HEARTBEAT_SECONDS="0.5",
    )
    return subprocess.Popen(
        [sys.executable, str(SCRIPT), str(out), *args],
        env=env,
        cwd=ROOT,
        stdout=(out / "script.log").open("w"),
        stderr=subprocess.STDOUT,
    )


def finished(process: subprocess.Popen, out: Path, timeout: float = 300) -> int:
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError((out / "script.log").read_text()) from None


def run_of(service: Service, out: Path) -> dict:
    run_id = wait_for(lambda: (out / "run_id").exists() and (out / "run_id").read_text(), 60, "id")
    return httpx.get(f"{service.url}/api/runs/{run_id}", timeout=30).json()


def series(service: Service, run_id: int, name: str) -> tuple[list[int], list[float]]:
    answer = httpx.get(
        f"{service.url}/api/runs/{run_id}/metrics",
        params={"names": name, "max_points": 0},
        timeout=30,
    ).json()
    [points] = answer["series"]
    assert not points["downsampled"]
    return points["steps"], points["values"]


def dense_top_eigenvalue(model: torch.nn.Module, state: dict, probe: tuple) -> float:
    """λ_max of the probe batch's loss Hessian, exactly (dense, float64)."""
    model = model.double()
    names = [n for n, _ in model.named_parameters()]
    params = {n: state[n].double() for n in names}
    shapes = [params[n].shape for n in names]
    sizes = [params[n].numel() for n in names]
    x, y = probe[0].double(), probe[1]

    def loss(flat: torch.Tensor) -> torch.Tensor:
        pieces = flat.split(sizes)
        weights = {n: p.view(s) for n, p, s in zip(names, pieces, shapes, strict=True)}
        out = torch.func.functional_call(model, weights, (x,))
        return torch.nn.functional.cross_entropy(out, y)

    flat = torch.cat([params[n].reshape(-1) for n in names])
    hessian = torch.autograd.functional.hessian(loss, flat)
    return float(torch.linalg.eigvalsh(hessian)[-1])


def test_every_logged_value_and_the_exact_sharpness(sdk_server: Service, tmp_path: Path) -> None:
    out = tmp_path / "script"
    script = start_script(sdk_server, out, "--steps", "2000", "--hessian-every", "100")
    assert finished(script, out) == 0, (out / "script.log").read_text()
    run = run_of(sdk_server, out)
    assert (run["status"], run["origin"], run["step"]) == ("completed", "sdk", 1999)
    assert run["config"]["lr"] == 0.05  # the user's config, and the probes' for the panels
    assert run["config"]["probes"]["hessian"]["every"] == 100
    expected = json.loads((out / "expected.json").read_text())
    for name, values in expected.items():
        steps, got = series(sdk_server, run["id"], name)
        assert steps == list(range(2000))
        assert got == [values[str(s)] for s in steps]  # exactly, not approximately
    saved = torch.load(out / "states.pt", weights_only=True)
    steps, sharpness = series(sdk_server, run["id"], "hessian.lambda_max")
    assert steps == list(range(0, 2000, 100))
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3)
    )  # the script's architecture
    for step, value in zip(steps, sharpness, strict=True):
        exact = dense_top_eigenvalue(model, saved["states"][step], saved["probe"])
        assert abs(value - exact) <= 1e-4 * abs(exact), step
    spectra = httpx.get(f"{sdk_server.url}/api/runs/{run['id']}/spectra", timeout=30).json()
    assert spectra["steps"] == steps
    assert not list((out / "spool").glob("*.spool"))  # all acknowledged: the spool is gone


def test_server_down_for_ten_seconds_loses_and_doubles_nothing(
    sdk_server_env: dict[str, str], tmp_path: Path
) -> None:
    server = Service(tmp_path / "server", "serve", **sdk_server_env)
    out = tmp_path / "script"
    script = start_script(server, out, "--steps", "3000", "--sleep", "0.005")
    run = run_of(server, out)
    wait_for(lambda: series(server, run["id"], "step.sqrt")[0], 60, "the first points")
    server.process.kill()  # a crash, not a shutdown
    server.process.wait()
    wait_for(lambda: list((out / "spool").glob("*.spool")), 10, "the spool")
    time.sleep(10)
    assert script.poll() is None, (out / "script.log").read_text()  # still training meanwhile
    server = Service(tmp_path / "server2", "serve", port=server.port, **sdk_server_env)
    try:
        assert finished(script, out) == 0, (out / "script.log").read_text()
        run = httpx.get(f"{server.url}/api/runs/{run['id']}", timeout=30).json()
        assert run["status"] == "completed"
        expected = json.loads((out / "expected.json").read_text())
        for name, values in expected.items():
            steps, got = series(server, run["id"], name)
            assert steps == list(range(3000))  # none lost; the key makes doubles impossible
            assert got == [values[str(s)] for s in steps]
        csv = httpx.get(f"{server.url}/api/runs/{run['id']}/export.csv", timeout=30).text
        assert len(csv.strip().splitlines()) == 1 + 2 * 3000  # header + each point once
    finally:
        server.stop()


def test_a_script_that_raises_fails_the_run_with_its_traceback(
    sdk_server: Service, tmp_path: Path
) -> None:
    out = tmp_path / "script"
    script = start_script(sdk_server, out, "--steps", "50", "--raise-at", "20")
    assert finished(script, out) == 1
    run = run_of(sdk_server, out)
    assert run["status"] == "failed"
    assert "Traceback" in run["error"] and "the user's script broke at step 20" in run["error"]
    steps, _ = series(sdk_server, run["id"], "train.loss")
    assert steps == list(range(20))  # what it logged before the error is kept


def test_a_killed_script_is_lost_after_the_lease(sdk_server: Service, tmp_path: Path) -> None:
    out = tmp_path / "script"
    script = start_script(sdk_server, out, "--steps", "50", "--hang-at", "10")
    wait_for(lambda: (out / "hanging").exists(), 60, "the script to reach step 10")
    run_url = f"{sdk_server.url}/api/runs/{run_of(sdk_server, out)['id']}"
    time.sleep(8)  # twice the lease: a quiet script that still beats stays running
    assert httpx.get(run_url, timeout=30).json()["status"] == "running"
    os.kill(script.pid, signal.SIGKILL)
    script.wait()

    def status() -> str | None:
        status = httpx.get(run_url, timeout=30).json()["status"]
        return status if status != "running" else None

    assert wait_for(status, 60, "the run to be lost") == "lost"
