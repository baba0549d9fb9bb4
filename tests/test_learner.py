"""The learner's promises: forget-free bit-exactly, frozen weights never move, determinism,
resume, and real accuracy on real MNIST (the embedded subset)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from conftest import builtin_learner, tiny_config

from tinysubnets import run
from tinysubnets.artifact.layout import owners_from_masks
from tinysubnets.compression.value_coding import decode_values
from tinysubnets.config import PruneConfig, QuantizeConfig
from tinysubnets.errors import ConfigError, ShapeError, TaskIdError
from tinysubnets.scenarios import build_scenario


def test_share_ratio_zero_keeps_a_layers_masks_disjoint() -> None:
    cfg = tiny_config()
    train = dataclasses.replace(cfg.train, layer_keep_ratio={"fc1": 0.6, "fc2": 1.0},
                                layer_share_ratio={"fc1": 0.0})
    scenario = build_scenario(cfg)
    learner = builtin_learner(dataclasses.replace(cfg, train=train))
    for task in scenario.tasks:
        learner.add_head(task.n_classes)
        learner.learn(task, task.split("train"), task.split("val"), progress=False)
    fc1 = [m["fc1.weight"] for m in learner.masks]
    assert all(not (fc1[i] & fc1[j]).any() for i in range(3) for j in range(i))
    assert (learner.masks[1]["fc2.weight"] & learner.masks[0]["fc2.weight"]).any()  # shared
    with pytest.raises(ConfigError, match="layer_share_ratio names unknown layers"):
        builtin_learner(dataclasses.replace(cfg, train=dataclasses.replace(
            train, layer_share_ratio={"fc9": 0.0})))
    with pytest.raises(ConfigError, match="share ratio of layer fc1"):
        dataclasses.replace(train, layer_share_ratio={"fc1": 1.5}).validate()


def _fixed_inputs() -> torch.Tensor:
    return torch.randn(64, 784, generator=torch.Generator().manual_seed(123))


def test_forget_free_bit_exact_logits() -> None:
    cfg = tiny_config()
    scenario = build_scenario(cfg)
    learner = builtin_learner(cfg)
    x = torch.cat([_fixed_inputs(), scenario.tasks[0].split("test").x[:64]])
    seen: dict[int, torch.Tensor] = {}
    for t, task in enumerate(scenario.tasks):
        learner.add_head(task.n_classes)
        learner.learn(task, task.split("train"), task.split("val"), progress=False)
        seen[t] = learner.logits(x, t)
        for j, logits in seen.items():
            assert torch.equal(learner.logits(x, j), logits), f"task {j} changed"
    # The later tasks really trained: they moved free weights and used some of their own.
    assert all(learner.masks[t]["fc1.weight"].any() for t in range(3))
    owners = learner.net.masked_layers()["fc1.weight"].owner
    assert set(owners.unique().tolist()) >= {0, 1}


def test_each_finished_task_records_exactly_what_it_froze() -> None:
    """Invariant 2: one owner per value, the first task whose mask holds it; the record that
    the model file writes holds that owner's frozen values, bit for bit."""
    cfg = tiny_config()
    scenario = build_scenario(cfg)
    learner = builtin_learner(cfg)
    for task in scenario.tasks:
        learner.add_head(task.n_classes)
        learner.learn(task, task.split("train"), task.split("val"), progress=False)
    for name, layer in learner.net.masked_layers().items():
        owner = owners_from_masks([m[name].numpy().ravel() for m in learner.masks])
        assert np.array_equal(owner, layer.owner.numpy().ravel()), name
        frozen = layer.frozen.numpy().ravel()
        for t, record in enumerate(learner.finished):
            values = decode_values(record.block(name), int((owner == t).sum()))
            assert np.array_equal(values.view(np.uint32), frozen[owner == t].view(np.uint32))
    assert [f.name for f in learner.finished] == [t.name for t in scenario.tasks]
    assert all(set(f.bits) == {"fc1.weight", "fc2.weight", "head"} for f in learner.finished)


