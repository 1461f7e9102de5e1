// Entry point of the run page (run.html): loads the run, its history (GET /metrics, downsampled)
// and events, mounts the registered panels, then follows the live stream from the history's
// cursor, appending points to the charts and updating the header.

import { api, ApiError } from "./api.js";
import { describeSeries } from "./catalog.js";
import { mountChartControls, readView } from "./chart-controls.js";
import { categoryColor, linePanel, loadPlotly, TIMELINE_ONLY } from "./charts.js";
import { renderConfigDiff } from "./config-diff.js";
import { mountSideBySide } from "./side-by-side.js";
import { FINISHED, h, pageId, showError } from "./dom.js";
import { renderEvents } from "./events-list.js";
import { mountHealth } from "./health.js";
import { mountOverlay, prefetchLinked } from "./overlay.js";
import { PanelLayout } from "./layout.js";
import { PanelHost } from "./panels.js";
import "./panels/index.js";
import { mountRunHeader } from "./run-header.js";
import { SeriesStore } from "./series.js";
import { openStream } from "./stream.js";
import { mountThemeToggle } from "./theme.js";
import { mountTimeline } from "./timeline.js";

const HISTORY_POINTS = 2000;
// Live points are appended to the charts as they come; past this many per series since the last
// history load, the history is reloaded (downsampled) so a long run stays light in the browser.
const RELOAD_AFTER = 2 * HISTORY_POINTS;
// The stream carries no wall times: on a time axis, live points reload the history (with its
// times) at most this often.
const TIME_RELOAD_MS = 2000;

const headerEl = document.getElementById("run-header");
const controlsEl = document.getElementById("chart-controls");
const panelsEl = document.getElementById("panels");
const eventsEl = document.getElementById("events");
const compareEl = document.getElementById("config-diff");
const sideEl = document.getElementById("side-by-side");
const timelineEl = document.getElementById("timeline");

