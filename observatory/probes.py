"""The probe library (``worker.probes``) under the public name: pure PyTorch functions over a
model, a loss function and data, usable without a run.

    from observatory.probes import hessian
    result = hessian.top_eigenvalues(model, loss_fn, [(x, y)], k=5)
"""

from worker.probes import (
    collapse,
    directions,
    grokking,
    hessian,
    landscape,
    linalg,
    opposing,
    per_example,
    spikes,
    stability,
)

__all__ = [
    "collapse",
    "directions",
    "grokking",
    "hessian",
    "landscape",
    "linalg",
    "opposing",
    "per_example",
    "spikes",
    "stability",
]
