// Option lists for string fields whose schema names a source (`"x-choices": "datasets"`), so the
// form offers what the server knows of (the workers' data sets) while staying schema-built.
// Each source is fetched once per page.

import { api } from "./api.js";
import { h } from "./dom.js";
import { FormNode, nextId } from "./schema-fields.js";

const SOURCES = {
  datasets: async () =>
    (await api.datasets()).data.map((d) => ({
      value: d.name,
      label: `${d.name} — ${d.kind} ${d.shape.join("×")}, ${d.train} train, ${d.n_classes} ${d.kind === "text" ? "tokens" : "classes"}`,
    })),
};
const loaded = new Map();

function choices(source) {
  if (!loaded.has(source)) loaded.set(source, (SOURCES[source] ?? (async () => []))());
  return loaded.get(source);
}

// A select over the source's options; a value the source does not list (a preset's data set
// that no worker has published yet) stays selectable, so the server can name the problem.
export class ChoiceNode extends FormNode {
  constructor(schema, path, key) {
    super(schema, path, key);
    const id = nextId();
    this.options = [];
    this.value = schema.default ?? "";
    this.select = h("select", { id, name: this.name, onchange: () => (this.value = this.select.value) });
    this.el = this.field(this.select, { id });
    this.render();
    choices(schema["x-choices"])
      .then((options) => {
        this.options = options;
        this.render();
      })
      .catch(() => this.addError("could not load the list; the server will check the name"));
  }

  render() {
    const listed = this.options.some((o) => o.value === this.value);
    const extra = this.value && !listed ? [{ value: this.value, label: `${this.value} (not listed)` }] : [];
    const placeholder = this.value ? [] : [{ value: "", label: this.options.length ? "(choose)" : "(none available)" }];
    this.select.replaceChildren(
      ...[...placeholder, ...extra, ...this.options].map((o) => h("option", { value: o.value }, o.label)),
    );
    this.select.value = this.value;
  }

  get() {
    return this.value;
  }

  set(value) {
    this.value = value === undefined ? this.schema.default ?? "" : value;
    this.render();
  }
}
