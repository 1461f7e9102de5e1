// Every scalar series the worker and its probes log, in one place: a human title, the unit and
// what the value means. Chart legends, axis titles, auto panels and the runs table's summary
// columns read it, so no raw series name (`hessian.trace_se`) reaches the page. A family entry
// ("grok.weight_norm.*", "nc.*.nc1") covers the per-layer members; `{}` in its title is what the
// `*` stands for.
// tests/e2e/test_dashboard_defects.py checks that every series a run with all probes logs has
// an entry here.

const ENTRIES = {
  "train.loss": ["train loss", "loss", "Mean loss on the training batch of the step (on the full train set with train_metrics = full)."],
  "test.loss": ["test loss", "loss", "Mean loss on the held-out test set."],
  "train.acc": ["train accuracy", "fraction", "Fraction of training examples classified correctly."],
  "test.acc": ["test accuracy", "fraction", "Fraction of held-out test examples classified correctly."],
  lr: ["learning rate", "lr", "The optimizer's learning rate at the step (after the schedule)."],
  grad_norm: ["gradient norm ‖∇L‖", "‖∇L‖", "Euclidean norm of the loss gradient over all parameters."],
  weight_norm: ["weight norm ‖θ‖", "‖θ‖", "Euclidean norm of all parameters."],
  "hessian.lambda_max": ["sharpness λ_max(H)", "eigenvalue", "Largest eigenvalue of the loss Hessian on the probe batch (Lanczos)."],
  "hessian.lambda_min": ["λ_min(H)", "eigenvalue", "Smallest eigenvalue of the loss Hessian on the probe batch; negative means non-convex directions."],
  "hessian.precond_lambda_max": ["preconditioned sharpness λ_max(P⁻¹H)", "eigenvalue", "Largest eigenvalue of Adam's preconditioned Hessian: the quantity its stability threshold applies to."],
  "hessian.threshold": ["stability threshold", "eigenvalue", "The optimizer's edge-of-stability threshold at the current learning rate."],
  "hessian.batch_sharpness": ["batch sharpness E[gᵀH_B g/‖g‖²]", "eigenvalue", "Mean curvature of minibatch Hessians along their own gradients: for minibatch SGD the quantity that settles at 2/lr (arXiv 2412.20553)."],
  "hessian.trace": ["Hessian trace Tr(H)", "sum of eigenvalues", "Hutchinson estimate of the trace of the loss Hessian."],
  "hessian.trace_se": ["standard error of Tr(H)", "sum of eigenvalues", "Standard error of the Hutchinson trace estimate."],
  "hessian.eig.*": ["eigenvalue {}", "eigenvalue", "The top-k Hessian eigenvalues, 0 the largest."],
  "hessian.layer.*": ["λ_max of block {}", "eigenvalue", "Largest eigenvalue of the Hessian restricted to one parameter block."],
  "landscape.center_loss": ["loss at the surface's centre", "loss", "Loss of the current weights on the landscape's evaluation subset."],
  "landscape.curvature": ["curvature at the centre", "loss / unit²", "Largest central second difference of the loss along the surface's axes."],
  "landscape.pca_explained": ["trajectory variance in the plane", "fraction", "Fraction of the weight trajectory's variance in the top two principal directions."],
  "nc.nc1": ["NC1 within-class variability", "Tr(Σ_W Σ_B†)/C", "Within-class scatter relative to between-class scatter of the penultimate features; falls towards 0 under neural collapse."],
  "nc.equinorm": ["NC2 equinorm", "std/mean of ‖μ_c − μ_G‖", "Spread of the class-mean norms; 0 when all class means are equally long."],
  "nc.equiangular": ["NC2 equiangularity", "std of cosines", "Spread of the cosines between centred class means; 0 when all pairs meet at one angle."],
  "nc.max_angle": ["NC2 distance to the simplex angle", "mean |cos + 1/(C−1)|", "How far the class-mean cosines are from the simplex ETF's −1/(C−1)."],
  "nc.nc3": ["NC3 self-duality", "‖W/‖W‖ − M/‖M‖‖²", "Distance between the normalized classifier and the normalized class means."],
  "nc.nc4": ["NC4 nearest-centre disagreement", "fraction of examples", "Fraction of examples whose prediction differs from the nearest class mean's class."],
  "nc.*.nc1": ["NC1 of layer {}", "Tr(Σ_W Σ_B†)/C", "NC1 of the features at one named layer."],
  "grok.weight_norm": ["weight norm ‖θ‖", "‖θ‖", "Euclidean norm of all parameters, as the grokking probe measures it."],
  "grok.weight_norm.*": ["‖θ‖ of layer {}", "‖θ_layer‖", "Euclidean norm of one layer's parameters."],
  "grok.relative_change": ["relative change ‖θ−θ₀‖/‖θ₀‖", "fraction", "Distance travelled from the initialization, relative to its norm."],
  "grok.relative_change.*": ["‖θ−θ₀‖/‖θ₀‖ of layer {}", "fraction", "One layer's distance from its initialization, relative to its norm."],
  "grok.fourier_sparsity": ["Fourier sparsity of the embeddings", "fraction", "Share of the embeddings' energy in their top Fourier frequencies; rises as the network finds the modular algorithm."],
  "grok.ntk_alignment": ["NTK–label alignment", "cosine", "Alignment of the empirical neural tangent kernel with the labels."],
  "opposing.monitor_loss": ["monitor-set mean loss", "loss", "Mean loss over the opposing-signals probe's monitored examples."],
  "opposing.pairs": ["opposing pairs found", "count", "Number of rising/falling group pairs that scored above the threshold."],
  "opposing.score": ["best pair score", "score", "Score of the strongest opposing pair (empty without a pair)."],
  "opposing.alignment": ["gradient alignment with the top eigenvector", "|cosine|", "Largest |cosine| between a paired group's gradient and the top Hessian eigenvector."],
}; // prettier-ignore

