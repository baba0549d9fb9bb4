"""Backbones a user might write: plain modules, biases, BatchNorm, LayerNorm (test helpers)."""

from __future__ import annotations

import torch
from torch import nn


class UserCNN(nn.Module):
    """Two convs with biases and BatchNorm, a Linear with a bias: (N, 1, 8, 8) -> (N, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8 * 4 * 4, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return torch.relu(self.fc(x.flatten(1)))


class UserMLP(nn.Module):
    """A Linear-LayerNorm-GELU block: LayerNorm becomes per task like BatchNorm."""

    def __init__(self, n_in: int = 64, width: int = 32) -> None:
        super().__init__()
        self.fc = nn.Linear(n_in, width)
        self.norm = nn.LayerNorm(width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.gelu(self.norm(self.fc(x.flatten(1))))


class WithEmbedding(nn.Module):
    """A layer TSN cannot treat per task: refused before training."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 8)
        self.table = nn.Embedding(10, 8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.flatten(1))


def toy_data(t: int, n: int = 240, shape: tuple[int, ...] = (1, 8, 8),
             labels: tuple = (10, 11, 12)) -> tuple[torch.Tensor, list, torch.Tensor, list]:
    """A learnable task: the class is where the input's brightest quarter lies (seeded by t)."""
    g = torch.Generator().manual_seed(1000 + t)
    x = torch.randn(n, *shape, generator=g)
    flat = x.view(n, -1)  # a view: brightening it brightens x
    width = flat.shape[1] // len(labels)
    k = torch.randint(len(labels), (n,), generator=g)
    for i in range(len(labels)):
        flat[k == i, i * width : (i + 1) * width] += 2.0 + 0.2 * t
    y = [labels[i] for i in k.tolist()]
    cut = n * 3 // 4
    return x[:cut], y[:cut], x[cut:], y[cut:]
