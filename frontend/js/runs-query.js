// The runs table's view state (search, filters, sort, page, selected runs), kept in the address
// so that a view can be bookmarked, shared and restored with the back button.

const DEFAULTS = { q: "", status: "", task: "", tag: "", sort: "id", order: "desc", offset: 0, selected: [], cols: [] };
export const AGGREGATES = ["last", "min", "max"];
export const SORT_DEFAULT_ORDER = { id: "desc", created: "desc", step: "desc", name: "asc", status: "asc" };
// A summary column's sort key: "<series>:<last|min|max>" (largest first by default).
export const isSeriesSort = (key) => /^[^,:\s]{1,128}:(last|min|max)$/.test(key ?? "");

export function readQuery(url = window.location.href) {
  const params = new URL(url).searchParams;
  const state = { ...DEFAULTS, selected: [] };
  for (const key of ["q", "status", "task", "tag"]) state[key] = params.get(key) ?? "";
  if (params.get("sort") in SORT_DEFAULT_ORDER || isSeriesSort(params.get("sort"))) state.sort = params.get("sort");
  if (params.get("order") === "asc" || params.get("order") === "desc") state.order = params.get("order");
  state.offset = Math.max(0, Number.parseInt(params.get("offset") ?? "0", 10) || 0);
  state.selected = (params.get("selected") ?? "").split(",").map(Number).filter((id) => Number.isInteger(id) && id > 0);
  // summary columns: "test.acc:last,hessian.lambda_max:max"
  state.cols = (params.get("cols") ?? "")
    .split(",")
    .map((c) => c.split(":"))
    .filter(([name, agg]) => name && AGGREGATES.includes(agg))
    .map(([name, agg]) => ({ name, agg }));
  return state;
}

export function writeQuery(state) {
  const url = new URL(window.location.href);
  for (const key of Object.keys(DEFAULTS)) {
    const lists = { selected: () => state.selected.join(","), cols: () => state.cols.map((c) => `${c.name}:${c.agg}`).join(",") };
    const value = lists[key] ? lists[key]() : String(state[key] ?? "");
    if (value === "" || value === String(DEFAULTS[key])) url.searchParams.delete(key);
    else url.searchParams.set(key, value);
  }
  if (url.href !== window.location.href) window.history.replaceState(null, "", url);
}

// The run page comparing the selected runs: the first one's page with the others overlaid.
export function compareUrl(ids) {
  const [first, ...others] = ids;
  return others.length ? `/runs/${first}?overlay=${others.join(",")}` : `/runs/${first}`;
}
