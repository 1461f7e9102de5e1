// The run's event timeline (issue 16; docs/timeline.md): every event of every probe (loss
// spikes, opposing groups, the edge of stability, grokking, landscape snapshots, checkpoints,
// resumes…) on one step axis above the panels, one row and one colour per kind, filterable by
// kind (the chips). Hovering an event shows its summary; clicking an event, or anywhere on the
// strip, selects that step: the page sets view.options.step and every panel moves to it
// (PanelHost.stepChanged).

import { categoryColor, fmt } from "./charts.js";
import { h } from "./dom.js";
import { payloadText } from "./events-list.js";

const num = (v) => (typeof v === "number" ? fmt(v) : "–");

// One line per kind that says what happened; other kinds list their payload.
const SUMMARIES = {
  "loss.spike": (p) => `loss spike: ${num(p.loss)}, ${p.median > 0 ? fmt(p.loss / p.median, 2) : "–"}× the running median ${num(p.median)} — select it to explain it`,
  "opposing.groups": (p) => `opposing groups of the probe steps ${(p.probe_steps ?? []).join(", ") || "none"}`,
  "eos.crossed": (p) => `edge of stability: sharpness ${num(p.sharpness)} ≥ threshold ${num(p.threshold)}`,
  "grokking.memorized": (p) => `memorized (train accuracy reached; confirmed at step ${p.detected_at ?? "–"})`,
  "grokking.generalized": (p) => `generalized${p.delay !== undefined ? ` ${p.delay} steps after memorizing` : ""}`,
  "landscape.snapshot": (p) => `loss surface stored (${p.kind}, ${p.dims}-D; centre loss ${num(p.center_loss)})`,
  "checkpoint.saved": () => "checkpoint saved",
  "run.resumed": (p) => `resumed from the checkpoint at step ${p.from_step}`,
  "run.diverged": (p) => `diverged (loss ${p.loss})`,
};

export function eventSummary(event) {
  const summary = SUMMARIES[event.kind];
  return `step ${event.step} · ${event.kind}: ${summary ? summary(event.payload ?? {}) : payloadText(event.payload)}`;
}

// `onSelect(step)` runs when the user picks a step (an event or a place on the strip).
export function mountTimeline(container, { onSelect }) {
  const hidden = new Set(); // kinds switched off with their chip
  let events = [];
  let last = 0; // the axis ends here
  let selected = null;
  const chips = h("div", { class: "tl-chips", role: "group", "aria-label": "event kinds shown" });
  const strip = h("div", { class: "tl-strip", id: "timeline-strip", title: "click to select a step" });
  const cursor = h("div", { class: "tl-cursor", id: "timeline-cursor", hidden: true });
  const readout = h("span", { class: "tl-readout mono", id: "timeline-step", role: "status" });
  const clear = h("button", { type: "button", class: "secondary small", id: "timeline-clear", hidden: true, onclick: () => onSelect(null) }, "clear");
  const axis = h("div", { class: "tl-axis mono" });
  container.replaceChildren(
    h("div", { class: "tl-head" }, h("h2", {}, "Timeline"), chips, h("span", { class: "spacer" }), readout, clear),
    strip,
    axis,
  );
  strip.addEventListener("click", (event) => {
    const marker = event.target.closest(".tl-event");
    if (marker) return onSelect(Number(marker.dataset.step));
    const box = strip.getBoundingClientRect();
    const fraction = Math.min(1, Math.max(0, (event.clientX - box.left) / box.width));
    return onSelect(Math.round(fraction * last));
  });

  const kinds = () => [...new Set(events.map((e) => e.kind))].sort();
  const left = (step) => `${last > 0 ? (100 * step) / last : 0}%`;

  function draw() {
    const all = kinds();
    const colour = new Map(all.map((kind, i) => [kind, categoryColor(i)]));
    chips.replaceChildren(
      ...all.map((kind) =>
        h(
          "button",
          {
            type: "button",
            class: "chip tl-chip",
            dataset: { kind },
            "aria-pressed": String(!hidden.has(kind)),
            style: `--kind: ${colour.get(kind)}`,
            title: hidden.has(kind) ? `show ${kind}` : `hide ${kind}`,
            onclick: () => {
              if (hidden.has(kind)) hidden.delete(kind);
              else hidden.add(kind);
              draw();
            },
          },
          `${kind} (${events.filter((e) => e.kind === kind).length})`,
        ),
      ),
    );
    const shown = all.filter((kind) => !hidden.has(kind));
    strip.style.setProperty("--rows", String(Math.max(1, shown.length)));
    const markers = events.map((e) =>
      h("button", {
        type: "button",
        class: "tl-event",
        dataset: { kind: e.kind, step: String(e.step) },
        hidden: hidden.has(e.kind),
        title: eventSummary(e),
        "aria-label": eventSummary(e),
        style: `left: ${left(e.step)}; --row: ${shown.indexOf(e.kind)}; --kind: ${colour.get(e.kind)}`,
      }),
    );
    strip.replaceChildren(...markers, cursor);
    axis.replaceChildren(...[0, 0.25, 0.5, 0.75, 1].map((f) => h("span", { style: `left: ${100 * f}%` }, Math.round(f * last).toLocaleString("en"))));
    placeCursor();
  }

  function placeCursor() {
    cursor.hidden = selected === null;
    clear.hidden = selected === null;
    if (selected !== null) cursor.style.left = left(Math.min(selected, last));
    readout.textContent = selected === null ? "click an event or the strip to move every panel to a step" : `step ${selected.toLocaleString("en")}`;
    for (const marker of strip.querySelectorAll(".tl-event")) marker.classList.toggle("tl-selected", Number(marker.dataset.step) === selected);
  }

  return {
    // The run's events and the axis' end (its planned steps, or further if an event lies beyond).
    update(all, end) {
      events = [...all].sort((a, b) => a.step - b.step || a.id - b.id);
      last = Math.max(1, end ?? 0, ...events.map((e) => e.step));
      draw();
    },
    select(step) {
      selected = step;
      placeCursor();
    },
  };
}
