// Spectra and landscapes of the compared runs side by side at one chosen step: per run, the
// Hessian spectral density and the loss-landscape contour stored at its probe step closest to
// the chosen one (runs probe on their own schedules). Drawn by the Hessian and landscape panels'
// own functions (js/panels/hessian.js, landscape.js), so each column reads as those panels do.

import { noteAnnotation, plotConfig, plotLayout, plotly } from "./charts.js";
import { h } from "./dom.js";
import { drawDensity } from "./panels/hessian.js";
import { contourAxes, contourTraces, isPlane, surfaceAt } from "./panels/landscape.js";

// The stored step nearest to `wanted` (the later one on a tie; null: none stored, or no wish: the last).
export function nearestStep(steps, wanted) {
  if (!steps.length) return null;
  if (wanted === null) return steps[steps.length - 1];
  return steps.reduce((best, s) => (Math.abs(s - wanted) <= Math.abs(best - wanted) ? s : best));
}

const probed = (run) => Boolean(run.config?.probes?.hessian?.density || run.config?.probes?.landscape);

// runs(): the compared runs [{id, name, color, config}], this run first.
export function mountSideBySide(container, { api, runs }) {
  const step = h("input", { type: "number", id: "side-step", min: 0, step: 1, placeholder: "latest", "aria-label": "step to compare at" });
  const grid = h("div", { class: "side-grid", id: "side-grid" });
  let drawing = Promise.resolve();
  let drawnFor = ""; // the run ids drawn: a refresh of the same runs draws nothing new
  step.addEventListener("change", () => redraw({ force: true }));
  container.replaceChildren(
    h("h2", {}, "Spectra and landscapes side by side"),
    h("label", { for: "side-step" }, "at step ", step, h("span", { class: "muted" }, " (each run: its probe step nearest to it)")),
    grid,
  );

  async function column(run, wanted) {
    const [spectra, landscapes] = await Promise.all([api.spectra(run.id), api.landscapes(run.id)]);
    const densitySteps = spectra.steps.filter((_, i) => spectra.meta[i]?.density_sigma !== undefined);
    const densityAt = nearestStep(densitySteps, wanted);
    const surfaceStep = nearestStep(landscapes.steps, wanted);
    const density = h("div", { class: "side-plot", id: `side-density-${run.id}` });
    const contour = h("div", { class: "side-plot", id: `side-contour-${run.id}` });
    const col = h(
      "div",
      { class: "side-col", dataset: { runId: String(run.id) }, style: `--chip: ${run.color}` },
      h("h3", {}, `#${run.id} ${run.name}`),
      h("p", { class: "muted side-steps" }, `density: ${densityAt === null ? "none" : `step ${densityAt}`} · landscape: ${surfaceStep === null ? "none" : `step ${surfaceStep}`}`),
      density,
      contour,
    );
    grid.append(col);
    const ctx = { el: density, runId: run.id, api, local: { logY: true }, panel: { id: "density" } };
    if (densityAt === null) empty(density, "no spectral density stored");
    else await drawDensity(ctx, densityAt);
    if (surfaceStep === null) return empty(contour, "no landscape stored");
    const result = await surfaceAt({ ...ctx, el: contour }, surfaceStep);
    if (!isPlane(result)) return empty(contour, "a 1-D landscape: see the run's page");
    plotly().react(
      contour,
      contourTraces(result.arrays, true),
      plotLayout({ height: 300, title: { text: `step ${surfaceStep}`, font: { size: 12 } }, ...contourAxes(result.meta), showlegend: false }),
      plotConfig({ runId: run.id, panel: { id: "landscape" } }, { step: surfaceStep }),
    );
  }

  function empty(el, text) {
    plotly().react(el, [], plotLayout({ height: 120, xaxis: { visible: false }, yaxis: { visible: false }, annotations: [noteAnnotation(text)] }), plotConfig({ runId: 0 }));
  }

  // Redraws every column when the compared runs changed (or `force`); calls queue behind the one
  // drawing.
  function redraw({ force = false } = {}) {
    drawing = drawing.then(async () => {
      const shown = runs().filter(probed);
      const key = shown.map((r) => r.id).join(",");
      if (key === drawnFor && !force) return;
      drawnFor = key;
      container.hidden = shown.length < 2;
      if (container.hidden) return grid.replaceChildren();
      grid.replaceChildren();
      const wanted = step.value === "" ? null : Number(step.value);
      const results = await Promise.allSettled(shown.map((run) => column(run, wanted)));
      for (const [i, r] of results.entries()) {
        if (r.status === "rejected") grid.append(h("p", { class: "notice notice-error" }, `#${shown[i].id}: ${r.reason.message}`));
      }
    });
    return drawing;
  }
  return { redraw };
}
