"""The sweep page draws the phase diagram as its runs finish: the mean over seeds per learning
rate with error bars, each run's point, a heatmap over two axes, and "not reached" marks."""

from __future__ import annotations

import statistics

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import Service
from tests.e2e.dashboard_session import worker_ready
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)
from tests.integration.test_sweeps_service import SHORT

pytestmark = pytest.mark.e2e
LRS = [0.001, 0.01, 0.1]
TRACES = """() => (document.getElementById("phase-diagram").data ?? []).map(
    (t) => ({name: t.name, type: t.type ?? "scatter", x: t.x, y: t.y, z: t.z}))"""


@pytest.mark.timeout(240)
def test_the_phase_diagram_fills_in_as_runs_finish(service: Service, browser: Browser) -> None:  # noqa: F811
    worker_ready(service)
    body = {"name": "e2e", "base": SHORT, "axes": {"optimizer.lr": LRS, "seed": [0, 1]}}
    sweep = httpx.post(f"{service.url}/api/sweeps", json=body, timeout=30).json()
    page = browser.page
    page.goto(f"{service.url}/sweeps/{sweep['id']}")
    diagram = page.locator("#phase-diagram")
    expect(diagram).to_have_attribute("data-reached", "6", timeout=180_000)
    expect(page.locator("body")).to_have_attribute("data-sweep-finished", "true")
    expect(page.locator("#sweep-header")).to_contain_text("completed")
    expect(page.locator("#sweep-runs tbody tr")).to_have_count(6)
    expect(page.locator("#sweep-overlay")).to_have_attribute("data-traces", "6")

    summary = httpx.get(
        f"{service.url}/api/sweeps/{sweep['id']}/summary", params={"series": "train.loss"}
    ).json()
    by_lr = {
        lr: [p["summary"] for p in summary["points"] if p["axes"]["optimizer.lr"] == lr]
        for lr in LRS
    }
    mean, runs = page.evaluate(TRACES)[:2]
    assert mean["name"] == "mean ± sd" and mean["x"] == LRS
    assert mean["y"] == pytest.approx([statistics.mean(by_lr[lr]) for lr in LRS], rel=1e-9)
    assert sorted(runs["y"]) == pytest.approx(sorted(p["summary"] for p in summary["points"]))
    diagram.screenshot(path=artifact("sweep-phase-diagram.png"))

    page.select_option('select[name="y"]', "seed")  # two axes: a heatmap of the means
    page.wait_for_function(
        "() => document.getElementById('phase-diagram').data[0].type === 'heatmap'"
    )
    (heatmap,) = page.evaluate(TRACES)
    assert heatmap["x"] == [str(lr) for lr in LRS] and heatmap["y"] == ["0", "1"]
    points = {
        (p["axes"]["optimizer.lr"], p["axes"]["seed"]): p["summary"] for p in summary["points"]
    }
    assert heatmap["z"] == [[pytest.approx(points[lr, s]) for lr in LRS] for s in (0, 1)]

    page.select_option('select[name="y"]', "")
    page.fill('input[name="event"]', "eos.crossed")  # no run has it: every point not reached
    page.locator('input[name="event"]').dispatch_event("change")
    expect(diagram).to_have_attribute("data-reached", "0")
    names = [t["name"] for t in page.evaluate(TRACES)]
    assert "not reached" in names
    not_reached = next(t for t in page.evaluate(TRACES) if t["name"] == "not reached")
    assert len(not_reached["x"]) == 6
    page.click("#sweep-header >> text=in the runs table")  # the runs tagged sweep:<id>
    expect(page.locator("#runs tbody tr[data-run-id]")).to_have_count(6)
    assert not browser.errors, "\n".join(browser.errors)


@pytest.mark.timeout(120)
def test_the_submit_form_sweeps_over_numeric_fields(service: Service, browser: Browser) -> None:  # noqa: F811
    page = browser.page
    page.goto(service.url)
    page.select_option("#preset-select", label="Gaussian mixture: MLP")
    page.click(".sweep-form summary")
    page.select_option("#sweep-field", "optimizer.lr")
    page.fill("#sweep-values", "0.01, -1")
    page.click("#add-sweep-axis")
    page.select_option("#sweep-field", "seed")
    page.fill("#sweep-values", "0, 1")
    page.click("#add-sweep-axis")
    expect(page.locator("#submit-sweep")).to_have_text("Submit sweep (4 runs)")
    page.click("#submit-sweep")
    alert = page.locator(".sweep-form .notice-error")
    expect(alert).to_contain_text("axes.optimizer.lr: -1: Input should be greater than 0")
    assert httpx.get(f"{service.url}/api/runs").json()["count"] == 0

    page.select_option("#sweep-field", "optimizer.lr")
    page.fill("#sweep-values", "0.01, 0.1")
    page.click("#add-sweep-axis")  # replaces the axis' values
    page.click("#submit-sweep")
    page.wait_for_url("**/sweeps/*")
    (sweep,) = httpx.get(f"{service.url}/api/sweeps").json()["data"]
    assert page.url.endswith(f"/sweeps/{sweep['id']}")
    runs = httpx.get(f"{service.url}/api/sweeps/{sweep['id']}").json()["runs"]
    assert sorted((r["config"]["optimizer"]["lr"], r["config"]["seed"]) for r in runs) == [
        (0.01, 0), (0.01, 1), (0.1, 0), (0.1, 1),
    ]  # fmt: skip
    assert {r["config"]["task"]["kind"] for r in runs} == {"gaussian_mixture"}  # the form's base
    expect(page.locator("#sweep-runs tbody tr")).to_have_count(4)
    httpx.post(f"{service.url}/api/sweeps/{sweep['id']}/cancel")
    page.goto(service.url)
    link = page.locator(f'#runs a.sweep-link[href="/sweeps/{sweep["id"]}"]')
    expect(link).to_have_count(4)
    assert not browser.errors, "\n".join(browser.errors)
