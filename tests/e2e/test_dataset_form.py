"""The submit form offers the data sets ``GET /api/datasets`` lists, as a select."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from server.datasets import read_manifest
from tests.conftest import Service
from tests.e2e.test_dashboard import Browser, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e


@pytest.mark.timeout(120)
def test_the_dataset_field_is_a_select_of_the_catalog(
    service: Service,
    browser: Browser,  # noqa: F811
    demo_datasets: Path,
) -> None:
    # the service's own disk holds the demo data sets (the fixture copied them in)
    page = browser.page
    page.goto(service.url)
    form = page.locator("#submit-form")
    form.locator('select[name="task.kind"]').select_option("dataset")
    names = form.locator('select[name="task.name"]')
    text = read_manifest(demo_datasets, "stdlib-text")  # its size follows the Python version
    expect(names.locator("option")).to_have_text(
        [
            "(choose)",
            "digits — vector 64, 1348 train, 10 classes",
            "digits-images — image 1×8×8, 1348 train, 10 classes",
            f"stdlib-text — text 64, {text.train} train, {text.vocab} tokens",
        ]
    )
    names.select_option("digits-images")
    page.click("#json-toggle")
    config = json.loads(page.locator("#config-json").input_value())
    assert config["task"] == {
        "kind": "dataset",
        "name": "digits-images",
        "subset": None,
        "normalize": False,
        "augment": False,
    }
    assert not browser.errors, "\n".join(browser.errors)
