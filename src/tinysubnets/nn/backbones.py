"""Backbones of masked layers and the multi-head network TSN trains.

A backbone computes features from the weights it is handed (one per masked layer, by name), so
the same module serves training (straight-through masks) and evaluation of any task (its mask).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tinysubnets.errors import ConfigError
from tinysubnets.nn.masked import MaskedLayer, MaskedLinear


class MLP(nn.Module):
    """The paper's p-MNIST backbone: 784-100-100, bias-free masked layers, ReLU."""

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] = (100, 100)) -> None:
        super().__init__()
        sizes = (in_features, *hidden)
        # Layers are direct attributes so their module names ("fc1", "fc2") key masks and reports.
        self.layer_names = tuple(f"fc{i + 1}" for i in range(len(hidden)))
        for name, a, b in zip(self.layer_names, sizes, sizes[1:], strict=False):
            setattr(self, name, MaskedLinear(a, b))
        self.out_features = sizes[-1]

    def forward(self, x: Tensor, weights: dict[str, Tensor]) -> Tensor:
        x = x.flatten(1)
        for name in self.layer_names:
            x = F.relu(getattr(self, name)(x, weights[name]))
        return x


BACKBONES = {"mlp": MLP}


def build_backbone(name: str, **kwargs: object) -> nn.Module:
    """A backbone by its name in ``BACKBONES``."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)


class TSNNetwork(nn.Module):
    """One shared masked backbone and one head per task (a head is the task's own classifier)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList()

    def masked_layers(self) -> dict[str, MaskedLayer]:
        """The backbone's masked layers by name, in forward order."""
        return {n: m for n, m in self.backbone.named_modules() if isinstance(m, MaskedLayer)}

    def add_head(self, n_classes: int, generator: torch.Generator) -> nn.Linear:
        """Append a head for the next task, initialised from ``generator`` (seeded per task)."""
        head = nn.Linear(self.backbone.out_features, n_classes)
        bound = 1.0 / math.sqrt(head.in_features)
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.uniform_(-bound, bound, generator=generator)
        self.heads.append(head)
        return head

    def forward(
        self, x: Tensor, task_id: int, masks: dict[str, Tensor], train: bool = False
    ) -> Tensor:
        """Logits of task ``task_id`` computed with ``masks`` (straight-through if ``train``)."""
        weights = {
            name: layer.masked_weight(masks[name], scores_grad=train)
            for name, layer in self.masked_layers().items()
        }
        return self.heads[task_id](self.backbone(x, weights))
