// Hessian probe panels (issue 4; docs/probes/hessian.md): sharpness against the stability
// threshold, the top-k eigenvalues over steps, the spectral density at a chosen step, and a
// heatmap of log density over steps. The two line panels are scalar series (live through the
// stream); the density panels read GET /api/runs/{id}/spectra and /spectra/{step} and refresh
// whenever a new hessian.lambda_max point arrives (every probe step stores one).

import { arrayPanel, cursorShape, fetchedPanel, linePanel, plotConfig, plotLayout, plotly, SERIES_COLORS, stepCache } from "../charts.js";
import { registerPanel } from "../panels.js";

registerPanel(
  linePanel({
    id: "hessian-sharpness",
    title: "Sharpness λ_max (full batch) and batch sharpness (SGD) vs the stability threshold",
    series: ["hessian.lambda_max", "hessian.precond_lambda_max", "hessian.threshold", "hessian.batch_sharpness"],
    labels: {
      "hessian.lambda_max": "λ_max(H)",
      "hessian.precond_lambda_max": "λ_max(P⁻¹H) (Adam)",
    },
    yTitle: "eigenvalue",
    logY: false,
    order: 60,
  }),
);

registerPanel(
  linePanel({
    id: "hessian-eigs",
    title: "Top-k Hessian eigenvalues",
    series: ["hessian.eig.*"],
    yTitle: "eigenvalue",
    logY: false,
    order: 61,
  }),
);

// --- spectral density: fetched arrays, cached per run and step -------------------------------

export const spectrumAt = stepCache((api, runId, step) => api.spectrumAt(runId, step));

// Steps (of those stored) that carry a density; the meta says whether it was computed.
async function densitySteps(ctx) {
  const listing = await ctx.api.spectra(ctx.runId);
  return listing.steps.filter((_, i) => listing.meta[i]?.density_sigma !== undefined);
}

function hasDensity(ctx) {
  return Boolean(ctx.run?.config?.probes?.hessian?.density) && ctx.store.has("hessian.lambda_max");
}

const HEIGHT = 300;

// Also draws the compared runs' densities side by side (js/side-by-side.js).
export async function drawDensity(ctx, step) {
  const result = await spectrumAt(ctx, step);
  const { density_grid: grid, density, eigenvalues } = result.arrays;
  const logY = Boolean(ctx.local.logY);
  const floor = Math.max(...density) * 1e-8; // log axis: Gaussian tails below this are not drawn
  const traces = [
    {
      type: "scatter",
      mode: "lines",
      name: `density, step ${step}`,
      x: grid,
      y: logY ? density.map((v) => (v > floor ? v : null)) : density,
      line: { color: SERIES_COLORS[0], width: 1.6 },
    },
    {
      type: "scatter",
      mode: "markers",
      name: "Lanczos eigenvalues",
      x: eigenvalues,
      y: eigenvalues.map(() => 0),
      yaxis: "y2",
      marker: { color: SERIES_COLORS[1], symbol: "line-ns-open", size: 14 },
      hovertemplate: "%{x:.4g}",
    },
  ];
  const threshold = result.meta.threshold;
  const shapes = result.meta.preconditioned
    ? []
    : [{ type: "line", xref: "x", yref: "paper", x0: threshold, x1: threshold, y0: 0, y1: 1,
         line: { color: SERIES_COLORS[2], dash: "dash", width: 1 } }]; // prettier-ignore
  plotly().react(
    ctx.el,
    traces,
    plotLayout({
      height: HEIGHT,
      xaxis: { title: { text: "eigenvalue" }, zeroline: false },
      yaxis: { title: { text: "density" }, type: logY ? "log" : "linear" },
      yaxis2: { overlaying: "y", visible: false, range: [-1, 1] },
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" },
      shapes,
    }),
    plotConfig(ctx, { step }),
  );
}

registerPanel(
  arrayPanel({
    id: "hessian-density",
    title: "Hessian spectral density",
    series: ["hessian.lambda_max"],
    order: 62,
    controls: [{ key: "logY", label: "log y", value: true }],
    when: hasDensity,
    steps: densitySteps,
    draw: drawDensity,
  }),
);

// --- heatmap of log10 density over steps, on one common eigenvalue grid --------------------

const HEATMAP_ROWS = 160;
const HEATMAP_MAX_STEPS = 80;

function evenlySpaced(steps, count) {
  if (steps.length <= count) return steps;
  const out = [];
  for (let i = 0; i < count; i += 1) out.push(steps[Math.round((i * (steps.length - 1)) / (count - 1))]);
  return [...new Set(out)];
}

function interpolate(xs, ys, x) {
  if (x < xs[0] || x > xs[xs.length - 1]) return 0;
  let lo = 0;
  let hi = xs.length - 1;
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (xs[mid] <= x) lo = mid;
    else hi = mid;
  }
  const t = xs[hi] === xs[lo] ? 0 : (x - xs[lo]) / (xs[hi] - xs[lo]);
  return (ys[lo] ?? 0) * (1 - t) + (ys[hi] ?? 0) * t;
}

async function drawHeatmap(ctx) {
  const steps = evenlySpaced(await densitySteps(ctx), HEATMAP_MAX_STEPS);
  if (!steps.length) return;
  const results = await Promise.all(steps.map((s) => spectrumAt(ctx, s)));
  const grids = results.map((r) => r.arrays.density_grid);
  const lo = Math.min(...grids.map((g) => g[0]));
  const hi = Math.max(...grids.map((g) => g[g.length - 1]));
  const rows = Array.from({ length: HEATMAP_ROWS }, (_, i) => lo + ((hi - lo) * i) / (HEATMAP_ROWS - 1));
  const floor = -8; // log10 density below this shows as the floor (exact zeros included)
  const z = rows.map((x) =>
    results.map((r) => {
      const v = interpolate(r.arrays.density_grid, r.arrays.density, x);
      return v > 0 ? Math.max(floor, Math.log10(v)) : floor;
    }),
  );
  plotly().react(
    ctx.el,
    [
      {
        type: "heatmap",
        x: steps,
        y: rows,
        z,
        colorscale: "Viridis",
        colorbar: { title: { text: "log₁₀ φ" } },
        hovertemplate: "step %{x}<br>λ %{y:.4g}<br>log₁₀ φ %{z:.2f}<extra></extra>",
      },
    ],
    plotLayout({
      height: HEIGHT,
      xaxis: { title: { text: "step" } },
      yaxis: { title: { text: "eigenvalue" } },
      shapes: cursorShape(ctx.options.step),
    }),
    plotConfig(ctx),
  );
}

registerPanel(
  fetchedPanel({
    id: "hessian-density-heatmap",
    title: "Hessian log density over steps",
    series: ["hessian.lambda_max"],
    order: 63,
    when: hasDensity,
    draw: drawHeatmap,
  }),
);
