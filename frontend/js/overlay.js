// Overlay of other runs on the panels that allow it (loss, accuracy): pick run ids, their
// downsampled metrics are fetched and redrawn every few seconds while they still train.
// The chosen ids live in the address (?overlay=3,7), so an overlay view can be shared.

import { api } from "./api.js";
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

// overlays: the page's array of {id, name, status, config, color, store}, changed in place.
// Returns {ready, reload}: `ready` settles once the runs the address names are loaded (or
// skipped); `reload()` fetches every compared run again (after the x axis changed).
// withTime(): whether the charts need wall times (a time axis): only then are they fetched.
export function mountOverlay(container, { runId, overlays, onChange, withTime = () => false }) {
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
  async function fetchRun(id) {
    const maxPoints = pointsFor(Math.max(expected, overlays.length));
    const [run, metrics] = await Promise.all([api.getRun(id), api.metrics(id, { maxPoints, withTime: withTime() })]);
    return { run, store: SeriesStore.fromMetrics(metrics) };
  }

  // The overlay entry of a run id typed or linked, or null (the notice says why).
  async function load(value, { quiet = false } = {}) {
    const refuse = (text) => {
      notice.set(text);
      return null;
    };
    const id = Number(value);
    if (!Number.isInteger(id) || id < 1) return refuse(`"${value}" is not a run id`);
    if (id === runId) return refuse("That is this run.");
    if (overlays.some((o) => o.id === id)) return refuse(`Run ${id} is already overlaid.`);
    try {
      const { run, store } = await fetchRun(id);
      return { id, name: run.name, status: run.status, config: run.config, store };
    } catch (error) {
      notice.set(quiet ? `Overlay run ${id} skipped: ${error.message}` : `Could not overlay run ${id}: ${error.message}`);
      return null;
    }
  }

  // Adds the runs that loaded, in the order given, and redraws once.
  function push(entries) {
    const fresh = entries.filter((e) => e && !overlays.some((o) => o.id === e.id));
    for (const entry of fresh) overlays.push({ ...entry, color: categoryColor(colorIndex++) });
    if (fresh.length) changed();
  }

  async function addRun(value) {
    add.disabled = true;
    const entry = await load(value);
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
    const results = await Promise.allSettled(chosen.map((o) => fetchRun(o.id)));
    results.forEach((result, i) => {
      if (result.status === "fulfilled") {
        chosen[i].status = result.value.run.status;
        chosen[i].store = result.value.store;
      }
    });
    if (results.some((r) => r.status === "fulfilled") && chosen.every((o) => overlays.includes(o))) onChange();
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
  const initial = (new URL(window.location.href).searchParams.get("overlay") ?? "").split(",").filter(Boolean);
  // a linked comparison loads its runs in parallel and draws the panels once, not once per run
  expected = new Set(initial).size;
  const ready = Promise.all([...new Set(initial)].map((id) => load(id, { quiet: true }))).then((entries) => {
    push(entries);
    setTimeout(refresh, REFRESH_MS);
  });
  return { ready, reload: () => reload() };
}
