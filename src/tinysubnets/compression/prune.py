"""Post-pruning without gradients (TSN step 3): shrink what a task claimed, checked on validation.

After task t trains, its own weights (M_t minus C_{t-1}) are removed smallest-magnitude first,
layer by layer, in steps that start large and halve on failure; a step is kept only while
task t's validation accuracy, computed with M_t itself, stays within ``threshold`` points of
the unpruned value. Weights of earlier tasks are never touched, and what is pruned becomes
free for the tasks to come.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from tinysubnets.learner.trainer import accuracy, accuracy_at_least
from tinysubnets.nn.backbones import TSNNetwork
from tinysubnets.scenarios.base import Split


@dataclass
class PruneReport:
    """Sparsity before/after (the paper's Table 2) and what the search cost."""

    val_acc_before: float
    val_acc_after: float = 0.0
    own_before: dict[str, int] = field(default_factory=dict)
    own_after: dict[str, int] = field(default_factory=dict)
    evaluations: int = 0
    time_s: float = 0.0
    retrain: dict | None = None  # the fine-tuning that follows, if any (finetune.FinetuneReport)


@torch.no_grad()
def post_prune(
    net: TSNNetwork,
    task_id: int,
    masks: dict[str, Tensor],
    val: Split,
    threshold: float = 0.2,
    first_step: float = 0.5,
    min_step: float = 0.01,
) -> tuple[dict[str, Tensor], PruneReport]:
    """Return task ``task_id``'s pruned masks (the inputs are not modified) and a report.

    Must run before consolidation: "own" is read as mask positions no finished task claims.
    ``first_step`` and ``min_step`` are shares of the layer's own weights: the first removal
    tried, and the smallest step still tried after halving.
    """
    start = time.perf_counter()
    masks = {name: mask.clone() for name, mask in masks.items()}
    base = accuracy(net, task_id, masks, val)
    report = PruneReport(val_acc_before=base)
    for name, layer in net.masked_layers().items():
        positions = layer.own_positions(masks[name])
        report.own_before[name] = n_own = positions.numel()
        magnitude = layer.weight.detach().flatten()[positions].abs()
        order = positions[torch.sort(magnitude, stable=True).indices]
        removed, step = 0, max(1, math.ceil(first_step * n_own))
        smallest = max(1, math.ceil(min_step * n_own))
        while removed < n_own and step >= smallest:
            count = min(removed + step, n_own)
            trial = masks[name].clone()
            trial.view(-1)[order[:count]] = False
            report.evaluations += 1
            if accuracy_at_least(net, task_id, {**masks, name: trial}, val, base - threshold):
                masks[name], removed = trial, count
            else:
                step //= 2
        report.own_after[name] = n_own - removed
    report.val_acc_after = accuracy(net, task_id, masks, val)
    report.time_s = time.perf_counter() - start
    return masks, report
