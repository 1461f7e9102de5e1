// The health indicator in the top bar: database, broker and workers (GET /api/health).
// /health lists the workers that answered a ping; a solo-pool worker busy training does not
// answer, so the workers of running runs are counted too (as busy).

import { api } from "./api.js";
import { h } from "./dom.js";

const POLL_MS = 5000;

export function mountHealth(container) {
  const dot = h("span", { class: "dot" });
  const text = h("span", { class: "health-text" }, "checking…");
  const el = h("div", { class: "health", id: "health", role: "status", "aria-live": "polite" }, dot, text);
  container.replaceChildren(el);

  function show(state, label, title) {
    el.dataset.state = state;
    text.textContent = label;
    el.title = title;
  }

  async function busyWorkers() {
    try {
      const { data } = await api.listRuns({ status: "running", limit: 100 });
      // SDK runs are trained by a user's script, not a worker: not listed as busy workers
      return data.filter((run) => run.origin !== "sdk").map((run) => run.worker).filter(Boolean);
    } catch {
      return [];
    }
  }

  async function poll() {
    try {
      const [health, busy] = await Promise.all([api.health(), busyWorkers()]);
      const idle = (health.workers ?? []).filter((w) => !busy.includes(w));
      const workers = [...new Set(busy)].map((w) => `${w} (busy)`).concat(idle);
      const details = [
        `database ${health.database ? "ok" : "unreachable"}`,
        `broker ${health.broker ? "ok" : "unreachable"}${health.embedded ? " (embedded)" : ""}`,
        workers.length ? `workers: ${workers.join(", ")}` : "no worker answered",
      ].join("\n");
      if (health.status !== "ok") {
        show("down", !health.database ? "database down" : "broker down", details);
      } else if (!workers.length) {
        show("warn", "no worker seen", details);
      } else {
        show("ok", `${workers.length} worker${workers.length > 1 ? "s" : ""}: ${workers.join(", ")}`, details);
      }
    } catch (error) {
      show("down", "server unreachable", error.message);
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  poll();
}
