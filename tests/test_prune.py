"""Post-pruning: only the task's own weights go, its validation accuracy stays within the
threshold, earlier tasks never change, and conv layers are handled like linear ones."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import builtin_learner, builtin_net, tiny_config
from torch import Tensor, nn

from tinysubnets.compression.prune import post_prune
from tinysubnets.config import PruneConfig
from tinysubnets.errors import ConfigError
from tinysubnets.nn.evaluate import accuracy, accuracy_at_least
from tinysubnets.nn.network import TSNNetwork
from tinysubnets.scenarios import build_scenario
from tinysubnets.tasks import Split


def test_post_pruning_keeps_earlier_tasks_and_frees_weights() -> None:
    cfg = tiny_config(epochs=3)
    prune = PruneConfig(enabled=True, threshold=0.5)
    scenario = build_scenario(cfg)
    learner = builtin_learner(dataclasses.replace(cfg, prune=prune))
    probe = scenario.tasks[0].split("test").x[:200]
    seen: dict[int, Tensor] = {}
    for t, task in enumerate(scenario.tasks):
        layers = learner.net.masked_layers()
        owner_before = {n: m.owner.clone() for n, m in layers.items()}
        learner.add_head(task.n_classes)
        record = learner.learn(task, task.split("train"), task.split("val"), progress=False)
        report = record.prune
        assert report is not None
        assert report.val_acc_after >= report.val_acc_before - prune.threshold
        assert sum(report.own_after.values()) < sum(report.own_before.values())
        # Retraining what is left keeps its best validation epoch, the untrained one included.
        assert report.retrain is not None
        assert report.retrain["val_acc_after"] >= report.retrain["val_acc_before"]
        for name, layer in layers.items():
            before = owner_before[name]
            # Earlier owners are untouched; the task owns exactly its pruned own weights.
            assert torch.equal(layer.owner[before >= 0], before[before >= 0])
            owned = layer.owner == t
            assert int(owned.sum()) == report.own_after[name] == record.own[name]
            assert torch.equal(owned, learner.masks[-1][name] & (before < 0))
        seen[t] = learner.logits(probe, t)
        for j, logits in seen.items():
            assert torch.equal(learner.logits(probe, j), logits)
    # Pruned weights went back to the pool: the fair rule gave later tasks larger budgets.
    assert learner.net.masked_layers()["fc1.weight"].claimed.float().mean() < 0.95


class _TinyConv(nn.Module):
    """A one-conv backbone (a plain user module), to show post-pruning handles conv layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, kernel_size=3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv(x.view(-1, 1, 8, 8)))
        return F.max_pool2d(x, 2).flatten(1)


def _tiny_conv_net() -> TSNNetwork:
    return TSNNetwork(_TinyConv(), (64,), torch.Generator().manual_seed(0))


def test_post_pruning_conv_layer_respects_threshold_and_shared_weights() -> None:
    torch.manual_seed(0)
    net = _tiny_conv_net()
    net.add_head(2, torch.Generator().manual_seed(0))
    conv = net.masked_layers()["conv.weight"]
    # An easy task: the class is the sign of the image mean, so the layer matters.
    x = torch.randn(400, 64)
    val = Split(x, (x.mean(1) > 0).long())
    earlier = torch.zeros_like(conv.owner, dtype=torch.bool)
    earlier.view(-1)[::3] = True
    conv.consolidate(earlier, task_id=0)  # a third of the positions belong to an earlier task
    mask = torch.ones_like(earlier)
    base = accuracy(net, 0, {"conv.weight": mask}, val)
    for threshold in (0.0, 5.0, 100.0):
        pruned, report = post_prune(net, 0, {"conv.weight": mask}, val,
                                    PruneConfig(threshold=threshold))
        assert accuracy(net, 0, pruned, val) >= base - threshold
        assert torch.equal(pruned["conv.weight"][earlier], mask[earlier])  # shared weights stay
        assert not (pruned["conv.weight"] & ~mask).any()
        assert report.own_before["conv.weight"] == int((~earlier).sum())
    assert report.own_after["conv.weight"] == 0  # with any drop allowed, all own weights go