@pytest.mark.parametrize(
    "optimizer, extra",
    [("sgd", {"momentum": 0.9, "weight_decay": 0.05}), ("adam", {"weight_decay": 0.05}),
     ("adamw", {"weight_decay": 0.5})],
)
def test_frozen_weights_never_move(optimizer: str, extra: dict) -> None:
    cfg = tiny_config(optimizer=optimizer, lr=0.05 if optimizer == "sgd" else 0.01, **extra)
    scenario = build_scenario(dataclasses.replace(cfg, tasks=2))
    # Training alone (post-pruning may empty a layer of this tiny model's first task).
    off = PruneConfig(enabled=False), QuantizeConfig(enabled=False)
    learner = builtin_learner(dataclasses.replace(cfg, prune=off[0], quantize=off[1]))
    first, second = scenario.tasks
    learner.add_head(first.n_classes)
    learner.learn(first, first.split("train"), first.split("val"), progress=False)
    layers = learner.net.masked_layers()
    before = {n: (m.frozen.clone(), m.owner.clone(), m.effective_weight().detach().clone())
              for n, m in layers.items()}
    head0 = {k: v.clone() for k, v in learner.net.heads[0].state_dict().items()}
    learner.add_head(second.n_classes)
    learner.learn(second, second.split("train"), second.split("val"), progress=False)
    for name, layer in layers.items():
        frozen, owner, effective = before[name]
        claimed = owner >= 0
        assert torch.equal(layer.frozen[claimed], frozen[claimed]), name
        assert torch.equal(layer.owner[claimed], owner[claimed]), name
        assert torch.equal(layer.effective_weight()[claimed], effective[claimed]), name
        # The trainable tensor did move (weight decay acts on it), but never reaches the task.
        assert not torch.equal(layer.weight.detach()[claimed], effective[claimed]), name
    for k, v in learner.net.heads[0].state_dict().items():
        assert torch.equal(v, head0[k]), f"head 0 {k} moved"


def test_same_seed_same_accuracy_matrix() -> None:
    cfg = dataclasses.replace(tiny_config(), tasks=2)
    first, _ = run(cfg, progress=False)
    second, _ = run(cfg, progress=False)
    assert first.R == second.R
    assert first.baseline == second.baseline
    other, _ = run(dataclasses.replace(cfg, seed=cfg.seed + 1), progress=False)
    assert other.R != first.R


def test_resume_gives_the_identical_accuracy_matrix(tmp_path) -> None:
    cfg = tiny_config()
    whole, _ = run(cfg, out=tmp_path / "whole", progress=False)
    part, _ = run(cfg, out=tmp_path / "split", progress=False, stop_after=1)
    assert len(part.R) == 1
    resumed, _ = run(cfg, out=tmp_path / "split", resume=True, progress=False)
    assert resumed.R == whole.R
    assert resumed.before == whole.before
    state = torch.load(tmp_path / "split" / "checkpoint.pt", weights_only=True)
    assert len(state["learner"]["masks"]) == cfg.tasks


def test_end_to_end_on_real_mnist_subset() -> None:
    """Three permuted-MNIST tasks on 4,000 real training images: a broken learner (no mask
    learning, frozen weights moving, a wrong head) misses this bar."""
    cfg = tiny_config(epochs=6)
    result, learner = run(cfg, progress=False)
    assert len(result.R) == 3
    assert result.bwt == 0.0
    assert min(result.R[-1]) > 80.0, result.R
    assert result.acc > 84.0, result.R
    # Every task trains far above its untrained accuracy (chance is 10 %).
    assert all(r > b + 60 for r, b in zip(result.R[-1], result.baseline, strict=True))


def test_bad_task_id_and_shape_get_clear_errors() -> None:
    cfg = dataclasses.replace(tiny_config(epochs=1), tasks=1)
    _, learner = run(cfg, progress=False)
    with pytest.raises(TaskIdError, match="task id 1 is out of range: this model holds tasks 0..0"):
        learner.logits(_fixed_inputs(), 1)
    with pytest.raises(TaskIdError, match="task id -1"):
        learner.logits(_fixed_inputs(), -1)
    with pytest.raises(ShapeError, match=r"inputs of shape \(64, 700\)"):
        learner.logits(torch.zeros(64, 700), 0)
    assert learner.logits(torch.zeros(2, 28, 28), 0).shape == (2, 10)


def test_plateau_schedule_and_sgd_train_and_keep_the_best_epoch() -> None:
    cfg = dataclasses.replace(
        tiny_config(epochs=4, optimizer="sgd", lr=0.05, schedule="plateau", plateau_patience=0),
        tasks=1,
    )
    result, _ = run(cfg, progress=False)
    outcome = result.tasks[0]["outcome"]
    assert len(outcome["val_acc"]) == 4
    assert outcome["best_val_acc"] == max(outcome["val_acc"])
    assert result.R[0][0] > 50.0


def test_resume_accepts_a_checkpoint_older_than_a_nested_setting(tmp_path) -> None:
    """A setting added later (here a similarity field) took its default in the older run."""
    cfg = tiny_config(epochs=1)
    run(cfg, out=tmp_path / "run", progress=False, stop_after=1)
    path = tmp_path / "run" / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    del state["identity"]["similarity"]["duplicate_above"]
    torch.save(state, path)
    resumed, _ = run(cfg, out=tmp_path / "run", resume=True, progress=False)
    assert len(resumed.R) == cfg.tasks
    state["identity"]["similarity"]["near"] = 9.0  # a real difference is still refused
    torch.save(state, path)
    with pytest.raises(ConfigError, match="similarity.near"):
        run(cfg, out=tmp_path / "run", resume=True, progress=False)
