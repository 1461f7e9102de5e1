"""Screenshots of the dashboard for docs/screenshots/, so a reviewer sees it without running it.

Starts the embedded service on a fresh data directory, trains a run with every probe and ten
short runs to compare (a learning-rate sweep), then photographs in Chromium, light and dark, at
1280 and 1920 wide: the runs table, the ten runs compared on the scalar panels and their config
diff, and every probe panel of the run with every probe.  About three minutes on a two-core CPU:

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import Service  # noqa: E402
from tests.e2e.dashboard_session import ALL_PROBES, worker_ready  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
WIDTHS = (1280, 1920)
THEMES = ("light", "dark")
SWEEP = [0.02 * 1.5**i for i in range(10)]
PROBE_PANELS = [
    "hessian-sharpness", "hessian-eigs", "hessian-density", "hessian-density-heatmap",
    "landscape", "collapse-metrics", "collapse-cosines", "collapse-projection", "grokking",
    "opposing-spikes", "opposing-groups",
]  # fmt: skip


def sweep_config(lr: float) -> dict:
    return {
        "name": f"sweep-lr-{lr:.3g}",
        "tags": ["sweep", "digits"],
        "task": {"kind": "digits", "hidden": 32},
        "optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9},
        "batch_size": 64,
        "steps": 300,
        "log_every": 5,
        "device": "cpu",
    }


def settle(page: Page, charts: list[str]) -> None:
    """Waits until the charts (element ids) drew and the page has been still for a moment."""
    page.wait_for_function(
        "(ids) => ids.every((id) => document.getElementById(id)?._fullLayout)",
        arg=charts,
        timeout=60_000,
    )
    page.wait_for_timeout(1500)  # the last animation frames of the array panels
    page.add_style_tag(content=".topbar { position: static; }")  # not over the cards shot


def shoot(out: Path, service: Service, probes_id: int, sweep_ids: list[int]) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for theme in THEMES:
            for width in WIDTHS:
                page = browser.new_page(
                    viewport={"width": width, "height": 1000}, color_scheme=theme
                )
                tag = f"{theme}-{width}"
                page.goto(f"{service.url}/?sort=name&order=asc")
                page.wait_for_selector(f'#runs-table tr[data-run-id="{sweep_ids[-1]}"]')
                page.locator(".runs-card").screenshot(path=out / f"runs-{tag}.png")

                first, *others = sweep_ids
                overlay = ",".join(map(str, others))
                page.goto(f"{service.url}/runs/{first}?overlay={overlay}&smoothing=0")
                page.wait_for_function(
                    "(n) => document.getElementById('plot-loss')?.data?.length >= n",
                    arg=2 * len(sweep_ids),
                    timeout=60_000,
                )
                settle(page, ["plot-loss", "plot-accuracy"])
                page.locator("#panels").screenshot(path=out / f"compare-{tag}.png")
                page.locator("#config-diff table").wait_for()
                page.locator("#config-diff").screenshot(path=out / f"config-diff-{tag}.png")

                page.goto(f"{service.url}/runs/{probes_id}")
                settle(page, ["landscape-surface", "plot-collapse-projection", "plot-grokking"])
                for panel in PROBE_PANELS:
                    card = page.locator(f"#panel-{panel}")
                    if card.count():
                        card.screenshot(path=out / f"panel-{panel}-{tag}.png")
                page.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(Path(tmp) / "data", OBS_FLUSH_SECONDS="0.25")
        try:
            worker_ready(service)
            probes_url = service.submit(ALL_PROBES)
            sweep_urls = [service.submit(sweep_config(lr)) for lr in SWEEP]
            for url in [probes_url, *sweep_urls]:
                service.completed(url, timeout=600)
            ids = [int(url.rsplit("/", 1)[1]) for url in sweep_urls]
            httpx.patch(f"{probes_url}", json={"notes": "every probe on one short SGD run"})
            shoot(args.out, service, int(probes_url.rsplit("/", 1)[1]), ids)
        finally:
            service.stop()
    sizes = sorted(args.out.glob("*.png"))
    total = sum(p.stat().st_size for p in sizes)
    print(f"{len(sizes)} screenshots in {args.out}, {total / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
