"""The opposing-signals panels in a real Chromium, against the embedded service.

A planted run: while it trains, the groups panel's step list grows and follows the latest probe
step with a pair; once the test has cancelled it (the run is far longer than the page needs to
draw, see tests/e2e/test_dashboard.py), the spike panel holds the train loss and one marker per
``loss.spike`` event, the groups panel shows the pair's rising and falling groups with their mean
loss curves as the API serves them, and clicking an example adds its loss curve
(``/examples/{index}/loss``).  A digits run shows its groups as 8×8 thumbnails.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.conftest import wait_for
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

EVERY = 3
PLANTED = {
    "name": "opposing-e2e",
    "task": {"kind": "opposing_signals"},
    "optimizer": {"name": "sgd", "lr": 0.5},
    "batch_size": 256,
    "steps": 100_000,  # minutes even on a fast CPU: the test cancels it
    "log_every": 10,
    "device": "cpu",
    "probes": {"opposing": {"every": EVERY}},
}
DIGITS = {
    "name": "opposing-digits",
    "task": {"kind": "digits", "hidden": 32},
    "optimizer": {"name": "sgd", "lr": 0.5},
    "batch_size": 64,
    "steps": 300,
    "log_every": 10,
    "device": "cpu",
    "probes": {"opposing": {"every": 5}},
}
OPTIONS_WHILE_RUNNING = """(moreThan) => {
    const status = document.getElementById("run-status")?.textContent;
    const options = document.getElementById("opposing-step")?.options.length ?? 0;
    return status === "running" && options > moreThan ? options : false;
}"""
READ_SELECT = """() => {
    const select = document.getElementById("opposing-step");
    return {value: select?.value, options: select?.options.length};
}"""
TRACES = """(id) => (document.getElementById(id)?.data ?? []).map((t) => ({
    name: t.name, x: Array.from(t.x ?? []), y: Array.from(t.y ?? []),
}))"""


def get(url: str, **params: object) -> dict:
    response = httpx.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.timeout(240)
def test_opposing_panels_follow_the_run_and_match_the_api(service, browser: Browser) -> None:  # noqa: ANN001, F811
    api = service.url
    wait_for(lambda: get(f"{api}/api/health")["workers"], 30, "a worker")
    run_id = httpx.post(f"{api}/api/runs", json=PLANTED).json()["id"]
    digits_id = httpx.post(f"{api}/api/runs", json=DIGITS).json()["id"]
    page = browser.page
    page.goto(f"{api}/runs/{run_id}")

    # live: the step list (steps with a pair) grows while the run is running
    first = page.wait_for_function(OPTIONS_WHILE_RUNNING, arg=0, timeout=90_000).json_value()
    page.wait_for_function(OPTIONS_WHILE_RUNNING, arg=first, timeout=30_000)

    run_url = f"{api}/api/runs/{run_id}"
    browser.cancel(run_url)
    listing = get(f"{run_url}/outliers")
    with_pairs = [s for s, n in zip(listing["steps"], listing["n_pairs"], strict=True) if n]
    latest = str(with_pairs[-1])
    try:
        page.wait_for_function(
            """([step, n]) => {
                const select = document.getElementById("opposing-step");
                return select?.value === step && select.options.length === n;
            }""",
            arg=[latest, len(with_pairs)],
            timeout=30_000,
        )
    except PlaywrightTimeoutError:
        seen = page.evaluate(READ_SELECT)
        raise AssertionError(
            f"the step list shows {seen}, expected {latest} of {len(with_pairs)}"
        ) from None
    assert page.locator("#opposing-follow").is_checked()

    # the spike panel: the train loss and one marker per loss.spike event
    loss = get(f"{run_url}/metrics", names="train.loss", max_points=0)["series"][0]
    spikes = [e for e in get(f"{run_url}/events")["data"] if e["kind"] == "loss.spike"]
    traces = page.evaluate(TRACES, "plot-opposing-spikes")
    assert traces[0]["x"] == loss["steps"]
    assert traces[1]["x"] == [e["step"] for e in spikes]
    assert traces[1]["y"] == [e["payload"]["loss"] for e in spikes]

    # the groups at the latest step with a pair: side by side, curves as the API serves them
    data = get(f"{run_url}/outliers/{latest}", span=20)
    pair = data["pairs"][0]
    rising, falling = data["groups"][pair["rising"]], data["groups"][pair["falling"]]
    first_pair = page.locator("#opposing-pairs .og-pair").first
    cards = first_pair.locator(".og-group")
    assert cards.count() == 2
    assert cards.nth(0).get_attribute("data-group") == str(rising["id"])
    assert cards.nth(1).get_attribute("data-group") == str(falling["id"])
    assert f"{rising['size']} examples" in cards.nth(0).inner_text()
    curves = page.evaluate(TRACES, "opposing-curves")
    assert curves[0]["x"] == data["curves"]["steps"]
    assert curves[0]["y"] == data["curves"]["mean_loss"][rising["id"]]
    assert curves[1]["y"] == data["curves"]["mean_loss"][falling["id"]]

    # an example's loss over the whole run joins the curves on click
    index = rising["members"][0]["index"]
    cards.nth(0).locator(f'button[data-index="{index}"]').click()
    page.wait_for_function(
        "(name) => document.getElementById('opposing-curves').data.some((t) => t.name === name)",
        arg=f"example {index}",
    )
    example = [t for t in page.evaluate(TRACES, "opposing-curves") if t["name"].startswith("ex")]
    expected = get(f"{api}/api/runs/{run_id}/examples/{index}/loss", max_points=2000)
    assert example[0]["x"] == expected["steps"] and example[0]["y"] == expected["values"]
    page.screenshot(path=str(artifact("opposing-panels.png")), full_page=True)

    # choosing an earlier step shows that step's groups
    earlier = str(with_pairs[0])
    page.select_option("#opposing-step", earlier)
    page.wait_for_function(
        "(step) => document.querySelector('.og-summary')?.textContent.includes(`→ ${step}`)",
        arg=earlier,
    )
    assert not page.locator("#opposing-follow").is_checked()

    # digits: groups as 8x8 thumbnails
    wait_for(lambda: get(f"{api}/api/runs/{digits_id}")["status"] == "completed", 120, "digits run")
    page.goto(f"{api}/runs/{digits_id}")
    page.wait_for_function("() => document.querySelectorAll('#opposing-pairs .og-thumb').length")
    thumb = page.locator("#opposing-pairs .og-thumb").first
    assert thumb.get_attribute("width") == "8" and thumb.get_attribute("height") == "8"
    page.locator("#panel-opposing-groups").screenshot(path=str(artifact("opposing-digits.png")))
    assert not browser.errors, "\n".join(browser.errors)
