// Entry point of the runs page (index.html): health, the runs table and the submit form.

import { api } from "./api.js";
import { h, showError } from "./dom.js";
import { mountHealth } from "./health.js";
import { mountRunsTable } from "./runs-table.js";
import { mountSubmitForm } from "./submit-form.js";
import { mountSweepForm } from "./sweep-form.js";
import { mountThemeToggle } from "./theme.js";

const schemaRequest = api.schema();

async function mountForm(container, request = api.schema()) {
  let schema;
  try {
    schema = await request;
  } catch (error) {
    showError(container, "Could not load the run config schema:", error);
    container.append(h("button", { type: "button", class: "secondary", onclick: () => mountForm(container) }, "Retry"));
    return;
  }
  // the installed tasks' titles and packages label the task selector; the form works without
  const tasksRequest = api.tasks().then((body) => body.data, () => []);
  let presets = [];
  let presetsError = null;
  try {
    presets = await api.presets();
  } catch (error) {
    presetsError = error; // the form works without them
  }
  let submitForm;
  try {
    submitForm = mountSubmitForm(container, { schema, presets, tasks: await tasksRequest });
  } catch (error) {
    showError(container, "Could not build the form from the schema:", error);
    return;
  }
  const sweepPresets = await api.sweepPresets().catch(() => []);
  container.append(mountSweepForm({ form: submitForm.form, presets: sweepPresets }));
  if (presetsError) {
    container.prepend(h("p", { class: "notice notice-warn" }, `Presets unavailable: ${presetsError.message}`));
  }
}

mountHealth(document.getElementById("health-slot"));
mountThemeToggle(document.getElementById("theme-slot"));
const taskKinds = schemaRequest.then((schema) => Object.keys(schema.properties?.task?.discriminator?.mapping ?? {}));
mountRunsTable(document.getElementById("runs"), { taskKinds });
mountForm(document.getElementById("new-run"), schemaRequest);
