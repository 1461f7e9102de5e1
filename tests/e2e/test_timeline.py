"""The run page's event timeline in a real Chromium (issue 16): clicking an event moves every
probe panel to that step and draws the cursor on the scalar panels; the chips filter by kind.

The run's results are forced: the probes' own hooks run in-process on a short planted run with
loss spikes forced at chosen steps, and their metrics, arrays and events go through the SDK
ingestion API into a real service, so the steps every panel must show are known exactly.
"""

from __future__ import annotations

import base64
import math
import re

import httpx
import pytest
import torch
from playwright.sync_api import Page, expect

from server.schemas import RunConfig
from server.store.results import pack_arrays
from tests.conftest import Service
from tests.e2e.test_dashboard import Browser, artifact, browser  # noqa: F401 (fixture)
from tests.recording import ForceSpikes, Recorder
from worker.probe_hooks import build_hooks
from worker.training.loop import train

pytestmark = pytest.mark.e2e

AT_PROBE, BETWEEN = 40, 43  # forced spikes: at a step every probe ran, and between probe steps
CONFIG = {
    "task": {"kind": "opposing_signals", "n_train": 1024, "n_test": 128},
    "optimizer": {"name": "sgd", "lr": 0.5},
    "batch_size": 128,
    "steps": 60,
    "log_every": 5,
    "seed": 1,
    "device": "cpu",
    "probes": {
        "hessian": {"every": 10, "k": 2, "batch_size": 256, "density": True, "density_steps": 16},
        "landscape": {"every": 20, "resolution": 7, "eval_size": 128},
        "collapse": {"every": 10, "max_examples": 256},
        "opposing": {"every": 10, "monitor_size": 256},
    },
}  # fmt: skip
STEP_PANELS = ("hessian-density", "collapse-cosines", "collapse-projection")
LOAD_MS = 60_000  # the first load draws every panel (a 3-D surface among them) on a busy CPU


def record() -> Recorder:
    recorder, config = Recorder(), RunConfig.model_validate(CONFIG)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(config, recorder, hooks=[ForceSpikes([AT_PROBE, BETWEEN]), *build_hooks(config)])
    finally:
        torch.set_num_threads(threads)
    return recorder


def upload(service: Service, recorder: Recorder) -> int:
    """The recorded results as one SDK run: created, one batch, finished."""
    api = f"{service.url}/api/sdk/runs"
    config = RunConfig.model_validate(CONFIG).model_dump(mode="json")
    run = httpx.post(api, json={"key": "timeline-e2e", "name": "timeline", "config": config})
    run_id = run.raise_for_status().json()["id"]
    points = [(n, s, v) for s, values in sorted(recorder.points.items()) for n, v in values.items()]
    batch = {
        "metrics": {
            "name": [n for n, _, _ in points],
            "step": [s for _, s, _ in points],
            "value": [v if math.isfinite(v) else None for _, _, v in points],
            "wall_time": [1.7e9 + s for _, s, _ in points],
        },
        "events": [{"step": s, "kind": k, "payload": p} for (k, s), p in recorder.events.items()],
        "arrays": [
            {"probe": p, "step": s, "meta": m, "data": base64.b64encode(pack_arrays(a)).decode()}
            for (p, s), (a, m) in recorder.results.items()
        ],
        "step": CONFIG["steps"],
        "probes": {k: v for k, v in config["probes"].items() if v is not None},
    }
    sent = httpx.post(f"{api}/{run_id}/batches", json=batch, timeout=60)
    assert sent.status_code == 204, sent.text
    finish = {"status": "completed", "step": CONFIG["steps"]}
    httpx.post(f"{api}/{run_id}/finish", json=finish).raise_for_status()
    return run_id


def cursors(page: Page) -> dict[str, list[float]]:
    """The cursor's x on every scalar panel (line panels announce their step axis)."""
    return page.evaluate(
        """() => Object.fromEntries(
            [...document.querySelectorAll('.js-plotly-plot[data-step-axis]')].map((el) => [
              el.id,
              (el.layout.shapes ?? []).filter((s) => s.name === 'cursor').map((s) => s.x0),
            ]))"""
    )


