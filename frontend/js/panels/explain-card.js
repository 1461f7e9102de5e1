// "Explain this step" (issue 16; docs/timeline.md): when the step selected on the timeline is a
// loss spike, the card the worker computed when it fired (GET /api/runs/{id}/explain?step=): the
// spike's size, the sharpness against the optimizer's threshold before and at it, the opposing
// groups that moved most with their share of the loss change, and each group's gradient
// alignment with the top Hessian eigenvector next to random groups of the same size. Otherwise
// it lists the spikes; choosing one selects its step on the page (a "selectstep" DOM event).

import { fmt } from "../charts.js";
import { h } from "../dom.js";
import { registerPanel } from "../panels.js";

const spikes = (ctx) => ctx.events.filter((e) => e.kind === "loss.spike").sort((a, b) => a.step - b.step);

function spikeButtons(ctx) {
  return spikes(ctx).map((e) =>
    h("button", {
      type: "button",
      class: "small explain-spike",
      dataset: { step: String(e.step) },
      onclick: (event) => event.target.dispatchEvent(new CustomEvent("selectstep", { bubbles: true, detail: e.step })),
    }, `step ${e.step}`),
  ); // prettier-ignore
}

function hint(ctx, text) {
  ctx.el.replaceChildren(h("p", { class: "muted" }, text), h("div", { class: "og-examples" }, "loss spikes: ", spikeButtons(ctx)));
}

const percent = (v) => (v === null || v === undefined ? "–" : `${(100 * v).toFixed(1)}%`);

function sharpnessLine(label, at, threshold) {
  if (!at) return h("span", {}, `${label}: not measured (the worker no longer held that step's weights)`);
  const above = at.sharpness !== null && at.sharpness >= threshold;
  return h("span", {}, `${label} (step ${at.step}): `, h("b", { class: above ? "above" : "" }, fmt(at.sharpness)), above ? " ≥ threshold" : " < threshold");
}

function groupRow(group) {
  const random = group.random_alignment;
  return h(
    "tr",
    { dataset: { group: String(group.id) } },
    h("td", {}, `${group.kind === "rising" ? "▲" : "▼"} ${group.kind}${group.pair === null ? "" : ` (pair ${group.pair + 1})`}`),
    h("td", { class: "mono" }, String(group.size)),
    h("td", { class: "mono" }, group.majority_label ?? "–"),
    h("td", { class: "mono" }, percent(group.share)),
    h("td", { class: "mono" }, fmt(group.mean_change)),
    h("td", { class: "mono explain-alignment" }, fmt(group.alignment, 2)),
    h("td", { class: "mono" }, `${fmt(random.mean, 2)} (max ${fmt(random.max, 2)}, n=${random.n})`),
    h("td", { class: "mono" }, group.planted === null || group.planted === undefined ? "–" : `${group.planted}/${group.size}`),
  );
}

function renderCard(ctx, card) {
  const s = card.sharpness;
  const threshold = `${fmt(s.threshold)} (${s.preconditioned ? "Adam: on λ_max of P⁻¹H" : "2/η"} at lr ${fmt(s.lr)})`;
  const groups = card.groups.length
    ? h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "events explain-groups" },
          h("thead", {}, h("tr", {}, ["group", "size", "label", "share of Δloss", "mean Δloss", "|cos| with top eigvec", "random groups, same size", "planted"].map((t) => h("th", {}, t)))),
          h("tbody", {}, card.groups.map(groupRow)),
        ),
      )
    : h("p", { class: "muted" }, "No rising or falling group over this probe interval.");
  ctx.el.replaceChildren(
    h(
      "div",
      { class: "explain-card", id: "explain-card", dataset: { step: String(card.step) } },
      h("h4", {}, `Loss spike at step ${card.step}: loss ${fmt(card.spike.loss)}, ${fmt(card.spike.size, 2)}× the running median ${fmt(card.spike.median)}`),
      h("p", {}, "Sharpness of the monitor-set loss vs the threshold ", threshold, ": ", sharpnessLine("before", s.before, s.threshold), " · ", sharpnessLine("at", s.at, s.threshold)),
      h("p", {}, `${card.paired ? "Opposing pairs" : "No opposing pair; the largest rising and falling groups"} over steps ${card.prev_step} → ${card.probe_step}, holding ${percent(card.share)} of the monitor set's loss change:`),
      groups,
      h("p", { class: "muted" }, `Computed by the worker at probe step ${card.probe_step} (${card.cost.n_hvp ?? 0} Hessian-vector products). Rosenfeld & Risteski (2023): opposing groups' gradients align with the sharpest direction.`),
    ),
  );
}

async function show(ctx) {
  const step = ctx.options.step;
  const spike = spikes(ctx).find((e) => e.step === step);
  if (!spike) {
    hint(ctx, step === null || step === undefined ? "Select a loss spike on the timeline to explain it." : `Step ${step} is not a loss spike.`);
    return;
  }
  ctx.el.replaceChildren(h("p", { class: "muted" }, `Loading the card of step ${step}…`));
  try {
    const card = await ctx.api.explain(ctx.runId, step);
    if (ctx.options.step === step) renderCard(ctx, card);
  } catch (error) {
    if (ctx.options.step === step) hint(ctx, `No card for the spike at step ${step}: ${error.message}`);
  }
}

registerPanel({
  id: "explain",
  title: "Explain this step",
  order: 5,
  when: (ctx) => ctx.events.some((e) => e.kind === "loss.spike"),
  render(ctx) {
    if (!ctx.state.built) {
      ctx.state.built = true;
      ctx.el.classList.remove("plot");
      ctx.card.classList.add("panel-wide");
    }
    show(ctx);
  },
  onEvents(ctx) {
    if (!ctx.el.querySelector("#explain-card")) show(ctx); // the list of spikes grew
  },
  onStep: show,
});
