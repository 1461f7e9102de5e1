// The run page header: name, status, progress, step counter, device and worker, cancel, the
// traceback of a failed run, CSV export and the config. update(run) takes a full Run or the
// partial `status` payload of the stream merged into it.

import { api } from "./api.js";
import {
  FINISHED,
  formatDuration,
  formatTime,
  h,
  noticeLine,
  progressBar,
  setProgress,
  setStatusBadge,
  statusBadge,
} from "./dom.js";

const CONNECTION_TEXT = {
  connecting: "connecting…",
  live: "live",
  reconnecting: "reconnecting…",
  closed: "live updates stopped",
  finished: "all data received",
  deleted: "run deleted",
};

export function mountRunHeader(container, { runId, onCancel }) {
  const name = h("span", { id: "run-name" });
  const badge = statusBadge("queued");
  badge.id = "run-status";
  const connection = h("span", { id: "live-state", class: "live-state" });
  const bar = progressBar(0);
  bar.id = "run-progress";
  const stepCounter = h("span", { id: "step-counter", class: "mono" });
  const facts = h("dl", { class: "facts" });
  const cancel = h("button", { type: "button", id: "cancel-run", class: "secondary", onclick: () => onCancel() }, "Cancel run");
  const notice = noticeLine();
  const tracebackText = h("pre", { id: "run-error", class: "traceback" });
  const traceback = h("details", { class: "error-details", open: true, hidden: true }, h("summary", {}, "Error"), tracebackText);
  const configText = h("pre", { id: "run-config", class: "mono" });

  container.replaceChildren(
    h(
      "div",
      { class: "run-title" },
      h("h1", {}, h("span", { class: "run-id" }, `#${runId}`), " ", name),
      badge,
      connection,
      h("span", { class: "spacer" }),
      h(
        "div",
        { class: "run-actions" },
        cancel,
        h("a", { class: "button secondary", href: api.exportUrl(runId), download: `run-${runId}-metrics.csv` }, "Export CSV"),
        h("a", { class: "button secondary", href: `/api/runs/${runId}` }, "JSON"),
      ),
    ),
    h("div", { class: "run-progress" }, bar, stepCounter),
    notice.el,
    facts,
    traceback,
    h("details", { class: "config-details" }, h("summary", {}, "Config"), configText),
  );

  function fact(label, value, title) {
    return h("div", {}, h("dt", {}, label), h("dd", { title }, value ?? "–"));
  }

  function update(run) {
    name.textContent = run.name;
    const status = run.cancel_requested && !FINISHED.has(run.status) ? "cancelling" : run.status;
    setStatusBadge(badge, run.status);
    badge.title = status === "cancelling" ? "cancellation requested" : "";
    setProgress(bar, run.progress, run.status);
    const pct = Math.round((run.progress ?? 0) * 100);
    stepCounter.textContent = `step ${run.step.toLocaleString()} / ${run.total_steps.toLocaleString()} (${pct}%)`;
    facts.replaceChildren(
      fact("origin", run.origin),
      fact("device", run.device),
      fact("worker", run.worker),
      fact("queue", run.queue),
      fact("attempts", run.attempts === undefined ? undefined : String(run.attempts)),
      fact("created", formatTime(run.created_at)),
      fact("started", formatTime(run.started_at)),
      fact("finished", formatTime(run.finished_at)),
      fact("duration", formatDuration(run.started_at, run.finished_at)),
      fact("tags", run.tags?.length ? run.tags.join(", ") : "–"),
    );
    cancel.hidden = FINISHED.has(run.status);
    cancel.disabled = Boolean(run.cancel_requested);
    cancel.textContent = run.cancel_requested ? "Cancelling…" : "Cancel run";
    traceback.hidden = !run.error;
    tracebackText.textContent = run.error ?? "";
    if (run.config) configText.textContent = JSON.stringify(run.config, null, 2);
    document.title = `#${runId} ${run.name} · ${run.status} · Observatory`;
  }

  // The run is gone (deleted here or in another tab): nothing to cancel, no status to follow.
  function markDeleted() {
    setStatusBadge(badge, "deleted");
    badge.title = "this run was deleted";
    cancel.hidden = true;
    document.title = `#${runId} (deleted) · Observatory`;
  }

  function setConnection(state) {
    connection.dataset.state = state;
    connection.textContent = CONNECTION_TEXT[state] ?? state;
  }

  return { update, markDeleted, setConnection, notice };
}
