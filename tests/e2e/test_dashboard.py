"""The dashboard in a real Chromium against the embedded service (``observatory up``).

Submits a run from the schema-built form (after checking that a 422 is shown at the field it
names), lands on the run page, sees the loss chart gain points while the run trains, cancels it
from the page and sees the header reach ``cancelled``, and checks that the chart ends with exactly
the points the API holds.  Screenshots go to ``test-artifacts/`` (git-ignored).

Live tests never race the run: a run is far longer in steps than any machine trains before a page
has drawn (minutes even on a fast CPU) and the test cancels it once it has seen what it needs, so
what is asserted does not depend on how fast the machine trains.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Page, expect, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import Service, wait_for

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI") == "true"
EXPECTED_422 = "status of 422"  # Chromium logs the rejected submit the test provokes
# digits MLP, full batch: the most steps a run may have (OBS_MAX_STEPS), a quarter of an hour even
# on a fast core, so the run cannot end before the page has drawn; the test cancels it.  Logging
# every 50 steps keeps the points drawn by then far below the page's history budget (2,000), so
# the chart holds every point, not a downsampled history.
STEPS = 1_000_000
LOG_EVERY = 50

# The header status and the number of points of the loss chart's first trace (train loss),
# read in one evaluation so that both describe the same instant.
READ_LIVE = """() => ({
    status: document.getElementById("run-status")?.textContent,
    points: document.getElementById("plot-loss")?.data?.[0]?.x?.length ?? 0,
})"""
LIVE_POINTS = f"""(moreThan) => {{
    const seen = ({READ_LIVE})();
    return seen.status === "running" && seen.points > moreThan ? seen.points : false;
}}"""


@dataclass
class Browser:
    page: Page
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error" and EXPECTED_422 not in message.text:
            self.errors.append(f"console error: {message.text}")

    def watch_live(self, service: Service, config: dict, condition: str) -> tuple[str, object]:
        """Submits ``config`` once the service's worker is up, opens the run's page and waits
        until ``condition`` holds while the run is still running (see ``wait_live``).

        ``config`` must be far longer in steps than the page needs to draw (see the module's
        docstring); the test ends it with ``cancel`` once it has seen what it needs.
        Returns the run's API URL and the condition's value."""
        wait_for(lambda: httpx.get(f"{service.url}/api/health").json()["workers"], 30, "a worker")
        url = service.submit(config)
        self.page.goto(f"{service.url}/run.html?id={url.rsplit('/', 1)[1]}")
        return url, self.wait_live(condition, url)

    def wait_live(self, condition: str, run_url: str, timeout: float = 90) -> object:
        """Waits until the page's ``condition`` (a JS function; truthy while the run is still
        running and something is drawn) holds; on a timeout the error says what the page showed
        and where the run was, so a run that ended before the page drew is told apart."""
        try:
            return self.page.wait_for_function(condition, timeout=timeout * 1000).json_value()
        except PlaywrightTimeoutError:
            seen = self.page.evaluate(READ_LIVE)
            run = httpx.get(run_url).json()
            raise AssertionError(
                f"nothing was drawn live within {timeout} s; the page shows {seen}, the API says "
                f"{run['status']} at step {run['step']} (started {run['started_at']}, finished "
                f"{run['finished_at']})"
            ) from None

    def cancel(self, run_url: str) -> dict:
        """Cancels the run from the page's button and waits until the page has received all of
        it; returns the run as the API then serves it (``step``: where it stopped)."""
        self.page.click("#cancel-run")
        expect(self.page.locator("#run-status")).to_have_text("cancelled", timeout=60_000)
        expect(self.page.locator("#live-state")).to_have_text("all data received")
        run = httpx.get(run_url).json()
        assert run["status"] == "cancelled", run
        return run

    def live_points(self, more_than: int, run_url: str) -> int:
        """Waits until the run is running with more than ``more_than`` loss points drawn."""
        try:
            handle = self.page.wait_for_function(LIVE_POINTS, arg=more_than, timeout=30_000)
        except PlaywrightTimeoutError:
            seen = self.page.evaluate(READ_LIVE)
            run = httpx.get(run_url).json()
            raise AssertionError(
                f"the loss chart did not grow past {more_than} points while running; the page "
                f"shows {seen}, the API says {run['status']} at step {run['step']}"
            ) from None
        return handle.json_value()


@pytest.fixture
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is missing (apt-get install chromium)"
        if IN_CI:
            pytest.fail(f"{reason}; CI needs it")
        pytest.skip(reason)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        context = chromium.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(15_000)
        session = Browser(page)
        page.on("pageerror", lambda error: session.errors.append(f"page error: {error}"))
        page.on("console", session.on_console)
        yield session
        chromium.close()


def artifact(name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


@pytest.mark.timeout(180)
def test_submit_from_the_form_and_watch_the_run_live(service, browser: Browser) -> None:
    page = browser.page
    page.goto(service.url)
    form = page.locator("#submit-form")
    lr = form.locator('[name="optimizer.lr"]')
    expect(lr).to_be_visible()
    page.select_option("#preset-select", label="digits: MLP, Adam")
    expect(form.locator('[name="task.kind"]')).to_have_value("digits")

    # "edit as JSON" shows the same config the fields hold
    page.click("#json-toggle")
    expect(page.locator("#config-json")).to_have_value(re.compile(r'"kind": "digits"'))
    page.click("#json-toggle")
    expect(lr).to_be_visible()

    # the server's 422 for lr = 0 is shown at the lr field and in the summary; nothing is created
    lr.fill("0")
    page.click("#submit-run")
    lr_errors = form.locator('.field:has([name="optimizer.lr"]) .field-errors')
    expect(lr_errors).to_contain_text("greater than 0")
    expect(form.locator(".form-errors")).to_contain_text("optimizer.lr")
    form.locator('fieldset[data-path="optimizer"]').screenshot(
        path=artifact("dashboard-form-422.png")
    )
    assert httpx.get(f"{service.url}/api/runs").json()["count"] == 0

    lr.fill("0.001")
    form.locator('[name="name"]').fill("e2e-digits")
    form.locator('[name="tags"]').fill("e2e, digits")
    form.locator('[name="steps"]').fill(str(STEPS))
    form.locator('[name="log_every"]').fill(str(LOG_EVERY))
    page.click("#submit-run")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#run-name")).to_have_text("e2e-digits")

    # live: the loss chart gains points while the header says running (the first wait covers
    # the worker still importing torch on a loaded machine)
    expect(page.locator("#run-status")).to_have_text("running", timeout=90_000)
    run_url = f"{service.url}/api/runs/{run_id}"
    first = browser.live_points(more_than=0, run_url=run_url)
    second = browser.live_points(more_than=first, run_url=run_url)
    assert second > first

    run = browser.cancel(run_url)
    expect(page.locator("#step-counter")).to_contain_text(f"{run['step']:,} / {STEPS:,}")
    # history + stream add up to exactly the server's series: no gap, no duplicate
    response = httpx.get(
        f"{service.url}/api/runs/{run_id}/metrics",
        params={"names": "train.loss", "max_points": 0},
    )
    expected_steps = response.json()["series"][0]["steps"]
    assert expected_steps == list(range(0, expected_steps[-1] + 1, LOG_EVERY))
    assert second <= len(expected_steps) <= run["step"] // LOG_EVERY + 1
    drawn_steps = page.evaluate("document.getElementById('plot-loss').data[0].x")
    assert drawn_steps == expected_steps
    page.screenshot(path=artifact("dashboard-run.png"), full_page=True)

    page.goto(service.url)
    row = page.locator(f'#runs-table tr[data-run-id="{run_id}"]')
    expect(row.locator(".badge")).to_have_text("cancelled")
    expect(row).to_contain_text("e2e-digits")
    page.screenshot(path=artifact("dashboard-runs.png"), full_page=True)

    assert not browser.errors, "\n".join(browser.errors)
