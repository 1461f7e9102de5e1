// The runs table's summary columns: a chooser (series × last/min/max) and the cells, filled from
// the `summary` that GET /api/runs?summary=… adds to each run.

import { knownSeries, seriesTitle } from "./catalog.js";
import { h } from "./dom.js";
import { AGGREGATES } from "./runs-query.js";

export const columnLabel = (col) => `${seriesTitle(col.name)} (${col.agg})`;

export function summaryText(run, col) {
  const value = run.summary?.[col.name]?.[col.agg];
  return value === null || value === undefined ? "–" : Number(value).toPrecision(4);
}

// A <details> menu that adds and removes columns; onChange(cols) gets the new list.
export function columnChooser(cols, onChange) {
  const series = h(
    "select",
    { id: "column-series", "aria-label": "series" },
    knownSeries().map(({ name, title }) => h("option", { value: name }, title)),
  );
  const agg = h(
    "select",
    { id: "column-aggregate", "aria-label": "summary" },
    AGGREGATES.map((a) => h("option", { value: a }, a)),
  );
  const list = h("ul", { class: "column-list" });
  const add = h("button", { type: "button", class: "secondary small", id: "add-column" }, "Add");
  const el = h(
    "details",
    { class: "column-chooser", id: "column-chooser" },
    h("summary", { class: "button secondary small" }, "Columns"),
    h("div", { class: "column-menu card" }, h("div", { class: "column-add" }, series, agg, add), list),
  );

  function show() {
    list.replaceChildren(
      ...cols.map((col, i) =>
        h(
          "li",
          {},
          columnLabel(col),
          h(
            "button",
            { type: "button", class: "chip-remove", "aria-label": `remove column ${columnLabel(col)}`, onclick: () => change(cols.filter((_, j) => j !== i)) },
            "×",
          ),
        ),
      ),
    );
  }

  function change(next) {
    cols = next;
    show();
    onChange(cols);
  }

  add.addEventListener("click", () => {
    const col = { name: series.value, agg: agg.value };
    if (!cols.some((c) => c.name === col.name && c.agg === col.agg)) change([...cols, col]);
  });
  show();
  return el;
}
