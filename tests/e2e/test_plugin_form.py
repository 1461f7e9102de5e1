"""The example task plugin (examples/observatory-plugin-example) in the dashboard's form, in a
real Chromium: its task is offered under its title and package, its fields render from its JSON
schema, a 422 lands at its field, and submitting it creates a run that a worker trains."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import Service
from tests.e2e.dashboard_session import OpenTab, worker_ready

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(240)
def test_the_plugin_task_is_offered_rendered_and_submitted(
    shared_service: Service, tabs: OpenTab
) -> None:
    tab = tabs()
    page = tab.page
    page.goto(shared_service.url)
    form = page.locator("#submit-form")
    kind = form.locator('[name="task.kind"]')
    expect(kind.locator('option[value="sparse_parity"]')).to_have_text(
        "Sparse parity (observatory-plugin-example)"
    )
    expect(kind.locator('option[value="digits"]')).to_have_text("Digits")
    kind.select_option("sparse_parity")
    n_bits, k = form.locator('[name="task.n_bits"]'), form.locator('[name="task.k"]')
    expect(n_bits).to_have_value("30")
    expect(k).to_have_value("3")
    expect(form.locator('[name="task.hidden"]')).to_have_value("256")
    expect(form.locator('fieldset[data-path="task"]')).to_contain_text("Barak et al. 2022")

    # the plugin's own cross-field rule: its 422 is shown at its field
    n_bits.fill("10")
    k.fill("12")
    page.click("#submit-run")
    expect(form.locator('.field:has([name="task.k"]) .field-errors')).to_contain_text(
        "at most n_bits (10)"
    )
    assert httpx.get(f"{shared_service.url}/api/runs").json()["count"] == 0

    k.fill("2")
    n_bits.fill("8")
    form.locator('[name="task.n_train"]').fill("64")
    form.locator('[name="task.n_test"]').fill("32")
    form.locator('[name="task.hidden"]').fill("16")
    form.locator('[name="name"]').fill("e2e-parity")
    form.locator('[name="steps"]').fill("20")
    worker_ready(shared_service)
    page.click("#submit-run")
    page.wait_for_url(re.compile(r"/runs/\d+$"))
    run_url = f"{shared_service.url}/api/runs/{page.url.rsplit('/', 1)[1]}"
    run = shared_service.completed(run_url, timeout=120)
    assert run["name"] == "e2e-parity"
    task = {"kind": "sparse_parity", "n_bits": 8, "k": 2, "n_train": 64, "n_test": 32}
    assert run["config"]["task"] == {**task, "hidden": 16, "depth": 1}
    assert not tab.errors and not tab.external, tab.errors + tab.external
