// Panel registry of the run page: the seam where probe panels plug in.
//
// A panel is one object, registered once from its own module under js/panels/; adding one means
// a new file there plus one import line in js/panels/index.js. The core (run-page.js, this host)
// never names a panel.
//
//   registerPanel({
//     id: "sharpness",                      // unique; its chart element gets id `plot-${id}`
//     title: "Sharpness vs 2/lr",
//     series: ["hessian.lambda_max", "lr"], // scalar series it draws; "hessian.eig.*" = a family
//     order: 60,                            // position (core scalar panels use 10–50)
//     always: false,                        // show before any of its series exists
//     overlay: false,                       // also draw the overlaid runs (ctx.overlays)
//     controls: [{ key: "logY", label: "log y", value: false }], // toggles -> ctx.local.logY
//     when(ctx) { return true },            // optional: visibility instead of the series rule
//     render(ctx) {},                       // draw from scratch (first show, any option change)
//     update(ctx, delta) {},                // new points {name: {steps, values}}, its series only
//     onEvents(ctx) {},                     // optional: ctx.events changed (default: render)
//     onStatus(ctx) {},                     // optional: ctx.run.status changed (default: nothing)
//     onStep(ctx) {},                       // optional: ctx.options.step changed (default: render)
//   });
//
// ctx: el (the chart element), card, runId, run (latest Run JSON), store (SeriesStore of the run),
// overlays [{id, name, color, store}], events [{id, step, kind, payload}], options {logX,
// smoothing, step (the step selected on the timeline, js/timeline.js; null: none)}, local (this
// panel's control values), state (the panel's own scratch), and api (js/api.js) for panels that
// read their own endpoints (spectra, landscapes, outliers).
// Scalar panels need no code of their own: linePanel() in js/charts.js supplies render/update.
// Panels drawn from fetched arrays use arrayPanel() (a step <select> with "latest") or
// fetchedPanel() there, with stepCache(), plotLayout() and PLOT_CONFIG.
// A series that no panel claims gets an automatic one-series line panel, so a new probe's
// scalars are visible before anyone writes its panel. A panel that throws shows its error in its
// own card; the other panels keep working.

import { h } from "./dom.js";

const registry = new Map();

export function registerPanel(spec) {
  if (!spec?.id || typeof spec.render !== "function") {
    throw new Error("registerPanel needs at least {id, render}");
  }
  if (registry.has(spec.id)) throw new Error(`panel ${spec.id} is registered twice`);
  registry.set(spec.id, { order: 100, series: [], controls: [], always: false, overlay: false, ...spec });
}

export function registeredPanels() {
  return [...registry.values()].sort((a, b) => a.order - b.order);
}

export function matchesSeries(pattern, name) {
  return pattern.endsWith(".*") ? name.startsWith(pattern.slice(0, -1)) : pattern === name;
}

export function claims(panel, name) {
  return panel.series.some((pattern) => matchesSeries(pattern, name));
}

function pick(delta, panel) {
  const out = {};
  let any = false;
  for (const [name, points] of Object.entries(delta)) {
    if (claims(panel, name)) {
      out[name] = points;
      any = true;
    }
  }
  return any ? out : null;
}

const OFFSCREEN_MS = 2000;

// Mounts the visible panels into `container` and routes data to them.
// view: {runId, run, store, overlays, events, options, api}, shared with the page.
export class PanelHost {
  constructor(container, view, { autoPanel, layout, onLayout = () => {} } = {}) {
    this.container = container;
    this.view = view;
    this.layout = layout; // PanelLayout (js/layout.js): hidden, collapsed, moved panels
    this.onLayout = onLayout; // called after the user hid, showed or moved a panel
    this.autoPanel = autoPanel; // name -> panel spec, for unclaimed series
    this.auto = new Map();
    this.mounted = new Map(); // id -> {panel, ctx}
    // Every chart follows its card's size (a window resize, or the grid reflowing around it):
    // plotly's own `responsive` only listens to the window, and misses the second.
    this.resized = new Set();
    this.observer = new ResizeObserver((entries) => {
      const first = !this.resized.size;
      for (const entry of entries) this.resized.add(entry.target);
      if (first) requestAnimationFrame(() => this.resizeCharts());
    });
    // Live points redraw the panels on screen at once and the others at most every
    // OFFSCREEN_MS (a chart of ten compared runs costs tens of ms a redraw; twelve of them on every
    // stream message kept the page busy). A panel scrolled into view catches up at once.
    this.onScreen = new WeakSet(); // cards within a screen of the viewport
    this.stale = new Map(); // panel id -> pending catch-up timer
    this.visibility = new IntersectionObserver(
      (entries) => {
        for (const entry of entries) {
          if (!entry.isIntersecting) {
            this.onScreen.delete(entry.target);
            continue;
          }
          this.onScreen.add(entry.target);
          const id = entry.target.dataset.panel;
          if (this.stale.has(id)) this.render(id);
        }
      },
      { rootMargin: "200px 0px" },
    );
  }

