"""A worker process sets torch's intra-op threads to its share of the host's cores, and
OpenMP's passive wait policy unless told otherwise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from server.config import Settings
from tests.conftest import ROOT, child_env, stop_process, wait_for
from worker.threads import host_cores, torch_threads

pytestmark = pytest.mark.integration


def test_share_of_the_cores() -> None:
    assert torch_threads(Settings(host_workers=2), cores=16) == 8
    assert torch_threads(Settings(host_workers=3), cores=2) == 1
    assert torch_threads(Settings(host_workers=3, torch_threads=5), cores=2) == 5


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"OBS_HOST_WORKERS": "2"}, (max(1, host_cores() // 2), "PASSIVE")),
        ({"OBS_TORCH_THREADS": "3", "OMP_WAIT_POLICY": "ACTIVE"}, (3, "ACTIVE")),
    ],
)
def test_worker_process_applies_it(
    env: dict[str, str], expected: tuple[int, str], broker_url: str, tmp_path: Path
) -> None:
    from server import migrate

    database = f"sqlite:///{tmp_path / 'obs.db'}"
    migrate.upgrade(database)
    log_path = tmp_path / "worker.log"
    # The test process's own OMP_NUM_THREADS=1 must not decide: the worker sets the threads.
    environment = child_env(tmp_path, OBS_DATABASE_URL=database, OBS_BROKER_URL=broker_url)
    for variable in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT"):
        environment.pop(variable, None)
    environment.update(env)
    process = subprocess.Popen(
        [sys.executable, "-m", "server.cli", "worker", "--name", f"threads-{tmp_path.name}@test"],
        env=environment,
        cwd=ROOT,
        stdout=log_path.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        found = wait_for(
            lambda: re.search(
                r"torch intra-op threads: (\d+) .*; OpenMP wait policy: (\w+)",
                log_path.read_text(),
            ),
            120,
            "the worker to report its torch threads",
        )
        assert (int(found.group(1)), found.group(2)) == expected
    finally:
        stop_process(process)
