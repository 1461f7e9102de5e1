"""The opposing-signals hook in the training loop, through an in-memory reporter (no database)."""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from server.schemas import OpposingProbe, ProbesConfig, RunConfig
from tests.recording import Recorder
from worker.probe_hooks import build_hooks
from worker.probe_hooks.explain import EXPLAIN
from worker.probe_hooks.opposing import MONITOR, PROBE, input_features, make_monitor
from worker.probe_hooks.service import ServiceHook
from worker.training.loop import StepContext, train
from worker.training.tasks import build_task


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def planted_config(**probe) -> RunConfig:  # noqa: ANN003
    return RunConfig.model_validate(
        {
            "task": {"kind": "opposing_signals", "n_train": 1024, "n_test": 128},
            "optimizer": {"name": "sgd", "lr": 0.5},
            "batch_size": 128,
            "steps": 40,
            "log_every": 10,
            "seed": 1,
            "device": "cpu",
            "probes": {"opposing": {"every": 5, "monitor_size": 512, **probe}},
        }
    )


@pytest.mark.parametrize("features", ["input", "penultimate"])
def test_monitor_losses_and_groups_are_stored_at_every_probe_step(features: str) -> None:
    config = planted_config(features=features)
    reporter = Recorder()
    train(config, reporter, hooks=build_hooks(config))
    task = build_task(config.task, config.seed)  # the data and the initial weights again
    monitor, meta0 = reporter.results[MONITOR, 0]
    idx = monitor["indices"]
    assert len(idx) == 512 and np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(monitor["labels"], task.train_y[idx].numpy())
    np.testing.assert_array_equal(monitor["planted"], task.planted[idx].numpy())
    assert meta0["planted_total"] == int(task.planted.sum()) and meta0["features"] == features
    assert "images" not in monitor and meta0["image_shape"] is None

    steps = sorted(s for p, s in reporter.results if p == PROBE)
    assert steps == list(range(0, 41, 5))
    first, meta = reporter.results[PROBE, 0]
    assert first["losses"].dtype == np.float32 and first["losses"].shape == (512,)
    with torch.no_grad():  # θ_0: the freshly initialised model, one example at a time
        expected = [
            float(
                task.example_loss_fn(task.model(task.train_x[i : i + 1]), task.train_y[i : i + 1])
            )
            for i in idx
        ]
    np.testing.assert_allclose(first["losses"], expected, rtol=0, atol=1e-6)
    assert meta["prev_step"] is None and "groups" not in meta
    for step in steps[1:]:
        _, meta = reporter.results[PROBE, step]
        assert meta["prev_step"] == step - 5 and meta["n_pairs"] == len(meta["pairs"])
        assert set(reporter.points[step]) >= {"opposing.monitor_loss", "opposing.pairs"}
        for group in meta["groups"]:
            assert set(group["members"]) <= set(idx.tolist())
        for pair in meta["pairs"]:  # the oscillation over the probe steps so far, up to 20
            assert pair["score"] >= 0.5 and pair["oscillation"]["window"] == min(20, step // 5)
    found = sum(len(reporter.results[PROBE, s][1]["pairs"]) for s in steps[1:])
    if features == "input":
        assert found > 0  # the planted examples pair up within 40 steps


def test_digits_monitor_stores_thumbnails() -> None:
    config = RunConfig.model_validate(
        {
            "task": {"kind": "digits", "hidden": 8, "train_size": 200},
            "steps": 2,
            "device": "cpu",
            "probes": {"opposing": {"every": 1, "monitor_size": 100}},
        }
    )
    reporter = Recorder()
    train(config, reporter, hooks=build_hooks(config))
    monitor, meta = reporter.results[MONITOR, 0]
    task = build_task(config.task, config.seed)
    images = monitor["images"]
    assert (
        images.shape == (100, 8, 8) and images.dtype == np.uint8 and meta["image_shape"] == [8, 8]
    )
    pixels = task.train_x[monitor["indices"]].reshape(100, 8, 8).numpy()
    np.testing.assert_allclose(images, pixels / pixels.max() * 255, rtol=0, atol=0.5)
    assert "planted" not in monitor


def fake_context(hook_config: RunConfig, task, step: int, loss: float | None, reporter):  # noqa: ANN001, ANN201
    return StepContext(
        step,
        hook_config,
        task,
        task.model,
        None,  # type: ignore[arg-type]  # the hook never touches the optimizer
        torch.device("cpu"),
        reporter,
        0.1,
        None if loss is None else torch.tensor(loss),
    )


def test_spikes_name_the_groups_before_them_and_survive_a_checkpoint() -> None:
    config = planted_config(every=10, monitor_size=64)
    task = build_task(config.task, config.seed)
    losses = np.full(80, 1.0) + 0.01 * np.sin(np.arange(80))
    losses[40] = 5.0  # a spike before the checkpoint at 46
    losses[52] = 4.0  # and one 6 steps after it: needs the restored detector history
    reporter = Recorder()
    hook = ServiceHook("opposing")
    for step in range(46):
        hook(fake_context(config, task, step, None if step == 0 else losses[step - 1], reporter))
    assert ("loss.spike", 40) not in reporter.events  # read at the next probe step or checkpoint
    buffer = io.BytesIO()
    torch.save({"hooks": {hook.name: hook.state_dict()}}, buffer)
    assert reporter.events["loss.spike", 40]["loss"] == 5.0
    groups = reporter.events["opposing.groups", 40]
    assert groups["probe_steps"] == [30, 40]
    assert [f["step"] for f in groups["found"]] == [30, 40]
    stored = reporter.results[PROBE, 40][1]
    assert [(g["id"], g["kind"], g["size"]) for g in groups["found"][1]["groups"]] == [
        (i, g["kind"], len(g["members"])) for i, g in enumerate(stored["groups"])
    ]
    assert len(groups["found"][1]["pairs"]) == stored["n_pairs"]

    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)["hooks"][hook.name]
    resumed, replay = ServiceHook("opposing"), Recorder()
    resumed.load_state_dict(state)
    for step in range(46, 61):
        resumed(fake_context(config, task, step, None if step == 46 else losses[step - 1], replay))
    assert sorted(replay.events) == [("loss.spike", 52), ("opposing.groups", 52)]
    # each spike's card, at the probe step after it: the one read before the checkpoint too
    cards = {s: meta for (p, s), (_, meta) in replay.results.items() if p == EXPLAIN}
    assert sorted(cards) == [40, 52]
    assert [(cards[s]["probe_step"], cards[s]["prev_step"]) for s in (40, 52)] == [
        (50, 40),
        (60, 50),
    ]
    assert cards[40]["sharpness"]["before"] is None  # θ_40 is not checkpointed
    assert cards[52]["sharpness"]["before"]["step"] == 50
    assert replay.events["opposing.groups", 52]["probe_steps"] == [40, 50]
    assert replay.results[PROBE, 50][1]["prev_step"] == 40  # the loss history came back too


