// The runs table: polls GET /api/runs every two seconds and updates rows in place (keyed by run
// id, so buttons under the pointer survive a refresh). Search by name or tag, filters by status
// and task, sort by any column header, paging, tags and notes edited in a dialog (PATCH), cancel,
// delete, and a selection of runs to compare. The view lives in the address (js/runs-query.js).

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
import { columnChooser, columnLabel, summaryText } from "./runs-columns.js";
import { compareUrl, isSeriesSort, readQuery, SORT_DEFAULT_ORDER, writeQuery } from "./runs-query.js";

const POLL_MS = 2000;
const PAGE_SIZE = 25;
const SUMMARY_AT = 5; // summary columns go after Progress
const COLUMNS = [
  // [label, sort key or null, class]
  ["", null, "select"],
  ["ID", "id", ""],
  ["Name", "name", ""],
  ["Status", "status", ""],
  ["Progress", "step", ""],
  ["Tags", null, ""],
  ["Created", "created", ""],
  ["", null, ""],
];

// SDK runs are trained by a user's script: "sdk · <host>" (its key is host:pid:uuid).
export function runnerText(run) {
  if (run.origin === "sdk") return ["sdk", (run.worker ?? "").split(":")[0]].filter(Boolean).join(" · ");
  return [run.device, run.worker].filter(Boolean).join(" · ");
}

function setText(el, text) {
  if (el.textContent !== text) el.textContent = text;
}

function debounced(fn, ms = 300) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

