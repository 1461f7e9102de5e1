// Neural-collapse panels (issue 7; docs/probes/collapse.md): NC1–NC4 over steps (log y, live
// through the stream; each nc.<layer>.nc1 gets an automatic one-series panel), the cosines
// between centred class means at a chosen step against the simplex-ETF value −1/(C−1), and the
// 2-D projection of the penultimate features per class.
// The two array panels read GET /api/runs/{id}/arrays/collapse[/{step}] and refresh whenever a
// new nc.nc1 point arrives (every probe step stores one).

import { linePanel, plotly, SERIES_COLORS } from "../charts.js";
import { h } from "../dom.js";
import { registerPanel } from "../panels.js";

registerPanel(
  linePanel({
    id: "collapse-metrics",
    title: "Neural collapse NC1–NC4",
    series: ["nc.nc1", "nc.equinorm", "nc.equiangular", "nc.max_angle", "nc.nc3", "nc.nc4"],
    labels: {
      "nc.nc1": "NC1 Tr(Σ_W Σ_B†)/C",
      "nc.equinorm": "NC2 equinorm (std/mean ‖μ_c − μ_G‖)",
      "nc.equiangular": "NC2 equiangularity (std cos)",
      "nc.max_angle": "NC2 mean |cos + 1/(C−1)|",
      "nc.nc3": "NC3 ‖W/‖W‖ − M/‖M‖‖²",
      "nc.nc4": "NC4 disagreement with nearest centre",
    },
    yTitle: "value",
    logY: true,
    order: 70,
  }),
);

// --- array results: cached per run and step ------------------------------------------------

const cache = new Map(); // `${runId}/${step}` -> Promise of /arrays/collapse/{step}

async function getJSON(path) {
  const response = await fetch(path, { headers: { Accept: "application/json" } });
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function resultAt(runId, step) {
  const key = `${runId}/${step}`;
  if (!cache.has(key)) {
    const pending = getJSON(`/api/runs/${runId}/arrays/collapse/${step}`);
    pending.catch(() => cache.delete(key)); // a failed fetch is retried next time
    cache.set(key, pending);
  }
  return cache.get(key);
}

const BASE_LAYOUT = {
  autosize: true,
  height: 320,
  margin: { l: 50, r: 12, t: 28, b: 40 },
  paper_bgcolor: "rgba(0,0,0,0)",
  plot_bgcolor: "rgba(0,0,0,0)",
};
const PLOT_CONFIG = { responsive: true, displaylogo: false };

// Re-runs `draw` at most once at a time; a request during a run queues exactly one more.
function refresher(ctx, draw) {
  return () => {
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
          ctx.state.refresh();
        }
      });
  };
}

// Fills the panel's step selector from the stored steps and returns the step to draw (null: none).
async function chosenStep(ctx) {
  const listing = await getJSON(`/api/runs/${ctx.runId}/arrays/collapse`);
  const select = ctx.state.select;
  const following = !select.value || select.value === "latest";
  const previous = select.value;
  select.replaceChildren(
    h("option", { value: "latest" }, "latest"),
    ...listing.steps.map((s) => h("option", { value: String(s) }, `step ${s}`)),
  );
  select.value = following ? "latest" : previous;
  if (!listing.steps.length) return null;
  return following ? listing.steps[listing.steps.length - 1] : Number(previous);
}

function fmt(value) {
  return value === null || value === undefined ? "–" : Number(value).toPrecision(3);
}

async function drawCosines(ctx) {
  const step = await chosenStep(ctx);
  if (step === null) return;
  const { arrays, meta } = await resultAt(ctx.runId, step);
  const classes = arrays.classes.map(String);
  const etf = meta.etf;
  // Diverging scale centred on the ETF value: white = exactly −1/(C−1), red above, blue below.
  const mid = etf === null ? 0 : (etf + 1) / 2;
  const z = arrays.cosines.map((row, i) => row.map((v, j) => (i === j ? null : v)));
  const s = meta.scalars ?? {};
  plotly().react(
    ctx.el,
    [
      {
        type: "heatmap",
        x: classes,
        y: classes,
        z,
        zmin: -1,
        zmax: 1,
        colorscale: [
          [0, "#1d4ed8"],
          [mid, "#f8fafc"],
          [1, "#b91c1c"],
        ],
        colorbar: { title: { text: "cos" } },
        hovertemplate: "classes %{y}, %{x}<br>cos %{z:.3f}<extra></extra>",
      },
    ],
    {
      ...BASE_LAYOUT,
      title: {
        text: `step ${step}: ETF −1/(C−1) = ${fmt(etf)} (white); NC1 ${fmt(s["nc.nc1"])}, equiangularity ${fmt(s["nc.equiangular"])}`,
        font: { size: 12 },
      },
      xaxis: { title: { text: "class" }, type: "category" },
      yaxis: { title: { text: "class" }, type: "category", autorange: "reversed", scaleanchor: "x" },
    },
    PLOT_CONFIG,
  );
}

async function drawProjection(ctx) {
  const step = await chosenStep(ctx);
  if (step === null) return;
  const { arrays, meta } = await resultAt(ctx.runId, step);
  const color = (c) => SERIES_COLORS[c % SERIES_COLORS.length];
  const traces = arrays.classes.map((c, k) => {
    const idx = arrays.labels.flatMap((label, i) => (label === c ? [i] : []));
    return {
      type: "scattergl",
      mode: "markers",
      name: `class ${c}`,
      legendgroup: String(c),
      x: idx.map((i) => arrays.points[i][0]),
      y: idx.map((i) => arrays.points[i][1]),
      marker: { color: color(k), size: 5, opacity: 0.55, symbol: k >= SERIES_COLORS.length ? "diamond" : "circle" },
      hovertemplate: `class ${c}<extra></extra>`,
    };
  });
  traces.push({
    type: "scatter",
    mode: "markers+text",
    name: "class means",
    x: arrays.means.map((m) => m[0]),
    y: arrays.means.map((m) => m[1]),
    text: arrays.classes.map(String),
    textposition: "top center",
    marker: { color: "#111827", size: 11, symbol: "x" },
    hovertemplate: "mean of class %{text}<extra></extra>",
  });
  plotly().react(
    ctx.el,
    traces,
    {
      ...BASE_LAYOUT,
      title: { text: `step ${step}: layer ${meta.layer}, top-2 directions of the class means`, font: { size: 12 } },
      xaxis: { title: { text: "PC 1" }, zeroline: false },
      yaxis: { title: { text: "PC 2" }, zeroline: false, scaleanchor: "x" },
      showlegend: true,
    },
    PLOT_CONFIG,
  );
}

function arrayPanel(id, title, order, draw) {
  return {
    id,
    title,
    series: ["nc.nc1"],
    order,
    render(ctx) {
      if (!ctx.state.select) {
        ctx.state.select = h("select", {
          name: `${id}-step`,
          "aria-label": "step",
          onchange: () => ctx.state.refresh(),
        });
        ctx.card.querySelector(".panel-controls")?.prepend(ctx.state.select);
        ctx.state.refresh = refresher(ctx, draw);
      }
      ctx.state.refresh();
    },
    update(ctx) {
      ctx.state.refresh();
    },
    onEvents() {},
  };
}

registerPanel(arrayPanel("collapse-cosines", "Class-mean cosines vs the simplex ETF", 72, drawCosines));
registerPanel(arrayPanel("collapse-projection", "Features per class (2-D projection)", 73, drawProjection));
