"""The training loop, free of Celery and the database: it reports through a ``Reporter``.

Step semantics: "step s" means the weights after s optimizer updates, θ_s.  Every iteration runs
the probes due at s on θ_s, one forward/backward pass on a batch, logs at s if due (train metrics,
test metrics on θ_s, the learning rate, ‖∇L(θ_s)‖ and ‖θ_s‖), then updates to θ_{s+1}.  The last
iteration (s = steps) logs without updating.  A checkpoint at s holds θ_s and every RNG state, so
a resumed run replays from s exactly; its writes are upserts, so nothing is duplicated.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import nn

from server.schemas import OptimizerConfig, RunConfig
from worker.training import precision as mixed
from worker.training.checkpoint import CheckpointStore
from worker.training.task import Task, correct_count, cross_entropy_sum
from worker.training.tasks import build_task

log = logging.getLogger(__name__)


class Reporter(Protocol):
    def metrics(self, step: int, values: dict[str, float]) -> None: ...

    def event(self, step: int, kind: str, payload: dict[str, Any]) -> None: ...

    def arrays(self, probe: str, step: int, arrays: dict, meta: dict) -> None: ...

    def flush(self) -> None: ...

    def stop_reason(self, step: int) -> str | None:
        """Heartbeat.  "cancelled" (or taken over): stop now; "interrupted": the worker shuts
        down, so checkpoint and stop; None: go on."""
        ...


@dataclass
class StepContext:
    """What a probe hook sees at step s (θ_s, before the update).

    ``loss`` is the train loss of step s - 1 (θ_{s-1} on its batch), detached and still on the
    device (reading it is a host sync; a hook that needs every step's loss can collect them and
    read them in one go); ``None`` at the first step of a run or of a resume.
    """

    step: int
    config: RunConfig
    task: Task
    model: nn.Module
    optimizer: torch.optim.Optimizer
    device: torch.device
    reporter: Reporter
    lr: float
    loss: torch.Tensor | None = None


class StepHook(Protocol):
    """A probe scheduled by the loop; its state must survive a checkpoint (weights_only)."""

    name: str

    def __call__(self, ctx: StepContext) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Outcome:
    status: str  # "completed" | "cancelled" | "interrupted" | "failed" (diverged; extra["error"])
    step: int
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' requested but this worker has no CUDA device")
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


def make_optimizer(config: OptimizerConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.name == "sgd":
        return torch.optim.SGD(
            params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    cls = torch.optim.AdamW if config.name == "adamw" else torch.optim.Adam
    return cls(params, lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)


def make_schedule(
    config: OptimizerConfig, optimizer: torch.optim.Optimizer, steps: int
) -> torch.optim.lr_scheduler.LRScheduler:
    warmup = config.warmup_steps if config.schedule == "warmup_cosine" else 0

    def factor(step: int) -> float:
        if config.schedule == "constant":
            return 1.0
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, steps - warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    batch: int = 4096,
    task: Task | None = None,
) -> tuple[float, float]:
    """Mean loss and accuracy in eval mode (mode restored); per example, as ``task`` counts
    them (default: classification)."""
    was_training = model.training
    model.eval()
    loss_sum, correct = 0.0, 0.0
    loss_of, correct_of = (
        (task.loss_sum, task.correct) if task else (cross_entropy_sum, correct_count)
    )
    for start in range(0, len(y), batch):
        out = model(x[start : start + batch])
        target = y[start : start + batch]
        loss_sum += float(loss_of(out, target))
        correct += float(correct_of(out, target))
    model.train(was_training)
    return loss_sum / len(y), correct / len(y)


class Batches:
    """Epochs of seeded random permutations (or the whole set for full batch); checkpointable."""

    def __init__(self, n: int, batch_size: int | None, seed: int, device: torch.device) -> None:
        self.n, self.batch_size, self.device = n, batch_size, device
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.arange(n)
        self.pos = n  # forces a fresh permutation on the first draw

    def next(self) -> torch.Tensor | None:
        """Indices of the next batch; None means the whole training set."""
        if self.batch_size is None or self.batch_size >= self.n:
            return None
        if self.pos + self.batch_size > self.n:
            self.order = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
        idx = self.order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx.to(self.device)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state(), "order": self.order, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.pos = state["order"], state["pos"]


def train(
    config: RunConfig,
    reporter: Reporter,
    *,
    checkpoints: CheckpointStore | None = None,
    hooks: Sequence[StepHook] = (),
    max_parameters: int | None = None,
    log_metrics: bool = True,
) -> Outcome:
    """Train ``config`` to its last step, or until the reporter says stop.

    ``log_metrics=False`` switches all metric logging off (the logging-overhead baseline).
    """
    device = resolve_device(config.device)
    task = build_task(config.task, config.seed, config.model)
    model = task.model
    n_params = count_parameters(model)
    if max_parameters is not None and n_params > max_parameters:
        raise ValueError(f"model has {n_params} parameters, above the limit {max_parameters}")
    model.to(device)
    train_x, train_y = task.train_x.to(device), task.train_y.to(device)
    test_x, test_y = (
        task.test_x[: config.eval_max_examples],
        task.test_y[: config.eval_max_examples],
    )
    test_x, test_y = test_x.to(device), test_y.to(device)
    optimizer = make_optimizer(config.optimizer, model)
    schedule = make_schedule(config.optimizer, optimizer, config.steps)
    precision = mixed.for_run(config, model, device)
    batches = Batches(len(train_y), config.batch_size, config.seed + 1, device)
    window = [0.0, 0.0, 0]  # loss sum, correct, examples since the last log

    step = 0
    state = checkpoints.load() if checkpoints else None
    if state is not None:
        step = state["step"]
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        batches.load_state_dict(state["batches"])
        precision.load_state_dict(state.get("precision", {}))
        torch.set_rng_state(state["rng"])
        window = list(state["window"])
        for hook in hooks:
            hook.load_state_dict(state["hooks"].get(hook.name, {}))
        log.info("%s: resuming from the checkpoint at step %d", checkpoints.label, step)
    torch.manual_seed(config.seed + 2 + step)  # dropout etc. continue alike after a resume

    model.train()
    start, last_loss = step, None
    if step == 0 and (dropped := precision.event()):
        reporter.event(0, "run.precision", dropped)
    while True:
        reason = reporter.stop_reason(step)
        periodic = step != start and step % config.checkpoint_every == 0
        if checkpoints and (periodic or reason == "interrupted"):
            reporter.flush()  # the points up to here are stored before the checkpoint claims them
            checkpoints.save(
                {
                    "step": step,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "schedule": schedule.state_dict(),
                    "batches": batches.state_dict(),
                    "precision": precision.state_dict(),
                    "rng": torch.get_rng_state(),
                    "window": [float(window[0]), float(window[1]), window[2]],
                    "hooks": {hook.name: hook.state_dict() for hook in hooks},
                }
            )
        if reason is not None:
            reporter.flush()
            return Outcome(reason, step)
        lr = optimizer.param_groups[0]["lr"]
        ctx = StepContext(step, config, task, model, optimizer, device, reporter, lr, last_loss)
        for hook in hooks:
            hook(ctx)

        idx = batches.next()
        x, y = (train_x, train_y) if idx is None else (train_x[idx], train_y[idx])
        if task.augment is not None:
            x = task.augment(x, step)
        due = log_metrics and (step % config.log_every == 0 or step == config.steps)
        with precision.autocast():
            out = precision.forward(x)
            loss = task.loss_fn(out, y)
        optimizer.zero_grad(set_to_none=True)
        precision.backward(loss, optimizer)
        last_loss = loss.detach()
        if log_metrics and (due or idx is not None):  # full batch: the metrics are exactly θ_s's
            # Summed on the device: no host sync per step (GPU), converted when logged.
            window[0] = window[0] + loss.detach() * len(y)
            window[1] = window[1] + task.correct(out.detach(), y)
            window[2] += len(y)
        if due:
            values = _log_values(config, task, model, window, train_x, train_y, test_x, test_y, lr)
            reporter.metrics(step, values)
            window = [0.0, 0.0, 0]
            if config.on_divergence == "stop" and not math.isfinite(values["train.loss"]):
                reporter.event(step, "run.diverged", {"loss": str(values["train.loss"])})
                reporter.flush()
                error = f"diverged at step {step} (loss={values['train.loss']})"
                return Outcome("failed", step, {"error": error})
        if step >= config.steps:
            break
        precision.step(optimizer)
        schedule.step()
        step += 1
    reporter.flush()
    return Outcome("completed", step, {"parameters": n_params})


def _log_values(
    config: RunConfig,
    task: Task,
    model: nn.Module,
    window: list,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    test_x: torch.Tensor,
    test_y: torch.Tensor,
    lr: float,
) -> dict[str, float]:
    if config.train_metrics == "full":
        n = config.eval_max_examples
        train_loss, train_acc = evaluate(model, train_x[:n], train_y[:n], task=task)
    else:
        train_loss, train_acc = float(window[0]) / window[2], float(window[1]) / window[2]
    test_loss, test_acc = evaluate(model, test_x, test_y, task=task)
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    with torch.no_grad():
        grad_norm = (
            torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else 0
        )
        weight_norm = torch.linalg.vector_norm(
            torch.stack(torch._foreach_norm(list(model.parameters())))
        )
    return {
        "train.loss": train_loss,
        "train.acc": train_acc,
        "test.loss": test_loss,
        "test.acc": test_acc,
        "lr": lr,
        "grad_norm": float(grad_norm),
        "weight_norm": float(weight_norm),
    }
