"""The Hessian panels in a real Chromium: live sharpness while training, then every panel drawn.

A short edge-of-stability run (digits MLP, SGD) with the Hessian probe and its density: while it
runs the sharpness chart gains points; once it completes the sharpness panel holds λ_max and the
2/lr line, the top-k panel k series, the density panel the latest step's density and the heatmap
one column per probe step, each matching what the API serves.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import wait_for
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

# Long enough (~8 s idle) to be still running when a cold page draws its first points.
STEPS = 400
POINTS = STEPS // 10 + 1  # probe steps 0, 10, …, STEPS
CONFIG = {
    "name": "eos-panels",
    "task": {"kind": "digits", "hidden": 32, "train_size": 500},
    "optimizer": {"name": "sgd", "lr": 0.2},
    "steps": STEPS,
    "log_every": 10,
    "device": "cpu",
    "probes": {
        "hessian": {"every": 10, "k": 2, "batch_size": 500, "density": True, "density_steps": 16}
    },
}
READ = """(id) => {
    const plot = document.getElementById(`plot-${id}`);
    return plot?.data ? plot.data.map((t) => ({x: t.x ?? [], y: t.y ?? [], z: t.z ?? null})) : null;
}"""
LIVE = """() => {
    const status = document.getElementById("run-status")?.textContent;
    const points = document.getElementById("plot-hessian-sharpness")?.data?.[0]?.x?.length ?? 0;
    return status === "running" && points >= 2 ? points : false;
}"""


@pytest.mark.timeout(180)
def test_hessian_panels_draw_live_and_match_the_api(service, browser: Browser) -> None:  # noqa: ANN001, F811
    url, live = browser.watch_live(service, CONFIG, LIVE)
    page = browser.page
    assert live < POINTS  # drawn while the run was still going

    wait_for(lambda: httpx.get(url).json()["status"] == "completed", 90, "the run to complete")
    page.wait_for_function(
        "() => (document.getElementById('plot-hessian-sharpness')?.data?.[0]?.x?.length ?? 0)"
        f" === {POINTS}",
        timeout=20_000,
    )
    page.screenshot(path=str(artifact("hessian-panels.png")), full_page=True)

    sharp = page.evaluate(READ, "hessian-sharpness")
    metrics = httpx.get(f"{url}/metrics", params={"names": "hessian.lambda_max"}).json()
    [series] = metrics["series"]
    assert sharp[0]["x"] == series["steps"] and sharp[0]["y"] == pytest.approx(series["values"])
    assert sharp[2]["y"] == [pytest.approx(10.0)] * POINTS  # the 2/lr line
    eigs = page.evaluate(READ, "hessian-eigs")
    assert len(eigs) == 2 and all(len(t["x"]) == POINTS for t in eigs)

    steps = httpx.get(f"{url}/spectra").json()["steps"]
    assert steps == list(range(0, STEPS + 1, 10))
    page.wait_for_function(
        "() => document.getElementById('plot-hessian-density')?.data?.[0]?.name === 'density, "
        f"step {STEPS}'",
        timeout=20_000,
    )
    last = httpx.get(f"{url}/spectra/{STEPS}").json()["arrays"]
    density = page.evaluate(READ, "hessian-density")
    assert density[0]["x"] == pytest.approx(last["density_grid"])
    assert density[1]["x"] == pytest.approx(last["eigenvalues"])
    page.wait_for_function(
        "() => document.getElementById('plot-hessian-density-heatmap')?.data?.[0]?.x?.length"
        f" === {POINTS}",
        timeout=20_000,
    )
    heatmap = page.evaluate(READ, "hessian-density-heatmap")[0]
    assert heatmap["x"] == steps and all(len(row) == POINTS for row in heatmap["z"])
    assert browser.errors == []
