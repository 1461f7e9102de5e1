"""schemathesis with every check against ``observatory serve`` on PostgreSQL: no server error, no
response outside the OpenAPI document, on hundreds of generated requests per operation.

The server runs as it is exposed (``OBS_AUTH=required``) and schemathesis sends an admin token,
so its authentication checks (a missing or invalid token must be refused) test the real guard.
Runs are submitted to a real Redis broker (no worker takes them: they stay queued), so POST
/api/runs succeeds as it would in production.  ``OBS_FUZZ_EXAMPLES`` raises the count per
operation (300 by default, the figure CI runs).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, Service, child_env

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).with_name("schemathesis.toml")
EXAMPLES = int(os.environ.get("OBS_FUZZ_EXAMPLES", "300"))


@pytest.fixture
def served(pg_schema_url: str, broker_url: str, tmp_path: Path) -> Iterator[Service]:
    from server import migrate

    migrate.upgrade(pg_schema_url)
    env = {"OBS_DATABASE_URL": pg_schema_url, "OBS_BROKER_URL": broker_url, "OBS_AUTH": "required"}
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "server.cli",
            "token",
            "create",
            "--name",
            "fuzz",
            "--scope",
            "admin",
        ],
        env=child_env(tmp_path, **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    service = Service(tmp_path / "data", "serve", OBS_SUBMIT_RATE="off", **env)
    service.token = created.stdout.strip()
    yield service
    service.stop()


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    served: Service, tmp_path: Path
) -> None:
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run"),
        f"{served.url}/openapi.json",
        *("--header", f"Authorization: Bearer {served.token}"),
        *("--checks", "all", "--max-examples", str(EXAMPLES), "--workers", "1"),
        *("--seed", os.environ.get("OBS_FUZZ_SEED", "20261203"), "--no-color"),
        *("--report", "junit", "--report-dir", str(tmp_path / "report")),
    ]
    result = subprocess.run(
        command, cwd=tmp_path, capture_output=True, text=True, timeout=1500, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{output[-20000:]}\n--- server log ---\n{served.log}"
    print(output[output.rfind("\n", 0, output.find("SUMMARY")) :])  # cases run, for the CI log
