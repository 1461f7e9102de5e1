// Overlay of other runs on the panels that allow it (loss, accuracy): pick run ids, their
// downsampled metrics are fetched and redrawn every few seconds while they still train.
// The chosen ids live in the address (?overlay=3,7), so an overlay view can be shared.

import { api, ApiError } from "./api.js";
import { categoryColor } from "./charts.js";
import { FINISHED, h, noticeLine } from "./dom.js";
import { SeriesStore } from "./series.js";

const REFRESH_MS = 5000;
// Points per series of a compared run: fewer as more runs are compared (each curve keeps its
// extremes: the API downsamples to min/max buckets), so ten runs stay as light as two.
const MAX_POINTS = 1000;
const MIN_POINTS = 500;
const POINTS_PER_VIEW = 4000;
const pointsFor = (runs) => Math.max(MIN_POINTS, Math.min(MAX_POINTS, Math.round(POINTS_PER_VIEW / Math.max(1, runs))));

// [{id, run, store} or {id, error}] of these run ids: their records, and their series in one
// request for all (GET /api/metrics?runs=…). A run deleted meanwhile fails alone.
async function fetchRuns(ids, options) {
  const records = Promise.allSettled(ids.map((id) => api.getRun(id)));
  let metrics;
  try {
    metrics = await api.compareMetrics(ids, options);
  } catch (error) {
    // a run of the list is gone (404) or can be none (422: an id past the column's range):
    // ask again for those whose record loaded
    if (!(error instanceof ApiError && [404, 422].includes(error.status))) throw error;
    const known = await records;
    const found = ids.filter((_, i) => known[i].status === "fulfilled");
    metrics = found.length ? await api.compareMetrics(found, options) : { runs: [] };
  }
  const settled = await records;
  return ids.map((id, i) => {
    if (settled[i].status === "rejected") return { id, error: settled[i].reason };
    const series = metrics.runs.find((r) => r.run_id === id);
    if (!series) return { id, error: new Error("it was deleted") };
    return { id, run: settled[i].value, store: SeriesStore.fromMetrics(series) };
  });
}

// The run ids a value list names that can be compared with `runId` (the others: why not).
function usable(values, runId, overlays) {
  const ids = [];
  const refused = [];
  for (const value of values) {
    const id = Number(value);
    if (!Number.isInteger(id) || id < 1) refused.push(`"${value}" is not a run id`);
    else if (id === runId) refused.push("That is this run.");
    else if (overlays.some((o) => o.id === id)) refused.push(`Run ${id} is already overlaid.`);
    else if (!ids.includes(id)) ids.push(id);
  }
  return { ids, refused };
}

const linkedValues = () => (new URL(window.location.href).searchParams.get("overlay") ?? "").split(",").filter(Boolean);

// The requests of a linked comparison (?overlay=3,7), which the page starts before anything
// else so that the server reads while the browser loads plotly: pass it to mountOverlay.
export function prefetchLinked(runId, { withTime }) {
  const { ids } = usable(linkedValues(), runId, []);
  const results = ids.length ? fetchRuns(ids, { maxPoints: pointsFor(ids.length), withTime }) : Promise.resolve([]);
  results.catch(() => {}); // reported by mountOverlay, if the page gets that far
  return { ids, results };
}