async function main() {
  mountHealth(document.getElementById("health-slot"));
  mountThemeToggle(document.getElementById("theme-slot"));
  const runId = pageId("runs");
  if (!runId) {
    showError(headerEl, "No run here:", new Error(`${window.location.pathname} names no run id`));
    return;
  }
  // The first drawing's requests start at once, before the run's record is back, and plotly
  // loads while the server answers them.
  const linked = readView();
  const timed = linked.xAxis !== "step";
  let firstHistory = api.metrics(runId, { maxPoints: HISTORY_POINTS, withTime: timed });
  firstHistory.catch(() => {}); // reported by loadHistory, if the page gets that far
  const prefetched = prefetchLinked(runId, { withTime: timed });
  const plotlyReady = loadPlotly();
  plotlyReady.catch(() => {}); // reported where the page draws
  const view = {
    runId,
    run: null,
    store: new SeriesStore(),
    overlays: [],
    events: [],
    options: { xAxis: "step", logX: false, smoothing: 0, smoothKind: "ema", xRange: null, step: null },
    api,
  };
  try {
    view.run = await api.getRun(runId);
  } catch (error) {
    showError(headerEl, `Could not load run ${runId}:`, error);
    headerEl.append(h("p", {}, h("a", { href: "/" }, "Back to all runs")));
    controlsEl.hidden = true;
    timelineEl.hidden = true;
    eventsEl.closest("section").hidden = true;
    return;
  }

  const header = mountRunHeader(headerEl, { runId, onCancel: () => cancel() });
  header.update(view.run);
  const autoPanel = (name) => {
    const { title, unit, description } = describeSeries(name, view.run);
    return linePanel({ id: `auto-${name.replace(/[^\w-]/g, "-")}`, title, description, yTitle: unit, series: [name], order: 1000 });
  };
  const { xAxis, smoothing, smoothKind, logX, xRange, step } = linked;
  Object.assign(view.options, { xAxis, smoothing, smoothKind, logX, xRange, step });
  let controls = null;
  const layout = new PanelLayout({ hidden: linked.hidden });
  const host = new PanelHost(panelsEl, view, { autoPanel, layout, onLayout: () => controls?.showHidden() });
  controls = mountChartControls(controlsEl, { view, host, panelsEl, onAxis });
  const overlayEl = controls.overlayEl;
  // One selected step for the whole page: the timeline, the explain card (a "selectstep" event)
  // and every panel (PanelHost.stepChanged) follow it; null clears it.
  const timeline = mountTimeline(timelineEl, { onSelect: selectStep });
  timeline.select(view.options.step);
  function selectStep(step) {
    view.options.step = step;
    timeline.select(step);
    host.stepChanged();
  }
  document.addEventListener("selectstep", (event) => selectStep(event.detail));
  const drawTimeline = () => timeline.update(view.events, view.run.config?.steps);
  window.addEventListener("themechange", () => host.renderAll());
  const compared = () => [{ ...view.run, color: categoryColor(0) }, ...view.overlays];
  const sideBySide = mountSideBySide(sideEl, { api, runs: () => (view.overlays.length ? compared() : []) });
  let drawn = false; // the runs of a linked comparison are drawn with the history, once
  const timeAxis = () => view.options.xAxis !== "step";
  const overlay = mountOverlay(overlayEl, {
    runId,
    overlays: view.overlays,
    withTime: timeAxis,
    prefetched,
    onChange: () => {
      if (drawn) host.renderAll((p) => p.overlay);
      renderConfigDiff(compareEl, view.overlays.length ? compared() : []);
      plotlyReady.then(() => sideBySide.redraw());
    },
  });

  // Wall times are fetched for a time axis only (they cost the server a lookup per point); live
  // points have none: a time axis reloads the history and the compared runs with theirs.
  function onAxis(axis) {
    const runs = [view, ...view.overlays];
    const loaded = FINISHED.has(view.run.status) && runs.every((r) => r.store.timed && (r === view || FINISHED.has(r.status)));
    if (axis !== "step" && !loaded) {
      if (!reloading) reloadHistory();
      overlay.reload();
    } else {
      host.renderAll();
    }
  }

  let appended = 0;
  let reloading = null; // buffered stream deltas while the history reloads
  let timeReload = null; // the pending reload that brings the live points' wall times

  async function loadHistory() {
    const request = firstHistory ?? api.metrics(runId, { maxPoints: HISTORY_POINTS, withTime: timeAxis() });
    firstHistory = null;
    const metrics = await request;
    view.store = SeriesStore.fromMetrics(metrics);
    return metrics.cursor;
  }

  async function reloadHistory() {
    reloading = [];
    try {
      await loadHistory();
    } catch (error) {
      console.warn("history reload failed; keeping the points already drawn", error);
    }
    for (const delta of reloading) view.store.append(delta);
    reloading = null;
    appended = 0;
    host.renderAll();
  }

  function onMetrics(delta) {
    if (reloading) {
      reloading.push(delta);
      return;
    }
    const accepted = view.store.append(delta);
    host.update(accepted);
    const longest = Math.max(0, ...Object.values(accepted).map((s) => s.steps.length));
    appended += longest;
    if (appended > RELOAD_AFTER) reloadHistory();
    else if (view.options.xAxis !== "step" && !timeReload && Object.keys(accepted).length) {
      timeReload = setTimeout(() => {
        timeReload = null;
        if (!reloading) reloadHistory();
      }, TIME_RELOAD_MS);
    }
  }

  // Events arrive one SSE message each (a probe may send many at once): the table and the panels
  // are redrawn once per animation frame, not once per event.
  let eventsDrawn = true;
  let panelEvents = false; // an event the panels draw arrived since the last frame
  function addEvents(events) {
    const known = new Set(view.events.map((e) => e.id));
    const fresh = events.filter((e) => !known.has(e.id));
    if (!fresh.length) return;
    view.events.push(...fresh);
    panelEvents ||= fresh.some((e) => !TIMELINE_ONLY.has(e.kind)); // the others: timeline only
    if (!eventsDrawn) return;
    eventsDrawn = false;
    requestAnimationFrame(() => {
      eventsDrawn = true;
      renderEvents(eventsEl, view.events, { finished: FINISHED.has(view.run.status) });
      drawTimeline();
      if (panelEvents) host.eventsChanged();
      panelEvents = false;
    });
  }

  async function cancel() {
    try {
      view.run = await api.cancelRun(runId);
      header.update(view.run);
      header.notice.clear();
    } catch (error) {
      header.notice.set(`Could not cancel: ${error.message}`);
    }
  }

  let cursor;
  try {
    [cursor] = await Promise.all([loadHistory(), overlay.ready]);
  } catch (error) {
    // the stream without a cursor sends every point from the start, so the charts still fill
    panelsEl.before(h("p", { class: "notice notice-warn" }, `Could not load the history (${error.message}); following the live stream from the start.`));
  }
  await plotlyReady;
  host.renderAll();
  drawn = true;
  controls.showHidden();

  try {
    addEvents((await api.events(runId)).data);
    renderEvents(eventsEl, view.events, { finished: FINISHED.has(view.run.status) });
    drawTimeline();
  } catch (error) {
    showError(eventsEl, "Could not load the events:", error);
  }

  openStream(api.streamUrl(runId, cursor), {
    status(status) {
      const changed = status.status !== view.run.status;
      view.run = { ...view.run, ...status };
      header.update(view.run);
      if (changed) host.statusChanged();
    },
    metrics: onMetrics,
    event: (event) => addEvents([event]),
    async end(final) {
      if (final.status === "deleted") {
        header.markDeleted();
        header.setConnection("deleted");
        header.notice.set("This run was deleted; the charts show what was received.");
        return;
      }
      header.setConnection("finished");
      try {
        view.run = await api.getRun(runId); // finished_at, final error
        header.update(view.run);
        host.statusChanged(); // panels that fetch arrays load the last probe step
      } catch {
        // the header already shows the final status from the stream
      }
      renderEvents(eventsEl, view.events, { finished: true });
    },
    connection(state) {
      header.setConnection(state);
      if (state === "closed") checkGone(); // the stream refused: was the run deleted meanwhile?
    },
  });

  async function checkGone() {
    try {
      await api.getRun(runId);
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        header.markDeleted();
        header.setConnection("deleted");
      }
    }
  }
}

main().catch((error) => showError(headerEl, "The run page failed:", error));
