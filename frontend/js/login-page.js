// Entry point of the login page (login.html): checks a token, keeps it, and goes back to where
// the dashboard sent the user from.

import { login, logout, safeNext, whoami } from "./auth.js";
import { h } from "./dom.js";

const form = document.getElementById("login-form");
const input = document.getElementById("token");
const state = document.getElementById("login-state");
const next = safeNext(new URLSearchParams(window.location.search).get("next"));

function show(kind, text) {
  state.replaceChildren(h("p", { class: `notice ${kind ? `notice-${kind}` : ""}`, role: "status" }, text));
}

async function describe() {
  const who = await whoami();
  if (!who) {
    show("", "Not logged in.");
  } else if (who.auth === "open") {
    show("", "This server is open to this machine: no token is needed.");
  } else {
    show("", `Logged in as ${who.name} (scope ${who.scope}).`);
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = input.value.trim();
  if (!token) return;
  try {
    await login(token);
  } catch (error) {
    show("error", `Token refused: ${error.message}`);
    return;
  }
  window.location.assign(next);
});

document.getElementById("logout").addEventListener("click", async () => {
  await logout();
  input.value = "";
  await describe();
});

describe();
