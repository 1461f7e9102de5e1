// Overlay of other runs on the panels that allow it (loss, accuracy): pick run ids, their
// downsampled metrics are fetched and redrawn every few seconds while they still train.
// The chosen ids live in the address (?overlay=3,7), so an overlay view can be shared.

import { api } from "./api.js";
import { categoryColor } from "./charts.js";
import { FINISHED, h, noticeLine } from "./dom.js";
import { SeriesStore } from "./series.js";

const REFRESH_MS = 5000;
const MAX_POINTS = 1000;

// overlays: the page's array of {id, name, status, config, color, store}, changed in place.
export function mountOverlay(container, { runId, overlays, onChange }) {
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

  async function fetchRun(id) {
    const [run, metrics] = await Promise.all([api.getRun(id), api.metrics(id, { maxPoints: MAX_POINTS, withTime: true })]);
    return { run, store: SeriesStore.fromMetrics(metrics) };
  }

  async function addRun(value, { quiet = false } = {}) {
    const id = Number(value);
    if (!Number.isInteger(id) || id < 1) return notice.set(`"${value}" is not a run id`);
    if (id === runId) return notice.set("That is this run.");
    if (overlays.some((o) => o.id === id)) return notice.set(`Run ${id} is already overlaid.`);
    add.disabled = true;
    try {
      const { run, store } = await fetchRun(id);
      overlays.push({ id, name: run.name, status: run.status, config: run.config, color: categoryColor(colorIndex++), store });
      input.value = "";
      notice.clear();
      changed();
    } catch (error) {
      if (!quiet) notice.set(`Could not overlay run ${id}: ${error.message}`);
      else notice.set(`Overlay run ${id} skipped: ${error.message}`);
    } finally {
      add.disabled = false;
    }
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

  async function refresh() {
    const live = overlays.filter((o) => !FINISHED.has(o.status));
    if (live.length) {
      const results = await Promise.allSettled(live.map((o) => fetchRun(o.id)));
      results.forEach((result, i) => {
        if (result.status === "fulfilled") {
          live[i].status = result.value.run.status;
          live[i].store = result.value.store;
        }
      });
      if (results.some((r) => r.status === "fulfilled") && live.every((o) => overlays.includes(o))) onChange();
    }
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
  (async () => {
    for (const id of initial) await addRun(id, { quiet: true });
    setTimeout(refresh, REFRESH_MS);
  })();
}
