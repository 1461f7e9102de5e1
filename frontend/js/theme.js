// Light and dark theme: the OS preference by default, pinned by the toggle in the top bar
// (kept in localStorage). The stylesheet picks its colours with light-dark() from the
// color-scheme that data-theme on <html> sets; plots read the same colours through colors()
// and redraw on the "themechange" event.

const KEY = "observatory.theme";
const dark = window.matchMedia("(prefers-color-scheme: dark)");

export function currentTheme() {
  return document.documentElement.dataset.theme ?? (dark.matches ? "dark" : "light");
}

function apply(theme) {
  if (theme) document.documentElement.dataset.theme = theme;
  else delete document.documentElement.dataset.theme;
  window.dispatchEvent(new CustomEvent("themechange", { detail: currentTheme() }));
}

// The CSS colour variables (light-dark() included) as rgb() strings for plotly, resolved once
// per theme: the stylesheet's values never change, and every read forces a style recalculation,
// which between twelve charts' drawing cost tens of milliseconds.
const resolved = new Map();

export function colors() {
  const theme = currentTheme();
  if (!resolved.has(theme)) resolved.set(theme, Object.freeze(resolve()));
  return resolved.get(theme);
}

function resolve() {
  const probe = document.createElement("span");
  probe.hidden = true;
  document.body.append(probe);
  const read = (name) => {
    probe.style.color = `var(${name})`;
    return getComputedStyle(probe).color;
  };
  const out = {
    theme: currentTheme(),
    fg: read("--fg"),
    bg: read("--card"),
    grid: read("--grid"),
    border: read("--border"),
    muted: read("--muted"),
    event: read("--event"),
    danger: read("--danger"),
    font: getComputedStyle(document.body).fontFamily,
  };
  probe.remove();
  return out;
}

export function mountThemeToggle(slot) {
  const button = document.createElement("button");
  button.type = "button";
  button.id = "theme-toggle";
  button.className = "secondary small";
  const label = () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    button.textContent = next === "dark" ? "☾ Dark" : "☀ Light";
    button.title = `switch to the ${next} theme`;
  };
  button.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    localStorage.setItem(KEY, next);
    apply(next);
  });
  window.addEventListener("themechange", label);
  label();
  slot.append(button);
}

// The stored choice applies as soon as this module runs; an OS switch redraws when none is stored.
const stored = localStorage.getItem(KEY);
if (stored === "light" || stored === "dark") document.documentElement.dataset.theme = stored;
dark.addEventListener("change", () => {
  if (!document.documentElement.dataset.theme) apply(null);
});
