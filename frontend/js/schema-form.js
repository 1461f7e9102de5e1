// A form built from a JSON schema (pydantic v2 output), so new task kinds and probe entries of
// RunConfig appear without frontend changes.
//
// Each schema node becomes a FormNode with `el`, `get()`, `set(value)` (undefined = the schema
// default), `locate(loc)` (the node a 422 error location points at) and `addError(msg)`:
//   $ref / $defs             resolved, sibling keywords (title, default ...) override the target
//   oneOf/anyOf + `kind`     discriminated union: a kind selector that swaps the variant's fields
//   anyOf [X, null]          optional: empty input (scalars) or an "enabled" checkbox (objects)
//   enum / const             select / read-only value
//   "x-choices": source      select fed by the server (choices.js: the data sets)
//   integer, number, string  input with min/max/step/maxlength from the schema
//   boolean                  checkbox
//   array of scalars         comma-separated input; prefixItems (tuples): one input per item
//   object                   fieldset of its properties
//   anything else            a JSON textarea, validated by the server
// Inputs are named by their dotted path (`optimizer.lr`, `task.hidden`).

import { ChoiceNode } from "./choices.js";
import { h } from "./dom.js";
import {
  BooleanNode,
  ConstNode,
  EnumNode,
  FormNode,
  JsonNode,
  ListNode,
  ScalarNode,
  SCALARS,
  hint,
  humanize,
  nextId,
  plain,
  prose,
  resolve,
} from "./schema-fields.js";

// A fixed-length array (prefixItems), e.g. Adam's betas: one input per item.
class TupleNode extends FormNode {
  constructor(schema, root, path, key) {
    super(schema, path, key);
    this.items = schema.prefixItems.map((item, i) => {
      const itemSchema = { title: `[${i}]`, ...resolve(item, root) };
      return createNode(itemSchema, root, [...path, i], i);
    });
    this.el = h(
      "div",
      { class: "field field-tuple", title: plain(schema.description) },
      h("span", { class: "label" }, this.title),
      h("div", { class: "tuple" }, this.items.map((n) => n.el)),
      this.errors,
    );
    this.set(undefined);
  }

  children() {
    return this.items;
  }

  get() {
    return this.items.map((n) => n.get());
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    this.items.forEach((n, i) => n.set(Array.isArray(v) ? v[i] : undefined));
  }

  locate(loc) {
    return loc.length && this.items[loc[0]] ? this.items[loc[0]].locate(loc.slice(1)) : this;
  }
}

class ObjectNode extends FormNode {
  // bare: only the grid of fields (inside a union or an optional wrapper that has the legend)
  constructor(schema, root, path, key, { bare = false, omit = new Set() } = {}) {
    super(schema, path, key);
    this.fields = new Map();
    for (const [name, sub] of Object.entries(schema.properties ?? {})) {
      if (omit.has(name)) continue;
      // a $ref'd model is titled after its class (OptimizerConfig); the property name reads better
      // (also through an optional wrapper: the legend would read "HessianProbe")
      const titled = !sub.title && (sub.$ref || sub.anyOf || sub.oneOf) ? { ...sub, title: humanize(name) } : sub;
      this.fields.set(name, createNode(titled, root, [...path, name], name));
    }
    const grid = h(
      "div",
      { class: "form-grid" },
      [...this.fields.values()].map((n) => n.el),
      this.fields.size === 0 && h("p", { class: "muted" }, "Nothing to configure here yet."),
    );
    this.el = bare
      ? h("div", { class: "object" }, this.errors, grid)
      : h(
          "fieldset",
          { class: "object", dataset: { path: this.name } },
          h("legend", {}, this.title),
          hint(schema.description),
          this.errors,
          grid,
        );
    this.set(undefined);
  }

  children() {
    return this.fields.values();
  }

  get() {
    const value = {};
    for (const [name, node] of this.fields) {
      const v = node.get();
      if (v !== undefined) value[name] = v;
    }
    return value;
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    for (const [name, node] of this.fields) node.set(v?.[name]);
  }

  locate(loc) {
    return loc.length && this.fields.has(loc[0]) ? this.fields.get(loc[0]).locate(loc.slice(1)) : this;
  }
}

// A discriminated union: a selector for the tag property swaps the variant's fields.
// 422 locations of a variant carry its tag (task.digits.hidden); `locate` skips it.
class UnionNode extends FormNode {
  constructor(schema, variants, property, root, path, key) {
    super(schema, path, key);
    this.property = property;
    this.root = root;
    this.variants = new Map(variants.map((v) => [tagOf(v, property), v]));
    this.built = new Map();
    const id = nextId();
    this.select = h(
      "select",
      { id, name: [...path, property].join("."), onchange: () => this.show(this.select.value) },
      [...this.variants].map(([tag, v]) => h("option", { value: tag, title: plain(v.description) }, tag)),
    );
    this.description = h("small", { class: "hint" });
    this.body = h("div", { class: "variant" });
    this.el = h(
      "fieldset",
      { class: "object union", dataset: { path: this.name } },
      h("legend", {}, this.title),
      h(
        "div",
        { class: "field field-kind" },
        h("label", { for: id }, humanize(property)),
        this.select,
        this.description,
      ),
      this.errors,
      this.body,
    );
    this.set(undefined);
  }

  get current() {
    return this.built.get(this.tag);
  }

