// The run's events (eos.crossed, grokking.generalized, loss.spike ...) as a table.

import { h } from "./dom.js";

export function payloadText(payload) {
  const entries = Object.entries(payload ?? {});
  if (!entries.length) return "";
  return entries
    .map(([key, value]) => `${key}=${typeof value === "number" ? Number(value.toPrecision(6)) : JSON.stringify(value)}`)
    .join("  ");
}

export function renderEvents(container, events, { finished }) {
  if (!events.length) {
    container.replaceChildren(
      h("p", { class: "muted" }, finished ? "No events were recorded for this run." : "No events yet."),
    );
    return;
  }
  const rows = [...events]
    .sort((a, b) => a.step - b.step || a.id - b.id)
    .map((e) =>
      h(
        "tr",
        {},
        h("td", { class: "mono" }, e.step.toLocaleString()),
        h("td", {}, h("span", { class: "tag" }, e.kind)),
        h("td", { class: "mono payload", title: JSON.stringify(e.payload) }, payloadText(e.payload)),
      ),
    );
  container.replaceChildren(
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "events", id: "events-table" },
        h("thead", {}, h("tr", {}, h("th", {}, "step"), h("th", {}, "kind"), h("th", {}, "payload"))),
        h("tbody", {}, rows),
      ),
    ),
  );
}
