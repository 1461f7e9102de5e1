"""The examples in ``examples/`` run, at reduced size, against a real server (as in CI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, Service, child_env

pytestmark = pytest.mark.integration


def run_example(service: Service, tmp_path: Path, script: str, *args: str) -> dict:
    env = child_env(tmp_path, OBS_API_URL=service.url, OBS_SPOOL_DIR=str(tmp_path / "spool"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = httpx.get(f"{service.url}/api/runs", timeout=30).json()["data"]
    assert (run["status"], run["origin"]) == ("completed", "sdk"), run
    return run


def steps_of(service: Service, run: dict, name: str) -> list[int]:
    params = {"names": name, "max_points": 0}
    answer = httpx.get(f"{service.url}/api/runs/{run['id']}/metrics", params=params, timeout=30)
    return answer.json()["series"][0]["steps"]


def test_digits_edge_of_stability_example(sdk_server: Service, tmp_path: Path) -> None:
    run = run_example(sdk_server, tmp_path, "digits_eos.py", "--steps", "60", "--every", "30")
    assert steps_of(sdk_server, run, "hessian.lambda_max") == [0, 30, 60]
    assert steps_of(sdk_server, run, "hessian.threshold") == [0, 30, 60]
    assert steps_of(sdk_server, run, "train.loss") == list(range(0, 61, 10))
    assert run["config"]["probes"]["hessian"]["k"] == 3


def test_modular_grokking_example(sdk_server: Service, tmp_path: Path) -> None:
    args = ("--p", "13", "--steps", "40", "--every", "20")
    run = run_example(sdk_server, tmp_path, "modular_grokking.py", *args)
    assert steps_of(sdk_server, run, "grok.weight_norm") == [0, 20, 40]
    assert steps_of(sdk_server, run, "grok.fourier_sparsity") == [0, 20, 40]
    assert run["config"]["probes"]["grokking"]["every"] == 20
