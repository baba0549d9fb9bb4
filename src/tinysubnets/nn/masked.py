"""Masked layers: a real-valued score per weight, a task's mask is the top-k of |score|.

Every masked layer keeps two weight tensors on purpose:
- ``weight`` (trainable) holds the values of *free* positions, those no finished task owns;
- ``frozen`` (a buffer) holds the values of positions claimed by finished tasks.
The effective weight picks ``frozen`` where ``owner >= 0``. Because frozen values never live in a
tensor the optimizer sees, no momentum, Adam state or weight decay can move them (invariant 2),
and a finished task, whose mask lies inside the claimed positions, computes with exactly the
same numbers forever (invariant 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn


def keep_count(numel: int, keep_ratio: float) -> int:
    """Number of weights a mask keeps at ratio c (at least one, so a layer never goes dark)."""
    return max(1, min(numel, round(keep_ratio * numel)))


def topk_mask(scores: Tensor, k: int, allowed: Tensor | None = None) -> Tensor:
    """Boolean mask of the k largest |scores| (restricted to ``allowed`` positions if given).

    The threshold comes from ``np.partition`` (introselect), several times faster on CPU than
    ``torch.topk``/``torch.kthvalue`` at these sizes; exact ties at the threshold fall back to
    ``torch.topk`` so the mask always has exactly k ones.
    """
    magnitude = scores.detach().abs().flatten()
    if allowed is not None:
        magnitude = torch.where(allowed.flatten(), magnitude, torch.full_like(magnitude, -1.0))
    n = magnitude.numel()
    if k <= 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    if k >= n:
        mask = torch.ones(n, dtype=torch.bool) if allowed is None else allowed.flatten().clone()
        return mask.view_as(scores)
    values = magnitude.cpu().numpy()
    threshold = float(np.partition(values, n - k)[n - k])
    mask = magnitude >= threshold
    if int(mask.sum()) != k:
        mask = torch.zeros(n, dtype=torch.bool, device=scores.device)
        mask[torch.topk(magnitude, k, sorted=False).indices] = True
    return mask.view_as(scores)


class _MaskedWeight(torch.autograd.Function):
    """W = where(claimed, frozen, weight) * mask, with the straight-through estimator.

    Backward: dL/dscores = dL/dW * W_eff (the mask's gradient passed straight through), and
    dL/dweight = dL/dW only where the mask keeps a *free* position: frozen positions get exactly
    zero. Fused by hand because the autograd graph of the plain expression costs about as much
    as the layer's matmul at p-MNIST sizes.
    """

    @staticmethod
    def forward(  # noqa: D102
        ctx, weight: Tensor, scores: Tensor, frozen: Tensor, claimed: Tensor, mask: Tensor
    ) -> Tensor:
        effective = torch.where(claimed, frozen, weight)
        mask_f = mask.to(weight.dtype)
        ctx.save_for_backward(effective, mask_f.masked_fill(claimed, 0.0))
        return effective * mask_f

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None, None]:  # noqa: D102
        effective, trainable = ctx.saved_tensors
        grad_weight = grad * trainable if ctx.needs_input_grad[0] else None
        grad_scores = grad * effective if ctx.needs_input_grad[1] else None
        return grad_weight, grad_scores, None, None, None


class MaskedLayer(nn.Module):
    """Shared state and logic of masked layers; subclasses only say how to apply a weight."""

    weight: nn.Parameter
    scores: nn.Parameter
    frozen: Tensor
    owner: Tensor

    def _init_state(self, shape: tuple[int, ...], fan_in: int) -> None:
        self.weight = nn.Parameter(torch.empty(shape))
        self.scores = nn.Parameter(torch.empty(shape))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        nn.init.kaiming_uniform_(self.scores, a=math.sqrt(5))
        self.register_buffer("frozen", torch.zeros(shape))
        # owner task of each position; -1 = free. int16 is plenty (and what the artifact stores).
        self.register_buffer("owner", torch.full(shape, -1, dtype=torch.int16))
        self.fan_in = fan_in

    @property
    def claimed(self) -> Tensor:
        """Positions owned by a finished task (the consolidated mask C_{t-1})."""
        return self.owner >= 0

    def effective_weight(self) -> Tensor:
        """Frozen values where a finished task owns the position, trainable values elsewhere."""
        return torch.where(self.claimed, self.frozen, self.weight)

    def select_mask(self, keep_ratio: float, free_quota: float = 0.0) -> Tensor:
        """The mask the current scores pick: top-k of |score| over the layer.

        ``free_quota`` reserves that share of the k slots for free (unclaimed) positions, so a
        task keeps learning new weights instead of only reusing frozen ones.
        """
        k = keep_count(self.scores.numel(), keep_ratio)
        if free_quota <= 0.0:
            return topk_mask(self.scores, k)
        free = ~self.claimed
        k_free = min(round(free_quota * k), int(free.sum()))
        mask = topk_mask(self.scores, k_free, allowed=free)
        rest = topk_mask(self.scores, k - k_free, allowed=~mask)
        return mask | rest

    def masked_weight(self, mask: Tensor, scores_grad: bool = False) -> Tensor:
        """The weight a task computes with.

        With ``scores_grad`` the mask is applied through the straight-through estimator
        (training); otherwise by selection, so positions outside the mask are exact zeros
        whatever the free weights hold (evaluation).
        """
        if scores_grad:
            return _MaskedWeight.apply(self.weight, self.scores, self.frozen, self.claimed, mask)
        return torch.where(mask, self.effective_weight(), torch.zeros((), dtype=self.frozen.dtype))

    def consolidate(self, mask: Tensor, task_id: int) -> Tensor:
        """Freeze the task's own weights (M_t minus C_{t-1}); return them as a boolean mask."""
        own = mask & ~self.claimed
        self.frozen[own] = self.weight.detach()[own]
        self.owner[own] = task_id
        return own


class MaskedLinear(MaskedLayer):
    """Bias-free linear layer with a learned per-task mask."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self._init_state((out_features, in_features), fan_in=in_features)

    def forward(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.linear(x, weight)


class MaskedConv2d(MaskedLayer):
    """Bias-free 2-D convolution with a learned per-task mask."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
        padding: int = 0,
    ) -> None:
        super().__init__()
        self.stride, self.padding = stride, padding
        shape = (out_channels, in_channels, kernel_size, kernel_size)
        self._init_state(shape, fan_in=in_channels * kernel_size * kernel_size)

    def forward(self, x: Tensor, weight: Tensor) -> Tensor:
        return F.conv2d(x, weight, stride=self.stride, padding=self.padding)
