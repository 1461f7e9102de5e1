"""Run page render time in Chromium: 12 scalar panels, 10 compared runs of 100,000 points per
series (target: drawn in under 1 s, and live), against a baseline measured in the same run: the
same page for one run of 1,000 points.

``observatory serve`` runs on a fresh SQLite database. Each run gets 13 series (the 5 built-in
scalar panels and 7 more, one panel each); the first run of each size is written through the
store (rollups included) and copied to the others by SQL, its values scaled, which keeps every
bucket exact.  A headless Chromium opens the run page (``?overlay=`` naming the other nine);
the figure is ``performance.now()`` (from navigation start) at the first animation frame where
every panel holds the traces of every run.  "Live": the page's run keeps receiving points while
a Long Tasks observer records the main thread's tasks over 50 ms; the figure is the time from a
point's commit to its appearing in the loss panel, and the longest task.

    python -m bench.dashboard_render [--points 100000] [--runs 10] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright
from sqlalchemy import Engine

from bench.common import new_run
from server import migrate
from server.db import get_engine, get_sessionmaker
from server.models import Run, RunStatus
from server.store.metrics import Point, write_points
from tests.conftest import Service

CHROMIUM = "/usr/bin/chromium"
BUILT_IN = ["train.loss", "test.loss", "train.acc", "test.acc", "lr", "grad_norm", "weight_norm"]
EXTRA = [f"bench.series_{i}" for i in range(7)]  # one auto panel each: 5 + 7 = 12 panels
SERIES = BUILT_IN + EXTRA
START = 1_700_000_000.0


def value(name: str, step: int) -> float:
    return 1.0 / (1.0 + 1e-3 * step) + 0.01 * ((step * 7919 + len(name)) % 101) / 101


def seed_run(engine: Engine, url: str, points: int, *, status: RunStatus) -> int:
    run_id = new_run(url, name=f"bench-{points}", steps=points, log_every=1)
    batch = 20_000
    for lo in range(0, points, batch):
        rows = [
            Point(name, s, value(name, s), START + 0.01 * s)
            for name in SERIES
            for s in range(lo, min(points, lo + batch))
        ]
        with engine.begin() as connection:
            write_points(connection, run_id=run_id, points=rows)
    set_status(url, run_id, status)
    return run_id


def set_status(url: str, run_id: int, status: RunStatus) -> None:
    with get_sessionmaker(url)() as session:
        session.get(Run, run_id).status = status
        session.commit()


def copy_run(engine: Engine, url: str, source: int, scale: float) -> int:
    """A finished run with the points, rollups and summaries of ``source``, values × ``scale``."""
    run_id = new_run(url, name=f"bench-copy-{scale:.2f}", steps=10, log_every=1)
    statements = [
        "INSERT INTO metrics (run_id, name, step, value, wall_time) "
        "SELECT ?, name, step, value * ?, wall_time FROM metrics WHERE run_id = ?",
        "INSERT INTO metric_buckets (run_id, name, level, bucket, n, min_step, min_value, "
        "max_step, max_value) SELECT ?, name, level, bucket, n, min_step, min_value * ?, "
        "max_step, max_value * ? FROM metric_buckets WHERE run_id = ?",
        "INSERT INTO series (run_id, name, first_step, last_step, last_value, min_value, "
        "max_value) SELECT ?, name, first_step, last_step, last_value * ?, min_value * ?, "
        "max_value * ? FROM series WHERE run_id = ?",
    ]
    with engine.begin() as connection:
        for sql in statements:
            scales = (scale,) * (sql.count("* ?"))
            connection.exec_driver_sql(sql, (run_id, *scales, source))
    set_status(url, run_id, RunStatus.completed)
    return run_id


DRAWN = """([panels, runs]) => {
  const plots = [...document.querySelectorAll('#panels .js-plotly-plot[data-step-axis]')];
  if (plots.length < panels) return false;
  const ok = plots.every((el) => {
    const drawn = (el.data ?? []).filter((t) => t.x.length);
    const names = new Set(drawn.map((t) => t.name.split(' ')[0]));  // "#<run id> <series>"
    return runs === 1 ? drawn.length > 0 : names.size >= runs;
  });
  return ok ? performance.now() : false;
}"""


def render_ms(page: Page, url: str, runs: int) -> float:
    page.goto(url)
    handle = page.wait_for_function(DRAWN, arg=[12, runs], polling="raf", timeout=120_000)
    return float(handle.json_value())


LONG_TASKS = """() => {
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longTasks.push(e.duration);
  }).observe({ type: 'longtask', buffered: false });
}"""


def live(page: Page, engine: Engine, run_id: int, first: int, seconds: float) -> tuple[list, float]:
    """Commit a point every 100 ms; returns (commit → drawn delays in s, longest task in ms)."""
    page.evaluate(LONG_TASKS)
    delays: list[float] = []
    stop = threading.Event()
    commits: dict[int, float] = {}

    def writer() -> None:
        step = first
        while not stop.is_set():
            with engine.begin() as connection:
                write_points(
                    connection,
                    run_id=run_id,
                    points=[Point(n, step, value(n, step), time.time()) for n in SERIES],
                )
            commits[step] = time.monotonic()
            step += 1
            time.sleep(0.1)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    last_x = "() => document.getElementById('plot-loss').data[0].x.at(-1)"
    deadline = time.monotonic() + seconds
    seen = first - 1
    while time.monotonic() < deadline:
        shown = page.evaluate(last_x)
        now = time.monotonic()
        for step in range(seen + 1, shown + 1):
            if step in commits:
                delays.append(now - commits[step])
        seen = max(seen, shown)
        time.sleep(0.02)
    stop.set()
    thread.join()
    longest = max(page.evaluate("() => window.__longTasks"), default=0.0)
    return delays, longest


def report_render(args: argparse.Namespace, baseline: list[float], heavy: list[float]) -> None:
    b, m = statistics.median(baseline), statistics.median(heavy)
    print(f"baseline: 1 run × {args.baseline:,} points, 12 panels: median {b:.0f} ms "
          f"({', '.join(f'{x:.0f}' for x in baseline)})")  # fmt: skip
    print(f"compared: {args.runs} runs × {args.points:,} points, 12 panels: median {m:.0f} ms "
          f"({', '.join(f'{x:.0f}' for x in heavy)}), {m / b:.2f}× the baseline",
          flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--points", type=int, default=100_000, help="per series and run")
    parser.add_argument("--baseline", type=int, default=1_000)
    parser.add_argument("--runs", type=int, default=10, help="the page's run and N-1 overlays")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--live-seconds", type=float, default=6.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        migrate.upgrade(url)
        engine = get_engine(url)
        t0 = time.perf_counter()
        base = seed_run(engine, url, args.baseline, status=RunStatus.completed)
        big = seed_run(engine, url, args.points, status=RunStatus.running)
        copies = [copy_run(engine, url, big, 1 + 0.1 * i) for i in range(1, args.runs)]
        print(f"seeded {len(SERIES)} series × {args.points:,} points × {args.runs} runs "
              f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        server = Service(Path(tmp) / "serve", command="serve", OBS_DATABASE_URL=url,
                         OBS_STREAM_POLL_SECONDS="0.25")  # fmt: skip
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1920, "height": 1080})
                overlay = ",".join(map(str, copies))
                compared = f"{server.url}/runs/{big}?overlay={overlay}"
                single = f"{server.url}/runs/{base}"
                render_ms(page, single, 1)  # warm: browser cache, server imports
                baseline = [render_ms(page, single, 1) for _ in range(args.repeat)]
                heavy = [render_ms(page, compared, args.runs) for _ in range(args.repeat)]
                report_render(args, baseline, heavy)  # before the live part, which may stall
                delays, longest = live(page, engine, big, args.points, args.live_seconds)
                browser.close()
        finally:
            server.stop()
    if delays:
        print(f"live on the compared page: {len(delays)} points, commit → drawn median "
              f"{statistics.median(delays) * 1e3:.0f} ms, max {max(delays) * 1e3:.0f} ms; "
              f"longest main-thread task {longest:.0f} ms")  # fmt: skip
    else:
        print("live on the compared page: no point was drawn")


if __name__ == "__main__":
    main()
