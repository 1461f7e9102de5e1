// The run page's chart controls and its view in the address: the x axis (step, wall time or
// relative time), log x, smoothing, the x-axis zoom
// shared by every line panel, hidden panels (with a way back), and "Copy link", whose address
// restores the view: compared runs (?overlay=, js/overlay.js), smoothing, log x, zoom, hidden
// panels, the step selected on the timeline (?step=, js/timeline.js).

import { X_AXES } from "./charts.js";
import { h } from "./dom.js";

// The view a link names: {xAxis, smoothing, smoothKind, logX, xRange, hidden, step} (absent parts
// undefined; step null).
export function readView(url = window.location.href) {
  const params = new URL(url).searchParams;
  const smoothing = Number(params.get("smoothing"));
  const zoom = (params.get("zoom") ?? "").split(",").map(Number);
  const step = params.has("step") ? Number(params.get("step")) : null;
  return {
    xAxis: params.get("x") in X_AXES ? params.get("x") : "step",
    smoothing: smoothing > 0 && smoothing < 1 ? smoothing : 0,
    smoothKind: params.get("smooth") === "window" ? "window" : "ema",
    logX: params.get("logx") === "1",
    xRange: zoom.length === 2 && zoom.every(Number.isFinite) && zoom[0] < zoom[1] ? zoom : null,
    hidden: params.has("hide") ? params.get("hide").split(",").filter(Boolean) : undefined,
    step: Number.isSafeInteger(step) && step >= 0 ? step : null,
  };
}

export function viewUrl(options, hidden) {
  const url = new URL(window.location.href);
  const set = (key, value) => (value ? url.searchParams.set(key, value) : url.searchParams.delete(key));
  set("x", options.xAxis === "step" ? "" : options.xAxis);
  set("smoothing", options.smoothing ? String(options.smoothing) : "");
  set("smooth", options.smoothKind === "window" ? "window" : "");
  set("logx", options.logX ? "1" : "");
  set("zoom", options.xRange ? options.xRange.map((v) => Number(v.toPrecision(6))).join(",") : "");
  set("hide", hidden.join(","));
  set("step", options.step === null || options.step === undefined ? "" : String(options.step));
  return url.href;
}

// Applies a zoom of one line panel's step axis to all of them (null: autorange).
function syncZoom(panelsEl, view) {
  let syncing = false;
  panelsEl.addEventListener("stepzoom", (event) => {
    if (syncing) return;
    syncing = true;
    view.options.xRange = event.detail;
    const change = event.detail ? { "xaxis.range": event.detail, "xaxis.autorange": false } : { "xaxis.autorange": true };
    const others = [...panelsEl.querySelectorAll(".js-plotly-plot[data-step-axis]")].filter((el) => el !== event.target);
    Promise.allSettled(others.map((el) => window.Plotly.relayout(el, change))).finally(() => {
      syncing = false;
    });
  });
}

// `onAxis(axis)` runs when the x axis changes (the page loads wall times before redrawing).
export function mountChartControls(container, { view, host, panelsEl, onAxis }) {
  const rerender = () => host.renderAll();
  const xAxis = h(
    "select",
    {
      id: "x-axis",
      "aria-label": "x axis",
      onchange: () => {
        view.options.xAxis = xAxis.value;
        view.options.xRange = null; // a range means nothing on another axis
        onAxis(xAxis.value);
      },
    },
    ...Object.entries(X_AXES).map(([value, label]) => h("option", { value }, label)),
  );
  xAxis.value = view.options.xAxis;
  const logX = h("input", {
    type: "checkbox",
    id: "log-x",
    checked: view.options.logX,
    onchange: () => {
      view.options.logX = logX.checked;
      view.options.xRange = null; // a range in steps means nothing on the other axis type
      rerender();
    },
  });
  const value = h("output", { for: "smoothing", id: "smoothing-value" }, String(view.options.smoothing));
  let pending = false;
  const smoothing = h("input", {
    type: "range",
    id: "smoothing",
    min: 0,
    max: 0.99,
    step: 0.01,
    value: String(view.options.smoothing),
    oninput: () => {
      view.options.smoothing = Number(smoothing.value);
      value.textContent = smoothing.value;
      if (!pending) {
        pending = true;
        requestAnimationFrame(() => {
          pending = false;
          rerender();
        });
      }
    },
  });
  const kind = h(
    "select",
    {
      id: "smoothing-kind",
      "aria-label": "smoothing kind",
      onchange: () => {
        view.options.smoothKind = kind.value;
        rerender();
      },
    },
    h("option", { value: "ema" }, "EMA"),
    h("option", { value: "window" }, "window mean"),
  );
  kind.value = view.options.smoothKind;
  const hiddenSelect = h("select", {
    id: "hidden-panels",
    "aria-label": "show a hidden panel",
    onchange: () => {
      if (hiddenSelect.value) host.setHidden(hiddenSelect.value, false);
    },
  });
  const reset = h("button", { type: "button", class: "secondary small", id: "reset-layout", onclick: () => host.resetLayout() }, "Reset layout");
  const copied = h("span", { class: "muted", id: "link-state", role: "status" });
  const copy = h("button", {
    type: "button",
    class: "secondary small",
    id: "copy-link",
    onclick: async () => {
      const link = viewUrl(view.options, host.hiddenPanels().map((p) => p.id));
      window.history.replaceState(null, "", link);
      try {
        await navigator.clipboard.writeText(link);
        copied.textContent = "link copied";
      } catch {
        copied.textContent = "the address bar holds the link"; // no clipboard permission
      }
    },
  }, "Copy link");
  const overlayEl = h("div", { class: "overlay" });
  container.replaceChildren(
    h("label", { for: "x-axis" }, "x ", xAxis),
    h("label", { class: "check", for: "log-x" }, logX, " log x"),
    h("label", { for: "smoothing", class: "smoothing", title: "the band under a smoothed line spans the raw minimum and maximum of the same points" }, "smoothing", kind, smoothing, value),
    overlayEl,
    h("span", { class: "spacer" }),
    hiddenSelect,
    reset,
    copy,
    copied,
  );

  function showHidden() {
    const hidden = host.hiddenPanels();
    hiddenSelect.replaceChildren(
      h("option", { value: "" }, hidden.length ? `${hidden.length} hidden panel${hidden.length > 1 ? "s" : ""}…` : "no hidden panel"),
      ...hidden.map((p) => h("option", { value: p.id }, `show ${p.title}`)),
    );
    hiddenSelect.disabled = !hidden.length;
  }
  syncZoom(panelsEl, view);
  showHidden();
  return { overlayEl, showHidden };
}
