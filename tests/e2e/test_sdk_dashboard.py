"""An SDK run in a real Chromium: the runs table and the run page show it like a worker run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import ROOT, child_env
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e
SCRIPT = ROOT / "tests" / "integration" / "sdk_script.py"


@pytest.mark.timeout(240)
def test_an_sdk_run_shows_in_the_table_and_its_panels(
    service,  # noqa: ANN001
    browser: Browser,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = child_env(tmp_path, OBS_API_URL=service.url, OBS_SPOOL_DIR=str(tmp_path / "spool"))
    args = [str(tmp_path), "--steps", "300", "--hessian-every", "50"]
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=env, cwd=ROOT, capture_output=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_id = int((tmp_path / "run_id").read_text())
    assert httpx.get(f"{service.url}/api/runs/{run_id}").json()["status"] == "completed"

    page = browser.page
    page.goto(service.url)
    row = page.locator("#runs-table tbody tr", has_text="sdk-test")
    expect(row).to_contain_text("completed")
    expect(row.locator(".sub")).to_contain_text("sdk")  # task · origin under the name

    page.goto(f"{service.url}/run.html?id={run_id}")
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("dl.facts")).to_contain_text("sdk")
    page.wait_for_function(
        "() => (document.getElementById('plot-hessian-sharpness')?.data?.[0]?.x?.length ?? 0)"
        " === 6",  # probe steps 0, 50, …, 250
        timeout=20_000,
    )
    page.screenshot(path=str(artifact("sdk-run.png")), full_page=True)
    assert browser.errors == []
