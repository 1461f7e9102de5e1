// Neural-collapse panels (issue 7; docs/probes/collapse.md): NC1–NC4 over steps (log y, live
// through the stream; each nc.<layer>.nc1 gets an automatic one-series panel), the cosines
// between centred class means at a chosen step against the simplex-ETF value −1/(C−1), and the
// 2-D projection of the penultimate features per class.
// The two array panels read GET /api/runs/{id}/arrays/collapse[/{step}] and refresh whenever a
// new nc.nc1 point arrives (every probe step stores one).

import { arrayPanel, categoryColor, fmt, linePanel, plotConfig, plotLayout, plotly, stepCache, theme } from "../charts.js";
import { registerPanel } from "../panels.js";

registerPanel(
  linePanel({
    id: "collapse-metrics",
    title: "Neural collapse NC1–NC3",
    series: ["nc.nc1", "nc.equinorm", "nc.equiangular", "nc.max_angle", "nc.nc3"],
    labels: {
      "nc.nc1": "NC1 Tr(Σ_W Σ_B†)/C",
      "nc.equinorm": "NC2 equinorm (std/mean ‖μ_c − μ_G‖)",
      "nc.equiangular": "NC2 equiangularity (std cos)",
      "nc.max_angle": "NC2 mean |cos + 1/(C−1)|",
      "nc.nc3": "NC3 ‖W/‖W‖ − M/‖M‖‖²",
    },
    yTitle: "value",
    logY: true,
    order: 70,
  }),
);

// NC4 is a fraction that reaches exactly 0 in the terminal phase: a log axis would drop it.
registerPanel(
  linePanel({
    id: "collapse-nc4",
    title: "NC4: prediction ≠ nearest class centre",
    series: ["nc.nc4"],
    labels: { "nc.nc4": "NC4 disagreement with nearest centre" },
    yTitle: "fraction of examples",
    order: 71,
  }),
);

// --- array results: cached per run and step ------------------------------------------------

const resultAt = stepCache((api, runId, step) => api.arrayAt(runId, "collapse", step));

const storedSteps = async (ctx) => (await ctx.api.arrays(ctx.runId, "collapse")).steps;

const layout = (rest) => plotLayout({ height: 320, margin: { l: 50 }, ...rest });

async function drawCosines(ctx, step) {
  const { arrays, meta } = await resultAt(ctx, step);
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
    layout({
      title: {
        text: `step ${step}: ETF −1/(C−1) = ${fmt(etf)} (white); NC1 ${fmt(s["nc.nc1"])}, equiangularity ${fmt(s["nc.equiangular"])}`,
        font: { size: 12 },
      },
      xaxis: { title: { text: "class" }, type: "category", showgrid: false },
      yaxis: { title: { text: "class" }, type: "category", autorange: "reversed", scaleanchor: "x", showgrid: false },
      plot_bgcolor: theme().grid, // the diagonal (cos of a class with itself) is left out: neutral
    }),
    plotConfig(ctx, { step }),
  );
}

async function drawProjection(ctx, step) {
  const { arrays, meta } = await resultAt(ctx, step);
  const traces = arrays.classes.map((c, k) => {
    const idx = arrays.labels.flatMap((label, i) => (label === c ? [i] : []));
    return {
      type: "scattergl",
      mode: "markers",
      name: `class ${c}`,
      legendgroup: String(c),
      x: idx.map((i) => arrays.points[i][0]),
      y: idx.map((i) => arrays.points[i][1]),
      marker: { color: categoryColor(k), size: 5, opacity: 0.6 },
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
    marker: { color: theme().fg, size: 11, symbol: "x" },
    hovertemplate: "mean of class %{text}<extra></extra>",
  });
  plotly().react(
    ctx.el,
    traces,
    layout({
      title: { text: `step ${step}: layer ${meta.layer}, top-2 directions of the class means`, font: { size: 12 } },
      xaxis: { title: { text: "PC 1" }, zeroline: false },
      yaxis: { title: { text: "PC 2" }, zeroline: false, scaleanchor: "x" },
      showlegend: true,
      // under the plot, every class in view (a legend beside it scrolled, over the last class)
      legend: { orientation: "h", x: 0, y: -0.2, yanchor: "top", font: { size: 11 } },
      height: 400,
      margin: { l: 50, b: 100 },
    }),
    plotConfig(ctx, { step }),
  );
}

const collapsePanel = (id, title, order, draw) =>
  arrayPanel({ id, title, series: ["nc.nc1"], order, steps: storedSteps, draw });

registerPanel(collapsePanel("collapse-cosines", "Class-mean cosines vs the simplex ETF", 72, drawCosines));
registerPanel(collapsePanel("collapse-projection", "Features per class (2-D projection)", 73, drawProjection));
