// Leaf fields of the schema form (see schema-form.js): $ref resolution, constraint hints, and
// the nodes for scalars, enums, constants, booleans, lists and raw JSON.

import { h } from "./dom.js";

let uid = 0;
export const nextId = () => `f-${++uid}`;
export const SCALARS = ["integer", "number", "string"];

export function resolve(schema, root, depth = 0) {
  if (!schema || typeof schema !== "object") return {};
  if (depth > 32) throw new Error("schema $ref nesting too deep (a cycle?)");
  if (schema.$ref) {
    const { $ref, ...siblings } = schema;
    return resolve({ ...lookup(root, $ref), ...siblings }, root, depth + 1);
  }
  if (Array.isArray(schema.allOf) && schema.allOf.length === 1) {
    const { allOf, ...siblings } = schema;
    return resolve({ ...allOf[0], ...siblings }, root, depth + 1);
  }
  if (Array.isArray(schema.type)) {
    const { type, ...rest } = schema;
    return { ...rest, anyOf: type.map((t) => ({ type: t })) };
  }
  return schema;
}

function lookup(root, ref) {
  if (!ref.startsWith("#/")) throw new Error(`unsupported $ref ${ref} (only local refs)`);
  const parts = ref.slice(2).split("/").map((p) => decodeURIComponent(p).replace(/~1/g, "/").replace(/~0/g, "~"));
  const target = parts.reduce((node, part) => node?.[part], root);
  if (!target) throw new Error(`$ref ${ref} not found in the schema`);
  return target;
}

export function humanize(key) {
  return String(key ?? "").replace(/_/g, " ").replace(/^\w/, (c) => c.toUpperCase());
}

