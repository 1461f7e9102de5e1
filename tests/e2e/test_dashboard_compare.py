"""What W&B and Aim users expect (issue 15), in a real Chromium against the embedded service: the
runs table (search, filters, sort, summary columns, tags and notes, selection, all in the address),
ten runs compared with one colour each on every panel, and a panel layout and view that survive
a reload or travel as a link."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import Service
from tests.e2e.dashboard_session import OpenTab, Tab, checks, worker_ready

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

RUNS = 10


@pytest.fixture(scope="module")
def sweep(shared_service: Service) -> Iterator[list[int]]:
    """Ids of ten finished short runs: names sweep-00 … sweep-09, tag "even" or "odd"."""
    worker_ready(shared_service)
    urls = [
        shared_service.submit(
            {
                "name": f"sweep-{i:02d}",
                "tags": ["sweep", "even" if i % 2 == 0 else "odd"],
                "task": {"kind": "gaussian_mixture"},
                "optimizer": {"name": "sgd", "lr": 0.05 * (i + 1)},
                "steps": 40,
                "log_every": 5,
                "device": "cpu",
            }
        )
        for i in range(RUNS)
    ]
    for url in urls:
        shared_service.completed(url)
    yield [int(url.rsplit("/", 1)[1]) for url in urls]


def row_ids(tab: Tab) -> list[int]:
    rows = tab.page.locator("#runs-table tbody tr")
    return [int(i) for i in rows.evaluate_all("(rows) => rows.map((r) => r.dataset.runId)")]


def clean(tab: Tab) -> None:
    assert not tab.errors, "\n".join(tab.errors)
    assert not tab.external, tab.external


def test_runs_table_search_sort_filter_and_summaries_live_in_the_address(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    tab = tabs(width=1920, height=1000)
    page = tab.page
    page.goto(shared_service.url)
    expect(page.locator(f'#runs-table tr[data-run-id="{sweep[-1]}"]')).to_be_visible()

    page.fill("#runs-search", "ODD")  # tags too, any case
    expect(page.locator("#runs-table tbody tr")).to_have_count(RUNS // 2)
    assert sorted(row_ids(tab)) == sweep[1::2]
    page.fill("#runs-search", "sweep-0")
    page.locator("#runs-table th[data-sort=name] button").click()
    expect(page.locator("#runs-table th[data-sort=name]")).to_have_attribute(
        "aria-sort", "ascending"
    )
    page.wait_for_function(
        "(id) => document.querySelector('#runs-table tbody tr')?.dataset.runId === String(id)",
        arg=sweep[0],
    )
    assert row_ids(tab) == sweep
    page.select_option("#task-filter", "digits")
    expect(page.locator("#runs-table tbody tr")).to_have_count(0)
    expect(page.locator(".empty")).to_have_text("No runs match this filter.")
    page.select_option("#task-filter", "gaussian_mixture")
    expect(page.locator("#runs-table tbody tr")).to_have_count(RUNS)

    # a summary column: the last train loss of each run, as the API's series summary has it
    page.click("#column-chooser > summary")
    page.select_option("#column-series", "train.loss")
    page.select_option("#column-aggregate", "last")
    page.click("#add-column")
    expect(page.locator("#runs-table thead th.summary")).to_have_text(["train loss (last)"])
    query = {"summary": "train.loss", "limit": 50}
    served = httpx.get(f"{shared_service.url}/api/runs", params=query).json()["data"]
    last = {r["id"]: r["summary"]["train.loss"]["last"] for r in served}
    cell = page.locator(f'#runs-table tr[data-run-id="{sweep[3]}"] td.summary')
    expect(cell).not_to_have_text("")
    assert float(cell.inner_text()) == pytest.approx(last[sweep[3]], rel=1e-3)

    # everything above is in the address: a reload (or a shared link) restores it
    assert (
        re.search(r"q=sweep-0.*sort=name.*order=asc", page.url)
        and "cols=train.loss%3Alast" in page.url
    )
    page.reload()
    expect(page.locator("#runs-search")).to_have_value("sweep-0")
    expect(page.locator("#task-filter")).to_have_value("gaussian_mixture")
    expect(page.locator("#runs-table thead th.summary")).to_have_text(["train loss (last)"])
    expect(page.locator("#runs-table tbody tr")).to_have_count(RUNS)
    assert row_ids(tab) == sweep
    clean(tab)


def test_tags_and_notes_are_edited_in_the_table(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    tab = tabs()
    page = tab.page
    page.goto(shared_service.url)
    row = page.locator(f'#runs-table tr[data-run-id="{sweep[0]}"]')
    row.hover()
    row.get_by_role("button", name=re.compile("edit tags and notes")).click()
    page.fill("#edit-tags", "sweep, even, best")
    page.fill("#edit-notes", "lowest loss of the sweep")
    page.click("#save-run-edit")
    expect(row.locator(".tag")).to_have_text(["sweep", "even", "best"])
    expect(row.locator(".notes")).to_have_text("lowest loss of the sweep")
    run = httpx.get(f"{shared_service.url}/api/runs/{sweep[0]}").json()
    assert run["tags"] == ["sweep", "even", "best"] and run["notes"] == "lowest loss of the sweep"
    clean(tab)


def test_ten_selected_runs_compare_with_one_colour_each_on_every_panel(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    tab = tabs(width=1920, height=1000)
    page = tab.page
    page.goto(f"{shared_service.url}/?q=sweep-")
    for run_id in sweep:
        page.locator(f'#runs-table tr[data-run-id="{run_id}"] input[name=select-run]').check()
    expect(page.locator("#compare-runs")).to_have_text(f"Compare {RUNS}")
    assert "selected=" in page.url
    page.click("#compare-runs")
    page.wait_for_url(re.compile(rf"/runs/{sweep[0]}\?overlay="))
    page.wait_for_function(
        "(n) => ['loss', 'accuracy', 'grad-norm', 'weight-norm'].every((p) =>"
        " (document.getElementById(`plot-${p}`)?.data ?? [])"
        ".filter((t) => /^#\\d+ /.test(t.name)).length >= n)",
        arg=RUNS,
        timeout=60_000,
    )
    colours = checks(page).evaluate(
        "() => pageChecks.runColours(['loss', 'accuracy', 'grad-norm', 'weight-norm'])"
    )
    per_run = {}
    for panel, runs in colours.items():
        assert sorted(map(int, runs)) == sorted(sweep), panel
        for run, found in runs.items():
            assert len(found) == 1, (panel, run, found)  # train and test: one colour, two dashes
            per_run.setdefault(run, set()).update(found)
    assert all(len(c) == 1 for c in per_run.values()), per_run  # the same on every panel
    assert len({c.pop() for c in per_run.values()}) == RUNS  # and no two runs share one
    chips = page.locator("#overlay-chips .chip")
    expect(chips).to_have_count(RUNS)
    clean(tab)


def test_layout_persists_and_copy_link_restores_the_view(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    tab = tabs(width=1280, height=900)
    page = tab.page
    page.goto(f"{shared_service.url}/runs/{sweep[1]}")
    page.wait_for_function("() => document.getElementById('plot-weight-norm')?._fullLayout")
    page.click('#panel-lr button[title="hide"]')
    expect(page.locator("#panel-lr")).to_be_hidden()
    page.click('#panel-accuracy button[title="move up"]')  # now before the loss panel
    page.click('#panel-grad-norm button[title="collapse or expand"]')
    expect(page.locator("#plot-grad-norm")).to_be_hidden()
    order = (
        "() => ['loss', 'accuracy']"
        ".map((id) => Number(getComputedStyle(document.getElementById(`panel-${id}`)).order))"
    )
    before = page.evaluate(order)
    assert before[1] < before[0]

    page.reload()  # kept in the browser
    page.wait_for_function("() => document.getElementById('plot-weight-norm')?._fullLayout")
    expect(page.locator("#panel-lr")).to_be_hidden()
    expect(page.locator("#plot-grad-norm")).to_be_hidden()
    assert page.evaluate(order) == before

    # smoothing and a zoom on one panel (applied to all), then the link
    page.eval_on_selector(
        "#smoothing", "(el) => { el.value = '0.6'; el.dispatchEvent(new Event('input')); }"
    )
    page.evaluate("() => Plotly.relayout('plot-loss', {'xaxis.range': [10, 30]})")
    page.wait_for_function(
        "() => document.getElementById('plot-weight-norm')._fullLayout.xaxis.range[0] === 10"
    )
    page.click("#copy-link")
    expect(page.locator("#link-state")).not_to_have_text("")
    link = page.url
    assert "smoothing=0.6" in link and "zoom=10%2C30" in link and "hide=lr" in link

    other = tabs(width=1920, height=1000)  # a colleague's browser: no stored layout
    other.page.goto(link)
    other.page.wait_for_function("() => document.getElementById('plot-weight-norm')?._fullLayout")
    expect(other.page.locator("#panel-lr")).to_be_hidden()
    expect(other.page.locator("#smoothing")).to_have_value("0.6")
    zoom = "() => document.getElementById('plot-accuracy')._fullLayout.xaxis.range"
    assert other.page.evaluate(zoom) == [10, 30]
    page.click("#reset-layout")
    expect(page.locator("#panel-lr")).to_be_visible()
    clean(tab)
    clean(other)


def trailing(values: list[float], span: int) -> tuple[list[float], list[float], list[float]]:
    """Mean, min and max over the last ``span`` points at each point."""
    windows = [values[max(0, i + 1 - span) : i + 1] for i in range(len(values))]
    return [sum(w) / len(w) for w in windows], [min(w) for w in windows], [max(w) for w in windows]


def test_smoothing_keeps_the_raw_extremes_in_a_band(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    run_url = f"{shared_service.url}/api/runs/{sweep[-1]}"
    [raw] = httpx.get(f"{run_url}/metrics", params={"names": "train.loss"}).json()["series"]
    tab = tabs()
    page = tab.page
    page.goto(f"{shared_service.url}/runs/{sweep[-1]}?smoothing=0.5&smooth=window")
    expect(page.locator("#smoothing-kind")).to_have_value("window")
    read = "() => document.getElementById('plot-loss')?.data?.map((t) => ({name: t.name, y: t.y}))"
    page.wait_for_function(f"() => ({read})()?.length === 6")  # train, test, 2 × (min, max)
    traces = page.evaluate(read)
    span = round(1.5 / 0.5)  # smoothingSpan(0.5)
    mean, low, high = trailing(raw["values"], span)
    assert traces[0]["y"] == pytest.approx(mean)  # train loss, window mean
    assert traces[2]["y"] == pytest.approx(low) and traces[3]["y"] == pytest.approx(high)
    assert max(traces[3]["y"]) == pytest.approx(max(raw["values"]))  # no extreme hidden
    assert min(traces[2]["y"]) == pytest.approx(min(raw["values"]))

    page.select_option("#smoothing-kind", "ema")
    page.wait_for_function(
        "(first) => document.getElementById('plot-loss').data[0].y[1] !== first",
        arg=traces[0]["y"][1],
    )
    ema = page.evaluate(read)[0]["y"]
    assert ema[0] == pytest.approx(raw["values"][0])  # debiased: starts at the first point
    assert ema != pytest.approx(mean)
    clean(tab)


def test_x_axis_shows_wall_time_or_time_since_start(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    run_url = f"{shared_service.url}/api/runs/{sweep[2]}"
    served = httpx.get(f"{run_url}/metrics", params={"with_time": "true"}).json()["series"]
    start = min(s["wall_times"][0] for s in served if s["wall_times"])
    [loss] = [s for s in served if s["name"] == "train.loss"]
    tab = tabs()
    page = tab.page
    page.goto(f"{shared_service.url}/runs/{sweep[2]}")
    page.wait_for_function("() => document.getElementById('plot-loss')?._fullLayout")
    read = "() => document.getElementById('plot-loss').data[0].x"
    assert page.evaluate(read) == loss["steps"]

    page.select_option("#x-axis", "relative")
    page.wait_for_function(
        "() => document.getElementById('plot-loss')._fullLayout.xaxis.title.text"
        " === 'time since start (s)'"
    )
    assert page.evaluate(read) == pytest.approx([t - start for t in loss["wall_times"]])
    page.select_option("#x-axis", "wall")
    page.wait_for_function(
        "() => document.getElementById('plot-loss')._fullLayout.xaxis.type === 'date'"
    )
    assert page.evaluate(read) == pytest.approx([t * 1000 for t in loss["wall_times"]])
    page.click("#copy-link")
    expect(page.locator("#link-state")).not_to_have_text("")
    assert "x=wall" in page.url
    page.reload()
    expect(page.locator("#x-axis")).to_have_value("wall")
    page.wait_for_function(
        "() => document.getElementById('plot-grad-norm')?._fullLayout?.xaxis.type === 'date'"
    )
    clean(tab)


def test_config_diff_of_compared_runs_shows_only_what_differs(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    tab = tabs(width=1280, height=900)
    page = tab.page
    page.goto(f"{shared_service.url}/runs/{sweep[0]}")
    expect(page.locator("#overlay-input")).to_be_visible()
    expect(page.locator("#config-diff")).to_be_hidden()  # one run: nothing to compare
    page.goto(f"{shared_service.url}/runs/{sweep[0]}?overlay={sweep[1]},{sweep[2]}")
    expect(page.locator("#overlay-chips .chip")).to_have_count(3)
    table = page.locator("#config-diff table")
    expect(table.locator("thead th.run-col")).to_have_count(3)
    paths = table.locator("tbody tr").evaluate_all("(rows) => rows.map((r) => r.dataset.path)")
    # the sweep differs in its name, its even/odd tag and the learning rate; steps, task, seed… not
    assert paths == ["name", "optimizer.lr", "tags"], paths
    lrs = table.locator('tr[data-path="optimizer.lr"] td').all_inner_texts()
    assert [float(v) for v in lrs] == pytest.approx([0.05, 0.10, 0.15])
    page.click(f'#overlay-chips button[aria-label="remove run {sweep[2]}"]')
    expect(table.locator("thead th.run-col")).to_have_count(2)
    page.click(f'#overlay-chips button[aria-label="remove run {sweep[1]}"]')
    expect(page.locator("#config-diff")).to_be_hidden()
    clean(tab)


def test_a_linked_comparison_skips_runs_that_are_gone(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    """The compared runs' series come in one request: a run deleted since the link was made, or
    an id no run can have, is skipped with a notice and the others are drawn."""
    tab = tabs(width=1280, height=900)
    page = tab.page
    gone, never = 999_999, 99_999_999_999
    page.goto(f"{shared_service.url}/runs/{sweep[0]}?overlay={sweep[1]},{gone},{sweep[2]},{never}")
    expect(page.locator("#overlay-chips .chip")).to_have_count(3)
    for run_id in sweep[1:3]:
        expect(page.locator(f'#overlay-chips a[href="/runs/{run_id}"]')).to_be_visible()
    expect(page.locator(".overlay-form ~ .notice")).to_contain_text(f"Overlay run {never} skipped")
    names = page.locator("#plot-loss").evaluate("(el) => el.data.map((t) => t.name)")
    assert {n.split(" ")[0] for n in names} == {f"#{i}" for i in sweep[:3]}, names
    # the browser logs the refused requests themselves; nothing else may fail
    assert all(e.startswith("console: Failed to load resource") for e in tab.errors), tab.errors
    assert not tab.external, tab.external


PROBED = {
    "tags": ["side"],
    "task": {"kind": "digits", "hidden": 16, "train_size": 300},
    "optimizer": {"name": "sgd"},
    "steps": 30,
    "log_every": 5,
    "device": "cpu",
    "probes": {
        "hessian": {"every": 10, "k": 2, "batch_size": 300, "density": True, "density_steps": 8},
        "landscape": {"every": 15, "resolution": 5, "eval_size": 64},
    },
}


def test_spectra_and_landscapes_side_by_side_at_a_chosen_step(
    shared_service: Service, tabs: OpenTab
) -> None:
    worker_ready(shared_service)
    urls = [
        shared_service.submit(
            {**PROBED, "name": f"side-{lr}", "optimizer": {"name": "sgd", "lr": lr}}
        )
        for lr in (0.1, 0.3)
    ]
    for url in urls:
        shared_service.completed(url, timeout=300)
    first, second = (int(u.rsplit("/", 1)[1]) for u in urls)
    tab = tabs(width=1920, height=1000)
    page = tab.page
    page.goto(f"{shared_service.url}/runs/{first}?overlay={second}")
    for run_id in (first, second):
        for plot in ("density", "contour"):
            page.wait_for_function(
                "(id) => document.getElementById(id)?.data?.length > 0",
                arg=f"side-{plot}-{run_id}",
                timeout=60_000,
            )
    contour = f"() => document.getElementById('side-contour-{second}').data[0].type"
    assert page.evaluate(contour) == "contour"
    api = f"{shared_service.url}/api/runs/{second}"
    density_steps = httpx.get(f"{api}/spectra").json()["steps"]
    surface_steps = httpx.get(f"{api}/landscapes").json()["steps"]
    assert 10 in density_steps and 15 in surface_steps and 12 not in density_steps + surface_steps
    latest = f"#side-by-side .side-col[data-run-id='{second}'] .side-steps"
    expect(page.locator(latest)).to_have_text(
        f"density: step {density_steps[-1]} · landscape: step {surface_steps[-1]}"
    )

    page.fill("#side-step", "12")  # each run: its probe step nearest to 12
    page.dispatch_event("#side-step", "change")
    for run_id in (first, second):
        steps = f"#side-by-side .side-col[data-run-id='{run_id}'] .side-steps"
        expect(page.locator(steps)).to_have_text("density: step 10 · landscape: step 15")
    page.wait_for_function(
        "(id) => /step 10/.test(document.getElementById(id)?.data?.[0]?.name ?? '')",
        arg=f"side-density-{first}",
    )
    clean(tab)


def test_runs_table_sorts_by_a_summary_column(
    shared_service: Service, sweep: list[int], tabs: OpenTab
) -> None:
    query = {"summary": "train.loss", "q": "sweep-", "limit": 50}
    served = httpx.get(f"{shared_service.url}/api/runs", params=query).json()["data"]
    last = {r["id"]: r["summary"]["train.loss"]["last"] for r in served}
    tab = tabs(width=1920, height=1000)
    page = tab.page
    page.goto(f"{shared_service.url}/?q=sweep-&cols=train.loss%3Alast")
    header = page.locator("#runs-table thead th.summary")
    expect(header).to_have_text(["train loss (last)"])
    expect(page.locator("#runs-table tbody tr")).to_have_count(RUNS)
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "descending")
    largest_first = sorted(sweep, key=lambda i: (-last[i], -i))
    page.wait_for_function(
        "(id) => document.querySelector('#runs-table tbody tr')?.dataset.runId === String(id)",
        arg=largest_first[0],
    )
    assert row_ids(tab) == largest_first
    header.locator("button").click()
    expect(header).to_have_attribute("aria-sort", "ascending")
    page.wait_for_function(
        "(id) => document.querySelector('#runs-table tbody tr')?.dataset.runId === String(id)",
        arg=sorted(sweep, key=lambda i: (last[i], -i))[0],
    )
    assert row_ids(tab) == sorted(sweep, key=lambda i: (last[i], -i))
    assert "sort=train.loss%3Alast" in page.url and "order=asc" in page.url
    clean(tab)
