// Plotly line charts of scalar series, shared by every scalar panel: linePanel() returns the
// render/update pair of a panel spec (see panels.js). Live points are appended with
// Plotly.extendTraces while nothing is smoothed (a smoothed panel redraws: its band needs the
// points before the new ones).
//
// Trace order (stable, so tests and panels can rely on it): one trace per series of the run
// (smoothed when smoothing > 0: EMA or trailing window), then, when smoothing > 0, the raw
// min/max band of each series over the same span (two traces per series: low, then high filled
// down to it), then the overlaid runs (smoothed alike, no band).

import { FINISHED, h } from "./dom.js";
import { matchesSeries } from "./panels.js";
import { seriesTitle } from "./catalog.js";
import { ema, smoothingSpan, windowExtremes, windowMean } from "./series.js";
import { colors } from "./theme.js";

export const SERIES_COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
// Twenty distinguishable colours (Tableau 10, then their light variants) for categories that
// must never share one: the classes of a projection, the runs of a comparison.
export const CATEGORY_COLORS = [
  "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
  "#a0cbe8", "#ffbe7d", "#ff9d9a", "#86bcb6", "#8cd17d", "#f1ce63", "#d4a6c8", "#fabfd2", "#d7b5a6", "#79706e",
]; // prettier-ignore
export const categoryColor = (i) => CATEGORY_COLORS[i % CATEGORY_COLORS.length];
const SERIES_DASHES = ["solid", "dot", "dash", "dashdot", "longdash"];
// Past this many curves the legend would crowd the chart: the run chips above say which colour
// is which run, the hover names every curve.
const MAX_LEGEND_ENTRIES = 8;
const MAX_EVENT_LABELS = 20;

const PLOTLY_SRC = "/vendor/plotly.min.js";
let plotlyLoading = null;

export function plotly() {
  if (!window.Plotly) throw new Error(`plotly.js did not load (${PLOTLY_SRC})`);
  return window.Plotly;
}

// Loads plotly.js (3.5 MB) once, when the page asks: the run page asks after starting its
// requests, so the server reads the data while the browser compiles plotly. Draw after it.
export function loadPlotly() {
  plotlyLoading ??= new Promise((resolve, reject) => {
    if (window.Plotly) return resolve(window.Plotly);
    const script = document.createElement("script");
    script.src = PLOTLY_SRC;
    script.onload = () => resolve(plotly());
    script.onerror = () => reject(new Error(`plotly.js did not load (${PLOTLY_SRC})`));
    document.head.append(script);
  });
  return plotlyLoading;
}

// The page's colours (resolved from the stylesheet's variables, see js/theme.js) and font.
export function theme() {
  return colors();
}

// Numbers in titles and labels: 3 significant digits by default; "–" for a missing value.
export function fmt(value, digits = 3) {
  return value === null || value === undefined ? "–" : Number(value).toPrecision(digits);
}

// Axis defaults of the current theme. A log axis labels the ticks between decades with their
// value ("0.2", "0.5"), not plotly's default bare digits ("2 5 9 8 7" without the magnitude).
function themedAxis(axis, c) {
  const log = axis?.type === "log" ? { minorloglabels: "complete" } : {};
  return { gridcolor: c.grid, linecolor: c.border, zerolinecolor: c.border, ...log, ...axis };
}

function themedScene(scene, c) {
  const out = { ...scene };
  for (const key of ["xaxis", "yaxis", "zaxis"]) {
    out[key] = { backgroundcolor: "rgba(0,0,0,0)", ...themedAxis(scene[key], c), showbackground: false };
  }
  return out;
}

