// Loss-landscape panel (issue 5; docs/probes/landscape.md): the surface stored at a probe step,
// as a contour map and a 3-D surface (2-D kinds; the optimizer's path drawn on a PCA plane) or as
// loss and accuracy curves (1-D kinds), with a slider over the stored steps. It reads
// GET /api/runs/{id}/landscapes and /landscapes/{step} and refreshes whenever a new
// landscape.center_loss point arrives (every stored surface logs one); the slider follows the
// newest step while it sits at its right end.

import { fetchedPanel, fmt, plotConfig, plotLayout, plotly, SERIES_COLORS, stepCache, takeSelectedStep } from "../charts.js";
import { h } from "../dom.js";
import { registerPanel } from "../panels.js";

export const surfaceAt = stepCache((api, runId, step) => api.landscapeAt(runId, step));

const layout = ({ margin, ...rest }) => plotLayout({ height: 380, margin: { t: 36, b: 44, ...margin }, ...rest });

// Short axis names for the 3-D scene (its titles are drawn inside the scene, where long ones are
// clipped); the 2-D axes carry the full titles.
function shortTitle(meta, axis) {
  const kind = meta.kinds[axis];
  if (kind === "pca") return `PC ${axis + 1}`;
  if (kind === "hessian") return `eigvec ${axis + 1}`;
  if (kind === "interpolation") return "α";
  return `dir ${axis + 1}`;
}

// Axis titles from the stored metadata: what each direction is.
function axisTitle(meta, axis) {
  const kind = meta.kinds[axis];
  if (kind === "pca") return `PC ${axis + 1} (${fmt(100 * meta.explained_variance[axis], 3)} % of the path)`;
  if (kind === "hessian") return `Hessian eigenvector ${axis + 1} (λ = ${fmt(meta.eigenvalues[axis])})`;
  if (kind === "interpolation") return "α (0: initialization, 1: now)";
  return `random direction ${axis + 1} (${meta.normalization}-normalized)`;
}

function transpose(rows) {
  return rows[0].map((_, j) => rows.map((row) => row[j]));
}

function log10(z) {
  return z.map((row) => row.map((v) => (v === null || v <= 0 ? null : Math.log10(v))));
}

// z[j][i] at (coords[i], coords[j]) at an off-grid point; null outside the grid.
function bilinear(coords, z, x, y) {
  const n = coords.length;
  const lo = coords[0];
  const spacing = (coords[n - 1] - lo) / (n - 1);
  const fi = (x - lo) / spacing;
  const fj = (y - lo) / spacing;
  if (!(fi >= 0 && fj >= 0 && fi <= n - 1 && fj <= n - 1)) return null;
  const i = Math.min(Math.floor(fi), n - 2);
  const j = Math.min(Math.floor(fj), n - 2);
  const ti = fi - i;
  const tj = fj - j;
  const corners = [z[j][i], z[j][i + 1], z[j + 1][i], z[j + 1][i + 1]];
  if (corners.some((v) => v === null)) return null;
  return (1 - ti) * (1 - tj) * corners[0] + ti * (1 - tj) * corners[1] + (1 - ti) * tj * corners[2] + ti * tj * corners[3];
}

// The surface as plotted (loss[i][j]: coords[i] on the x axis, coords[j] on y) and its title.
function surfaceOf(arrays, logZ) {
  const z = transpose(arrays.loss);
  return { shown: logZ ? log10(z) : z, zTitle: logZ ? "log₁₀ loss" : "loss" };
}

// The optimizer's path on the plane (null without one), without its trace type and style.
function trailOf(arrays) {
  const path = arrays.trajectory;
  if (!path) return null;
  return {
    mode: "lines+markers",
    name: "trajectory",
    x: path.map((p) => p[0]),
    y: path.map((p) => p[1]),
    text: arrays.trajectory_steps.map((s) => `step ${s}`),
    hovertemplate: "%{text}<extra>trajectory</extra>",
  };
}

