// The sweep page (/sweeps/{id}): its runs' table, every run's series overlaid and coloured by an
// axis, and the phase diagram of a per-run summary.  While runs are unfinished the page polls
// the sweep every POLL_MS and redraws what changed, so the diagram fills in as runs finish.

import { api } from "./api.js";
import { categoryColor, plotLayout, plotly, PLOT_CONFIG } from "./charts.js";
import { FINISHED, h, pageId, progressBar, showError, statusBadge } from "./dom.js";
import { mountHealth } from "./health.js";
import { axisValues, drawPhaseDiagram } from "./sweep-diagram.js";
import { mountThemeToggle } from "./theme.js";

const POLL_MS = 2000;
const OVERLAY_POINTS = 400;
const STATS = ["last", "min", "max", "mean", "first_cross"];

const headerEl = document.getElementById("sweep-header");
const diagramEl = document.getElementById("phase-diagram");
const diagramForm = document.getElementById("diagram-controls");
const overlayEl = document.getElementById("sweep-overlay");
const overlayForm = document.getElementById("overlay-controls");
const runsEl = document.getElementById("sweep-runs");

// The summary's query parameters from the form (empty fields left out).
function summaryQuery(state) {
  const s = state.summary;
  if (s.event) return { event: s.event };
  const q = { series: s.series, stat: s.stat };
  if (s.stat === "first_cross") Object.assign(q, { value: s.value, direction: s.direction });
  if (s.stat === "mean") Object.assign(q, s.since_event ? { since_event: s.since_event } : { tail: s.tail });
  return q;
}

// λ_max settles at 2/η (Cohen et al. 2021): drawn whenever the sharpness is plotted against η.
function referenceCurve(state) {
  const sharpness = /^hessian\.(lambda_max|precond_lambda_max|batch_sharpness)$/.test(state.summary.series ?? "");
  return !state.summary.event && sharpness && state.x === "optimizer.lr" ? { name: "2/η", f: (lr) => 2 / lr } : null;
}

function field(label, input) {
  return h("label", {}, label, input);
}

function select(name, options, value, onchange) {
  return h(
    "select",
    { name, value, onchange },
    options.map(([v, text]) => h("option", { value: v }, text)),
  );
}

function renderDiagramControls(state, redraw) {
  const s = state.summary;
  const set = (key) => (event) => {
    s[key] = event.target.value;
    redraw();
  };
  const axes = state.sweep.axes_list.map((a) => [a, a]);
  diagramForm.replaceChildren(
    field("series", h("input", { name: "series", value: s.series ?? "", list: "sweep-series", onchange: set("series") })),
    h("datalist", { id: "sweep-series" }, state.available.map((n) => h("option", { value: n }))),
    field("statistic", select("stat", STATS.map((v) => [v, v]), s.stat, set("stat"))),
    field("value (first_cross)", h("input", { name: "value", type: "number", step: "any", value: s.value ?? "", onchange: set("value") })),
    field("mean since event", h("input", { name: "since_event", value: s.since_event ?? "", onchange: set("since_event") })),
    field("or an event (a or a-b)", h("input", { name: "event", value: s.event ?? "", onchange: set("event") })),
    field("x", select("x", axes, state.x, (e) => ((state.x = e.target.value), redraw()))),
    field("y (heatmap)", select("y", [["", "—"], ...axes], state.y, (e) => ((state.y = e.target.value), redraw()))),
  );
  diagramForm.onsubmit = (event) => event.preventDefault();
}

async function drawDiagram(state) {
  try {
    const summary = await api.sweepSummary(state.sweep.id, summaryQuery(state));
    state.lastSummary = summary;
    await drawPhaseDiagram(diagramEl, summary, { x: state.x, y: state.y, reference: referenceCurve(state) });
  } catch (error) {
    showError(diagramEl, "Could not draw the phase diagram:", error);
  }
}

function renderHeader(state, reload) {
  const sweep = state.sweep;
  const unfinished = (sweep.statuses.queued ?? 0) + (sweep.statuses.running ?? 0);
  const cancel = h("button", {
    type: "button",
    disabled: !unfinished,
    onclick: async () => {
      await api.cancelSweep(sweep.id).catch((e) => showError(headerEl, "Cancel failed:", e));
      reload();
    },
  }, "Cancel unfinished runs");
  const remove = h("button", {
    type: "button",
    class: "danger",
    onclick: async () => {
      if (!window.confirm(`Delete sweep ${sweep.id} and its ${sweep.count} runs?`)) return;
      await api.deleteSweep(sweep.id);
      window.location.href = "/";
    },
  }, "Delete");
  const axes = Object.entries(sweep.axes).map(([path, spec]) => `${path} ∈ ${JSON.stringify(spec)}`);
  headerEl.replaceChildren(
    h("h1", {}, `${sweep.name} `, statusBadge(sweep.status)),
    h("p", { class: "muted" }, `sweep ${sweep.id} · ${sweep.mode} · ${sweep.count} runs · ${axes.join(" · ")}`),
    h("div", { class: "sweep-counts" },
      Object.entries(sweep.statuses).map(([status, n]) => h("span", {}, statusBadge(status), ` ${n}`)),
      h("a", { href: `/?tag=${encodeURIComponent(`sweep:${sweep.id}`)}` }, "in the runs table"),
      cancel,
      remove,
    ),
  );
}

