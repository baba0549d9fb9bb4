"""Evaluation of one task's subnetwork: accuracy, and whether it reaches a floor.

It lives below the TSN steps: training, post-pruning, quantization, the model file and the
reports all measure a task the same way (docs/design.md, invariant 4: with its own mask).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from tinysubnets.nn.network import TSNNetwork, eval_mode
from tinysubnets.tasks import Split, iterate_batches


@torch.no_grad()
def accuracy(
    net: TSNNetwork, task_id: int, masks: dict[str, Tensor], split: Split, batch_size: int = 2000
) -> float:
    """Top-1 accuracy (%) of task ``task_id`` computed with ``masks`` (its own: docs/design.md,
    invariant 4).

    Always in eval mode: BatchNorm uses the task's stored statistics and does not update them.
    """
    correct = 0
    with eval_mode(net):
        for x, y in iterate_batches(split, batch_size):
            correct += int((net(x, task_id, masks).argmax(1) == y).sum())
    return 100.0 * correct / max(1, len(split))


def accuracy_at_least(
    net: TSNNetwork, task_id: int, masks: dict[str, Tensor], split: Split, floor: float,
    batch_size: int = 500,
) -> bool:
    """Whether ``accuracy(...) >= floor``, settled as soon as the batches seen decide it.

    The compression searches ask only this. A trial that loses by far (most rejected pruning
    steps) stops after a batch or two instead of evaluating the whole validation split.
    """
    with eval_mode(net):
        return predicts_at_least(lambda x: net(x, task_id, masks), split, floor, batch_size)


def predicts_at_least(
    predict: Callable[[Tensor], Tensor], split: Split, floor: float, batch_size: int = 500
) -> bool:
    """Whether ``predict`` (inputs to logits) is right on at least ``floor`` % of ``split``,
    computed as `accuracy` computes it, reading batches only until that is settled."""
    n = len(split)
    need = _least_correct(n, floor)
    if need == 0 or need > n:
        return need == 0
    correct, seen = 0, 0
    for x, y in iterate_batches(split, batch_size):
        correct += int((predict(x).argmax(1) == y).sum())
        seen += len(y)
        if correct >= need or correct + (n - seen) < need:
            break
    return correct >= need


def _least_correct(n: int, floor: float) -> int:
    """The fewest correct answers out of ``n`` whose accuracy, computed as ``accuracy`` does,
    reaches ``floor`` (``n + 1`` if none does)."""
    def pct(c: int) -> float:
        return 100.0 * c / max(1, n)

    need = min(n + 1, max(0, math.ceil(floor * max(1, n) / 100.0)))
    while need > 0 and pct(need - 1) >= floor:
        need -= 1
    while need <= n and pct(need) < floor:
        need += 1
    return need