// The points a refined surface evaluated (the rest of the grid is interpolated), as small dots;
// null for a full grid.
function evaluatedOf(arrays) {
  const points = arrays.evaluated;
  if (!points) return null;
  return {
    type: "scatter",
    mode: "markers",
    name: "evaluated",
    x: points.map((p) => p[0]),
    y: points.map((p) => p[1]),
    marker: { color: "rgba(255, 255, 255, 0.55)", size: 3 },
    hoverinfo: "skip",
  };
}

// Contour map of a 2-D surface with the path on it: this panel's, and the compared runs' side by
// side (js/side-by-side.js).
export function contourTraces(arrays, logZ) {
  const { shown, zTitle } = surfaceOf(arrays, logZ);
  const traces = [
    {
      type: "contour",
      x: arrays.coords,
      y: arrays.coords,
      z: shown,
      colorscale: "Viridis",
      contours: { coloring: "heatmap" },
      colorbar: { title: { text: zTitle } },
      hovertemplate: "(%{x:.3g}, %{y:.3g})<br>" + zTitle + " %{z:.4g}<extra></extra>",
    },
  ];
  const evaluated = evaluatedOf(arrays);
  if (evaluated) traces.push(evaluated);
  const trail = trailOf(arrays);
  const color = SERIES_COLORS[1];
  if (trail) traces.push({ ...trail, type: "scatter", line: { color, width: 2 }, marker: { color, size: 5 } });
  return traces;
}

// The contour map's axes: what each direction is, one unit as long on both.
export function contourAxes(meta) {
  return {
    xaxis: { title: { text: axisTitle(meta, 0) }, zeroline: false },
    yaxis: { title: { text: axisTitle(meta, 1) }, zeroline: false, scaleanchor: "x" },
  };
}

// A stored surface is a plane (2-D kinds) or a curve (1-D kinds).
export const isPlane = (result) => Array.isArray(result.arrays.loss[0]);

function drawPlane(ctx, step, { arrays, meta }) {
  const logZ = Boolean(ctx.local.logZ);
  const coords = arrays.coords;
  const { shown, zTitle } = surfaceOf(arrays, logZ);
  const contour = contourTraces(arrays, logZ);
  const surface = [
    { type: "surface", x: coords, y: coords, z: shown, colorscale: "Viridis", showscale: false, name: zTitle },
  ];
  const trail = trailOf(arrays);
  if (trail) {
    const color = SERIES_COLORS[1];
    surface.push({
      ...trail,
      type: "scatter3d",
      z: arrays.trajectory.map((p) => bilinear(coords, shown, p[0], p[1])), // on the surface; off-grid: gaps
      line: { color, width: 5 },
      marker: { color, size: 3 },
    });
  }
  const refined = meta.refine ? ` (refined: ${fmt(100 * meta.refine.fraction, 3)} % of the grid)` : "";
  const title = {
    text: `step ${step}: centre loss ${fmt(meta.scalars?.["landscape.center_loss"], 4)}, ${meta.cost.n_points} points${refined} in ${fmt(meta.cost.seconds, 2)} s, BatchNorm ${meta.bn_stats}`,
    font: { size: 12 },
  };
  plotly().react(
    ctx.state.contour,
    contour,
    layout({ title, ...contourAxes(meta), showlegend: false }),
    plotConfig(ctx, { step }),
  );
  plotly().react(
    ctx.state.surface,
    surface,
    layout({
      margin: { l: 10, r: 10, t: 10, b: 10 },
      scene: {
        xaxis: { title: { text: shortTitle(meta, 0) } },
        yaxis: { title: { text: shortTitle(meta, 1) } },
        zaxis: { title: { text: logZ ? "log₁₀ L" : "loss" } },
        camera: { eye: { x: 1.7, y: 1.7, z: 1.2 } }, // pulled back: titles stay inside the frame
      },
      showlegend: false,
      uirevision: "landscape", // keeps the camera across steps
    }),
    plotConfig(ctx, { step, name: "surface" }),
  );
}