// A schema description (a pydantic docstring) as the user reads it: pointers into the code base
// ("(``worker.probes.hessian``; docs/probes/hessian.md)") dropped, ``literals`` as <code>.
export function prose(text) {
  if (!text) return [];
  const cleaned = String(text)
    .replace(/\s*\(``(?:worker|server)\.[^)]*\)/g, "")
    .replace(/\s*\(docs\/[^)]*\)/g, "");
  return cleaned.split(/``([^`]+)``/).map((part, i) => (i % 2 ? h("code", {}, part) : part));
}

// The same as plain text (for title attributes); undefined without a description.
export function plain(text) {
  return text ? prose(text).map((part) => (typeof part === "string" ? part : part.textContent)).join("") : undefined;
}

// A hint under a field or legend; null without a description.
export function hint(text) {
  return text ? h("small", { class: "hint" }, ...prose(text)) : null;
}

function constraints(schema) {
  const parts = [];
  const { minimum: min, maximum: max, exclusiveMinimum: xmin, exclusiveMaximum: xmax } = schema;
  if (min !== undefined && max !== undefined) {
    parts.push(`${min} – ${max}`);
  } else {
    const lower = min !== undefined ? `≥ ${min}` : xmin !== undefined ? `> ${xmin}` : null;
    const upper = max !== undefined ? `≤ ${max}` : xmax !== undefined ? `< ${xmax}` : null;
    parts.push(...[lower, upper].filter(Boolean));
  }
  if (schema.maxLength !== undefined) parts.push(`≤ ${schema.maxLength} chars`);
  if (schema.maxItems !== undefined && schema.type === "array" && !schema.prefixItems) {
    parts.push(`≤ ${schema.maxItems} items`);
  }
  return parts.join(", ");
}

export class FormNode {
  constructor(schema, path, key) {
    this.schema = schema;
    this.path = path;
    this.key = key;
    this.title = schema.title ?? humanize(key);
    this.errors = h("ul", { class: "field-errors", hidden: true });
  }

  get name() {
    return this.path.join(".");
  }

  addError(message) {
    this.errors.append(h("li", {}, message));
    this.errors.hidden = false;
    this.el.classList.add("has-error");
  }

  clearErrors() {
    this.errors.replaceChildren();
    this.errors.hidden = true;
    this.el.classList.remove("has-error");
    for (const child of this.children()) child.clearErrors();
  }

  children() {
    return [];
  }

  locate() {
    return this;
  }

  focus() {
    this.el.querySelector("input, select, textarea")?.focus();
    this.el.scrollIntoView({ block: "center", behavior: "smooth" });
  }

  // A labelled field row around `control`.
  field(control, { id, after } = {}) {
    const limits = constraints(this.schema);
    const description = this.schema.description;
    return h(
      "div",
      { class: `field field-${this.schema.type ?? "any"}`, title: plain(description) },
      h("label", { for: id }, this.title, limits && h("span", { class: "constraint" }, limits)),
      control,
      after,
      hint(description),
      this.errors,
    );
  }
}

export class ScalarNode extends FormNode {
  constructor(schema, path, key, { nullable = false } = {}) {
    super(schema, path, key);
    this.nullable = nullable;
    const numeric = schema.type === "integer" || schema.type === "number";
    const id = nextId();
    this.input = h("input", {
      id,
      name: this.name,
      type: numeric ? "number" : "text",
      min: schema.minimum,
      max: schema.maximum,
      step: numeric ? (schema.type === "integer" ? 1 : "any") : undefined,
      maxlength: schema.maxLength,
      minlength: schema.minLength,
      placeholder: nullable ? "none" : undefined,
      autocomplete: "off",
    });
    this.el = this.field(this.input, { id });
    this.set(undefined);
  }

  get() {
    if (this.input.validity.badInput) return "(not a number)"; // let the server name the problem
    const raw = this.schema.type === "string" ? this.input.value : this.input.value.trim();
    if (raw === "") return this.nullable ? null : this.schema.type === "string" ? "" : undefined;
    if (this.schema.type === "string") return raw;
    const number = Number(raw);
    return Number.isFinite(number) ? number : raw;
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    this.input.value = v === undefined || v === null ? "" : String(v);
  }
}

export class EnumNode extends FormNode {
  constructor(schema, path, key, { nullable = false } = {}) {
    super(schema, path, key);
    this.nullable = nullable;
    this.options = schema.enum;
    const id = nextId();
    this.select = h(
      "select",
      { id, name: this.name },
      nullable && h("option", { value: "" }, "(none)"),
      this.options.map((option, i) => h("option", { value: String(i) }, String(option))),
    );
    this.el = this.field(this.select, { id });
    this.set(undefined);
  }

  get() {
    if (this.select.value === "") return null;
    return this.options[Number(this.select.value)];
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    const index = this.options.findIndex((o) => o === v);
    if (index >= 0) this.select.value = String(index);
    else this.select.value = this.nullable ? "" : "0";
  }
}

export class ConstNode extends FormNode {
  constructor(schema, path, key) {
    super(schema, path, key);
    this.el = this.field(h("output", { name: this.name, class: "const" }, String(schema.const)));
  }

  get() {
    return this.schema.const;
  }

  set() {}
}

export class BooleanNode extends FormNode {
  constructor(schema, path, key) {
    super(schema, path, key);
    const id = nextId();
    this.input = h("input", { id, name: this.name, type: "checkbox" });
    this.el = h(
      "div",
      { class: "field field-boolean", title: plain(schema.description) },
      h("label", { for: id, class: "check" }, this.input, " ", this.title),
      hint(schema.description),
      this.errors,
    );
    this.set(undefined);
  }

  get() {
    return this.input.checked;
  }

  set(value) {
    this.input.checked = Boolean(value === undefined ? this.schema.default : value);
  }
}

// An array of scalars as one comma-separated input (tags: "a, b").
export class ListNode extends FormNode {
  constructor(schema, itemSchema, path, key) {
    super(schema, path, key);
    this.itemType = itemSchema.type;
    const id = nextId();
    this.input = h("input", { id, name: this.name, type: "text", placeholder: "comma-separated", autocomplete: "off" });
    this.el = this.field(this.input, { id });
    this.set(undefined);
  }

  get() {
    const items = this.input.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (this.itemType !== "integer" && this.itemType !== "number") return items;
    return items.map((s) => (Number.isFinite(Number(s)) ? Number(s) : s));
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    this.input.value = Array.isArray(v) ? v.join(", ") : "";
  }
}

// Fallback for shapes the form does not model: JSON text, validated by the server.
export class JsonNode extends FormNode {
  constructor(schema, path, key) {
    super(schema, path, key);
    const id = nextId();
    this.input = h("textarea", { id, name: this.name, rows: 3, spellcheck: "false", class: "mono" });
    this.el = this.field(this.input, { id });
    this.set(undefined);
  }

  get() {
    const text = this.input.value.trim();
    if (!text) return undefined;
    try {
      return JSON.parse(text);
    } catch {
      return text; // the server answers 422 naming this field
    }
  }

  set(value) {
    const v = value === undefined ? this.schema.default : value;
    this.input.value = v === undefined ? "" : JSON.stringify(v, null, 2);
  }
}

