"""The login page in a real Chromium against ``observatory up`` with OBS_AUTH=required.

The runs page sends the browser to the login page (its API calls get 401); a wrong token is
refused there; the right one is kept, the runs list loads, and the run page's live stream (an
EventSource, which cannot send headers) works through the HttpOnly session cookie; cancelling from
the page is a write that carries the token.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

from tests.conftest import ROOT, Service, child_env, wait_for
from tests.e2e.test_dashboard import (
    LIVE_POINTS,
    READ_LIVE,
    Browser,
    artifact,
    browser,  # noqa: F401 (fixture)
)

pytestmark = pytest.mark.e2e

# Far longer than the test: it is cancelled once the page has drawn it growing, so the test does
# not depend on how fast this machine trains.
CONFIG = {
    "name": "e2e-login",
    "task": {"kind": "digits", "hidden": 32},
    "steps": 200_000,
    "log_every": 10,
    "device": "cpu",
}


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[tuple[Service, str]]:
    data = tmp_path / "data"
    service = Service(data, OBS_AUTH="required", OBS_FLUSH_SECONDS="0.25")
    try:
        created = subprocess.run(
            [sys.executable, "-m", "server.cli", "token", "create", "--name=e2e", "--scope=write"],
            env=child_env(data),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        yield service, created.stdout.strip()
    finally:
        service.stop()


def grown(session: Browser, more_than: int, run_url: str, headers: dict[str, str]) -> int:
    try:
        handle = session.page.wait_for_function(LIVE_POINTS, arg=more_than, timeout=120_000)
    except PlaywrightTimeoutError:
        seen = session.page.evaluate(READ_LIVE)
        run = httpx.get(run_url, headers=headers).json()
        raise AssertionError(
            f"the loss chart did not grow past {more_than} points; the page shows {seen}, the "
            f"API says {run['status']} at step {run['step']}"
        ) from None
    return handle.json_value()


def test_login_then_runs_list_and_live_stream(secured, browser: Browser) -> None:  # noqa: F811
    service, token = secured
    headers = {"Authorization": f"Bearer {token}"}
    created = httpx.post(f"{service.url}/api/runs", json=CONFIG, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    run_id = created.json()["id"]
    run_url = f"{service.url}/api/runs/{run_id}"

    # a loaded machine may take minutes to start the worker; the run lasts far longer than that
    def running() -> bool:
        return httpx.get(run_url, headers=headers).json()["status"] == "running"

    wait_for(running, 300, "the run to start", interval=0.5)

    page = browser.page
    page.goto(service.url)
    page.wait_for_url(re.compile(r"/login\.html\?next=%2F$"))
    page.fill("#token", token[:-3] + "xyz")
    page.click("#login")
    expect(page.locator("#login-state")).to_contain_text("Token refused: invalid or revoked token")
    page.screenshot(path=artifact("login-refused.png"))
    page.fill("#token", token)
    page.click("#login")
    page.wait_for_url(f"{service.url}/")
    browser.errors.clear()  # the 401s that led here were expected

    row = page.locator(f'#runs-table tr[data-run-id="{run_id}"]')
    expect(row).to_contain_text("e2e-login")
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies["obs_session"]["httpOnly"] and cookies["obs_session"]["sameSite"] == "Strict"
    assert "obs_session" not in page.evaluate("document.cookie")  # not readable by scripts

    page.goto(f"{service.url}/runs/{run_id}")
    expect(page.locator("#run-name")).to_have_text("e2e-login")
    first = grown(browser, 0, run_url, headers)
    second = grown(browser, first, run_url, headers)
    assert second > first
    page.click("#cancel-run")  # a write from the dashboard: api.js sends the token
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=60_000)
    assert httpx.get(run_url, headers=headers).json()["status"] == "cancelled"
    page.screenshot(path=artifact("login-run.png"), full_page=True, timeout=60_000)
    assert not browser.errors, "\n".join(browser.errors)
