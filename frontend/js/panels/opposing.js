// Opposing-signals panels (issue 8; docs/probes/opposing.md): the train loss with the loss spikes
// marked, and, for a chosen probe step, the rising and falling groups side by side (8×8
// thumbnails for image tasks, label histograms otherwise) with the groups' mean loss curves on one
// axis, so that the alternation of a pair is visible. Live: the groups panel claims the
// opposing.* scalars (one point per probe step), so each new probe step refreshes the step list
// and, when "follow" is on, moves to it; new loss.spike events redraw the markers.

import { cursorShape, fmt, noteAnnotation, plotConfig, plotLayout, plotly, SERIES_COLORS, takeSelectedStep, theme } from "../charts.js";
import { FINISHED, h } from "../dom.js";
import { registerPanel } from "../panels.js";

const MAX_THUMBS = 48; // per group
const MAX_TEXTS = 8; // text windows listed per group
const MAX_PAIRS = 3; // drawn side by side; a note points to the API for the rest
const SPAN = 20; // probe steps each side in the mean loss curves

const enabled = (ctx) => Boolean(ctx.run?.config?.probes?.opposing);

// The chosen step is shared by both panels of the page (one run per page).
const selection = { step: null, follow: true, listeners: new Set() };
function select(step, { follow = false } = {}) {
  selection.step = step;
  selection.follow = follow;
  for (const listener of selection.listeners) listener();
}

function baseLayout(yTitle, logY) {
  const c = theme();
  return plotLayout({
    font: { size: 12, color: c.fg },
    xaxis: { title: { text: "step" }, gridcolor: c.grid, zeroline: false },
    yaxis: { title: { text: yTitle }, type: logY ? "log" : "linear", gridcolor: c.grid, zeroline: false, exponentformat: "power" },
    legend: { orientation: "h", x: 0, y: 1, yanchor: "bottom", font: { size: 11 } },
    hovermode: "closest",
  });
}

const stepLine = (step, color) => ({ type: "line", xref: "x", yref: "paper", x0: step, x1: step, y0: 0, y1: 1, line: { color, width: 1, dash: "dot" } });

// --- train loss with spikes ----------------------------------------------------------------

function spikeEvents(ctx) {
  const groups = new Map(ctx.events.filter((e) => e.kind === "opposing.groups").map((e) => [e.step, e.payload]));
  return ctx.events.filter((e) => e.kind === "loss.spike").map((e) => ({ ...e, groups: groups.get(e.step) }));
}

function renderSpikes(ctx) {
  const loss = ctx.store.get("train.loss");
  const spikes = spikeEvents(ctx);
  const c = theme();
  const traces = [
    { type: "scatter", mode: "lines", name: "train loss", x: loss.steps.slice(), y: loss.values.slice(), line: { color: SERIES_COLORS[0], width: 1.6 }, hovertemplate: "%{y:.4g}<extra>train loss</extra>" },
    {
      type: "scatter",
      mode: "markers",
      name: `loss spikes (${spikes.length})`,
      x: spikes.map((s) => s.step),
      y: spikes.map((s) => s.payload.loss),
      customdata: spikes.map((s) => [s.payload.threshold, s.groups?.probe_steps?.join(", ") || "none"]),
      marker: { symbol: "triangle-up", size: 11, color: c.danger },
      hovertemplate: "spike at step %{x}: minibatch loss %{y:.4g} (threshold %{customdata[0]:.4g})<br>groups of probe steps %{customdata[1]} — click to show<extra></extra>",
    },
  ];
  const layout = baseLayout("loss", Boolean(ctx.local.logY));
  layout.shapes = spikeShapes(ctx);
  if (!spikes.length && loss.steps.length) {
    const found = FINISHED.has(ctx.run?.status) ? "no loss spike was detected in this run" : "no loss spike so far";
    layout.annotations = [noteAnnotation(found, c, 0.95)];
  }
  layout.uirevision = String(Boolean(ctx.local.logY));
  plotly().react(ctx.el, traces, layout, plotConfig(ctx));
  if (!ctx.state.bound) {
    ctx.state.bound = true;
    ctx.el.on("plotly_click", (event) => {
      const point = event.points?.find((p) => p.curveNumber === 1);
      const spike = point && spikeEvents(ctx).find((s) => s.step === point.x);
      const steps = spike?.groups?.probe_steps ?? [];
      if (steps.length) select(steps[steps.length - 1]);
    });
    selection.listeners.add(() => plotly().relayout(ctx.el, { shapes: spikeShapes(ctx) }));
  }
}

// The groups panel's probe step (dotted) and the timeline's selected step (the cursor).
function spikeShapes(ctx) {
  const c = theme();
  return [...(selection.step === null ? [] : [stepLine(selection.step, c.muted)]), ...cursorShape(ctx.options.step, c)];
}

