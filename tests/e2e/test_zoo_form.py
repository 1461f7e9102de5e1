"""The model zoo in the submit form: the ``model`` union rendered from the schema, its parameter
count before submitting, and a model that does not fit the data refused naming the field."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from server.datasets import read_manifest
from server.limits import count_parameters
from server.schemas import RunConfig
from server.zoo_presets import EOS_RESNET
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e


def counted(config: dict, datasets: Path) -> int:
    """The parameter count of ``config`` on its stored data set, as the server computes it."""
    run = RunConfig.model_validate(config)
    run.task.resolve(read_manifest(datasets, run.task.name))
    return count_parameters(run)


@pytest.mark.timeout(120)
def test_the_form_configures_a_zoo_model(
    service,  # noqa: ANN001
    browser: Browser,  # noqa: F811
    demo_datasets: Path,
) -> None:
    page = browser.page
    page.goto(service.url)
    page.select_option("#preset-select", label="edge of stability: CIFAR-style ResNet")
    form, cost = page.locator("#submit-form"), page.locator("#run-cost")
    expected = counted(EOS_RESNET, demo_datasets)
    expect(cost).to_contain_text(f"{expected:,} parameters (limit")
    expect(form.locator('[name="model.kind"]')).to_have_value("resnet")
    expect(form.locator('[name="model.depth"]')).to_have_value("20")

    form.locator('[name="model.kind"]').select_option("vit")
    form.locator('[name="model.patch_size"]').fill("3")
    expect(cost).to_contain_text("Not accepted: model.patch_size: must divide the image's height")
    form.locator('[name="model.patch_size"]').fill("4")
    vit = counted(EOS_RESNET | {"model": {"kind": "vit", "patch_size": 4}}, demo_datasets)
    expect(cost).to_contain_text(f"{vit:,} parameters (limit")
    page.locator("#submit-form fieldset[data-path='model']").first.screenshot(
        path=artifact("zoo-model-form.png")
    )

    form.locator('[name="model.patch_size"]').fill("3")
    page.locator("#submit-run").click()
    expect(form).to_contain_text("must divide the image's height and width [8, 8]")
    assert httpx.get(f"{service.url}/api/runs").json()["count"] == 0
    assert not browser.errors, "\n".join(browser.errors)