function renderRuns(state) {
  const axes = state.sweep.axes_list;
  const summaries = new Map((state.lastSummary?.points ?? []).map((p) => [p.run_id, p.summary]));
  const rows = state.sweep.runs.map((run) =>
    h("tr", { dataset: { runId: run.id } },
      h("td", {}, h("a", { href: `/runs/${run.id}` }, String(run.id))),
      h("td", {}, run.name),
      h("td", {}, statusBadge(run.status)),
      axes.map((path) => h("td", {}, JSON.stringify(valueAt(run.config, path)))),
      h("td", {}, progressBar(run.progress)),
      h("td", { class: "summary" }, summaries.get(run.id) == null ? "–" : Number(summaries.get(run.id)).toPrecision(4)),
    ),
  );
  runsEl.replaceChildren(
    h("table", { class: "runs sweep-runs" },
      h("thead", {}, h("tr", {}, ["id", "name", "status", ...axes, "progress", state.lastSummary?.what ?? "summary"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows),
    ),
  );
}

function valueAt(config, path) {
  return path.split(".").reduce((node, key) => (node && typeof node === "object" ? node[key] : undefined), config);
}

function renderOverlayControls(state, redraw) {
  const axes = state.sweep.axes_list.map((a) => [a, a]);
  overlayForm.replaceChildren(
    field("series", h("input", { name: "overlay-series", value: state.overlay.series, list: "sweep-series", onchange: (e) => ((state.overlay.series = e.target.value), redraw()) })),
    field("colour by", select("color-by", axes, state.overlay.colorBy, (e) => ((state.overlay.colorBy = e.target.value), redraw()))),
  );
  overlayForm.onsubmit = (event) => event.preventDefault();
}

// Every run's series, one colour per value of the chosen axis (one legend entry per value).
async function drawOverlay(state) {
  const { series, colorBy } = state.overlay;
  const runs = state.sweep.runs.filter((r) => r.status !== "queued");
  const loaded = await Promise.all(
    runs.map((run) => api.metrics(run.id, { names: [series], maxPoints: OVERLAY_POINTS }).catch(() => null)),
  );
  const points = state.sweep.runs.map((run) => ({ axes: { [colorBy]: valueAt(run.config, colorBy) } }));
  const values = axisValues(points, colorBy).map((v) => JSON.stringify(v));
  const shown = new Set();
  const traces = [];
  runs.forEach((run, i) => {
    const found = loaded[i]?.series?.find((s) => s.name === series);
    if (!found) return;
    const value = JSON.stringify(valueAt(run.config, colorBy));
    traces.push({
      name: `${colorBy}=${value}`,
      legendgroup: value,
      showlegend: !shown.has(value),
      x: found.steps,
      y: found.values,
      text: run.name,
      mode: "lines",
      line: { color: categoryColor(values.indexOf(value)), width: 1.5 },
    });
    shown.add(value);
  });
  overlayEl.dataset.traces = String(traces.length);
  await plotly().react(
    overlayEl,
    traces,
    plotLayout({ height: 360, xaxis: { title: { text: "step" } }, yaxis: { title: { text: series } } }),
    PLOT_CONFIG,
  );
}

async function main() {
  mountHealth(document.getElementById("health-slot"));
  mountThemeToggle(document.getElementById("theme-slot"));
  const sweepId = pageId("sweeps");
  if (!sweepId) {
    showError(headerEl, "No sweep here:", new Error(`${window.location.pathname} names no sweep id`));
    return;
  }
  const [sweep, presets] = await Promise.all([api.getSweep(sweepId), api.sweepPresets().catch(() => [])]);
  sweep.axes_list = Object.keys(sweep.axes);
  const preset = presets.find((p) => p.sweep.name === sweep.name);
  const summary = { stat: "last", series: "train.loss", direction: "above", tail: 1, ...(preset?.summary ?? {}) };
  const state = {
    sweep,
    summary,
    x: preset?.x ?? sweep.axes_list[0],
    y: "",
    available: [],
    overlay: { series: summary.series ?? "train.loss", colorBy: preset?.x ?? sweep.axes_list[0] },
    lastSummary: null,
  };
  const started = sweep.runs.find((r) => r.status !== "queued");
  if (started) state.available = (await api.metrics(started.id, { maxPoints: 4 }).catch(() => null))?.available ?? [];

  let finishedCount = -1;
  const refresh = async () => {
    state.sweep = Object.assign(await api.getSweep(sweepId), { axes_list: sweep.axes_list });
    renderHeader(state, refresh);
    await drawDiagram(state);
    renderRuns(state);
    const finished = state.sweep.runs.filter((r) => FINISHED.has(r.status)).length;
    if (finished !== finishedCount) {
      finishedCount = finished;
      await drawOverlay(state);
    }
    return FINISHED.has(state.sweep.status) || !["queued", "running"].includes(state.sweep.status);
  };
  renderDiagramControls(state, () => drawDiagram(state).then(() => renderRuns(state)));
  renderOverlayControls(state, () => drawOverlay(state));
  const poll = async () => {
    const done = await refresh().catch((error) => (showError(headerEl, "Could not load the sweep:", error), false));
    if (!done) window.setTimeout(poll, POLL_MS);
    else document.body.dataset.sweepFinished = "true";
  };
  await poll();
}

main().catch((error) => showError(headerEl, "Could not load the sweep:", error));