registerPanel({
  id: "opposing-spikes",
  title: "Train loss and loss spikes",
  series: ["train.loss"],
  order: 70,
  controls: [{ key: "logY", label: "log y", value: true }],
  when: enabled,
  render: renderSpikes,
  update(ctx, delta) {
    const points = delta["train.loss"];
    if (!points || !ctx.el.data?.length) return renderSpikes(ctx);
    plotly().extendTraces(ctx.el, { x: [points.steps.slice()], y: [points.values.slice()] }, [0]);
  },
  onEvents: renderSpikes,
  onStatus: renderSpikes, // "so far" becomes "in this run"
  onStep(ctx) {
    plotly().relayout(ctx.el, { shapes: spikeShapes(ctx) });
  },
});

// --- groups at a chosen step -----------------------------------------------------------------

function thumbnail(member, shape) {
  const [rows, cols] = shape;
  const canvas = h("canvas", { class: "og-thumb", width: cols, height: rows, title: memberTitle(member), dataset: { index: member.index } });
  const g = canvas.getContext("2d");
  const image = g.createImageData(cols, rows);
  member.image.forEach((v, i) => {
    image.data.set([255 - v, 255 - v, 255 - v, 255], 4 * i); // ink dark on light
  });
  g.putImageData(image, 0, 0);
  if (member.planted) canvas.classList.add("og-planted");
  return canvas;
}

const memberTitle = (m) => `example ${m.index}${m.label === null ? "" : `, label ${m.label}`}${m.planted ? " (planted)" : ""}: loss ${fmt(m.loss_before)} → ${fmt(m.loss_after)}`;

function histogram(group) {
  const counts = Object.entries(group.label_counts).sort((a, b) => b[1] - a[1]);
  const most = Math.max(1, ...counts.map(([, n]) => n));
  return h(
    "div",
    { class: "og-hist" },
    counts.map(([label, n]) =>
      h("div", { class: "og-bar-row" }, h("span", { class: "og-bar-label" }, `label ${label}`), h("span", { class: "og-bar", style: `width: ${(100 * n) / most}%` }), h("span", { class: "mono" }, String(n))),
    ),
  );
}

// A text run's members: each window's target characters, whitespace made visible.
function windowTexts(members) {
  const shown = (text) => text.replace(/\n/g, "⏎").replace(/\t/g, "⇥");
  return h(
    "ol",
    { class: "og-texts" },
    members.slice(0, MAX_TEXTS).map((m) => h("li", { title: memberTitle(m) }, h("span", { class: "mono" }, `#${m.index}`), " ", h("code", {}, shown(m.text)))),
  );
}

function groupCard(ctx, data, group, color) {
  const planted = group.members.filter((m) => m.planted).length;
  const texts = group.members.filter((m) => m.text !== null && m.text !== undefined);
  const facts = [
    `${group.size} ${texts.length ? "windows" : "examples"}`,
    ...(texts.length ? [] : [`majority label ${group.majority_label ?? "–"}`]),
    `Δloss ${group.mean_change > 0 ? "+" : ""}${fmt(group.mean_change)}`,
    `share ${(100 * (group.share ?? 0)).toFixed(1)}%`,
  ];
  if (group.members.some((m) => m.planted !== null)) facts.push(`planted ${planted}/${group.size}`);
  if (group.alignment) facts.push(`|cos| with top eigvec ${fmt(Math.abs(group.alignment.cosine), 2)}`);
  const body = data.image_shape
    ? h("div", { class: "og-thumbs" }, group.members.slice(0, MAX_THUMBS).map((m) => thumbnail(m, data.image_shape)))
    : texts.length
      ? windowTexts(texts)
      : histogram(group);
  const examples = h(
    "div",
    { class: "og-examples" },
    "examples: ",
    group.members.slice(0, 12).map((m) => h("button", { class: "small og-example", type: "button", title: memberTitle(m), dataset: { index: m.index } }, String(m.index))),
  );
  return h(
    "div",
    { class: `og-group og-${group.kind}`, style: `border-top-color: ${color}`, dataset: { group: group.id } },
    h("h4", {}, `${group.kind === "rising" ? "▲ rising" : "▼ falling"} · group ${group.id}`),
    h("p", { class: "og-facts" }, facts.join(" · ")),
    body,
    examples,
  );
}

// The pairs to draw, or (without a pair) the largest rising and falling groups, unpaired.
function shownPairs(data) {
  if (data.pairs.length) return data.pairs.slice(0, MAX_PAIRS).map((p) => ({ ...p, rising: data.groups[p.rising], falling: data.groups[p.falling] }));
  const first = (kind) => data.groups.find((g) => g.kind === kind);
  const rising = first("rising");
  const falling = first("falling");
  return rising || falling ? [{ rising, falling, score: null }] : [];
}