// overlays: the page's array of {id, name, status, config, color, store}, changed in place.
// Returns {ready, reload}: `ready` settles once the runs the address names are loaded (or
// skipped); `reload()` fetches every compared run again (after the x axis changed).
// withTime(): whether the charts need wall times (a time axis): only then are they fetched.
// prefetched: prefetchLinked()'s answer, used for the runs of the address.
export function mountOverlay(container, { runId, overlays, onChange, withTime = () => false, prefetched = null }) {
  const input = h("input", {
    id: "overlay-input",
    type: "number",
    min: 1,
    step: 1,
    list: "overlay-runs",
    placeholder: "run id",
    "aria-label": "run id to overlay",
  });
  const options = h("datalist", { id: "overlay-runs" });
  const add = h("button", { type: "submit", class: "secondary small" }, "Overlay");
  const chips = h("div", { class: "chips", id: "overlay-chips" });
  const notice = noticeLine();
  container.replaceChildren(
    h(
      "form",
      {
        class: "overlay-form",
        onsubmit: (e) => {
          e.preventDefault();
          addRun(input.value);
        },
      },
      h("label", { for: "overlay-input" }, "Compare with run"),
      input,
      options,
      add,
    ),
    chips,
    notice.el,
  );
  let colorIndex = 1; // 0 is this run's colour while runs are compared

  let expected = 0; // runs being compared, or about to be (sizes each run's points)
  const fetchOptions = () => ({ maxPoints: pointsFor(Math.max(expected, overlays.length)), withTime: withTime() });

  // The overlay entries of run ids typed or linked that loaded (the notice says why others not).
  async function load(values, { quiet = false, early = null } = {}) {
    const { ids, refused } = usable(values, runId, overlays);
    for (const text of refused) notice.set(text);
    if (!ids.length) return [];
    let results;
    try {
      results = await (early?.ids.join() === ids.join() ? early.results : fetchRuns(ids, fetchOptions()));
    } catch (error) {
      results = ids.map((id) => ({ id, error }));
    }
    return results.map(({ id, run, store, error }) => {
      if (!error) return { id, name: run.name, status: run.status, config: run.config, store };
      notice.set(quiet ? `Overlay run ${id} skipped: ${error.message}` : `Could not overlay run ${id}: ${error.message}`);
      return null;
    });
  }

  // Adds the runs that loaded, in the order given, and redraws once.
  function push(entries) {
    const fresh = entries.filter((e) => e && !overlays.some((o) => o.id === e.id));
    for (const entry of fresh) overlays.push({ ...entry, color: categoryColor(colorIndex++) });
    if (fresh.length) changed();
  }

  async function addRun(value) {
    add.disabled = true;
    const [entry] = await load([value]);
    add.disabled = false;
    if (!entry) return;
    input.value = "";
    notice.clear();
    push([entry]);
  }

  function remove(id) {
    const index = overlays.findIndex((o) => o.id === id);
    if (index >= 0) overlays.splice(index, 1);
    changed();
  }

  function changed() {
    const self = overlays.length ? [h("span", { class: "chip", style: `--chip: ${categoryColor(0)}` }, `#${runId} (this run)`)] : [];
    chips.replaceChildren(
      ...self,
      ...overlays.map((o) =>
        h(
          "span",
          { class: "chip", style: `--chip: ${o.color}` },
          h("a", { href: `/runs/${o.id}` }, `#${o.id} ${o.name}`),
          h("button", { type: "button", class: "chip-remove", "aria-label": `remove run ${o.id}`, onclick: () => remove(o.id) }, "×"),
        ),
      ),
    );
    const url = new URL(window.location.href);
    if (overlays.length) url.searchParams.set("overlay", overlays.map((o) => o.id).join(","));
    else url.searchParams.delete("overlay");
    window.history.replaceState(null, "", url);
    onChange();
  }

  // Fetches the points of the `chosen` runs again (all: the x axis changed), then redraws.
  async function reload(runs = overlays) {
    const chosen = [...runs];
    let results = [];
    try {
      results = await fetchRuns(chosen.map((o) => o.id), fetchOptions());
    } catch (error) {
      console.warn("compared runs not reloaded; keeping the points already drawn", error);
    }
    results.forEach((result, i) => {
      if (result.error) return;
      chosen[i].status = result.run.status;
      chosen[i].store = result.store;
    });
    if (results.some((r) => !r.error) && chosen.every((o) => overlays.includes(o))) onChange();
  }

  async function refresh() {
    const live = overlays.filter((o) => !FINISHED.has(o.status));
    if (live.length) await reload(live);
    setTimeout(refresh, REFRESH_MS);
  }

  async function loadChoices() {
    try {
      const { data } = await api.listRuns({ limit: 100 });
      options.replaceChildren(
        ...data.filter((r) => r.id !== runId).map((r) => h("option", { value: String(r.id) }, `#${r.id} ${r.name} (${r.status})`)),
      );
    } catch {
      // choices are a convenience; typing an id still works
    }
  }

  loadChoices();
  const initial = [...new Set(linkedValues())];
  // a linked comparison loads its runs at once and draws the panels once, not once per run
  expected = initial.length;
  const ready = load(initial, { quiet: true, early: prefetched }).then((entries) => {
    push(entries);
    setTimeout(refresh, REFRESH_MS);
  });
  return { ready, reload: () => reload() };
}
