"""The grokking panel in a real Chromium: drawn live, then the two events marked and the delay.

The p = 23 run of tests/integration/test_grokking_service.py, 50 times as long (it generalizes
after some 1,000 steps): while it runs the panel gains points; once both events are stored the
panel has a dashed line at each on the log-step axis and the delay annotated; the test then
cancels the run (see tests/e2e/test_dashboard.py) and the traces match what the API serves.
"""

from __future__ import annotations

import math

import httpx
import pytest

from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)
from tests.integration.test_grokking_service import GROKKING

pytestmark = pytest.mark.e2e

# 50 times the integration test's run (minutes even on a fast CPU), so that it is still running
# when a cold page draws its first points and when both events are marked.
STEPS = 50 * GROKKING["steps"]
CONFIG = GROKKING | {"name": "grokking-panels", "steps": STEPS}
READ = """() => {
    const plot = document.getElementById("plot-grokking");
    if (!plot?.data) return null;
    return {
        traces: plot.data.map((t) => ({meta: t.meta, x: t.x, y: t.y, yaxis: t.yaxis})),
        shapes: (plot.layout.shapes ?? []).map((s) => ({name: s.name, x0: s.x0, x1: s.x1})),
        annotations: (plot.layout.annotations ?? []).map((a) => a.text),
        annotation_positions: (plot.layout.annotations ?? []).map((a) => ({text: a.text, x: a.x})),
    };
}"""
LIVE = """() => {
    const status = document.getElementById("run-status")?.textContent;
    const plot = document.getElementById("plot-grokking");
    const test = plot?.data?.find((t) => t.meta === "test.acc");
    return status === "running" && (test?.x?.length ?? 0) >= 2 ? test.x.length : false;
}"""
MARKED = """() => (document.getElementById("plot-grokking")?.layout?.annotations ?? [])
    .some((a) => String(a.text).startsWith("delay"))"""


@pytest.mark.timeout(240)
def test_grokking_panel_draws_live_and_marks_the_events(service, browser: Browser) -> None:  # noqa: ANN001, F811
    url, live = browser.watch_live(service, CONFIG, LIVE)
    page = browser.page
    page.wait_for_function(MARKED, timeout=180_000)  # both events, while the run goes on
    browser.cancel(url)
    [sparsity] = httpx.get(f"{url}/metrics", params={"names": "grok.fourier_sparsity"}).json()[
        "series"
    ]
    points = sum(1 for step in sparsity["steps"] if step > 0)  # the log axis has no step 0
    assert 2 <= live <= points  # drawn while the run was still going
    page.wait_for_function(
        "() => document.getElementById('plot-grokking')?.data?.find((t) => t.meta === "
        f"'grok.fourier_sparsity')?.x?.length === {points}",
        timeout=30_000,
    )
    page.locator("#panel-grokking").screenshot(path=str(artifact("grokking-panel.png")))

    events = {e["kind"]: e for e in httpx.get(f"{url}/events").json()["data"]}
    mem, gen = events["grokking.memorized"]["step"], events["grokking.generalized"]["step"]
    drawn = page.evaluate(READ)
    lines = {s["name"]: s for s in drawn["shapes"]}
    assert lines["grokking.memorized"]["x0"] == mem and lines["grokking.generalized"]["x0"] == gen
    assert (lines["delay"]["x0"], lines["delay"]["x1"]) == (mem, gen)
    # Annotations on a log axis are placed in log10 units.
    assert f"memorized @ {mem}" in drawn["annotations"]
    labels = {a["text"]: a["x"] for a in drawn["annotation_positions"]}
    assert labels[f"generalized @ {gen}"] == pytest.approx(math.log10(gen))
    assert f"delay {gen - mem:,} steps (grokking)" in drawn["annotations"]

    traces = {t["meta"]: t for t in drawn["traces"]}
    assert set(traces) == {
        "train.acc", "test.acc", "train.loss", "test.loss", "grok.fourier_sparsity",
        "grok.ntk_alignment", "grok.relative_change", "grok.weight_norm",
    }  # fmt: skip
    names = "test.acc,grok.fourier_sparsity"
    for s in httpx.get(f"{url}/metrics", params={"names": names}).json()["series"]:
        points = [(x, v) for x, v in zip(s["steps"], s["values"], strict=True) if x > 0]
        assert traces[s["name"]]["x"] == [x for x, _ in points]  # log axis: no step 0
        assert traces[s["name"]]["y"] == pytest.approx([v for _, v in points])
    assert traces["grok.weight_norm"]["yaxis"] == "y4"
    assert page.locator("#panel-grokking-layer-norms .plot").count() == 1
    assert browser.errors == []
