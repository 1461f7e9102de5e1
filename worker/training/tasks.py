"""The task registry: each RunConfig task kind builds its data set and model.

Data sets are made in code or shipped in a package (scikit-learn's digits); nothing is downloaded.
A new task is a schema class in ``server.schemas`` plus one builder registered here, or a plugin
package's entry point (``server.plugins``, docs/plugins.md), whose builder is imported here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

import torch
from sklearn.datasets import load_digits
from torch import nn

from server.config import get_settings
from server.schemas import (
    PLUGIN_TASKS,
    DatasetTask,
    DigitsTask,
    GaussianMixtureTask,
    ModularTask,
    OpposingSignalsTask,
)
from server.task_specs import task_spec
from worker.training.datasets import build_dataset_task
from worker.training.models import DigitsCNN, EmbeddingMLP, ModularTransformer, mlp
from worker.training.opposing_data import make_opposing_signals
from worker.training.task import Task
from worker.training.zoo import with_model

__all__ = ["REGISTRY", "Task", "build_task", "register"]


Builder = Callable[..., Task]
REGISTRY: dict[str, Builder] = {}


def register(kind: str) -> Callable[[Builder], Builder]:
    def add(builder: Builder) -> Builder:
        REGISTRY[kind] = builder
        return builder

    return add


def plugin_builder(kind: str) -> Builder:
    """The builder of an installed plugin's task (``server.plugins``): its ``BUILDER`` string,
    imported here, in the worker, never in the server."""
    plugin = PLUGIN_TASKS.get(kind)
    if plugin is None:
        raise ValueError(f"no builder registered for task kind {kind!r}")
    module, _, name = plugin.builder.partition(":")
    builder = getattr(importlib.import_module(module), name, None)
    if not callable(builder):
        raise TypeError(f"task plugin {kind!r} ({plugin.source}): {plugin.builder} is not callable")
    return builder


def build_task(config: object, seed: int, model: object | None = None) -> Task:
    """Build the data (seeded split) and the model (initialised from ``seed``): the task's own,
    or with ``model`` (``RunConfig.model``) the zoo's; a ``dataset`` task reads this worker's
    ``OBS_DATASETS_DIR`` and has no model of its own."""
    kind = config.kind  # type: ignore[attr-defined]
    if isinstance(config, DatasetTask):
        return build_dataset_task(config, seed, model, get_settings())
    builder = REGISTRY.get(kind) or plugin_builder(kind)
    task = builder(config, seed)
    if not isinstance(task, Task):
        raise TypeError(f"the builder of task {kind!r} returned {type(task).__name__}, not a Task")
    if model is None:
        return task
    spec = task_spec(config)
    if spec is None:
        raise ValueError(f"task kind {kind!r} keeps its own model")
    return with_model(task, model, spec, seed)


def _split(x: torch.Tensor, y: torch.Tensor, train_fraction: float, seed: int):  # noqa: ANN202
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(y), generator=generator)
    cut = max(1, min(len(y) - 1, round(train_fraction * len(y))))
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


MODULAR_OPS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    "add": lambda a, b, p: (a + b) % p,
    "sub": lambda a, b, p: (a - b) % p,
    "mul": lambda a, b, p: (a * b) % p,
    "div": lambda a, b, p: (a * torch.tensor([pow(int(v), p - 2, p) for v in b])) % p,
    "poly": lambda a, b, p: (a * a + a * b + b * b) % p,
}


@register("modular")
def modular(config: ModularTask, seed: int) -> Task:
    p = config.p
    a, b = torch.cartesian_prod(torch.arange(p), torch.arange(p)).unbind(1)
    if config.op == "div":  # b = 0 has no inverse
        a, b = a[b != 0], b[b != 0]
    y = MODULAR_OPS[config.op](a, b, p)
    x = torch.stack([a, b], dim=1)
    train_x, train_y, test_x, test_y = _split(x, y, config.train_fraction, seed)
    torch.manual_seed(seed)
    if config.model == "transformer":
        model: nn.Module = ModularTransformer(
            p, config.embed_dim, config.heads, config.hidden, config.layer_norm
        )
    else:
        model = EmbeddingMLP(p, config.embed_dim, config.hidden)
    return Task(train_x, train_y, test_x, test_y, model, p)


@register("digits")
def digits(config: DigitsTask, seed: int) -> Task:
    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    y = torch.tensor(bunch.target, dtype=torch.long)
    train_x, train_y, test_x, test_y = _split(x, y, 1 - config.test_fraction, seed)
    if config.train_size is not None:
        train_x, train_y = train_x[: config.train_size], train_y[: config.train_size]
    torch.manual_seed(seed)
    if config.model == "cnn":
        train_x, test_x = train_x.view(-1, 1, 8, 8), test_x.view(-1, 1, 8, 8)
        model: nn.Module = DigitsCNN(config.hidden)
    else:
        model = mlp(64, config.hidden, config.depth, 10, batch_norm=config.batch_norm)
    return Task(train_x, train_y, test_x, test_y, model, 10, image_shape=(8, 8))


@register("gaussian_mixture")
def gaussian_mixture(config: GaussianMixtureTask, seed: int) -> Task:
    generator = torch.Generator().manual_seed(seed)
    means = torch.randn(config.n_classes, config.dim, generator=generator)
    means = config.separation * means / means.norm(dim=1, keepdim=True)

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        y = torch.randint(config.n_classes, (n,), generator=generator)
        return means[y] + torch.randn(n, config.dim, generator=generator), y

    train_x, train_y = sample(config.n_train)
    test_x, test_y = sample(config.n_test)
    torch.manual_seed(seed)
    model = mlp(config.dim, config.hidden, config.depth, config.n_classes)
    return Task(train_x, train_y, test_x, test_y, model, config.n_classes)


@register("opposing_signals")
def opposing_signals(config: OpposingSignalsTask, seed: int) -> Task:
    """One draw of ``n_train + n_test`` examples (the labels are in random order), split in two."""
    data = make_opposing_signals(
        config.n_train + config.n_test,
        config.dim,
        config.n_classes,
        config.planted_fraction,
        config.planted_scale,
        separation=config.separation,
        noise=config.noise,
        seed=seed,
    )
    cut = config.n_train
    torch.manual_seed(seed)
    model = mlp(config.dim, config.hidden, config.depth, config.n_classes)
    return Task(
        data.inputs[:cut],
        data.labels[:cut],
        data.inputs[cut:],
        data.labels[cut:],
        model,
        config.n_classes,
        planted=data.planted[:cut],
    )