// The layout every dashboard chart starts from: autosized to its card, transparent so the card's
// background shows, in the page's theme (font, grid and axis colours, also in 3-D scenes and
// colour bars). `height` and the `margin` sides given override the defaults; the other keys
// (axes, title, legend…) are added as they are, over the theme's axis defaults.
export function plotLayout({ height = 280, margin = {}, ...rest } = {}) {
  const c = colors();
  const layout = {
    autosize: true,
    height,
    margin: { l: 60, r: 12, t: 28, b: 40, ...margin },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: c.font, size: 12, color: c.fg },
    hoverlabel: { bgcolor: c.bg, bordercolor: c.border, font: { color: c.fg } },
    legend: { bgcolor: "rgba(0,0,0,0)" },
    modebar: { bgcolor: "rgba(0,0,0,0)", color: c.muted, activecolor: c.fg },
    ...rest,
  };
  layout.font = { family: c.font, size: 12, color: c.fg, ...rest.font };
  for (const key of Object.keys(layout)) {
    if (/^[xy]axis\d*$/.test(key)) layout[key] = themedAxis(layout[key], c);
  }
  for (const key of ["xaxis", "yaxis"]) if (!layout[key]) layout[key] = themedAxis({}, c);
  if (layout.scene) layout.scene = themedScene(layout.scene, c);
  return layout;
}

// Plotly config of every chart: no plotly logo and no "Share chart…" (it uploads the data to
// Plotly Cloud); the camera button saves "run-<id>-<panel>[-step-<n>].png".
export const PLOT_CONFIG = { responsive: true, displaylogo: false, showSendToCloud: false, showEditInChartStudio: false };

export function plotConfig(ctx, { step, name, extra = {} } = {}) {
  const stepPart = step === undefined || step === null ? null : `step-${step}`;
  const parts = [`run-${ctx.runId}`, ctx.panel?.id ?? "chart", name, stepPart];
  const filename = parts.filter((p) => p !== undefined && p !== null).join("-");
  return { ...PLOT_CONFIG, ...extra, toImageButtonOptions: { format: "png", scale: 2, filename } };
}

// Series names a panel draws: exact names always (empty until their first point, so live
// appends have a trace to extend), "prefix.*" families as found in the store, sorted.
export function seriesNames(patterns, store) {
  const names = [];
  for (const pattern of patterns) {
    const found = pattern.endsWith(".*")
      ? store.names().filter((n) => matchesSeries(pattern, n)).sort()
      : [pattern];
    for (const name of found) if (!names.includes(name)) names.push(name);
  }
  return names;
}

// Bookkeeping events shown on the timeline only (js/timeline.js): one every few steps would
// crowd every chart with lines.
export const TIMELINE_ONLY = new Set(["checkpoint.saved", "run.resumed", "landscape.snapshot"]);

// Vertical dotted lines (and labels) at the steps of the run's events: one per step, labelled
// with the kinds that happened there (a loss spike comes with the groups behind it).
// `xOf(step)` places a step on the x axis (a time axis: null when unknown, then not drawn).
export function eventMarkers(events, logX, colors = theme(), xOf = (step) => step) {
  // On a log axis, plotly (v4) places shapes in data units but annotations in log10 units.
  const labelX = (x) => (logX ? Math.log10(x) : x);
  const byStep = new Map();
  for (const e of events) {
    if (TIMELINE_ONLY.has(e.kind)) continue;
    const x = xOf(e.step);
    if (x === null || (logX && x <= 0)) continue; // not on this axis
    if (!byStep.has(e.step)) byStep.set(e.step, { step: x, at: e.step, kinds: [] });
    if (!byStep.get(e.step).kinds.includes(e.kind)) byStep.get(e.step).kinds.push(e.kind);
  }
  const placed = [...byStep.values()].map((p) => ({ step: p.step, at: p.at, kind: p.kinds.join(", ") }));
  return {
    shapes: placed.map((e) => ({
      type: "line",
      xref: "x",
      yref: "paper",
      x0: e.step,
      x1: e.step,
      y0: 0,
      y1: 1,
      line: { color: colors.event, width: 1, dash: "dot" },
    })),
    annotations: placed.slice(-MAX_EVENT_LABELS).map((e) => ({
      x: labelX(e.step),
      xref: "x",
      y: 1,
      yref: "paper",
      text: e.kind,
      showarrow: false,
      textangle: -90,
      xanchor: "right",
      yanchor: "top",
      font: { size: 10, color: colors.event },
      hovertext: `step ${e.at}: ${e.kind}`,
    })),
  };
}

