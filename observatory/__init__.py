"""Observe your own PyTorch training loop: ``observatory.init`` starts a run on the server,
``run.log`` records scalars, ``run.probes(...)`` runs the service's probes (Hessian/edge of
stability, loss landscape, opposing signals, neural collapse, grokking) inside the loop.

    import observatory as obs
    run = obs.init(name="resnet-lr0.1", config={"lr": 0.1})
    probes = run.probes(model, loss_fn, probe_data, hessian={"every": 50, "k": 5})
    for step, (x, y) in enumerate(loader):
        probes.step(step, optimizer=opt)
        ...
        run.log({"train.loss": loss}, step=step)
    run.finish()

See docs/sdk.md.
"""

from observatory import probes
from observatory.run import Run, init
from observatory.scheduler import Probes

__all__ = ["Probes", "Run", "init", "probes"]
