"""The submit form shows what a config costs against the server's limits before it is submitted
(``POST /api/runs/validate``), and says which limit a config exceeds."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_the_form_shows_the_parameter_count_and_the_limit(service, browser: Browser) -> None:  # noqa: ANN001, F811
    page = browser.page
    page.goto(service.url)
    page.select_option("#preset-select", label="digits: MLP, Adam")
    cost = page.locator("#run-cost")
    expect(cost).to_contain_text("8,970 parameters (limit 50,000,000)")
    expect(cost).to_contain_text("data set 116,805 elements")

    form = page.locator("#submit-form")
    form.locator('[name="task.hidden"]').fill("8192")
    form.locator('[name="task.depth"]').fill("8")
    expect(cost).to_contain_text("Over a limit: parameters of the model: 470,")
    expect(cost).to_contain_text("(OBS_MAX_PARAMETERS)")
    cost.screenshot(path=artifact("dashboard-run-cost.png"))
    assert httpx.get(f"{service.url}/api/runs").json()["count"] == 0
    assert not browser.errors, "\n".join(browser.errors)