  resizeCharts() {
    const cards = [...this.resized];
    this.resized.clear();
    for (const card of cards) {
      for (const chart of card.querySelectorAll(".js-plotly-plot")) {
        if (chart.offsetParent !== null) window.Plotly?.Plots.resize(chart).catch(() => {}); // hidden meanwhile
      }
    }
  }

  panels() {
    return [...registeredPanels(), ...this.auto.values()].sort((a, b) => a.order - b.order);
  }

  context(panel, card, el, errorBox) {
    const view = this.view;
    const local = Object.fromEntries(panel.controls.map((c) => [c.key, c.value]));
    return {
      panel,
      card,
      el,
      errorBox,
      local,
      state: {},
      get runId() { return view.runId; },
      get run() { return view.run; },
      get store() { return view.store; },
      get overlays() { return view.overlays; },
      get events() { return view.events; },
      get options() { return view.options; },
      get api() { return view.api; },
    };
  }

  visible(panel) {
    if (panel.when) return this.safely(panel, null, () => panel.when(this.contextless(panel)), false);
    return panel.always || this.view.store.names().some((name) => claims(panel, name));
  }

  contextless(panel) {
    return { panel, run: this.view.run, store: this.view.store, events: this.view.events, options: this.view.options };
  }

  // Mounts panels that became visible (and auto panels for unclaimed series), in order; returns
  // the ids mounted (each drawn by its mount).
  sync() {
    const mounted = new Set();
    if (this.autoPanel) {
      const known = this.panels();
      for (const name of this.view.store.names()) {
        if (!known.some((p) => claims(p, name)) && !this.auto.has(name)) {
          this.auto.set(name, this.autoPanel(name));
        }
      }
    }
    for (const panel of this.panels()) {
      if (!this.mounted.has(panel.id) && this.visible(panel)) {
        this.mount(panel);
        mounted.add(panel.id);
      }
    }
    return mounted;
  }

  mount(panel) {
    const el = h("div", { class: "plot", id: `plot-${panel.id}` });
    const errorBox = h("div", { class: "notice notice-error", role: "alert", hidden: true });
    const controls = h("div", { class: "panel-controls" });
    const card = h(
      "article",
      { class: "card panel", id: `panel-${panel.id}`, dataset: { panel: panel.id } },
      h("header", {}, h("h3", { title: panel.description }, panel.title ?? panel.id), controls, this.arrangeButtons(panel)),
      errorBox,
      el,
    );
    const ctx = this.context(panel, card, el, errorBox);
    for (const control of panel.controls) {
      const input = h("input", {
        type: "checkbox",
        name: `${panel.id}.${control.key}`,
        checked: Boolean(control.value),
        onchange: () => {
          ctx.local[control.key] = input.checked;
          this.render(panel.id);
        },
      });
      controls.append(h("label", { class: "check" }, input, " ", control.label));
    }
    const after = this.panels().find((p) => p.order > panel.order && this.mounted.has(p.id));
    this.container.insertBefore(card, after ? this.mounted.get(after.id).ctx.card : null);
    this.mounted.set(panel.id, { panel, ctx });
    this.arrange(panel.id);
    this.observer.observe(card);
    this.visibility.observe(card);
    this.safely(panel, ctx, () => panel.render(ctx));
  }

  // Collapse, move and hide buttons of a panel's header.
  arrangeButtons(panel) {
    const button = (text, label, onclick) =>
      h("button", { type: "button", class: "icon small", title: label, "aria-label": `${label}: ${panel.title ?? panel.id}`, onclick }, text);
    return h(
      "div",
      { class: "panel-arrange" },
      button("↑", "move up", () => this.move(panel.id, -1)),
      button("↓", "move down", () => this.move(panel.id, 1)),
      button("–", "collapse or expand", () => this.setCollapsed(panel.id, !this.layout?.isCollapsed(panel.id))),
      button("×", "hide", () => this.setHidden(panel.id, true)),
    );
  }

