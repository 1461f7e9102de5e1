// Grokking panels (issue 6; docs/probes/grokking.md, "In the service"): one figure on a shared
// log-step axis with train/test accuracy on top, train/test loss beneath and the progress
// measures at the bottom (Fourier sparsity, NTK alignment and relative change on the left axis,
// the weight norm on the right); the grokking.memorized and grokking.generalized events are
// vertical lines through all three, with the delay between them annotated. Live: new points of
// any of its series redraw it (at most once per animation frame). Per-layer weight norms and
// relative changes get their own line panels.

import { cursorShape, linePanel, plotConfig, plotLayout, plotly, SERIES_COLORS, theme } from "../charts.js";
import { registerPanel } from "../panels.js";

const MEMORIZED = "grokking.memorized";
const GENERALIZED = "grokking.generalized";
const ROWS = [
  // [series, label, colour index, y axis]
  ["train.acc", "train accuracy", 0, "y"],
  ["test.acc", "test accuracy", 1, "y"],
  ["train.loss", "train loss", 0, "y2"],
  ["test.loss", "test loss", 1, "y2"],
  ["grok.fourier_sparsity", "Fourier sparsity of the embeddings", 2, "y3"],
  ["grok.ntk_alignment", "NTK–label alignment", 3, "y3"],
  ["grok.relative_change", "‖θ−θ₀‖/‖θ₀‖", 4, "y3"],
  ["grok.weight_norm", "‖θ‖ (right axis)", 5, "y4"],
];
const EVENT_COLORS = { [MEMORIZED]: "#0891b2", [GENERALIZED]: "#b45309" };

// Steps > 0 (a log axis has no 0) with their values.
function positive(series, logX) {
  const x = [];
  const y = [];
  series.steps.forEach((step, i) => {
    if (!logX || step > 0) {
      x.push(step);
      y.push(series.values[i]);
    }
  });
  return { x, y };
}

// The first event of each grokking kind (the hook emits each once).
function grokkingEvents(events) {
  const found = {};
  for (const e of events) if ((e.kind === MEMORIZED || e.kind === GENERALIZED) && !found[e.kind]) found[e.kind] = e;
  return found;
}

// Lines at the two events, their labels, and the delay between them. Plotly 3+ places shapes in
// data units on log axes, annotations still in log10 units.
function markers(events, logX) {
  const at = (step) => (logX ? Math.log10(Math.max(step, 1)) : step);
  const found = grokkingEvents(events);
  const shapes = [];
  const annotations = [];
  for (const [kind, e] of Object.entries(found)) {
    const color = EVENT_COLORS[kind];
    shapes.push({
      type: "line", xref: "x", yref: "paper", x0: e.step, x1: e.step, y0: 0, y1: 1,
      line: { color, width: 1.5, dash: "dash" }, name: kind,
    }); // prettier-ignore
    annotations.push({
      x: at(e.step), xref: "x", y: 1, yref: "paper", text: `${kind.split(".")[1]} @ ${e.step}`,
      showarrow: false, textangle: -90, xanchor: "right", yanchor: "top", font: { size: 10, color },
      hovertext: `step ${e.step} (confirmed at ${e.payload?.detected_at})`,
    }); // prettier-ignore
  }
  const mem = found[MEMORIZED];
  const gen = found[GENERALIZED];
  if (mem && gen) {
    const delay = gen.payload?.delay ?? gen.step - mem.step;
    const grokking = gen.payload?.is_grokking ? "grokking" : "not grokking";
    annotations.push({
      x: (at(mem.step) + at(gen.step)) / 2, xref: "x", y: 0.9, yref: "paper",
      text: `delay ${delay.toLocaleString("en")} steps (${grokking})`, showarrow: false,
      bgcolor: theme().bg, font: { size: 11, color: EVENT_COLORS[GENERALIZED] },
    }); // prettier-ignore
    shapes.push({
      type: "line", xref: "x", yref: "paper", x0: mem.step, x1: gen.step, y0: 0.87, y1: 0.87,
      line: { color: EVENT_COLORS[GENERALIZED], width: 1 }, name: "delay",
    }); // prettier-ignore
  }
  return { shapes, annotations };
}

// The timeline's selected step as a cursor over the three rows (none at step 0 on a log axis).
function withCursor(drawn, step, logX) {
  drawn.shapes.push(...cursorShape(step, theme(), (s) => (logX && s <= 0 ? null : s)));
  return drawn;
}

function draw(ctx) {
  const logX = Boolean(ctx.local.logX);
  const traces = ROWS.filter(([name]) => ctx.store.has(name)).map(([name, label, color, yaxis]) => ({
    type: "scatter",
    mode: "lines",
    name: label,
    meta: name,
    ...positive(ctx.store.get(name), logX),
    yaxis,
    line: { color: SERIES_COLORS[color], width: 1.6, dash: yaxis === "y2" ? "dot" : "solid" },
    hovertemplate: "%{y:.4g}",
  }));
  const axis = (title, domain, extra = {}) => ({ title: { text: title }, domain, zeroline: false, ...extra });
  plotly().react(
    ctx.el,
    traces,
    plotLayout({
      height: 560,
      margin: { r: 60 },
      xaxis: { title: { text: "step" }, type: logX ? "log" : "linear", anchor: "y3" },
      yaxis: axis("accuracy", [0.7, 1], { range: [-0.02, 1.02] }),
      yaxis2: axis("loss", [0.38, 0.66], { type: "log", exponentformat: "power" }),
      yaxis3: axis("measure", [0, 0.34]),
      // its own round ticks (synced to the left axis they fell on values like 99.21, 102.47)
      yaxis4: axis("‖θ‖", [0, 0.34], { overlaying: "y3", side: "right", showgrid: false, tickmode: "auto", nticks: 5 }),
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom", font: { size: 11 } },
      hovermode: "x unified",
      uirevision: String(logX),
      ...withCursor(markers(ctx.events, logX), ctx.options.step, logX),
    }),
    plotConfig(ctx),
  );
}

// Live points and events arrive in bursts: one redraw per animation frame.
function redraw(ctx) {
  if (ctx.state.pending) return;
  ctx.state.pending = true;
  requestAnimationFrame(() => {
    ctx.state.pending = false;
    draw(ctx);
  });
}

registerPanel({
  id: "grokking",
  title: "Grokking: accuracy, loss and progress measures",
  series: ROWS.map(([name]) => name),
  order: 80,
  controls: [{ key: "logX", label: "log step", value: true }],
  when: (ctx) => Boolean(ctx.run?.config?.probes?.grokking) || ctx.store.has("grok.weight_norm"),
  render: draw,
  update: redraw,
  onEvents: redraw,
  onStep: redraw,
});

registerPanel(
  linePanel({
    id: "grokking-layer-norms",
    title: "Weight norm per layer ‖θ_layer‖",
    series: ["grok.weight_norm.*"],
    yTitle: "‖θ_layer‖",
    logY: false,
    order: 81,
  }),
);

registerPanel(
  linePanel({
    id: "grokking-layer-change",
    title: "Relative change from initialization per layer ‖θ−θ₀‖/‖θ₀‖",
    series: ["grok.relative_change.*"],
    yTitle: "relative change",
    logY: false,
    order: 82,
  }),
);