function drawCurves(ctx, data, pairs, example) {
  const traces = [];
  pairs.forEach((pair, i) => {
    const color = SERIES_COLORS[i % SERIES_COLORS.length];
    for (const group of [pair.rising, pair.falling]) {
      if (!group) continue;
      traces.push({
        type: "scatter",
        mode: "lines+markers",
        name: `group ${group.id} (${group.kind}, label ${group.majority_label ?? "–"})`,
        x: data.curves.steps,
        y: data.curves.mean_loss[group.id],
        line: { color, width: 1.8, dash: group.kind === "rising" ? "solid" : "dash" },
        marker: { size: 4 },
      });
    }
  });
  if (example) {
    traces.push({ type: "scatter", mode: "lines", name: `example ${example.index}`, x: example.steps, y: example.values, line: { color: theme().muted, width: 1 } });
  }
  const layout = baseLayout("mean loss of the group", Boolean(ctx.local.logY));
  layout.shapes = [stepLine(data.step, theme().muted)];
  layout.title = { text: `groups' mean loss around step ${data.step}`, font: { size: 12 } };
  if (!traces.length) layout.annotations = [noteAnnotation(`no rising or falling group at step ${data.step}`)];
  plotly().react(ctx.state.curvesEl, traces, layout, plotConfig(ctx, { step: data.step, name: "curves" }));
}

function stepLabel(listing, i) {
  const n = listing.n_pairs[i];
  const pairs = n ? ` — ${n} pair${n > 1 ? "s" : ""} (score ${fmt(listing.best_score[i], 2)})` : "";
  return `step ${listing.steps[i]}${pairs}`;
}

// The probe steps offered: those with a pair when asked (and when there are any yet).
function fillSelect(ctx) {
  const { listing } = ctx.state;
  const pairsOnly = ctx.state.pairsOnly.checked && listing.n_pairs.some((n) => n > 0);
  const options = listing.steps.map((step, i) => ({ step, i })).filter(({ i }) => !pairsOnly || listing.n_pairs[i] > 0);
  ctx.state.stepSelect.replaceChildren(...options.map(({ step, i }) => h("option", { value: String(step) }, stepLabel(listing, i))));
  if (selection.step !== null) ctx.state.stepSelect.value = String(selection.step);
  return options.map((o) => o.step);
}

// Keeps the listing of probe steps current (only new steps are fetched).
async function refreshListing(ctx) {
  const last = ctx.state.listing?.steps.at(-1);
  const fresh = await ctx.api.outliers(ctx.runId, { sinceStep: last });
  if (!ctx.state.listing) ctx.state.listing = fresh;
  else for (const key of ["steps", "prev_steps", "n_pairs", "best_score", "mean_loss"]) ctx.state.listing[key].push(...fresh[key]);
  ctx.state.listing.monitor = fresh.monitor;
  const offered = fillSelect(ctx);
  if (applySelectedStep(ctx)) return;
  if (selection.follow && offered.length && offered.at(-1) !== selection.step) select(offered.at(-1), { follow: true });
}

// Moves to the probe step of the timeline's selected step (every probe step on offer, not only
// those with pairs); true when it did.
function applySelectedStep(ctx) {
  const pinned = takeSelectedStep(ctx, ctx.state.listing?.steps ?? []);
  if (pinned === null) return false;
  ctx.state.pairsOnly.checked = false;
  fillSelect(ctx);
  select(pinned);
  return true;
}

async function showStep(ctx) {
  const step = selection.step;
  if (step === null || step === undefined) return;
  ctx.state.stepSelect.value = String(step);
  const data = await ctx.api.outliersAt(ctx.runId, step, { span: SPAN });
  if (selection.step !== step) return; // a newer choice is on its way
  const pairs = shownPairs(data);
  ctx.state.data = data;
  ctx.state.pairs = pairs;
  const monitor = ctx.state.listing?.monitor;
  const planted = monitor?.planted_monitored;
  ctx.state.summary.textContent = [
    `step ${data.prev_step ?? "–"} → ${data.step}`,
    `${data.pairs.length} pair${data.pairs.length === 1 ? "" : "s"} ≥ ${fmt(data.threshold, 2)}`,
    `${data.groups.length} groups`,
    monitor ? `monitor ${monitor.size} examples (grouped on ${monitor.grouped_on ?? `${monitor.features} features`})` : "",
    planted !== undefined ? `${planted} planted monitored` : "",
  ].filter(Boolean).join(" · ");
  const rows = pairs.map((pair, i) => {
    const color = SERIES_COLORS[i % SERIES_COLORS.length];
    const oscillation = pair.oscillation
      ? ` · alternation ${fmt(pair.oscillation.alternation_rising, 2)} / ${fmt(pair.oscillation.alternation_falling, 2)}, correlation of changes ${fmt(pair.oscillation.correlation, 2)} over ${pair.oscillation.window} probe steps`
      : "";
    const title = pair.score === null ? "no pair scored above the threshold: the largest rising and falling groups" : `pair ${i + 1}: score ${fmt(pair.score, 3)}${oscillation}`;
    return h(
      "div",
      { class: "og-pair" },
      h("p", { class: "og-pair-title" }, title),
      h("div", { class: "og-sides" }, pair.rising ? groupCard(ctx, data, pair.rising, color) : h("div", { class: "muted" }, "no rising group"), pair.falling ? groupCard(ctx, data, pair.falling, color) : h("div", { class: "muted" }, "no falling group")),
    );
  });
  const more = data.pairs.length > MAX_PAIRS ? [h("p", { class: "muted" }, `${data.pairs.length - MAX_PAIRS} more pairs are in GET /api/runs/${ctx.runId}/outliers/${step}`)] : [];
  ctx.state.pairsEl.replaceChildren(...(rows.length ? rows : [h("p", { class: "muted" }, "No group at this step.")]), ...more);
  drawCurves(ctx, data, pairs, null);
}

