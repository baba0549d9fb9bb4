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

from tinysubnets.config import PruneConfig
from tinysubnets.nn.evaluate import accuracy, predicts_at_least
from tinysubnets.nn.network import TSNNetwork
from tinysubnets.tasks import Split, iterate_batches


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


# Most memory the validation inputs of one stage may take: beyond it, trials start earlier.
CACHE_BYTES = 2 << 30
BATCH = 500  # validation batch of the trials (and of the stage inputs they start from)


@torch.no_grad()
def post_prune(
    net: TSNNetwork,
    task_id: int,
    masks: dict[str, Tensor],
    val: Split,
    cfg: PruneConfig,
    cache_bytes: int = CACHE_BYTES,
) -> tuple[dict[str, Tensor], PruneReport]:
    """Return task ``task_id``'s pruned masks (the inputs are not modified) and a report.

    Must run before consolidation: "own" is read as mask positions no finished task claims.
    ``cfg.first_step`` and ``cfg.min_step`` are shares of the layer's own weights: the first
    removal tried, and the smallest step still tried after halving; ``cfg.threshold`` the
    validation accuracy (points) it may lose. Layers are pruned in forward
    order, so each trial starts from the validation inputs of the layer's stage, computed once
    (up to ``cache_bytes`` of them; 0 evaluates every trial from the images).
    """
    start = time.perf_counter()
    masks = {name: mask.clone() for name, mask in masks.items()}
    base = accuracy(net, task_id, masks, val)
    report = PruneReport(val_acc_before=base)
    was_training = net.training
    net.eval()  # BatchNorm with the task's stored statistics, as `accuracy` computes
    staged = _StagedVal(net, task_id, val, cache_bytes)
    try:
        for name, layer in net.masked_layers().items():
            positions = layer.own_positions(masks[name])
            report.own_before[name] = n_own = positions.numel()
            report.own_after[name] = 0
            if not n_own:
                continue
            staged.advance_to(name, masks)
            magnitude = layer.weight.detach().flatten()[positions].abs()
            order = positions[torch.sort(magnitude, stable=True).indices]
            removed, step = 0, max(1, math.ceil(cfg.first_step * n_own))
            smallest = max(1, math.ceil(cfg.min_step * n_own))
            while removed < n_own and step >= smallest:
                count = min(removed + step, n_own)
                trial = masks[name].clone()
                trial.view(-1)[order[:count]] = False
                report.evaluations += 1
                if staged.at_least({**masks, name: trial}, base - cfg.threshold):
                    masks[name], removed = trial, count
                else:
                    step //= 2
            report.own_after[name] = n_own - removed
    finally:
        net.train(was_training)
    report.val_acc_after = accuracy(net, task_id, masks, val)
    report.time_s = time.perf_counter() - start
    return masks, report


class _StagedVal:
    """Task t's validation inputs as they enter one stage of its backbone.

    Pruning layer L changes nothing before L's stage, so trials run from there; the inputs
    move forward, with the masks as pruned, when the next layer lies in a later stage.
    """

    def __init__(self, net: TSNNetwork, task_id: int, val: Split, cache_bytes: int) -> None:
        self.net, self.task_id, self.cache_bytes = net, task_id, cache_bytes
        self.head = net.heads[task_id]
        self.stage_of = {full: net.stage_of(local) for full, (local, _) in
                         net.task_layers(task_id).items()}
        self.start, self.inputs = 0, val

    def advance_to(self, name: str, masks: dict[str, Tensor]) -> None:
        """Inputs of the stage of layer ``name`` (``masks`` final for the layers before it),
        if they fit in the memory allowed; otherwise the inputs stay where they are."""
        target = self.stage_of.get(name, 0)
        if target <= self.start or not len(self.inputs):
            return
        weights = self.net.task_weights(self.task_id, masks)
        out: Tensor | None = None
        n, done = len(self.inputs), 0
        for x, _ in iterate_batches(self.inputs, BATCH):
            h = self.net.features(x, self.task_id, weights, self.start, target)
            if out is None:
                if n * h[0].numel() * h.element_size() > self.cache_bytes:
                    return
                out = torch.empty((n, *h.shape[1:]), dtype=h.dtype, device=h.device)
            out[done : done + len(h)] = h
            done += len(h)
        self.start, self.inputs = target, Split(out, self.inputs.y)

    def at_least(self, masks: dict[str, Tensor], floor: float) -> bool:
        """Whether the task's validation accuracy with ``masks`` reaches ``floor`` (only the
        stages from the current one on are computed)."""
        weights = self.net.task_weights(self.task_id, masks)

        def predict(h: Tensor) -> Tensor:
            return self.head(self.net.features(h, self.task_id, weights, self.start))

        return predicts_at_least(predict, self.inputs, floor, BATCH)
