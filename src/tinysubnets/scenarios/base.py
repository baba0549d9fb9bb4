"""Tasks and scenarios: ordered tasks, each with train / validation / test splits."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tinysubnets.scenarios.streaming import StreamedImages


@dataclass(frozen=True)
class Split:
    """Inputs (float32, model-ready) and integer labels of one split of one task. Inputs too
    large for memory are `StreamedImages`: read from disk as float32 batch by batch."""

    x: Tensor | StreamedImages
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        """The split on ``device`` (itself when it is there already)."""
        if self.x.device == torch.device(device):
            return self
        return Split(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Task:
    """One task of a scenario. Splits are built on demand: p-MNIST's ten permuted copies of
    the whole dataset would otherwise sit in memory at once."""

    task_id: int
    name: str
    n_classes: int
    make_split: Callable[[str], Split]

    def split(self, which: str) -> Split:
        """``"train"``, ``"val"`` or ``"test"``."""
        return self.make_split(which)


@dataclass(frozen=True)
class Scenario:
    """An ordered sequence of tasks and the input shape the backbone sees."""

    name: str
    tasks: tuple[Task, ...]
    input_shape: tuple[int, ...]
    source: str

    def __len__(self) -> int:
        return len(self.tasks)


def train_val_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(n)`` into train and validation indices (sorted, disjoint)."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(val_fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def iterate_batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of a split; shuffled when a generator is given.

    Indexing tensors directly is several times faster than a DataLoader for data this small;
    streamed inputs read each batch from their memory map the same way.
    """
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else None
    for start in range(0, n, batch_size):
        if order is None:
            yield split.x[start : start + batch_size], split.y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.x[idx], split.y[idx]