def test_accuracy_at_least_decides_as_accuracy_does_and_stops_early() -> None:
    torch.manual_seed(1)
    net = _tiny_conv_net()
    net.add_head(2, torch.Generator().manual_seed(0))
    x = torch.randn(1237, 64)  # not a multiple of the batch size
    val = Split(x, (x.mean(1) > 0).long())
    masks = {"conv.weight": torch.ones(4, 1, 3, 3, dtype=torch.bool)}
    acc = accuracy(net, 0, masks, val, batch_size=100)
    n = len(val)
    floors = [acc, acc - 1e-9, acc + 1e-9, 0.0, 100.0, 100.0 + 1e-9, -5.0]
    floors += [100.0 * c / n for c in (0, 1, n - 1, n)] + [100.0 * c / n + 1e-12 for c in (5, 9)]
    floors += torch.linspace(0.0, 100.0, 37).tolist()
    for floor in floors:
        assert accuracy_at_least(net, 0, masks, val, floor, batch_size=100) == (acc >= floor)

    calls: list[int] = []
    counter = net.backbone.register_forward_hook(lambda *_: calls.append(1))
    assert acc < 90  # untrained: the first batch of 100 already holds a wrong answer
    assert not accuracy_at_least(net, 0, masks, val, 100.0, batch_size=100)
    assert len(calls) == 1  # the whole split would take 13 batches
    calls.clear()
    assert accuracy_at_least(net, 0, masks, val, 0.0, batch_size=100)
    assert not calls  # 0 % needs no batch at all
    counter.remove()
    assert net.training  # the training mode is given back


@pytest.mark.parametrize("name, kwargs", [
    ("resnet18", {"nf": 4, "size": 16}), ("tinynet", {"size": 16, "channels": 8, "width": 32}),
])
def test_trials_from_cached_stage_inputs_decide_as_the_full_forward(name: str, kwargs: dict):
    net = builtin_net(name, **kwargs)
    net.add_head(4, torch.Generator().manual_seed(0))
    masks = {k: torch.ones_like(m.owner, dtype=torch.bool) for k, m in net.masked_layers().items()}
    x = torch.randn(700, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    net.eval()
    with torch.no_grad():  # labels the network gets right: pruning has something to lose
        y = net(x, 0, masks).argmax(1)
    val = Split(x, y)
    calls: list[int] = []
    net.module_of(next(iter(masks))).register_forward_hook(lambda *_: calls.append(1))
    full, full_report = post_prune(net, 0, masks, val, PruneConfig(threshold=10.0),
                                          cache_bytes=0)
    assert sum(full_report.own_after.values()) < sum(full_report.own_before.values())
    first_layer_runs = len(calls)
    # Every stage's inputs cached; then a cap (600 floats an image) that the first stage's
    # outputs exceed, so that only later stages' inputs are kept.
    for cache_bytes in (2 << 30, 700 * 600 * 4):
        calls.clear()
        cached, report = post_prune(net, 0, masks, val, PruneConfig(threshold=10.0),
                                    cache_bytes=cache_bytes)
        assert report.own_after == full_report.own_after
        assert report.evaluations == full_report.evaluations
        assert all(torch.equal(cached[k], full[k]) for k in masks)
        assert len(calls) < first_layer_runs / 2  # later layers' trials skip the first one


def test_prune_config_is_validated() -> None:
    cfg = tiny_config()
    with pytest.raises(ConfigError, match="prune threshold"):
        dataclasses.replace(cfg, prune=PruneConfig(threshold=-1)).validate()
    with pytest.raises(ConfigError, match="min_step"):
        dataclasses.replace(cfg, prune=PruneConfig(min_step=0.9, first_step=0.5)).validate()