def expect_probe_panels_at(page: Page, step: int) -> None:
    for panel in STEP_PANELS:
        expect(page.locator(f'select[name="{panel}-step"]')).to_have_value(
            str(step), timeout=LOAD_MS
        )
    label = page.locator("#panel-landscape .slider-label")
    expect(label).to_have_text(f"step {step}", timeout=LOAD_MS)
    expect(page.locator("#opposing-step")).to_have_value(str(step), timeout=LOAD_MS)


@pytest.mark.timeout(240)
def test_clicking_an_event_moves_every_panel_and_chips_filter_by_kind(
    service: Service,
    browser: Browser,  # noqa: F811
) -> None:
    recorder = record()
    assert {("loss.spike", AT_PROBE), ("loss.spike", BETWEEN)} <= set(recorder.events)
    run_id = upload(service, recorder)
    page = browser.page
    page.goto(f"{service.url}/run.html?id={run_id}")
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator(".tl-event").first).to_be_attached(timeout=LOAD_MS)
    spike = page.locator(f'.tl-event[data-kind="loss.spike"][data-step="{AT_PROBE}"]')
    summary = re.compile(rf"^step {AT_PROBE} · loss\.spike: loss spike: 50\.0, ")
    expect(spike).to_have_attribute("title", summary)  # the hover text
    for panel in (*STEP_PANELS, "landscape", "opposing-groups", "explain"):
        expect(page.locator(f"#panel-{panel}")).to_be_visible(timeout=LOAD_MS)

    # an event at a probe step: every step-indexed panel shows that step, scalars a cursor there
    spike.click()
    expect(page.locator("#timeline-step")).to_have_text(f"step {AT_PROBE}")
    expect_probe_panels_at(page, AT_PROBE)
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.js-plotly-plot[data-step-axis]')].every((el) => "
        f"(el.layout.shapes ?? []).some((s) => s.name === 'cursor' && s.x0 === {AT_PROBE}))",
        timeout=LOAD_MS,
    )
    scalar = cursors(page)
    assert len(scalar) >= 4 and all(x == [AT_PROBE] for x in scalar.values()), scalar
    card = page.locator("#explain-card")
    expect(card).to_contain_text(f"Loss spike at step {AT_PROBE}", timeout=LOAD_MS)
    expect(card).to_contain_text(f"over steps {AT_PROBE} → {AT_PROBE + 10}")
    expect(card.locator("tbody tr").first).to_be_visible()
    page.screenshot(path=str(artifact("timeline.png")), full_page=True)

    # between probe steps: the probe panels show the last probe step before it, the cursor is at it
    page.locator(f'.tl-event[data-kind="loss.spike"][data-step="{BETWEEN}"]').click()
    expect(page.locator("#timeline-step")).to_have_text(f"step {BETWEEN}")
    page.wait_for_function(
        f"() => [...document.querySelectorAll('.js-plotly-plot[data-step-axis]')].every((el) => "
        f"(el.layout.shapes ?? []).some((s) => s.name === 'cursor' && s.x0 === {BETWEEN}))",
        timeout=LOAD_MS,
    )
    expect_probe_panels_at(page, AT_PROBE)
    expect(card).to_contain_text(f"Loss spike at step {BETWEEN}")

    # the link keeps the selected step
    page.locator("#copy-link").click()
    assert f"step={BETWEEN}" in page.url

    # chips: one kind off hides its events only
    chip = page.locator('.tl-chip[data-kind="loss.spike"]')
    chip.click()
    expect(chip).to_have_attribute("aria-pressed", "false")
    expect(page.locator('.tl-event[data-kind="loss.spike"]')).to_have_count(2)
    for marker in page.locator('.tl-event[data-kind="loss.spike"]').all():
        expect(marker).to_be_hidden()
    expect(page.locator('.tl-event[data-kind="landscape.snapshot"]').first).to_be_visible()
    expect(page.locator('.tl-event[data-kind="opposing.groups"]').first).to_be_visible()
    chip.click()
    expect(page.locator('.tl-event[data-kind="loss.spike"]').first).to_be_visible()
    assert browser.errors == []
