// "Sweep over…" under the submit form: pick a numeric field of the form, give its values, add as
// many axes as wanted, and submit the form's config as the base of a grid sweep (POST
// /api/sweeps); or submit one of the sweep presets as it is.  The server validates every point
// and names a bad one as `axes.<path>`.

import { api, ApiError } from "./api.js";
import { h } from "./dom.js";

// "0.02, 0.05" → [0.02, 0.05]; what is not a number stays text (the server names the problem).
export function parseValues(text) {
  return text
    .split(",")
    .map((v) => v.trim())
    .filter(Boolean)
    .map((v) => (v !== "" && Number.isFinite(Number(v)) ? Number(v) : v));
}

function errorText(error) {
  if (error instanceof ApiError && Array.isArray(error.detail)) {
    return error.detail.map((d) => `${(d.loc ?? []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  return error.message;
}

export function mountSweepForm({ form, presets }) {
  const axes = new Map(); // path → values
  const numericFields = () => [...form.el.querySelectorAll('input[type="number"]')].map((input) => input.name);
  const fieldSelect = h("select", { id: "sweep-field", name: "sweep-field", "aria-label": "field to sweep over" });
  const refreshFields = () => {
    const current = fieldSelect.value;
    fieldSelect.replaceChildren(...numericFields().map((name) => h("option", { value: name }, name)));
    if (current) fieldSelect.value = current;
  };
  const valuesInput = h("input", { id: "sweep-values", name: "sweep-values", placeholder: "0.02, 0.05, 0.1", "aria-label": "values" });
  const list = h("ul", { id: "sweep-axes", class: "sweep-axes" });
  const notice = h("p", { class: "notice notice-error", role: "alert", hidden: true });
  const submitButton = h("button", { type: "button", class: "primary", id: "submit-sweep", disabled: true }, "Submit sweep");

  const showAxes = () => {
    list.replaceChildren(
      ...[...axes].map(([path, values]) =>
        h("li", {}, `${path} ∈ {${values.join(", ")}} `, h("button", { type: "button", class: "icon small", "aria-label": `remove ${path}`, onclick: () => (axes.delete(path), showAxes()) }, "×")),
      ),
    );
    const runs = [...axes.values()].reduce((n, v) => n * v.length, 1);
    submitButton.disabled = axes.size === 0;
    submitButton.textContent = axes.size ? `Submit sweep (${runs} runs)` : "Submit sweep";
  };

  async function send(body) {
    notice.hidden = true;
    try {
      const sweep = await api.createSweep(body);
      window.location.assign(`/sweeps/${sweep.id}`);
    } catch (error) {
      notice.textContent = `The server rejected this sweep: ${errorText(error)}`;
      notice.hidden = false;
    }
  }

  const presetSelect = h(
    "select",
    { id: "sweep-preset", name: "sweep-preset", "aria-label": "sweep preset" },
    presets.map((p, i) => h("option", { value: String(i), title: p.description }, p.name)),
  );
  const el = h(
    "details",
    { class: "sweep-form", ontoggle: refreshFields },
    h("summary", {}, "Sweep over…"),
    h("div", { class: "sweep-controls" },
      h("label", { for: "sweep-field" }, "field", fieldSelect),
      h("label", { for: "sweep-values" }, "values", valuesInput),
      h("button", {
        type: "button",
        id: "add-sweep-axis",
        class: "secondary",
        onclick: () => {
          const values = parseValues(valuesInput.value);
          if (fieldSelect.value && values.length) axes.set(fieldSelect.value, values);
          valuesInput.value = "";
          showAxes();
        },
      }, "Add axis"),
    ),
    list,
    h("div", { class: "form-actions" }, submitButton),
    presets.length > 0 &&
      h("div", { class: "sweep-controls" },
        h("label", { for: "sweep-preset" }, "or a sweep preset", presetSelect),
        h("button", { type: "button", class: "secondary", id: "submit-sweep-preset", onclick: () => send(presets[Number(presetSelect.value)].sweep) }, "Submit preset sweep"),
      ),
    notice,
  );
  submitButton.addEventListener("click", () => send({ base: form.getValue(), axes: Object.fromEntries(axes) }));
  return el;
}
