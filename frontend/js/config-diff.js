// The config diff of compared runs: every setting (as a dotted path, lists as JSON) on which the
// runs do not all agree, one column per run in its comparison colour. Settings they share are
// left out, so ten runs of a sweep show the swept values only.

import { h } from "./dom.js";

// {"optimizer.lr": "0.05", "tags": "[\"a\"]", ...}: leaves of a config as text.
export function flatten(value, prefix = "", out = {}) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (!keys.length && prefix) out[prefix] = "{}";
    for (const key of keys) flatten(value[key], prefix ? `${prefix}.${key}` : key, out);
  } else if (prefix) {
    out[prefix] = typeof value === "string" ? value : JSON.stringify(value);
  }
  return out;
}

// Paths whose values are not the same in every config (absent counts as a value), sorted.
export function differences(configs) {
  const flat = configs.map((c) => flatten(c ?? {}));
  const paths = [...new Set(flat.flatMap((f) => Object.keys(f)))].sort();
  return paths
    .filter((path) => new Set(flat.map((f) => f[path] ?? "\u2014")).size > 1)
    .map((path) => ({ path, values: flat.map((f) => f[path] ?? "\u2014") }));
}

// runs: [{id, name, color, config}]; draws nothing (hides the container) for fewer than two.
export function renderConfigDiff(container, runs) {
  container.hidden = runs.length < 2;
  if (container.hidden) return container.replaceChildren();
  const rows = differences(runs.map((r) => r.config));
  const head = h(
    "tr",
    {},
    h("th", { scope: "col" }, "setting"),
    ...runs.map((r) => h("th", { scope: "col", style: `--chip: ${r.color}`, class: "run-col" }, `#${r.id} ${r.name}`)),
  );
  const body = rows.map((row) =>
    h("tr", { dataset: { path: row.path } }, h("th", { scope: "row" }, row.path), ...row.values.map((v) => h("td", {}, v))),
  );
  container.replaceChildren(
    h("h2", { id: "config-diff-title" }, `Config diff (${rows.length} setting${rows.length === 1 ? "" : "s"} differ)`),
    rows.length
      ? h("div", { class: "table-scroll" }, h("table", { class: "config-diff", "aria-labelledby": "config-diff-title" }, h("thead", {}, head), h("tbody", {}, ...body)))
      : h("p", { class: "muted" }, "The compared runs have the same config."),
  );
}
