"""Adaptive quantization: a task's own weights become at most 2^b centroids, chosen once by
their owner; other tasks' values and predictions never change."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import builtin_learner, tiny_config
from torch import Tensor

from tinysubnets.config import PruneConfig, QuantizeConfig
from tinysubnets.errors import ConfigError
from tinysubnets.scenarios import build_scenario


@pytest.mark.parametrize("prune", [False, True])
def test_quantizing_a_task_never_changes_another(prune: bool) -> None:
    cfg = tiny_config(epochs=2)
    quantize = QuantizeConfig(enabled=True, b_min=2, b_max=8, threshold=0.5)
    learner = builtin_learner(
        dataclasses.replace(cfg, prune=PruneConfig(enabled=prune), quantize=quantize))
    scenario = build_scenario(cfg)
    probe = scenario.tasks[0].split("test").x[:200]
    seen: dict[int, Tensor] = {}
    for t, task in enumerate(scenario.tasks):
        layers = learner.net.masked_layers()
        frozen_before = {n: (m.frozen.clone(), m.claimed.clone()) for n, m in layers.items()}
        learner.add_head(task.n_classes)
        record = learner.learn(task, task.split("train"), task.split("val"), progress=False)
        report = record.quantize
        assert report is not None
        assert all(quantize.b_min <= b <= quantize.b_max for b in report.bits.values())
        if max(report.bits.values()) < quantize.b_max:
            assert report.val_acc_after >= report.val_acc_before - quantize.threshold
        for name, layer in layers.items():
            frozen, claimed = frozen_before[name]
            assert torch.equal(layer.frozen[claimed], frozen[claimed]), name
            own = layer.owner == t
            if own.any():
                assert layer.frozen[own].unique().numel() <= 2 ** report.bits[name]
                assert _float16(layer.frozen[own])  # centroids as the file stores them
        head = learner.net.heads[t]
        head_values = torch.cat([head.weight.ravel(), head.bias.ravel()])
        assert head_values.unique().numel() <= 2 ** report.bits["head"]
        assert _float16(head_values)
        # Fine-tuning the centroids keeps the best validation epoch (it never loses there).
        assert report.finetune is not None
        assert report.finetune["val_acc_after"] >= report.finetune["val_acc_before"]
        seen[t] = learner.logits(probe, t)
        for j, logits in seen.items():
            assert torch.equal(learner.logits(probe, j), logits)


def _float16(values: Tensor) -> bool:
    return torch.equal(values.half().float(), values)


def test_float32_codebooks_are_not_rounded() -> None:
    cfg = tiny_config(epochs=1)
    quantize = QuantizeConfig(b_min=4, b_max=4, codebook_bits=32, finetune_epochs=1)
    learner = builtin_learner(dataclasses.replace(
        cfg, tasks=1, prune=PruneConfig(enabled=False), quantize=quantize))
    task = build_scenario(cfg).tasks[0]
    learner.add_head(task.n_classes)
    learner.learn(task, task.split("train"), task.split("val"), progress=False)
    fc1 = learner.net.masked_layers()["fc1.weight"]
    own = fc1.frozen[fc1.owner == 0]
    assert own.unique().numel() <= 16 and not _float16(own)


@pytest.mark.parametrize(
    "settings, message",
    [({"b_min": 0}, "bit-width b_min must be in \\[1, 16\\], got 0"),
     ({"b_max": 17}, "bit-width b_max must be in \\[1, 16\\], got 17"),
     ({"b_min": 6, "b_max": 4}, "b_min=6 exceeds b_max=4"),
     ({"codebook_bits": 8}, "codebook_bits must be 16 .float16 centroids. or 32, got 8")],
)
def test_bit_width_out_of_range_is_refused(settings: dict, message: str) -> None:
    cfg = dataclasses.replace(tiny_config(), quantize=QuantizeConfig(**settings))
    with pytest.raises(ConfigError, match=message):
        cfg.validate()