function threshold(run) {
  const optimizer = run?.config?.optimizer?.name;
  if (optimizer === "sgd") return ["stability threshold 2/lr", "The edge of stability for SGD: 2/lr (with momentum β: (2 + 2β)/lr)."];
  if (optimizer === "adam" || optimizer === "adamw") return ["stability threshold 38/lr (Adam)", "Adam's edge of stability for its preconditioned sharpness: (2 + 2β₁)/((1 − β₁) lr), 38/lr at β₁ = 0.9."];
  return null;
}

// {title, unit, description} of a series; `run` (its config) refines the optimizer-dependent
// ones. Names nobody registered keep their name as title (and say so in the description).
export function describeSeries(name, run) {
  let entry = ENTRIES[name];
  let member = null;
  if (!entry) {
    for (const key of Object.keys(ENTRIES).filter((k) => k.includes("*"))) {
      const [prefix, suffix] = key.split("*");
      const fits = name.length > prefix.length + suffix.length && name.startsWith(prefix) && name.endsWith(suffix);
      if (fits && (!entry || prefix.length > entry.prefix)) {
        entry = Object.assign([...ENTRIES[key]], { prefix: prefix.length });
        member = name.slice(prefix.length, name.length - suffix.length);
      }
    }
  }
  if (!entry) return { title: name, unit: "", description: `${name} (no description registered)`, known: false };
  let [title, unit, description] = entry;
  if (name === "hessian.threshold") [title, description] = threshold(run) ?? [title, description];
  if (member !== null) title = title.replace("{}", member);
  return { title, unit, description, known: true };
}

export const seriesTitle = (name, run) => describeSeries(name, run).title;

// The exact (non-family) series names with their titles, for choosers.
export function knownSeries(run) {
  return Object.keys(ENTRIES)
    .filter((name) => !name.includes("*"))
    .map((name) => ({ name, title: describeSeries(name, run).title }));
}