function drawCurve(ctx, step, { arrays, meta }) {
  const traces = [
    {
      type: "scatter",
      mode: "lines+markers",
      name: "loss",
      x: arrays.coords,
      y: arrays.loss,
      line: { color: SERIES_COLORS[0], width: 1.8 },
      marker: { size: 4 },
    },
  ];
  if (arrays.accuracy) {
    traces.push({
      type: "scatter",
      mode: "lines",
      name: "accuracy",
      x: arrays.coords,
      y: arrays.accuracy,
      yaxis: "y2",
      line: { color: SERIES_COLORS[2], width: 1.4, dash: "dot" },
    });
  }
  plotly().react(
    ctx.state.curve,
    traces,
    layout({
      title: { text: `step ${step}: centre loss ${fmt(meta.scalars?.["landscape.center_loss"], 4)}`, font: { size: 12 } },
      xaxis: { title: { text: axisTitle(meta, 0) }, zeroline: false },
      yaxis: { title: { text: "loss" }, type: ctx.local.logZ ? "log" : "linear" },
      yaxis2: { title: { text: "accuracy" }, overlaying: "y", side: "right", range: [0, 1] },
      legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom" },
    }),
    plotConfig(ctx, { step }),
  );
}

// Shows the plots of one layout (plane: contour and surface; curve: one chart).
function layoutFor(ctx, plane) {
  ctx.state.contour.hidden = ctx.state.surface.hidden = !plane;
  ctx.state.curve.hidden = plane;
}

async function draw(ctx) {
  const { slider, label } = ctx.state;
  const listing = await ctx.api.landscapes(ctx.runId);
  const steps = listing.steps;
  const pinned = takeSelectedStep(ctx, steps); // the timeline's step: its snapshot at or before
  if (pinned !== null) ctx.state.following = false;
  slider.max = String(Math.max(0, steps.length - 1));
  slider.disabled = steps.length < 2;
  if (ctx.state.following) slider.value = slider.max;
  else if (pinned !== null) slider.value = String(steps.indexOf(pinned));
  if (!steps.length) {
    label.textContent = "no surface yet";
    return;
  }
  const step = steps[Math.min(Number(slider.value), steps.length - 1)];
  label.textContent = `step ${step}`;
  const result = await surfaceAt(ctx, step);
  const plane = isPlane(result);
  layoutFor(ctx, plane);
  (plane ? drawPlane : drawCurve)(ctx, step, result);
}

registerPanel(
  fetchedPanel({
    id: "landscape",
    title: "Loss landscape",
    series: ["landscape.center_loss"],
    order: 66,
    controls: [{ key: "logZ", label: "log loss", value: true }],
    mount(ctx) {
      ctx.state.following = true;
      ctx.state.slider = h("input", {
        type: "range",
        name: "landscape-step",
        "aria-label": "probe step",
        min: "0",
        max: "0",
        step: "1",
        value: "0",
        oninput: () => {
          ctx.state.following = ctx.state.slider.value === ctx.state.slider.max;
          ctx.state.refresh();
        },
      });
      ctx.state.label = h("span", { class: "slider-label" }, "");
      ctx.card.querySelector(".panel-controls")?.prepend(ctx.state.slider, ctx.state.label);
      ctx.state.contour = h("div", { id: "landscape-contour" });
      ctx.state.surface = h("div", { id: "landscape-surface" });
      ctx.state.curve = h("div", { id: "landscape-curve", hidden: true });
      ctx.el.classList.add("landscape-plots");
      ctx.el.append(ctx.state.contour, ctx.state.surface, ctx.state.curve);
      ctx.card.classList.add("panel-wide");
    },
    draw,
  }),
);