// taskKinds: the task kinds to filter by (an array, or a promise of one).
export function mountRunsTable(container, { taskKinds = [] } = {}) {
  const filter = readQuery();
  const selected = new Set(filter.selected);
  const rows = new Map(); // run id -> {tr, update(run)}
  let timer = null;
  let generation = 0; // drops answers to requests made before the filter changed

  const search = h("input", {
    id: "runs-search",
    type: "search",
    placeholder: "search name or tag",
    "aria-label": "search runs by name or tag",
    value: filter.q,
    oninput: debounced(() => refilter({ q: search.value.trim() })),
  });
  const statusSelect = h(
    "select",
    { id: "status-filter", name: "status", "aria-label": "filter by status", onchange: () => refilter({ status: statusSelect.value }) },
    h("option", { value: "" }, "all statuses"),
    STATUSES.map((s) => h("option", { value: s }, s)),
  );
  statusSelect.value = filter.status;
  const taskSelect = h(
    "select",
    { id: "task-filter", name: "task", "aria-label": "filter by task", onchange: () => refilter({ task: taskSelect.value }) },
    h("option", { value: "" }, "all tasks"),
    filter.task && h("option", { value: filter.task }, filter.task),
  );
  taskSelect.value = filter.task;
  Promise.resolve(taskKinds)
    .then((kinds) => {
      taskSelect.append(...kinds.filter((kind) => kind !== filter.task).map((kind) => h("option", { value: kind }, kind)));
    })
    .catch(() => {}); // the filter works with what the address names
  const countText = h("span", { class: "muted", id: "runs-count" });
  const compareButton = h("a", { class: "button primary small", id: "compare-runs", role: "button" }, "Compare");
  const clearButton = h("button", { type: "button", class: "secondary small", onclick: () => clearSelection() }, "Clear");
  const prevButton = h("button", { type: "button", class: "secondary small", onclick: () => page(-1) }, "‹ newer");
  const nextButton = h("button", { type: "button", class: "secondary small", onclick: () => page(1) }, "older ›");
  const notice = noticeLine();
  const tbody = h("tbody");
  const empty = h("p", { class: "empty muted", hidden: true });
  const headers = COLUMNS.map(([label, key, cls]) => {
    if (!key) return h("th", { scope: "col", class: cls }, label);
    return h("th", { scope: "col", dataset: { sort: key } }, h("button", { type: "button", class: "sort", onclick: () => sortBy(key) }, label));
  });
  const headRow = h("tr", {});
  function showHeaders() {
    const summaries = filter.cols.map((col) => {
      const key = `${col.name}:${col.agg}`;
      return h("th", { scope: "col", class: "summary", dataset: { sort: key } }, h("button", { type: "button", class: "sort", onclick: () => sortBy(key) }, columnLabel(col)));
    });
    headRow.replaceChildren(...headers.slice(0, SUMMARY_AT), ...summaries, ...headers.slice(SUMMARY_AT));
  }
  showHeaders();
  const chooser = columnChooser(filter.cols, (cols) => {
    filter.cols = cols;
    showHeaders();
    for (const row of rows.values()) row.tr.remove();
    rows.clear(); // rows are rebuilt with the new cells
    generation += 1;
    refresh();
  });
  const editor = tagEditor(() => refresh(), notice);

  container.replaceChildren(
    h(
      "div",
      { class: "table-toolbar" },
      search,
      statusSelect,
      taskSelect,
      chooser,
      h("span", { class: "spacer" }),
      compareButton,
      clearButton,
      countText,
      prevButton,
      nextButton,
    ),
    notice.el,
    h("div", { class: "table-wrap" }, h("table", { id: "runs-table", class: "runs" }, h("thead", {}, headRow), tbody)),
    empty,
    editor.el,
  );

  function showState() {
    writeQuery({ ...filter, selected: [...selected] });
    for (const th of headRow.querySelectorAll("th[data-sort]")) {
      const active = th.dataset.sort === filter.sort;
      th.setAttribute("aria-sort", active ? (filter.order === "asc" ? "ascending" : "descending") : "none");
    }
    const ids = [...selected];
    compareButton.textContent = `Compare ${ids.length || ""}`.trim();
    compareButton.href = ids.length ? compareUrl(ids) : "#";
    compareButton.classList.toggle("disabled", ids.length < 2);
    compareButton.setAttribute("aria-disabled", String(ids.length < 2));
    compareButton.title = ids.length < 2 ? "select two or more runs to compare" : `open run ${ids[0]} with ${ids.length - 1} more overlaid`;
    clearButton.hidden = !ids.length;
  }

  compareButton.addEventListener("click", (event) => {
    if (selected.size < 2) event.preventDefault();
  });

  function clearSelection() {
    selected.clear();
    for (const input of tbody.querySelectorAll("input[name=select-run]")) input.checked = false;
    showState();
  }

  function refilter(change) {
    Object.assign(filter, change, { offset: 0 });
    generation += 1;
    refresh();
  }

  function sortBy(key) {
    const order = filter.sort === key ? (filter.order === "asc" ? "desc" : "asc") : (SORT_DEFAULT_ORDER[key] ?? "desc");
    refilter({ sort: key, order });
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
    const check = h("input", {
      type: "checkbox",
      name: "select-run",
      value: String(run.id),
      checked: selected.has(run.id),
      "aria-label": `select run ${run.id}`,
      onchange: () => {
        if (check.checked) selected.add(current.id);
        else selected.delete(current.id);
        showState();
      },
    });
    const name = link(run.name);
    const sub = h("div", { class: "sub" });
    const notes = h("div", { class: "notes" });
    const badge = statusBadge(run.status);
    const bar = progressBar(run.progress);
    const stepText = h("span", { class: "step-text mono" });
    const tagList = h("span", { class: "tag-list" });
    const edit = h("button", { type: "button", class: "icon small", title: "edit tags and notes", "aria-label": `edit tags and notes of run ${run.id}` }, "✎");
    const created = h("td", { class: "nowrap" });
    const cancel = h("button", { type: "button", class: "secondary small", title: "request cancellation" }, "Cancel");
    const remove = h("button", { type: "button", class: "danger small", title: "delete the run and its data" }, "Delete");
    edit.addEventListener("click", () => editor.open(current));
    cancel.addEventListener("click", () => action(cancel, current, "cancel", () => api.cancelRun(current.id)));
    remove.addEventListener("click", () => {
      if (window.confirm(`Delete run ${current.id} (${current.name}) and everything it recorded?`)) {
        action(remove, current, "delete", async () => {
          await api.deleteRun(current.id);
          rows.get(current.id)?.tr.remove();
          rows.delete(current.id);
          selected.delete(current.id);
          showState();
        });
      }
    });
    const summaries = filter.cols.map((col) => ({ col, td: h("td", { class: "summary mono" }) }));
    const tr = h(
      "tr",
      { dataset: { runId: String(run.id) } },
      h("td", { class: "select" }, check),
      h("td", { class: "mono" }, link(`#${run.id}`)),
      h(
        "td",
        { class: "name" },
        name,
        sub,
        run.sweep_id && h("a", { class: "sub sweep-link", href: `/sweeps/${run.sweep_id}` }, `sweep ${run.sweep_id}`),
        notes,
      ),
      h("td", {}, badge),
      h("td", { class: "progress-cell" }, bar, stepText),
      summaries.map((s) => s.td),
      h("td", { class: "tags" }, tagList, edit),
      created,
      h("td", { class: "actions" }, cancel, remove),
    );
    let current = run;
    function update(next) {
      current = next;
      setText(name, next.name);
      name.title = next.name;
      setText(sub, [next.config?.task?.kind, runnerText(next)].filter(Boolean).join(" · "));
      setText(notes, next.notes ?? "");
      notes.title = next.notes ?? "";
      setStatusBadge(badge, next.cancel_requested && !FINISHED.has(next.status) ? "cancelling" : next.status);
      setProgress(bar, next.progress, next.status);
      setText(stepText, `${next.step.toLocaleString()} / ${next.total_steps.toLocaleString()}`);
      for (const { col, td } of summaries) setText(td, summaryText(next, col));
      const tagText = next.tags.join(", ");
      if (tagList.dataset.value !== tagText) {
        tagList.dataset.value = tagText;
        tagList.replaceChildren(...next.tags.map((t) => h("span", { class: "tag" }, t)));
      }
      setText(created, formatAgo(next.created_at));
      created.title = formatTime(next.created_at);
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
    const filtered = filter.status || filter.tag || filter.q || filter.task;
    empty.hidden = data.length > 0;
    setText(empty, filtered ? "No runs match this filter." : "No runs yet: submit one with the form.");
    showState();
  }

  async function refresh() {
    clearTimeout(timer);
    const mine = generation;
    try {
      const summary = [...new Set(filter.cols.map((c) => c.name))].join(",");
      const bySeries = isSeriesSort(filter.sort); // a summary column's
      const sort = bySeries ? undefined : filter.sort;
      const sortSeries = bySeries ? filter.sort : undefined;
      const { data, count } = await api.listRuns({ ...filter, sort, sortSeries, summary, limit: PAGE_SIZE });
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
  showState();
  refresh();
  return { refresh };
}

// One <dialog> for the table: a run's tags (comma-separated) and notes, saved with PATCH.
function tagEditor(onSaved, notice) {
  const title = h("h3", {});
  const tags = h("input", { id: "edit-tags", type: "text", placeholder: "comma-separated", autocomplete: "off" });
  const notes = h("textarea", { id: "edit-notes", rows: 4, placeholder: "what this run is about, what happened" });
  const error = h("p", { class: "notice notice-error", hidden: true, role: "alert" });
  let run = null;
  const el = h(
    "dialog",
    { id: "run-editor", class: "card" },
    h(
      "form",
      {
        method: "dialog",
        onsubmit: async (event) => {
          event.preventDefault();
          const list = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
          try {
            await api.updateRun(run.id, { tags: list, notes: notes.value });
            el.close();
            onSaved();
          } catch (e) {
            error.textContent = e.message;
            error.hidden = false;
          }
        },
      },
      title,
      h("label", { for: "edit-tags" }, "Tags"),
      tags,
      h("label", { for: "edit-notes" }, "Notes"),
      notes,
      error,
      h(
        "div",
        { class: "form-actions" },
        h("button", { type: "submit", class: "primary", id: "save-run-edit" }, "Save"),
        h("button", { type: "button", class: "secondary", onclick: () => el.close() }, "Cancel"),
      ),
    ),
  );
  return {
    el,
    open(target) {
      run = target;
      title.textContent = `#${run.id} ${run.name}`;
      tags.value = run.tags.join(", ");
      notes.value = run.notes ?? "";
      error.hidden = true;
      notice.clear();
      el.showModal();
      tags.focus();
    },
  };
}
