// The dashboard's API token (docs/security.md).  The login page keeps the token in localStorage;
// api.js sends it as `Authorization: Bearer` on every fetch.  Logging in also sets the read-only,
// HttpOnly `obs_session` cookie: EventSource cannot send headers, the cookie opens the live stream.
// On an open server (127.0.0.1 without OBS_AUTH=required) none of this is needed.

const KEY = "observatory.token";

export function authHeaders() {
  const token = localStorage.getItem(KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// A path on this site to come back to after logging in (never another origin).
export function safeNext(value) {
  return typeof value === "string" && value.startsWith("/") && !value.startsWith("//") ? value : "/";
}

export function toLogin() {
  const next = `${window.location.pathname}${window.location.search}`;
  window.location.assign(`/login.html?next=${encodeURIComponent(safeNext(next))}`);
}

async function session(method, headers = {}) {
  const response = await fetch("/api/session", { method, headers: { Accept: "application/json", ...headers } });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (!response.ok) throw new Error(data?.detail ?? `${response.status} ${response.statusText}`);
  return data;
}

// -> {auth, name, scope} for the token; throws with the server's reason if it is refused.
export async function login(token) {
  const who = await session("POST", { Authorization: `Bearer ${token}` });
  localStorage.setItem(KEY, token);
  return who;
}

export async function logout() {
  localStorage.removeItem(KEY);
  await session("DELETE");
}

// -> {auth, name, scope} of the stored token (or of the open server), null if none is accepted.
export async function whoami() {
  try {
    return await session("GET", authHeaders());
  } catch {
    return null;
  }
}