async function showExample(ctx, index) {
  const series = await ctx.api.exampleLoss(ctx.runId, index, { maxPoints: 2000 });
  const { data, pairs } = ctx.state;
  if (data) drawCurves(ctx, data, pairs, series);
}

// Runs `work` at most once at a time; a request during a run queues exactly one more. Failures
// show in `notice` (and clear with the next success).
function serially(notice, work) {
  let busy = false;
  let again = false;
  return async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      do {
        again = false;
        await work();
      } while (again);
      notice.hidden = true;
    } catch (error) {
      notice.textContent = `Could not load the groups: ${error.message}`;
      notice.hidden = false;
    } finally {
      busy = false;
    }
  };
}

function renderGroups(ctx) {
  if (!ctx.state.built) {
    ctx.state.built = true;
    ctx.card.classList.add("panel-wide");
    const stepSelect = h("select", { id: "opposing-step", "aria-label": "probe step", onchange: () => select(Number(stepSelect.value)) });
    const move = (by) => {
      const options = [...stepSelect.options].map((o) => Number(o.value));
      const next = options[options.indexOf(selection.step) + by];
      if (next !== undefined) select(next);
    };
    const follow = h("input", { type: "checkbox", id: "opposing-follow", checked: true, onchange: () => { selection.follow = follow.checked; if (follow.checked) ctx.state.refresh(); } });
    const pairsOnly = h("input", { type: "checkbox", id: "opposing-pairs-only", checked: true, onchange: () => fillSelect(ctx) });
    Object.assign(ctx.state, {
      stepSelect,
      pairsOnly,
      follow,
      summary: h("p", { class: "og-summary muted" }),
      notice: h("p", { class: "notice notice-warn", hidden: true }),
      pairsEl: h("div", { class: "og-pairs", id: "opposing-pairs" }, h("p", { class: "muted" }, "Waiting for the second probe step…")),
      curvesEl: h("div", { class: "plot", id: "opposing-curves" }),
    });
    ctx.el.classList.remove("plot");
    ctx.el.replaceChildren(
      h("div", { class: "og-toolbar" }, h("button", { class: "small", type: "button", onclick: () => move(-1) }, "◀"), stepSelect, h("button", { class: "small", type: "button", onclick: () => move(1) }, "▶"), h("label", { class: "check" }, follow, " follow the latest"), h("label", { class: "check" }, pairsOnly, " steps with pairs only")),
      ctx.state.summary,
      ctx.state.notice,
      ctx.state.pairsEl,
      ctx.state.curvesEl,
    );
    ctx.el.addEventListener("click", (event) => {
      const target = event.target.closest("[data-index]");
      if (target) showExample(ctx, Number(target.dataset.index)).catch((error) => console.warn(error));
    });
    ctx.state.refresh = serially(ctx.state.notice, () => refreshListing(ctx));
    ctx.state.show = serially(ctx.state.notice, () => showStep(ctx));
    selection.listeners.add(() => {
      follow.checked = selection.follow;
      ctx.state.show();
    });
  }
  ctx.state.refresh();
  if (ctx.state.data) drawCurves(ctx, ctx.state.data, ctx.state.pairs, null);
}

registerPanel({
  id: "opposing-groups",
  title: "Opposing groups: rising vs falling",
  series: ["opposing.*"],
  order: 71,
  controls: [{ key: "logY", label: "log y", value: false }],
  when: enabled,
  render: renderGroups,
  update(ctx) {
    ctx.state.refresh?.();
  },
  onStep(ctx) {
    if (ctx.state.built) applySelectedStep(ctx);
  },
  onEvents() {},
  onStatus(ctx) {
    if (FINISHED.has(ctx.run.status)) ctx.state.refresh?.();
  },
});
