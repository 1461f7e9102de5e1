"""The neural-collapse panels in a real Chromium, against the embedded service.

The collapse preset, cut to 200 steps (20 epochs, a probe at each epoch's end): once it completes,
the metrics panel holds NC1–NC4 over steps on a log y axis, exactly as ``/metrics`` serves them;
the cosine heatmap shows the latest step's class-mean cosines (diagonal blank) with the ETF value
−1/(C−1) in its title and at the white midpoint of its colour scale; the projection panel shows
each class's stored points and the class means; and choosing another step in the heatmap's
selector redraws it with that step's cosines.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from server.presets import PRESETS
from tests.conftest import wait_for
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)

pytestmark = pytest.mark.e2e

STEPS = 200
(PRESET,) = [p for p in PRESETS if p["name"] == "neural collapse: digits MLP"]
CONFIG = PRESET["config"] | {"name": "collapse-panels", "steps": STEPS, "device": "cpu"}
PROBE_STEPS = list(range(0, STEPS + 1, 10))
READ = """(id) => {
    const plot = document.getElementById(`plot-${id}`);
    if (!plot?.data) return null;
    return {
        traces: plot.data.map((t) => ({
            name: t.name, x: Array.from(t.x ?? []), y: Array.from(t.y ?? []), z: t.z ?? null,
            colorscale: t.colorscale ?? null,
        })),
        title: plot.layout?.title?.text ?? "",
        ytype: plot.layout?.yaxis?.type ?? null,
    };
}"""
TITLE_HAS = """([id, text]) =>
    (document.getElementById(`plot-${id}`)?.layout?.title?.text ?? "").includes(text)"""
# The four measurements (NC2 as its three shape statistics), by series name and panel label.
CURVES = {
    "nc.nc1": "NC1 Tr(Σ_W Σ_B†)/C",
    "nc.equinorm": "NC2 equinorm (std/mean ‖μ_c − μ_G‖)",
    "nc.equiangular": "NC2 equiangularity (std cos)",
    "nc.max_angle": "NC2 mean |cos + 1/(C−1)|",
    "nc.nc3": "NC3 ‖W/‖W‖ − M/‖M‖‖²",
}
NC4 = {"nc.nc4": "NC4 disagreement with nearest centre"}


def get(url: str, **params: object) -> dict:
    response = httpx.get(url, params=params, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def blank_diagonal(cosines: list[list[float]]) -> list[list[float | None]]:
    return [[None if i == j else v for j, v in enumerate(row)] for i, row in enumerate(cosines)]


def assert_heatmap(heatmap: dict, cosines: list[list[float]]) -> None:
    z = heatmap["traces"][0]["z"]
    want = blank_diagonal(cosines)
    assert [[v is None for v in row] for row in z] == [[v is None for v in row] for row in want]
    got = np.array([[np.nan if v is None else v for v in row] for row in z], dtype=float)
    ref = np.array([[np.nan if v is None else v for v in row] for row in want], dtype=float)
    np.testing.assert_allclose(got, ref, rtol=1e-6, equal_nan=True)


@pytest.mark.timeout(180)
def test_collapse_panels_match_the_api(service, browser: Browser) -> None:  # noqa: ANN001, F811
    api = service.url
    wait_for(lambda: get(f"{api}/api/health")["workers"], 30, "a worker")
    response = httpx.post(f"{api}/api/runs", json=CONFIG, timeout=30)
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    url = f"{api}/api/runs/{run_id}"
    page = browser.page
    page.goto(f"{api}/run.html?id={run_id}")
    wait_for(lambda: get(url)["status"] == "completed", 120, f"the run\n{service.log}")
    page.wait_for_function(
        "() => (document.getElementById('plot-collapse-metrics')?.data?.[0]?.x?.length ?? 0)"
        f" === {len(PROBE_STEPS)}",
        timeout=20_000,
    )

    # NC1–NC3 over steps on a log y axis, NC4 (a fraction that reaches 0) on a linear one: the
    # raw values /metrics serves.
    metrics = get(f"{url}/metrics", names=",".join([*CURVES, *NC4]), max_points=0)
    served = {s["name"]: s for s in metrics["series"]}
    for panel_id, curves, axis in (
        ("collapse-metrics", CURVES, "log"),
        ("collapse-nc4", NC4, "linear"),
    ):
        panel = page.evaluate(READ, panel_id)
        assert panel["ytype"] == axis
        assert [t["name"] for t in panel["traces"]] == list(curves.values())
        for name, label in curves.items():
            (trace,) = [t for t in panel["traces"] if t["name"] == label]
            assert served[name]["steps"] == PROBE_STEPS
            assert trace["x"] == PROBE_STEPS
            assert trace["y"] == pytest.approx(served[name]["values"], rel=1e-6)
    nc1 = served["nc.nc1"]["values"]
    assert nc1[-1] < nc1[0] / 10  # collapse under way, as the log axis shows

    # The heatmap at the latest step, against the ETF value.
    latest = get(f"{url}/arrays/collapse/{STEPS}")
    etf = latest["meta"]["etf"]
    assert etf == pytest.approx(-1 / 9)
    page.wait_for_function(TITLE_HAS, arg=["collapse-cosines", f"step {STEPS}:"], timeout=20_000)
    heatmap = page.evaluate(READ, "collapse-cosines")
    assert "ETF −1/(C−1) = -0.111" in heatmap["title"]
    assert_heatmap(heatmap, latest["arrays"]["cosines"])
    scale = heatmap["traces"][0]["colorscale"]
    assert scale[1][0] == pytest.approx((etf + 1) / 2) and scale[1][1] == "#f8fafc"

    # The 2-D projection: each class's stored points, then the class means.
    page.wait_for_function(TITLE_HAS, arg=["collapse-projection", f"step {STEPS}:"], timeout=20_000)
    projection = page.evaluate(READ, "collapse-projection")
    arrays = latest["arrays"]
    points, labels = np.array(arrays["points"]), np.array(arrays["labels"])
    assert [t["name"] for t in projection["traces"]] == [
        *(f"class {c}" for c in arrays["classes"]),
        "class means",
    ]
    for c, trace in zip(arrays["classes"], projection["traces"], strict=False):
        mine = points[labels == c]
        assert len(mine) == 50  # points_per_class, and digits has ≥ 50 train examples per class
        np.testing.assert_allclose(trace["x"], mine[:, 0], rtol=1e-6)
        np.testing.assert_allclose(trace["y"], mine[:, 1], rtol=1e-6)
    means = np.array(arrays["means"])
    np.testing.assert_allclose(projection["traces"][-1]["x"], means[:, 0], rtol=1e-6)
    np.testing.assert_allclose(projection["traces"][-1]["y"], means[:, 1], rtol=1e-6)
    page.screenshot(path=str(artifact("collapse-panels.png")), full_page=True)

    # Choosing an early step redraws the heatmap with that step's cosines.
    chosen = 40
    earlier = get(f"{url}/arrays/collapse/{chosen}")["arrays"]["cosines"]
    assert not np.allclose(earlier, latest["arrays"]["cosines"], atol=1e-3)
    select = page.locator('select[name="collapse-cosines-step"]')
    assert select.evaluate("(s) => Array.from(s.options).map((o) => o.value)") == [
        "latest",
        *map(str, PROBE_STEPS),
    ]
    select.select_option(str(chosen))
    page.wait_for_function(TITLE_HAS, arg=["collapse-cosines", f"step {chosen}:"], timeout=20_000)
    assert_heatmap(page.evaluate(READ, "collapse-cosines"), earlier)
    page.screenshot(path=str(artifact("collapse-heatmap-step.png")), full_page=True)
    assert browser.errors == []