  show(tag) {
    this.tag = tag;
    this.select.value = tag;
    if (!this.built.has(tag)) {
      const omit = new Set([this.property]);
      this.built.set(tag, new ObjectNode(this.variants.get(tag), this.root, this.path, this.key, { bare: true, omit }));
    }
    this.description.replaceChildren(...prose(this.variants.get(tag).description));
    this.body.replaceChildren(this.current.el);
  }

  children() {
    return this.built.values();
  }

  get() {
    return { [this.property]: this.tag, ...this.current.get() };
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    const tag = v?.[this.property];
    this.show(this.variants.has(tag) ? tag : this.variants.keys().next().value);
    this.current.set(v ?? undefined);
  }

  locate(loc) {
    if (!loc.length) return this;
    return this.current.locate(loc[0] === this.tag ? loc.slice(1) : loc);
  }
}

function tagOf(variant, property) {
  const prop = variant.properties?.[property] ?? {};
  return prop.const ?? prop.enum?.[0] ?? prop.default;
}

function commonTagProperty(variants) {
  if (variants.length < 2 || !variants.every((v) => v.type === "object" && v.properties)) return null;
  const candidates = Object.keys(variants[0].properties);
  return candidates.find((p) => {
    const tags = variants.map((v) => tagOf(v, p));
    return tags.every((t) => typeof t === "string") && new Set(tags).size === tags.length;
  });
}

// An optional object (anyOf [object, null]): a checkbox in the legend enables it.
class OptionalNode extends FormNode {
  constructor(schema, root, path, key) {
    super(schema, path, key);
    this.inner = createNode(schema, root, path, key, { bare: true });
    const id = nextId();
    this.toggle = h("input", { id, type: "checkbox", name: `${this.name}.enabled`, onchange: () => this.sync() });
    this.el = h(
      "fieldset",
      { class: "object optional", dataset: { path: this.name } },
      h("legend", {}, h("label", { for: id, class: "check" }, this.toggle, " ", this.title)),
      hint(schema.description),
      this.errors,
      this.inner.el,
    );
    this.set(undefined);
  }

  sync() {
    this.inner.el.hidden = !this.toggle.checked;
  }

  children() {
    return [this.inner];
  }

  get() {
    return this.toggle.checked ? this.inner.get() : null;
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    this.toggle.checked = v !== null && v !== undefined;
    this.inner.set(v ?? undefined);
    this.sync();
  }

  locate(loc) {
    return this.inner.locate(loc);
  }
}

export function createNode(raw, root, path, key, { bare = false } = {}) {
  const schema = resolve(raw, root);
  const options = schema.oneOf ?? schema.anyOf;
  if (Array.isArray(options)) {
    const { oneOf, anyOf, discriminator, ...annotations } = schema;
    const resolved = options.map((o) => resolve(o, root));
    const present = resolved.filter((o) => o.type !== "null");
    const nullable = present.length < resolved.length;
    if (present.length === 1) {
      const inner = { ...present[0], ...annotations };
      if (!nullable) return createNode(inner, root, path, key, { bare });
      if (inner.enum) return new EnumNode(inner, path, key, { nullable });
      if (SCALARS.includes(inner.type)) return new ScalarNode(inner, path, key, { nullable });
      return new OptionalNode(inner, root, path, key);
    }
    const property = discriminator?.propertyName ?? commonTagProperty(present);
    if (!property) return new JsonNode(schema, path, key);
    if (nullable) return new OptionalNode({ ...annotations, oneOf: present, discriminator }, root, path, key);
    return new UnionNode(annotations, present, property, root, path, key);
  }
  if ("const" in schema) return new ConstNode(schema, path, key);
  if (Array.isArray(schema.enum)) return new EnumNode(schema, path, key);
  if (schema["x-choices"]) return new ChoiceNode(schema, path, key);
  switch (schema.type) {
    case "boolean":
      return new BooleanNode(schema, path, key);
    case "integer":
    case "number":
    case "string":
      return new ScalarNode(schema, path, key);
    case "array": {
      if (Array.isArray(schema.prefixItems)) return new TupleNode(schema, root, path, key);
      const items = resolve(schema.items, root);
      if (SCALARS.includes(items.type) && !items.enum) return new ListNode(schema, items, path, key);
      return new JsonNode(schema, path, key);
    }
    case "object":
      if (schema.properties || schema.additionalProperties === false) {
        return new ObjectNode(schema, root, path, key, { bare });
      }
      return new JsonNode(schema, path, key);
    default:
      return new JsonNode(schema, path, key);
  }
}

// The whole form: value in and out, and 422 details shown next to the fields they name.
export class SchemaForm {
  constructor(schema) {
    this.root = createNode(schema, schema, [], null, { bare: true });
    this.el = this.root.el;
  }

  getValue() {
    return this.root.get();
  }

  setValue(value) {
    this.root.set(value);
  }

  clearErrors() {
    this.root.clearErrors();
  }

  // detail: FastAPI's 422 list [{loc: ["body", ...], msg}] -> [{label, message, node}]
  showErrors(detail) {
    return detail.map((d) => {
      const loc = (d.loc ?? []).slice(d.loc?.[0] === "body" ? 1 : 0);
      const node = this.root.locate(loc);
      if (node !== this.root) node.addError(d.msg); // root-level errors live in the summary
      return { label: loc.join(".") || "config", message: d.msg, node };
    });
  }
}
