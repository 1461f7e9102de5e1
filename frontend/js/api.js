// The HTTP API as small async functions. Every failure (network, non-2xx, bad JSON) becomes an
// ApiError whose message names the problem, so callers can show it instead of a blank page.
// A stored API token goes along as `Authorization: Bearer`; a 401 sends the user to the login page.

import { authHeaders, toLogin } from "./auth.js";

export class ApiError extends Error {
  constructor(status, detail, message) {
    super(message);
    this.name = "ApiError";
    this.status = status; // 0 when the server could not be reached
    this.detail = detail; // the JSON body's `detail`: a string, or a list of {loc, msg, type}
  }
}

function describe(status, detail, statusText) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc ?? []).join(".")}: ${d.msg}`).join("; ");
  }
  if (typeof detail === "string" && detail) return `${status}: ${detail}`;
  return `${status} ${statusText || "error"}`;
}

async function request(method, path, body) {
  const init = { method, headers: { Accept: "application/json", ...authHeaders() } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(0, null, `server unreachable (${error.message})`);
  }
  if (response.status === 401) toLogin();
  if (response.status === 204) return null;
  const text = await response.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!response.ok) {
    const detail = data && typeof data === "object" ? data.detail : data;
    throw new ApiError(response.status, detail, describe(response.status, detail, response.statusText));
  }
  return data;
}

function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

const COMPARE_BATCH = 20; // the most runs GET /api/metrics takes at once

export const api = {
  listRuns: ({ status, tag, offset, limit, q, task, sort, sortSeries, order, summary } = {}) =>
    request("GET", `/api/runs${query({ status, tag, offset, limit, q, task, sort, sort_series: sortSeries, order, summary })}`),
  updateRun: (id, changes) => request("PATCH", `/api/runs/${id}`, changes),
  getRun: (id) => request("GET", `/api/runs/${id}`),
  createRun: (config) => request("POST", "/api/runs", config),
  validateRun: (config) => request("POST", "/api/runs/validate", config),
  cancelRun: (id) => request("POST", `/api/runs/${id}/cancel`),
  deleteRun: (id) => request("DELETE", `/api/runs/${id}`),
  metrics: (id, { names, sinceStep, maxPoints, withTime } = {}) =>
    request(
      "GET",
      `/api/runs/${id}/metrics${query({
        names: names?.join(","),
        since_step: sinceStep,
        max_points: maxPoints,
        with_time: withTime ? "true" : undefined,
      })}`,
    ),
  // Several runs' series in one request each of up to COMPARE_BATCH runs: {runs: [{run_id,
  // series, available}]} in the order of `ids`.
  compareMetrics: async (ids, { names, maxPoints, withTime } = {}) => {
    const batches = [];
    for (let i = 0; i < ids.length; i += COMPARE_BATCH) batches.push(ids.slice(i, i + COMPARE_BATCH));
    const answers = await Promise.all(
      batches.map((batch) =>
        request(
          "GET",
          `/api/metrics${query({
            runs: batch.join(","),
            names: names?.join(","),
            max_points: maxPoints,
            with_time: withTime ? "true" : undefined,
          })}`,
        ),
      ),
    );
    return { runs: answers.flatMap((a) => a.runs) };
  },
  events: (id) => request("GET", `/api/runs/${id}/events`),
  explain: (id, step) => request("GET", `/api/runs/${id}/explain${query({ step })}`),
  outliers: (id, { sinceStep } = {}) => request("GET", `/api/runs/${id}/outliers${query({ since_step: sinceStep })}`),
  outliersAt: (id, step, { span } = {}) => request("GET", `/api/runs/${id}/outliers/${step}${query({ span })}`),
  arrays: (id, probe) => request("GET", `/api/runs/${id}/arrays/${probe}`),
  arrayAt: (id, probe, step) => request("GET", `/api/runs/${id}/arrays/${probe}/${step}`),
  spectra: (id) => request("GET", `/api/runs/${id}/spectra`),
  spectrumAt: (id, step) => request("GET", `/api/runs/${id}/spectra/${step}`),
  landscapes: (id) => request("GET", `/api/runs/${id}/landscapes`),
  landscapeAt: (id, step) => request("GET", `/api/runs/${id}/landscapes/${step}`),
  exampleLoss: (id, index, { maxPoints } = {}) =>
    request("GET", `/api/runs/${id}/examples/${index}/loss${query({ max_points: maxPoints })}`),
  listSweeps: ({ offset, limit } = {}) => request("GET", `/api/sweeps${query({ offset, limit })}`),
  getSweep: (id) => request("GET", `/api/sweeps/${id}`),
  createSweep: (body) => request("POST", "/api/sweeps", body),
  cancelSweep: (id) => request("POST", `/api/sweeps/${id}/cancel`),
  deleteSweep: (id) => request("DELETE", `/api/sweeps/${id}`),
  sweepSummary: (id, params) => request("GET", `/api/sweeps/${id}/summary${query(params)}`),
  sweepPresets: () => request("GET", "/api/sweeps/presets"),
  schema: () => request("GET", "/api/schema/run-config"),
  presets: () => request("GET", "/api/presets"),
  tasks: () => request("GET", "/api/tasks"),
  datasets: () => request("GET", "/api/datasets"),
  health: () => request("GET", "/api/health"),
  streamUrl: (id, cursor) => `/api/runs/${id}/stream${query({ cursor })}`,
  exportUrl: (id) => `/api/runs/${id}/export.csv`,
};