@pytest.mark.skipif(
    "hessian" not in ProbesConfig.model_fields, reason="the Hessian probe is not in the service"
)
def test_alignment_with_the_top_eigenvector_where_the_hessian_probe_runs() -> None:
    base = planted_config().model_dump()
    base["probes"]["hessian"] = {"every": 10, "k": 1, "batch_size": 256}
    base["steps"] = 60
    config = RunConfig.model_validate(base)
    reporter = Recorder()
    train(config, reporter, hooks=build_hooks(config))
    aligned = []
    for (probe, step), (_, meta) in reporter.results.items():
        if probe != PROBE or not meta.get("pairs"):
            continue
        paired = {i for p in meta["pairs"] for i in (p["rising"], p["falling"])}
        has = {i for i in paired if "alignment" in meta["groups"][i]}
        assert has == (paired if step % 10 == 0 else set())
        if step % 10 == 0:
            aligned.append(step)
            cosines = [abs(meta["groups"][i]["alignment"]["cosine"]) for i in paired]
            assert reporter.points[step]["opposing.alignment"] == pytest.approx(max(cosines))
            assert meta["cost"]["n_hvp"] > 0
    assert aligned  # at least one probe step had both pairs and the Hessian probe


def test_invalid_opposing_configs_name_the_field() -> None:
    def locs(data: dict) -> list[tuple]:
        with pytest.raises(ValidationError) as info:
            RunConfig.model_validate(data)
        return [tuple(e["loc"]) for e in info.value.errors()]

    assert locs({"probes": {"opposing": {"monitor_size": 10**6}}}) == [
        ("probes", "opposing", "monitor_size")
    ]
    assert locs({"probes": {"opposing": {"k": 3, "min_size": 4}}}) == [
        ("probes", "opposing", "min_size")
    ]
    assert locs({"probes": {"opposing": {"features": "logits"}}}) == [
        ("probes", "opposing", "features")
    ]
    assert locs({"task": {"kind": "opposing_signals", "dim": 4, "n_classes": 4}}) == [
        ("task", "opposing_signals", "dim")
    ]
    assert locs({"task": {"kind": "opposing_signals", "planted_fraction": 0.9}}) == [
        ("task", "opposing_signals", "planted_fraction")
    ]


def test_no_card_and_no_failure_when_the_weights_diverged_after_a_spike() -> None:
    config = planted_config(every=10, monitor_size=64)
    task = build_task(config.task, config.seed)
    losses = np.full(30, 1.0) + 0.01 * np.sin(np.arange(30))
    losses[14] = 5.0
    reporter, hook = Recorder(), ServiceHook("opposing")
    for step in range(21):
        if step == 20:  # diverged between the spike and the next probe step
            with torch.no_grad():
                next(task.model.parameters()).fill_(float("nan"))
        hook(fake_context(config, task, step, None if step == 0 else losses[step - 1], reporter))
    assert ("loss.spike", 14) in reporter.events
    assert not [key for key in reporter.results if key[0] == EXPLAIN]
    assert hook.state_dict()["unexplained"] == []  # dropped, not retried forever


def test_token_sequences_are_grouped_on_their_token_frequencies() -> None:
    tokens = torch.tensor([[0, 1, 1, 2], [2, 1, 0, 1], [3, 3, 3, 3]])
    features = input_features(tokens)
    np.testing.assert_array_equal(features[0], [0.25, 0.5, 0.25, 0.0])
    np.testing.assert_array_equal(features[0], features[1])  # the same tokens, reordered
    np.testing.assert_array_equal(features[2], [0.0, 0.0, 0.0, 1.0])
    images = torch.rand(3, 1, 2, 2)  # anything else: the flattened inputs
    np.testing.assert_array_equal(input_features(images), images.flatten(1).numpy())
    config = OpposingProbe(every=1, monitor_size=8)
    grouped = {
        name: make_monitor(config, x, torch.zeros(len(x)), np.arange(len(x)), "cpu", n_train=3)
        for name, x in [("text", tokens), ("images", images)]
    }
    assert grouped["text"].meta["grouped_on"] == "token frequencies"
    assert grouped["images"].meta["grouped_on"] == "inputs"