// The page's selected step (the timeline's, ctx.options.step) as a solid vertical line named
// "cursor" (none while nothing is selected, or where `xOf` cannot place it).
export function cursorShape(step, colors = theme(), xOf = (s) => s) {
  const x = step === null || step === undefined ? null : xOf(step);
  if (x === null || x === undefined) return [];
  return [{ type: "line", name: "cursor", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: { color: colors.fg, width: 1.5 } }];
}

// The event markers of a scalar panel with the selected step's cursor on top.
function markersWithCursor(ctx, logX, colors, placeStep) {
  const markers = eventMarkers(ctx.events, logX, colors, placeStep);
  const xOf = placeStep ?? ((s) => s);
  markers.shapes.push(...cursorShape(ctx.options.step, colors, (s) => (logX && s <= 0 ? null : xOf(s))));
  return markers;
}

// Which stored probe step a step-indexed panel shows for the selected step: the last one at or
// before it (the state the run was in then), or the first one after when none is before
// (docs/timeline.md). null without any stored step.
export function probeStepFor(steps, wanted) {
  if (!steps.length) return null;
  let best = null;
  for (const s of steps) if (s <= wanted && (best === null || s > best)) best = s;
  return best ?? Math.min(...steps);
}

// The probe step a panel should move to because the page's selected step changed since it last
// looked (null: nothing new, or no step stored yet: it looks again when steps arrive). A choice
// the user makes in the panel afterwards stands until the next selection.
export function takeSelectedStep(ctx, steps) {
  const wanted = ctx.options.step;
  if (wanted === null || wanted === undefined || ctx.state.seenStep === wanted || !steps.length) return null;
  ctx.state.seenStep = wanted;
  return probeStepFor(steps, wanted);
}

// The x axes of the scalar panels: the step, the wall time (a date axis) or the seconds since the
// run's first point (each compared run from its own start).
export const X_AXES = { step: "step", wall: "wall time", relative: "time since start (s)" };

// x of a series' points on the chosen axis (null: a live point whose time is not loaded yet).
export function xValues(axis, store, s) {
  if (axis === "wall") return s.times.map((t) => (t === null ? null : t * 1000)); // ms: plotly dates
  if (axis === "relative") {
    const start = store.startTime();
    return s.times.map((t) => (t === null || start === null ? null : t - start));
  }
  return s.steps.slice();
}

// Places a step on the chosen axis through a series' points: the x of its first point at or after
// that step (null past the last one).
function stepPlacer(axis, store, s) {
  if (axis === "step") return (step) => step;
  const xs = xValues(axis, store, s);
  return (step) => {
    let lo = 0;
    let hi = s.steps.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s.steps[mid] < step) lo = mid + 1;
      else hi = mid;
    }
    return lo < xs.length ? xs[lo] : null;
  };
}

