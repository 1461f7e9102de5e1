"""The loss-landscape panel in a real Chromium: drawn live, contour + 3-D surface + step slider.

A digits-CNN run with a PCA-trajectory surface every 20 steps: while it runs the panel draws the
newest surface; once the test has cancelled it (the run is far longer than the page needs to draw,
see tests/e2e/test_dashboard.py) the contour and the surface hold the stored grid of the newest
step (log10 loss, transposed to plotly's z[y][x]) with the trajectory on top, and moving the
slider to its left end draws the first stored step. A 1-D run (interpolation) then draws loss and
accuracy curves, and a refined 2-D run its interpolated grid with the evaluated points dotted.
"""

from __future__ import annotations

import math

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

CONFIG = {
    "name": "landscape-panels",
    "task": {"kind": "digits", "model": "cnn", "hidden": 4},
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
    "batch_size": 64,
    "steps": 15_000,  # minutes even on a fast CPU: the test cancels it
    "log_every": 10,
    "device": "cpu",
    "probes": {
        "landscape": {
            "every": 20,
            "kind": "pca",
            "snapshot_every": 5,
            "resolution": 15,
            "range": 1.2,
            "eval_size": 256,
        }
    },
}
READ = """(id) => {
    const plot = document.getElementById(id);
    return plot?.data ? plot.data.map((t) => ({type: t.type, x: t.x ?? [], y: t.y ?? [],
                                               z: t.z ?? null})) : null;
}"""
LIVE = """() => {
    const status = document.getElementById("run-status")?.textContent;
    const drawn = document.getElementById("landscape-contour")?.data?.length ?? 0;
    return status === "running" && drawn > 0;
}"""
TITLE = "() => document.getElementById('landscape-contour')?.layout?.title?.text ?? ''"
CURVE_TITLE = "() => document.getElementById('landscape-curve')?.layout?.title?.text ?? ''"


@pytest.mark.timeout(240)
def test_landscape_panel_draws_contour_surface_and_slider(service, browser: Browser) -> None:  # noqa: ANN001, F811
    url, _ = browser.watch_live(service, CONFIG, LIVE)  # drawn while still running
    page, api = browser.page, service.url

    def two_surfaces() -> bool:  # the slider's two ends differ
        return len(httpx.get(f"{url}/landscapes").json()["steps"]) >= 2

    wait_for(two_surfaces, 120, "a second stored surface")
    browser.cancel(url)
    steps = httpx.get(f"{url}/landscapes").json()["steps"]
    end = steps[-1]
    assert steps == list(range(20, end + 1, 20))
    slider = page.locator("input[name='landscape-step']")
    page.wait_for_function(f"() => ({TITLE})().startsWith('step {end}:')", timeout=20_000)
    assert slider.get_attribute("max") == str(len(steps) - 1)
    page.screenshot(path=str(artifact("landscape-panel.png")), full_page=True)

    last = httpx.get(f"{url}/landscapes/{end}").json()["arrays"]
    contour, path = page.evaluate(READ, "landscape-contour")
    assert contour["type"] == "contour" and path["type"] == "scatter"
    assert contour["x"] == pytest.approx(last["coords"])
    n = len(last["coords"])
    want = [[math.log10(last["loss"][i][j]) for i in range(n)] for j in range(n)]
    assert [v for row in contour["z"] for v in row] == pytest.approx(
        [v for row in want for v in row], rel=1e-9
    )
    assert path["x"] == pytest.approx([p[0] for p in last["trajectory"]])
    assert path["y"] == pytest.approx([p[1] for p in last["trajectory"]])
    surface, path3d = page.evaluate(READ, "landscape-surface")
    assert surface["type"] == "surface" and path3d["type"] == "scatter3d"
    assert surface["z"] == contour["z"]

    slider.evaluate("(el) => { el.value = '0'; el.dispatchEvent(new Event('input')); }")
    page.wait_for_function(f"() => ({TITLE})().startsWith('step 20:')", timeout=20_000)
    first = httpx.get(f"{url}/landscapes/20").json()["arrays"]
    contour = page.evaluate(READ, "landscape-contour")[0]
    assert contour["x"] == pytest.approx(first["coords"])
    assert page.locator("#landscape-curve").is_hidden()

    # A 1-D kind draws loss and accuracy curves instead.
    one_d = CONFIG | {"name": "landscape-1d", "steps": 40}
    one_d["probes"] = {"landscape": {"every": 20, "kind": "interpolation", "dims": 1}}
    run = httpx.post(f"{api}/api/runs", json=one_d).json()
    url = f"{api}/api/runs/{run['id']}"
    wait_for(lambda: httpx.get(url).json()["status"] == "completed", 60, "the 1-D run")
    page.goto(f"{api}/run.html?id={run['id']}")
    page.wait_for_function(f"() => ({CURVE_TITLE})().startsWith('step 40:')", timeout=20_000)
    last = httpx.get(f"{url}/landscapes/40").json()["arrays"]
    loss, accuracy = page.evaluate(READ, "landscape-curve")
    assert loss["x"] == pytest.approx(last["coords"]) and loss["y"] == pytest.approx(last["loss"])
    assert accuracy["y"] == pytest.approx(last["accuracy"])
    assert page.locator("#landscape-contour").is_hidden()

    # A refined surface: the interpolated grid as contour, the evaluated points dotted on it.
    refined = CONFIG | {"name": "landscape-refined", "steps": 20}
    refined["probes"] = {
        "landscape": {"every": 20, "resolution": 21, "refine": {"coarse": 7, "budget": 0.3}}
    }
    run = httpx.post(f"{api}/api/runs", json=refined).json()
    url = f"{api}/api/runs/{run['id']}"
    wait_for(lambda: httpx.get(url).json()["status"] == "completed", 60, "the refined run")
    page.goto(f"{api}/run.html?id={run['id']}")
    page.wait_for_function(f"() => ({TITLE})().includes('refined')", timeout=20_000)
    last = httpx.get(f"{url}/landscapes/20").json()["arrays"]
    contour, dots = page.evaluate(READ, "landscape-contour")
    assert contour["type"] == "contour" and len(contour["z"]) == 21
    assert dots["x"] == pytest.approx([p[0] for p in last["evaluated"]])
    assert dots["y"] == pytest.approx([p[1] for p in last["evaluated"]])
    assert len(dots["x"]) <= 0.3 * 21**2 + 4
    assert browser.errors == []
