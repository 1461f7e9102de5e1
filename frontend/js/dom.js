// DOM helpers shared by both pages: element construction, formatting, status badges, progress
// bars and error notices.

// h("a", {href: "/", class: "x", onclick: fn}, "text", child, ...) -> HTMLElement.
// Props starting with "on" become listeners, `dataset` fills data-*, the few live-state props
// in PROPS are set as properties and everything else as attributes; false/null/undefined skip.
const PROPS = new Set(["value", "checked", "disabled", "hidden", "selected", "readOnly", "open", "textContent"]);

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  // children first, so that a <select>'s `value` can pick one of its options
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(el.dataset, value);
    } else if (key === "class") {
      el.className = value;
    } else if (PROPS.has(key)) {
      el[key] = value;
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  return el;
}

export const STATUSES = ["queued", "running", "completed", "failed", "cancelled", "lost"];
// lost: an SDK run whose script stopped beating without finishing (it may come back)
export const FINISHED = new Set(["completed", "failed", "cancelled", "lost"]);

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

export function setStatusBadge(badge, status) {
  if (badge.textContent !== status) {
    badge.textContent = status;
    badge.className = `badge status-${status}`;
  }
}

// A progress bar: <div class="progress"><div class="progress-fill"></div></div> with an ARIA value.
export function progressBar(progress = 0) {
  const fill = h("div", { class: "progress-fill" });
  const bar = h("div", { class: "progress", role: "progressbar", "aria-valuemin": "0", "aria-valuemax": "100" }, fill);
  setProgress(bar, progress);
  return bar;
}

export function setProgress(bar, progress, status) {
  const pct = Math.max(0, Math.min(100, (Number(progress) || 0) * 100));
  bar.firstChild.style.width = `${pct.toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", pct.toFixed(0));
  if (status) bar.dataset.status = status;
}

export function formatTime(iso) {
  if (!iso) return "–";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function formatAgo(iso, now = Date.now()) {
  if (!iso) return "–";
  const seconds = Math.round((now - new Date(iso).getTime()) / 1000);
  if (!Number.isFinite(seconds)) return iso;
  if (seconds < 5) return "just now";
  if (seconds < 60) return `${seconds} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)} h ago`;
  return new Date(iso).toLocaleDateString();
}

export function formatDuration(startIso, endIso) {
  if (!startIso) return "–";
  const ms = (endIso ? new Date(endIso) : new Date()) - new Date(startIso);
  if (!Number.isFinite(ms) || ms < 0) return "–";
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

// Replaces the content of `container` with an error notice (role=alert) naming `error`.
export function showError(container, what, error) {
  container.replaceChildren(
    h("div", { class: "notice notice-error", role: "alert" }, h("strong", {}, what), " ", error?.message ?? String(error)),
  );
}

// A notice line that can be set and cleared (e.g. "could not refresh: retrying").
export function noticeLine(className = "notice") {
  const el = h("div", { class: className, hidden: true, role: "status" });
  return {
    el,
    set(text, kind = "error") {
      el.textContent = text;
      el.className = `${className} notice-${kind}`;
      el.hidden = !text;
    },
    clear() {
      el.hidden = true;
      el.textContent = "";
    },
  };
}

// The id a page is about, from `/<collection>/{id}` or `?id=`: a positive integer, else null.
export function pageId(collection) {
  const match = window.location.pathname.match(new RegExp(`/${collection}/(\\d+)/?$`));
  const id = Number(match?.[1] ?? new URLSearchParams(window.location.search).get("id"));
  return Number.isInteger(id) && id > 0 ? id : null;
}
