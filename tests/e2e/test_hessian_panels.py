"""The Hessian panels in a real Chromium: live sharpness while training, then every panel drawn.

An edge-of-stability run (digits MLP, SGD) with the Hessian probe and its density: while it runs
the sharpness chart gains points; once the test has cancelled it (the run is far longer than the
page needs to draw, see tests/e2e/test_dashboard.py) the sharpness panel holds λ_max and the 2/lr
line, the top-k panel k series, the density panel the latest step's density and the heatmap one
column per probe step, each matching what the API serves; the sharpness panel also draws the
batch sharpness.
"""

from __future__ import annotations

import httpx
import pytest

from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

# Minutes of training even on a fast CPU: still running when a cold page draws its first points.
STEPS = 20_000
CONFIG = {
    "name": "eos-panels",
    "task": {"kind": "digits", "hidden": 32, "train_size": 500},
    "optimizer": {"name": "sgd", "lr": 0.2},
    "steps": STEPS,
    "log_every": 10,
    "device": "cpu",
    "probes": {
        "hessian": {
            "every": 10,
            "k": 2,
            "batch_size": 500,
            "density": True,
            "density_steps": 16,
            "batch_sharpness": 1,
        }
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
    run = browser.cancel(url)
    steps = httpx.get(f"{url}/spectra").json()["steps"]
    last, points = steps[-1], len(steps)
    assert steps == list(range(0, last + 1, 10)) and last <= run["step"]
    assert 2 <= live <= points  # drawn while the run was still going
    page.wait_for_function(
        "() => (document.getElementById('plot-hessian-sharpness')?.data?.[0]?.x?.length ?? 0)"
        f" === {points}",
        timeout=20_000,
    )
    page.screenshot(path=str(artifact("hessian-panels.png")), full_page=True)

    sharp = page.evaluate(READ, "hessian-sharpness")
    metrics = httpx.get(f"{url}/metrics", params={"names": "hessian.lambda_max"}).json()
    [series] = metrics["series"]
    assert sharp[0]["x"] == series["steps"] and sharp[0]["y"] == pytest.approx(series["values"])
    assert sharp[2]["y"] == [pytest.approx(10.0)] * points  # the 2/lr line
    metrics = httpx.get(f"{url}/metrics", params={"names": "hessian.batch_sharpness"}).json()
    [batch] = metrics["series"]  # full batch here: the directional curvature along the gradient
    assert sharp[3]["x"] == batch["steps"] and sharp[3]["y"] == pytest.approx(batch["values"])
    assert len(batch["steps"]) == points
    eigs = page.evaluate(READ, "hessian-eigs")
    assert len(eigs) == 2 and all(len(t["x"]) == points for t in eigs)

    page.wait_for_function(
        "() => document.getElementById('plot-hessian-density')?.data?.[0]?.name === 'density, "
        f"step {last}'",
        timeout=20_000,
    )
    arrays = httpx.get(f"{url}/spectra/{last}").json()["arrays"]
    density = page.evaluate(READ, "hessian-density")
    assert density[0]["x"] == pytest.approx(arrays["density_grid"])
    assert density[1]["x"] == pytest.approx(arrays["eigenvalues"])
    page.wait_for_function(
        "() => document.getElementById('plot-hessian-density-heatmap')?.data?.[0]?.x?.length"
        f" === {points}",
        timeout=20_000,
    )
    heatmap = page.evaluate(READ, "hessian-density-heatmap")[0]
    assert heatmap["x"] == steps and all(len(row) == points for row in heatmap["z"])
    assert browser.errors == []
