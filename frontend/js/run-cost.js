// What the config in the submit form would cost, from POST /api/runs/validate: the parameter
// count, the data set and the probes' memory against the server's limits, refreshed as the form
// changes (debounced; only the latest answer is shown).

import { api, ApiError } from "./api.js";
import { h } from "./dom.js";

const count = (n) => n.toLocaleString("en-US");

function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function describeCost(cost) {
  const parts = [
    `${count(cost.parameters)} parameters (limit ${count(cost.max_parameters)})`,
    `data set ${count(cost.dataset_elements)} elements, ${size(cost.dataset_bytes)} (limit ${size(cost.max_dataset_bytes)})`,
  ];
  const probes = Object.entries(cost.probes).map(
    ([name, p]) => `${name} ×${count(p.calls)}, ${size(p.bytes)} (limit ${size(cost.max_probe_bytes)})`,
  );
  if (probes.length) parts.push(`probes: ${probes.join(", ")}`);
  return parts.join(" · ");
}

// getConfig() returns the form's config, or undefined while it cannot be read (bad JSON).
export function mountRunCost(getConfig) {
  const el = h("p", { class: "hint run-cost", id: "run-cost", "aria-live": "polite" });
  let timer = null;
  let latest = 0;

  async function check() {
    const asked = ++latest;
    const config = getConfig();
    if (config === undefined) return;
    let text = "";
    let over = false;
    try {
      text = describeCost(await api.validateRun(config));
    } catch (error) {
      const detail = error instanceof ApiError && Array.isArray(error.detail) ? error.detail : [];
      const limits = detail.filter((d) => d.type === "limit_exceeded");
      over = detail.length > 0;
      // a limit, or a combination the server refuses (a model that does not fit the data)
      text = limits.length
        ? `Over a limit: ${limits.map((d) => d.msg).join("; ")}`
        : over
          ? `Not accepted: ${detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ")}`
          : "";
    }
    if (asked !== latest) return; // a newer check is under way
    el.textContent = text;
    el.classList.toggle("notice-warn", over);
  }

  function refresh() {
    clearTimeout(timer);
    timer = setTimeout(check, 300);
  }

  return { el, refresh };
}