  // Applies the layout to a mounted panel's card: position, hidden, collapsed.
  arrange(id) {
    const entry = this.mounted.get(id);
    if (!entry || !this.layout) return;
    const { card } = entry.ctx;
    card.style.order = String(Math.round(this.layout.orderOf(entry.panel) * 100));
    card.hidden = this.layout.isHidden(id);
    card.classList.toggle("collapsed", this.layout.isCollapsed(id));
  }

  setHidden(id, hidden) {
    this.layout?.toggle("hidden", id, hidden);
    this.arrange(id);
    this.onLayout();
  }

  setCollapsed(id, collapsed) {
    this.layout?.toggle("collapsed", id, collapsed);
    this.arrange(id);
  }

  // Moves a panel one place up or down among the visible ones.
  move(id, direction) {
    if (!this.layout) return;
    const shown = [...this.mounted.values()]
      .filter(({ panel }) => !this.layout.isHidden(panel.id))
      .map(({ panel }) => panel)
      .sort((a, b) => this.layout.orderOf(a) - this.layout.orderOf(b));
    const i = shown.findIndex((p) => p.id === id);
    const other = shown[i + direction];
    if (i < 0 || !other) return;
    this.layout.swap(shown[i], other);
    this.arrange(id);
    this.arrange(other.id);
    this.onLayout();
  }

  // The mounted panels the layout hides: [{id, title}].
  hiddenPanels() {
    return [...this.mounted.values()]
      .filter(({ panel }) => this.layout?.isHidden(panel.id))
      .map(({ panel }) => ({ id: panel.id, title: panel.title ?? panel.id }));
  }

  resetLayout() {
    this.layout?.reset();
    for (const id of this.mounted.keys()) this.arrange(id);
    this.onLayout();
  }

  safely(panel, ctx, fn, fallback) {
    try {
      const result = fn();
      if (ctx) ctx.errorBox.hidden = true;
      return result;
    } catch (error) {
      console.error(`panel ${panel.id}:`, error);
      if (ctx) {
        ctx.errorBox.textContent = `This panel failed: ${error.message}`;
        ctx.errorBox.hidden = false;
      }
      return fallback;
    }
  }

  render(id) {
    clearTimeout(this.stale.get(id));
    this.stale.delete(id);
    const entry = this.mounted.get(id);
    if (entry) this.safely(entry.panel, entry.ctx, () => entry.panel.render(entry.ctx));
  }

  // Re-renders every mounted panel (or those `filter` accepts), e.g. after an option changed;
  // a panel mounted now is drawn once, by its mount.
  renderAll(filter = () => true) {
    const fresh = this.sync();
    for (const { panel } of this.mounted.values()) if (filter(panel) && !fresh.has(panel.id)) this.render(panel.id);
  }

  // New points, already appended to the store: each panel gets the part it claims.
  update(delta) {
    for (const { panel, ctx } of this.mounted.values()) {
      const mine = pick(delta, panel);
      if (!mine) continue;
      if (this.stale.has(panel.id)) continue; // its catch-up redraws from the store
      if (!this.onScreen.has(ctx.card)) {
        this.stale.set(panel.id, setTimeout(() => this.render(panel.id), OFFSCREEN_MS));
        continue;
      }
      this.safely(panel, ctx, () => (panel.update ? panel.update(ctx, mine) : panel.render(ctx)));
    }
    this.sync();
  }

  statusChanged() {
    for (const id of [...this.stale.keys()]) this.render(id); // the final points, everywhere
    for (const { panel, ctx } of this.mounted.values()) {
      if (panel.onStatus) this.safely(panel, ctx, () => panel.onStatus(ctx));
    }
  }

  // The selected step changed (ctx.options.step): step-indexed panels move to their probe step
  // for it (charts.js probeStepFor), scalar panels draw their cursor there.
  stepChanged() {
    for (const { panel, ctx } of this.mounted.values()) {
      this.safely(panel, ctx, () => (panel.onStep ? panel.onStep(ctx) : panel.render(ctx)));
    }
  }

  eventsChanged() {
    for (const { panel, ctx } of this.mounted.values()) {
      this.safely(panel, ctx, () => (panel.onEvents ? panel.onEvents(ctx) : panel.render(ctx)));
    }
    this.sync();
  }
}
