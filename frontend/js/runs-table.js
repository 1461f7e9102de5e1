// The runs table: polls GET /api/runs every two seconds and updates rows in place (keyed by run
// id, so buttons under the pointer survive a refresh); status/tag filters, paging, cancel, delete.

import { api } from "./api.js";
import {
  FINISHED,
  STATUSES,
  formatAgo,
  formatTime,
  h,
  noticeLine,
  progressBar,
  setProgress,
  setStatusBadge,
  statusBadge,
} from "./dom.js";

const POLL_MS = 2000;
const PAGE_SIZE = 25;

// SDK runs are trained by a user's script: "sdk · <host>" (its key is host:pid:uuid).
export function runnerText(run) {
  if (run.origin === "sdk") return ["sdk", (run.worker ?? "").split(":")[0]].filter(Boolean).join(" · ");
  return [run.device, run.worker].filter(Boolean).join(" · ") || "–";
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

export function mountRunsTable(container) {
  const filter = { status: "", tag: "", offset: 0 };
  const rows = new Map(); // run id -> {tr, update(run)}
  let timer = null;
  let generation = 0; // drops answers to requests made before the filter changed

  const statusSelect = h(
    "select",
    { id: "status-filter", name: "status", onchange: () => refilter({ status: statusSelect.value }) },
    h("option", { value: "" }, "all statuses"),
    STATUSES.map((s) => h("option", { value: s }, s)),
  );
  let tagDebounce;
  const tagInput = h("input", {
    id: "tag-filter",
    type: "search",
    placeholder: "tag",
    "aria-label": "filter by tag",
    oninput: () => {
      clearTimeout(tagDebounce);
      tagDebounce = setTimeout(() => refilter({ tag: tagInput.value.trim() }), 300);
    },
  });
  const countText = h("span", { class: "muted", id: "runs-count" });
  const prevButton = h("button", { type: "button", class: "secondary small", onclick: () => page(-1) }, "‹ newer");
  const nextButton = h("button", { type: "button", class: "secondary small", onclick: () => page(1) }, "older ›");
  const notice = noticeLine();
  const tbody = h("tbody");
  const empty = h("p", { class: "empty muted", hidden: true });

  container.replaceChildren(
    h(
      "div",
      { class: "table-toolbar" },
      h("label", { for: "status-filter", class: "visually-hidden" }, "status"),
      statusSelect,
      tagInput,
      h("span", { class: "spacer" }),
      countText,
      prevButton,
      nextButton,
    ),
    notice.el,
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { id: "runs-table", class: "runs" },
        h(
          "thead",
          {},
          h(
            "tr",
            {},
            ["ID", "Name", "Status", "Progress", "Tags", "Created", "Device / worker", ""].map((t) =>
              h("th", { scope: "col" }, t),
            ),
          ),
        ),
        tbody,
      ),
    ),
    empty,
  );

  function refilter(change) {
    Object.assign(filter, change, { offset: 0 });
    generation += 1;
    refresh();
  }

  function page(direction) {
    filter.offset = Math.max(0, filter.offset + direction * PAGE_SIZE);
    generation += 1;
    refresh();
  }

  async function action(button, run, verb, call) {
    button.disabled = true;
    try {
      await call();
      notice.clear();
    } catch (error) {
      notice.set(`Could not ${verb} run ${run.id}: ${error.message}`);
    } finally {
      button.disabled = false;
      refresh();
    }
  }

  function createRow(run) {
    const link = (text) => h("a", { href: `/runs/${run.id}` }, text);
    const name = link(run.name);
    const badge = statusBadge(run.status);
    const bar = progressBar(run.progress);
    const stepText = h("span", { class: "step-text mono" });
    const tags = h("td", { class: "tags" });
    const created = h("td", { class: "nowrap" });
    const device = h("td", { class: "device" });
    const cancel = h("button", { type: "button", class: "secondary small", title: "request cancellation" }, "Cancel");
    const remove = h("button", { type: "button", class: "danger small", title: "delete the run and its data" }, "Delete");
    cancel.addEventListener("click", () => action(cancel, current, "cancel", () => api.cancelRun(current.id)));
    remove.addEventListener("click", () => {
      if (window.confirm(`Delete run ${current.id} (${current.name}) and everything it recorded?`)) {
        action(remove, current, "delete", async () => {
          await api.deleteRun(current.id);
          rows.get(current.id)?.tr.remove();
          rows.delete(current.id);
        });
      }
    });
    const tr = h(
      "tr",
      { dataset: { runId: String(run.id) } },
      h("td", { class: "mono" }, link(`#${run.id}`)),
      h("td", { class: "name" }, name),
      h("td", {}, badge),
      h("td", { class: "progress-cell" }, bar, stepText),
      tags,
      created,
      device,
      h("td", { class: "actions" }, cancel, remove),
    );
    let current = run;
    function update(next) {
      current = next;
      setText(name, next.name);
      setStatusBadge(badge, next.cancel_requested && !FINISHED.has(next.status) ? "cancelling" : next.status);
      setProgress(bar, next.progress, next.status);
      setText(stepText, `${next.step.toLocaleString()} / ${next.total_steps.toLocaleString()}`);
      const tagText = next.tags.join(", ");
      if (tags.dataset.value !== tagText) {
        tags.dataset.value = tagText;
        tags.replaceChildren(...next.tags.map((t) => h("span", { class: "tag" }, t)));
      }
      setText(created, formatAgo(next.created_at));
      created.title = formatTime(next.created_at);
      setText(device, runnerText(next));
      cancel.hidden = FINISHED.has(next.status);
      cancel.disabled = next.cancel_requested;
    }
    update(run);
    return { tr, update };
  }

  function render(data, count) {
    const seen = new Set();
    data.forEach((run, i) => {
      seen.add(run.id);
      let row = rows.get(run.id);
      if (!row) {
        row = createRow(run);
        rows.set(run.id, row);
      } else {
        row.update(run);
      }
      if (tbody.children[i] !== row.tr) tbody.insertBefore(row.tr, tbody.children[i] ?? null);
    });
    for (const [id, row] of rows) {
      if (!seen.has(id)) {
        row.tr.remove();
        rows.delete(id);
      }
    }
    const first = count ? filter.offset + 1 : 0;
    const last = filter.offset + data.length;
    setText(countText, count ? `${first}–${last} of ${count}` : "");
    prevButton.disabled = filter.offset === 0;
    nextButton.disabled = last >= count;
    const filtered = filter.status || filter.tag;
    empty.hidden = data.length > 0;
    setText(empty, filtered ? "No runs match this filter." : "No runs yet: submit one with the form.");
  }

  async function refresh() {
    clearTimeout(timer);
    const mine = generation;
    try {
      const { data, count } = await api.listRuns({
        status: filter.status,
        tag: filter.tag,
        offset: filter.offset,
        limit: PAGE_SIZE,
      });
      if (mine !== generation) return;
      if (count > 0 && data.length === 0 && filter.offset > 0) {
        filter.offset = Math.max(0, count - PAGE_SIZE); // the page emptied under us
        return refresh();
      }
      render(data, count);
      notice.clear();
    } catch (error) {
      if (mine === generation) notice.set(`Could not refresh the runs (${error.message}); retrying…`);
    } finally {
      if (mine === generation) {
        clearTimeout(timer);
        timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
      }
    }
  }

  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
  });
  refresh();
  return { refresh };
}
