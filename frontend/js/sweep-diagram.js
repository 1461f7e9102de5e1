// A sweep's phase diagram: one summary per run (GET /api/sweeps/{id}/summary) against one axis —
// the mean over the runs sharing an x (e.g. seeds) with ± one standard deviation as error bars,
// and every run's own point — or against two axes, as a heatmap of those means.  Runs that never
// reached the summary (null) are marked: "×" at the bottom of the line chart, and a "not
// reached" label on a heatmap cell where no run reached it.

import { categoryColor, plotLayout, plotly, PLOT_CONFIG, theme } from "./charts.js";

const numeric = (values) => values.every((v) => typeof v === "number");

// Distinct values of an axis, numbers ascending, anything else in the order first seen.
export function axisValues(points, axis) {
  const values = [...new Map(points.map((p) => [JSON.stringify(p.axes[axis]), p.axes[axis]])).values()];
  return numeric(values) ? values.sort((a, b) => a - b) : values;
}

export function meanStd(values) {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const variance = values.length > 1 ? values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1) : 0;
  return { mean, std: Math.sqrt(variance) };
}

// Per distinct x: the reached summaries' mean and sample standard deviation, and the runs that
// did not reach it.
export function groupByAxis(points, axis) {
  return axisValues(points, axis).map((x) => {
    const mine = points.filter((p) => JSON.stringify(p.axes[axis]) === JSON.stringify(x));
    const reached = mine.filter((p) => p.summary !== null).map((p) => p.summary);
    return { x, runs: mine, reached, missing: mine.length - reached.length, ...(reached.length ? meanStd(reached) : {}) };
  });
}

// The heatmap's grid: mean summary per (x, y) cell, null where no run of the cell reached it.
export function heatmapGrid(points, xAxis, yAxis) {
  const xs = axisValues(points, xAxis);
  const ys = axisValues(points, yAxis);
  const z = ys.map((y) =>
    xs.map((x) => {
      const cell = points.filter(
        (p) => JSON.stringify(p.axes[xAxis]) === JSON.stringify(x) && JSON.stringify(p.axes[yAxis]) === JSON.stringify(y),
      );
      const reached = cell.filter((p) => p.summary !== null).map((p) => p.summary);
      return reached.length ? meanStd(reached).mean : cell.length ? null : undefined;
    }),
  );
  return { xs, ys, z };
}

function logScale(values) {
  return numeric(values) && values.length > 2 && values.every((v) => v > 0) && Math.max(...values) / Math.min(...values) >= 8;
}

function lineFigure(summary, x, reference) {
  const c = theme();
  const groups = groupByAxis(summary.points, x);
  const reached = groups.filter((g) => g.reached.length);
  const all = summary.points.filter((p) => p.summary !== null).map((p) => p.summary);
  // "not reached" marks sit a tenth of the range below the lowest reached value, apart from it
  const low = all.length ? Math.min(...all) : 0;
  const span = all.length ? Math.max(...all) - low : 0;
  const floor = low - 0.1 * (span || Math.abs(low) || 1);
  const traces = [
    {
      name: "mean ± sd",
      x: reached.map((g) => g.x),
      y: reached.map((g) => g.mean),
      error_y: { type: "data", array: reached.map((g) => g.std), visible: true },
      mode: "lines+markers",
      line: { color: categoryColor(0) },
    },
    {
      name: "runs",
      x: summary.points.filter((p) => p.summary !== null).map((p) => p.axes[x]),
      y: all,
      text: summary.points.filter((p) => p.summary !== null).map((p) => p.name),
      mode: "markers",
      marker: { color: categoryColor(1), size: 6, opacity: 0.7 },
    },
  ];
  const missing = summary.points.filter((p) => p.summary === null);
  if (missing.length) {
    traces.push({
      name: "not reached",
      x: missing.map((p) => p.axes[x]),
      y: missing.map(() => floor),
      text: missing.map((p) => `${p.name}: not reached (${p.status})`),
      hoverinfo: "text",
      mode: "markers",
      marker: { symbol: "x-thin-open", size: 11, color: c.danger, line: { width: 2, color: c.danger } },
    });
  }
  const xs = axisValues(summary.points, x);
  const log = logScale(xs);
  if (reference && numeric(xs) && xs.length) {
    const low = Math.min(...xs);
    const high = Math.max(...xs);
    const grid = Array.from({ length: 50 }, (_, i) =>
      log ? low * (high / low) ** (i / 49) : low + ((high - low) * i) / 49,
    );
    traces.push({ name: reference.name, x: grid, y: grid.map(reference.f), mode: "lines", line: { dash: "dash", color: c.muted } });
  }
  const layout = plotLayout({
    height: 360,
    xaxis: { title: { text: x }, type: log ? "log" : numeric(xs) ? "linear" : "category" },
    yaxis: { title: { text: summary.what } },
    legend: { orientation: "h", y: 1.12 },
  });
  return { traces, layout };
}

function heatmapFigure(summary, x, y) {
  const c = theme();
  const { xs, ys, z } = heatmapGrid(summary.points, x, y);
  const cells = z.map((row) => row.map((v) => (v === undefined ? null : v)));
  const annotations = [];
  z.forEach((row, j) =>
    row.forEach((v, i) => {
      if (v === null) annotations.push({ x: String(xs[i]), y: String(ys[j]), text: "not reached", showarrow: false, font: { color: c.danger } });
    }),
  );
  const traces = [
    {
      type: "heatmap",
      x: xs.map(String),
      y: ys.map(String),
      z: cells,
      colorscale: "Viridis",
      hoverongaps: false,
      colorbar: { title: { text: summary.what, side: "right" } },
    },
  ];
  const layout = plotLayout({
    height: 360,
    xaxis: { title: { text: x }, type: "category" },
    yaxis: { title: { text: y }, type: "category" },
    annotations,
  });
  return { traces, layout };
}

// Draws (or redraws in place) the phase diagram into `el`.  `reference`: an optional
// {name, f} curve over the x axis (e.g. 2/η against the learning rate).
export function drawPhaseDiagram(el, summary, { x, y = "", reference = null } = {}) {
  const { traces, layout } = y && y !== x ? heatmapFigure(summary, x, y) : lineFigure(summary, x, reference);
  el.dataset.points = String(summary.points.length);
  el.dataset.reached = String(summary.points.filter((p) => p.summary !== null).length);
  return plotly().react(el, traces, layout, PLOT_CONFIG);
}
