"""A sweep preset, whole, through the embedded service (``observatory up``: one worker): its
wall time, and the phase diagram's points as the summary endpoint returns them.

The wall time is compared with the runs' own training time (finished − started, summed) measured
in the same run: their ratio is what queueing, claiming and the server add.

    python -m bench.sweep_presets "edge of stability across learning rates" [--screenshot F.png]
    python -m bench.sweep_presets "grokking vs weight decay"

``--screenshot`` photographs the sweep page's phase diagram in Chromium (/usr/bin/chromium).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.conftest import Service, wait_for


def photograph(url: str, path: Path) -> None:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        page = chromium.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_selector("body[data-sweep-finished]")
        page.locator("#phase-diagram").screenshot(path=str(path))
        chromium.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("preset")
    parser.add_argument("--screenshot", type=Path, help="PNG of the phase diagram")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(Path(tmp) / "data")
        try:
            api = f"{service.url}/api"
            presets = httpx.get(f"{api}/sweeps/presets", timeout=30).json()
            preset = next(p for p in presets if p["name"] == args.preset)
            start = time.monotonic()
            sweep = httpx.post(f"{api}/sweeps", json=preset["sweep"], timeout=60).json()

            def done() -> dict | None:
                got = httpx.get(f"{api}/sweeps/{sweep['id']}", timeout=30).json()
                return got if got["status"] not in ("queued", "running") else None

            finished = wait_for(done, 3600, "the sweep to finish", interval=1.0)
            wall = time.monotonic() - start
            summary = httpx.get(
                f"{api}/sweeps/{sweep['id']}/summary", params=preset["summary"], timeout=30
            ).json()
            if args.screenshot:
                photograph(f"{service.url}/sweeps/{sweep['id']}", args.screenshot)
        finally:
            service.stop()
    training = sum(
        (
            datetime.fromisoformat(r["finished_at"]) - datetime.fromisoformat(r["started_at"])
        ).total_seconds()
        for r in finished["runs"]
    )
    print(f"{preset['name']}: {finished['count']} runs, {finished['status']}")
    print(f"wall {wall:.0f} s; runs' own training {training:.0f} s; ratio {wall / training:.2f}")
    print(f"summary {summary['what']}")
    for point in summary["points"]:
        axes = " ".join(f"{k}={v}" for k, v in point["axes"].items())
        value = "not reached" if point["summary"] is None else f"{point['summary']:.4g}"
        print(f"  {axes}: {value} ({point['status']})")


if __name__ == "__main__":
    main()