// "#rrggbb" with an alpha, for fills.
export function withAlpha(hex, alpha) {
  const n = Number.parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

// An annotation centred in a chart that says why it shows nothing (or what it found none of).
export function noteAnnotation(text, c = theme(), y = 0.5) {
  return { text, xref: "paper", yref: "paper", x: 0.5, y, showarrow: false, font: { size: 13, color: c.muted } };
}

// Decades spanned by the positive values of the traces (0 without any).
function decades(traces) {
  let lo = Infinity;
  let hi = -Infinity;
  for (const t of traces) {
    for (const v of t.y) {
      if (v > 0) {
        lo = Math.min(lo, v);
        hi = Math.max(hi, v);
      }
    }
  }
  return hi > lo ? Math.log10(hi / lo) : 0;
}

function layout(ctx, { yTitle, logY, empty, legend, yDecades = 0, placeStep }) {
  const colors = theme();
  const axis = xAxisOf(ctx);
  const logX = Boolean(ctx.options.logX) && axis !== "wall";
  const markers = markersWithCursor(ctx, logX, colors, placeStep);
  if (empty) {
    const finished = FINISHED.has(ctx.run?.status);
    markers.annotations.push(noteAnnotation(finished ? "no points were recorded" : "waiting for the first points…", colors));
  }
  return plotLayout({
    font: { family: colors.font, size: 12, color: colors.fg },
    xaxis: {
      title: { text: X_AXES[axis] },
      type: axis === "wall" ? "date" : logX ? "log" : "linear",
      gridcolor: colors.grid,
      zeroline: false,
      visible: !empty,
    },
    yaxis: {
      visible: !empty,
      title: { text: yTitle ?? "" },
      type: logY ? "log" : "linear",
      gridcolor: colors.grid,
      zeroline: false,
      exponentformat: "power",
      // 1–3 decades: ticks at 1, 2 and 5 × 10^k only (each digit of a decade would overlap)
      ...(logY && yDecades > 0.8 && yDecades < 3 ? { dtick: "D2" } : {}),
    },
    showlegend: legend,
    legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom", font: { size: 11 } },
    hovermode: "x unified",
    uirevision: `${axis}|${logX}|${logY}`, // keeps the user's zoom across live updates, not across axis types
    ...markers,
  });
}

const xAxisOf = (ctx) => (ctx.options.xAxis in X_AXES ? ctx.options.xAxis : "step");

const LINE_MODEBAR = { modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"] };

// A scalar panel spec: `series` drawn against the step, optional log-y toggle (`logY` given),
// the compared runs overlaid unless `overlay: false`; `labels` maps series names to legend names
// (default: their title in js/catalog.js); `smooth: false` exempts it from the smoothing slider
// (a learning rate schedule should stay exact). When runs are compared, every run has one colour
// on every panel (its chip's, categoryColor) and each series of a panel one dash.
export function linePanel({ id, title, series, yTitle, logY, labels = {}, smooth = true, overlay = true, ...rest }) {
  let shownRun = null; // the run being drawn: some titles depend on its optimizer
  const label = (name) => labels[name] ?? seriesTitle(name, shownRun);
  const weight = (ctx) => (smooth ? Number(ctx.options.smoothing) || 0 : 0);
  const smoothed = (ctx, values, state) => {
    const w = weight(ctx);
    return ctx.options.smoothKind === "window" && w > 0 ? windowMean(values, smoothingSpan(w)) : ema(values, w, state);
  };

  function render(ctx) {
    shownRun = ctx.run;
    const names = seriesNames(series, ctx.store);
    const w = weight(ctx);
    ctx.state.names = names;
    ctx.state.ema = names.map(() => ({ m: 0, n: 0 }));
    const compare = overlay && ctx.overlays.length > 0;
    const colorOf = (i) => (compare ? categoryColor(0) : SERIES_COLORS[i % SERIES_COLORS.length]);
    const axis = xAxisOf(ctx);
    const xOf = (store, s) => xValues(axis, store, s);
    const traces = names.map((name, i) => {
      const s = ctx.store.get(name);
      return {
        type: "scatter",
        mode: s.steps.length === 1 ? "markers" : "lines",
        name: compare ? `#${ctx.runId} ${label(name)}` : label(name),
        legendgroup: compare ? `run-${ctx.runId}` : undefined,
        x: xOf(ctx.store, s),
        y: smoothed(ctx, s.values, ctx.state.ema[i]),
        line: { color: colorOf(i), width: 1.8, dash: compare ? SERIES_DASHES[i % SERIES_DASHES.length] : "solid" },
        hovertemplate: "%{y:.4g}",
        connectgaps: false,
      };
    });
    if (w > 0) {
      names.forEach((name, i) => {
        const s = ctx.store.get(name);
        const { lo, hi } = windowExtremes(s.values, smoothingSpan(w));
        const band = { type: "scatter", mode: "lines", x: xOf(ctx.store, s), showlegend: false, hoverinfo: "skip", connectgaps: false };
        traces.push(
          { ...band, name: `${label(name)} (raw min)`, y: lo, line: { color: colorOf(i), width: 0.5 }, opacity: 0.5 },
          { ...band, name: `${label(name)} (raw max)`, y: hi, line: { color: colorOf(i), width: 0.5 }, opacity: 0.5, fill: "tonexty", fillcolor: withAlpha(colorOf(i), 0.15) },
        );
      });
    }
    if (compare) {
      for (const run of ctx.overlays) {
        names.forEach((name, i) => {
          const s = run.store.get(name);
          if (!s.steps.length) return;
          traces.push({
            type: "scatter",
            mode: "lines",
            name: `#${run.id} ${label(name)}`,
            legendgroup: `run-${run.id}`,
            x: xOf(run.store, s),
            y: smoothed(ctx, s.values),
            line: { color: run.color, width: 1.5, dash: SERIES_DASHES[i % SERIES_DASHES.length] },
            hovertemplate: "%{y:.4g}",
          });
        });
      }
    }
    ctx.state.empty = traces.every((t) => !t.x.length);
    const entries = traces.filter((t) => t.showlegend !== false).length;
    const options = {
      yTitle,
      logY: Boolean(ctx.local.logY),
      empty: ctx.state.empty,
      legend: entries > 1 && entries <= MAX_LEGEND_ENTRIES,
      yDecades: ctx.local.logY ? decades(traces) : 0,
      placeStep: placer(ctx),
    };
    const drawn = layout(ctx, options);
    if (ctx.options.xRange) Object.assign(drawn.xaxis, { range: ctx.options.xRange, autorange: false });
    plotly().react(ctx.el, traces, drawn, plotConfig(ctx, { extra: LINE_MODEBAR }));
    if (!ctx.state.zoomBound) {
      // a zoom on the step axis is announced, so that the page can apply it to every line panel
      ctx.state.zoomBound = true;
      ctx.el.dataset.stepAxis = "true";
      ctx.el.on("plotly_relayout", (change) => {
        const range = change["xaxis.range[0]"] !== undefined ? [change["xaxis.range[0]"], change["xaxis.range[1]"]] : change["xaxis.range"];
        if (range || change["xaxis.autorange"]) {
          ctx.el.dispatchEvent(new CustomEvent("stepzoom", { bubbles: true, detail: range ?? null }));
        }
      });
    }
  }

  function update(ctx, delta) {
    const names = ctx.state.names ?? [];
    // a new member of a series family, or the first points: redraw (axes, legend, modes)
    if (ctx.state.empty || Object.keys(delta).some((name) => !names.includes(name))) return render(ctx);
    if (xAxisOf(ctx) !== "step") return undefined; // no time yet: the page reloads the history
    const w = weight(ctx);
    if (w > 0) return redrawSoon(ctx); // the band and a window span the points before the new ones
    const indices = [];
    const xs = [];
    const ys = [];
    names.forEach((name, i) => {
      const points = delta[name];
      if (!points) return;
      indices.push(i);
      xs.push(points.steps.slice());
      ys.push(points.values.slice());
    });
    if (!indices.length) return;
    if (names.some((name, i) => delta[name] && ctx.el.data?.[i]?.mode === "markers")) return render(ctx);
    plotly().extendTraces(ctx.el, { x: xs, y: ys }, indices);
  }

  // Live points in bursts: one redraw per animation frame.
  function redrawSoon(ctx) {
    if (ctx.state.pending) return;
    ctx.state.pending = true;
    requestAnimationFrame(() => {
      ctx.state.pending = false;
      render(ctx);
    });
  }

  // Steps on the chosen x axis, through the panel's first series that has points.
  function placer(ctx) {
    const name = (ctx.state.names ?? []).find((n) => ctx.store.has(n));
    return stepPlacer(xAxisOf(ctx), ctx.store, ctx.store.get(name ?? ""));
  }

  function onEvents(ctx) {
    const logX = Boolean(ctx.options.logX) && xAxisOf(ctx) !== "wall";
    plotly().relayout(ctx.el, markersWithCursor(ctx, logX, theme(), placer(ctx)));
  }

  function onStatus(ctx) {
    if (ctx.state.empty) render(ctx); // "waiting for points" becomes "no points were recorded"
  }

  const controls = logY === undefined ? [] : [{ key: "logY", label: "log y", value: logY }];
  return { id, title, series, controls, overlay, render, update, onEvents, onStep: onEvents, onStatus, ...rest };
}

// For panels that fetch arrays: returns a function that runs `draw(ctx)` (async) at most once at
// a time; a call during a run queues exactly one more. Failures show in the panel's error box.
export function refresher(ctx, draw) {
  const refresh = () => {
    if (ctx.state.busy) {
      ctx.state.again = true;
      return;
    }
    ctx.state.busy = true;
    draw(ctx)
      .then(() => {
        ctx.errorBox.hidden = true;
      })
      .catch((error) => {
        ctx.errorBox.textContent = `This panel failed: ${error.message}`;
        ctx.errorBox.hidden = false;
      })
      .finally(() => {
        ctx.state.busy = false;
        if (ctx.state.again) {
          ctx.state.again = false;
          refresh();
        }
      });
  };
  return refresh;
}

// Array results of one kind, fetched once per run and step: `load(api, runId, step)` returns a
// promise; the returned function takes (ctx, step). A failed fetch is retried next time.
export function stepCache(load) {
  const cache = new Map(); // `${runId}/${step}` -> Promise of the result
  return (ctx, step) => {
    const key = `${ctx.runId}/${step}`;
    if (!cache.has(key)) {
      const pending = load(ctx.api, ctx.runId, step);
      pending.catch(() => cache.delete(key)); // a failed fetch is retried next time
      cache.set(key, pending);
    }
    return cache.get(key);
  };
}

// Refills a step <select> with "latest" and the `steps` given, keeping the user's choice, and
// returns the step to draw (null: none yet). While "latest" is chosen it follows new steps.
// `pinned` (a step among `steps`) replaces the choice, e.g. the timeline's selected step.
export function chooseStep(select, steps, pinned = null) {
  const following = pinned === null && (!select.value || select.value === "latest");
  const previous = pinned === null ? select.value : String(pinned);
  select.replaceChildren(
    h("option", { value: "latest" }, "latest"),
    ...steps.map((s) => h("option", { value: String(s) }, `step ${s}`)),
  );
  select.value = following ? "latest" : previous;
  if (!steps.length) return null;
  return following ? steps[steps.length - 1] : Number(previous);
}

// Spec of a panel drawn from data it fetches itself: the first render runs `mount(ctx)` (extra
// controls, child elements) if given; every render, every new point of its series and the run's
// end re-run `draw(ctx)` (async) through refresher() (the last probe step's arrays may land after
// its scalar point was streamed); run events do not concern it.
export function fetchedPanel({ mount, draw, ...rest }) {
  return {
    ...rest,
    render(ctx) {
      if (!ctx.state.refresh) {
        mount?.(ctx);
        ctx.state.refresh = refresher(ctx, draw);
      }
      ctx.state.refresh();
    },
    update(ctx) {
      ctx.state.refresh();
    },
    onStatus(ctx) {
      if (FINISHED.has(ctx.run?.status)) ctx.state.refresh?.();
    },
    onEvents() {},
    onStep(ctx) {
      ctx.state.refresh?.(); // draw() reads the selected step (takeSelectedStep)
    },
  };
}

// Spec of a panel that draws the arrays stored at one step, chosen in a <select name="${id}-step">
// prepended to its controls ("latest" follows new steps). `steps(ctx)` resolves to the steps on
// offer, `draw(ctx, step)` draws one (both async).
export function arrayPanel({ id, steps, draw, ...rest }) {
  return fetchedPanel({
    id,
    ...rest,
    mount(ctx) {
      ctx.state.select = h("select", { name: `${id}-step`, "aria-label": "step", onchange: () => ctx.state.refresh() });
      ctx.card.querySelector(".panel-controls")?.prepend(ctx.state.select);
    },
    async draw(ctx) {
      const offered = await steps(ctx);
      const step = chooseStep(ctx.state.select, offered, takeSelectedStep(ctx, offered));
      if (step !== null) await draw(ctx, step);
      // the stream announced a newer probe step whose arrays were not listed yet: look again
      const announced = ctx.store.get(rest.series?.[0] ?? "").steps.at(-1);
      if (announced > (offered.at(-1) ?? -Infinity) && !ctx.state.retry && !FINISHED.has(ctx.run?.status)) {
        ctx.state.retry = setTimeout(() => {
          ctx.state.retry = null;
          ctx.state.refresh();
        }, 1000);
      }
    },
  });
}
