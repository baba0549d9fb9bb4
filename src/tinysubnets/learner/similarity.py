"""Task similarity (TSN step 1): how far a new task's data lies from each earlier task, as the
network sees it.

When task j finishes, the mean and variance of its penultimate features (its own subnetwork
M_j, its norms, a fixed sample of its training images, or its replay memory when the run keeps
one, see `replay`) are stored: a few hundred floats, and, since task j's subnetwork never
changes, valid forever. Before task t trains, the same features of a sample of task t's
images under subnetwork M_j give a second distribution; the divergence is KL(new ‖ stored)
between the two diagonal Gaussians. Small: task t looks like task j to the
network (share from it, need less new capacity); large: it does not. The published code's KL step
never runs (and would compare raw images).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tinysubnets.nn.network import TSNNetwork, eval_mode
from tinysubnets.tasks.split import Inputs

VAR_FLOOR = 1e-4  # dead ReLU features have zero variance: a floor keeps KL finite and stable


@dataclass(frozen=True)
class FeatureStats:
    """Per-feature mean and variance of a task's penultimate features (float64)."""

    mean: Tensor
    var: Tensor

    def to_dict(self) -> dict[str, list[float]]:
        return {"mean": self.mean.tolist(), "var": self.var.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, list[float]]) -> FeatureStats:
        return cls(torch.tensor(d["mean"], dtype=torch.float64),
                   torch.tensor(d["var"], dtype=torch.float64))


def gaussian_kl(p: FeatureStats, q: FeatureStats) -> float:
    """KL(p ‖ q) of diagonal Gaussians, averaged over features (nats per feature)."""
    vp, vq = p.var.clamp_min(VAR_FLOOR), q.var.clamp_min(VAR_FLOOR)
    kl = 0.5 * (torch.log(vq / vp) + (vp + (p.mean - q.mean) ** 2) / vq - 1.0)
    return float(kl.mean())


@torch.no_grad()
def feature_stats(
    net: TSNNetwork, task_id: int, masks: dict[str, Tensor], x: Tensor, batch_size: int = 500
) -> FeatureStats:
    """Mean and variance of the features of ``x`` through subnetwork ``masks`` with task
    ``task_id``'s norms (eval mode: stored statistics, nothing updated)."""
    weights = net.task_weights(task_id, masks)
    with eval_mode(net):
        feats = torch.cat([
            net.features(x[i : i + batch_size], task_id, weights).double()
            for i in range(0, len(x), batch_size)
        ])
    return FeatureStats(feats.mean(0), feats.var(0, unbiased=False))


def sample(x: Inputs, n: int, generator: torch.Generator) -> Tensor:
    """A fixed-size random sample of inputs (all of them when there are fewer), read into a
    tensor (streamed inputs are read now)."""
    if len(x) <= n:
        return x[:]
    return x[torch.randperm(len(x), generator=generator)[:n]]


def divergences(
    net: TSNNetwork, masks: list[dict[str, Tensor]], stored: list[FeatureStats], x_new: Tensor
) -> list[float]:
    """KL(new task under M_j ‖ task j's stored features), for every finished task j."""
    return [
        gaussian_kl(feature_stats(net, j, masks[j], x_new), stored[j])
        for j in range(len(stored))
    ]
