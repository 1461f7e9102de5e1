// The "new run" form: the schema-built fields, a preset selector that fills them, an "edit as
// JSON" toggle, and the server's 422 errors shown next to the fields they name.

import { api, ApiError } from "./api.js";
import { h } from "./dom.js";
import { mountRunCost } from "./run-cost.js";
import { SchemaForm } from "./schema-form.js";

// The task selector's options read as the tasks' titles, a plugin's with its package (GET
// /api/tasks); their values stay the kinds.  The schema's union already holds every installed task.
function labelTasks(formEl, tasks) {
  const select = formEl.querySelector('select[name="task.kind"]');
  const byKind = new Map(tasks.map((task) => [task.kind, task]));
  for (const option of select?.options ?? []) {
    const task = byKind.get(option.value);
    if (task) option.textContent = task.source === "builtin" ? task.title : `${task.title} (${task.source})`;
  }
}

export function mountSubmitForm(container, { schema, presets, tasks = [] }) {
  const form = new SchemaForm(schema);
  labelTasks(form.el, tasks);
  let jsonMode = false;

  const presetSelect = h(
    "select",
    { id: "preset-select", name: "preset", onchange: () => applyPreset() },
    h("option", { value: "" }, "(schema defaults)"),
    presets.map((p, i) => h("option", { value: String(i), title: p.description }, p.name)),
  );
  const presetHint = h("small", { class: "hint preset-description" });
  const jsonToggle = h(
    "button",
    { type: "button", id: "json-toggle", class: "secondary", "aria-pressed": "false", onclick: () => toggleJson() },
    "Edit as JSON",
  );
  const summary = h("div", { class: "form-errors notice notice-error", role: "alert", tabindex: "-1", hidden: true });
  const jsonText = h("textarea", {
    id: "config-json",
    class: "mono",
    rows: 24,
    spellcheck: "false",
    hidden: true,
    "aria-label": "run config as JSON",
  });
  const submitButton = h("button", { type: "submit", class: "primary", id: "submit-run" }, "Submit run");
  const resetButton = h("button", { type: "button", class: "secondary", onclick: () => applyPreset() }, "Reset");

  const cost = mountRunCost(() => {
    if (!jsonMode) return form.getValue();
    try {
      return JSON.parse(jsonText.value);
    } catch {
      return undefined;
    }
  });

  const el = h(
    "form",
    { id: "submit-form", novalidate: true, onsubmit: (e) => submit(e), oninput: () => cost.refresh() },
    h(
      "div",
      { class: "form-toolbar" },
      h("label", { for: "preset-select" }, "Preset"),
      presetSelect,
      jsonToggle,
    ),
    presetHint,
    summary,
    form.el,
    jsonText,
    cost.el,
    h("div", { class: "form-actions" }, submitButton, resetButton),
  );
  container.replaceChildren(el);

  if (presets.length) presetSelect.value = "0";
  applyPreset();

  function applyPreset() {
    const preset = presets[Number(presetSelect.value)];
    const config = presetSelect.value === "" ? undefined : preset.config;
    presetHint.textContent = presetSelect.value === "" ? "" : preset.description;
    clearErrors();
    form.setValue(config);
    if (jsonMode) jsonText.value = JSON.stringify(form.getValue(), null, 2);
    cost.refresh();
  }

  function toggleJson() {
    clearErrors();
    if (!jsonMode) {
      jsonText.value = JSON.stringify(form.getValue(), null, 2);
    } else {
      let parsed;
      try {
        parsed = JSON.parse(jsonText.value);
      } catch (error) {
        showSummary(`Not valid JSON: ${error.message}`);
        return;
      }
      form.setValue(parsed);
    }
    jsonMode = !jsonMode;
    jsonText.hidden = !jsonMode;
    form.el.hidden = jsonMode;
    jsonToggle.setAttribute("aria-pressed", String(jsonMode));
    jsonToggle.textContent = jsonMode ? "Edit as form" : "Edit as JSON";
  }

  function clearErrors() {
    form.clearErrors();
    summary.hidden = true;
    summary.replaceChildren();
  }

  // The errors at the top of the form, and the user taken to them: the first field named (or,
  // in JSON mode and for errors without a field, the summary itself) is focused and scrolled to.
  function showSummary(title, items = []) {
    const list =
      items.length > 0 &&
        h(
          "ul",
          {},
          items.map((item) =>
            h(
              "li",
              {},
              h("a", {
                href: "#",
                class: "error-loc",
                textContent: item.label,
                onclick: (e) => {
                  e.preventDefault();
                  if (!jsonMode) item.node.focus();
                },
              }),
              `: ${item.message}`,
            ),
          ),
        );
    summary.replaceChildren(...[h("strong", {}, title), list].filter(Boolean));
    summary.hidden = false;
    const field = jsonMode ? null : items.find((item) => item.node && item.node !== form.root)?.node;
    if (field) field.focus();
    else {
      summary.focus({ preventScroll: true });
      summary.scrollIntoView({ block: "nearest" });
    }
  }

  async function submit(event) {
    event.preventDefault();
    clearErrors();
    let config;
    if (jsonMode) {
      try {
        config = JSON.parse(jsonText.value);
      } catch (error) {
        showSummary(`Not valid JSON: ${error.message}`);
        return;
      }
    } else {
      config = form.getValue();
    }
    submitButton.disabled = true;
    submitButton.textContent = "Submitting…";
    try {
      const run = await api.createRun(config);
      window.location.assign(`/runs/${run.id}`);
      return;
    } catch (error) {
      if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) {
        const items = jsonMode
          ? error.detail.map((d) => ({ label: (d.loc ?? []).filter((p) => p !== "body").join("."), message: d.msg }))
          : form.showErrors(error.detail);
        showSummary("The server rejected this config:", items);
      } else {
        showSummary(`Could not submit the run: ${error.message}`);
      }
    } finally {
      submitButton.disabled = false;
      submitButton.textContent = "Submit run";
    }
  }

  return { form, el };
}
