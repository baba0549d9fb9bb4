"""One split of one task (train, validation or test): inputs, class indices, batches.

Inputs are a float32 tensor held in memory, images streamed from a memory map
(`StreamedImages`), or a user's map-style ``Dataset`` read batch by batch (`DatasetInputs`).
All three answer the same questions (length, shape, device, indexing by an index tensor), so
every consumer reads batches the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from tinysubnets.errors import DataError, shown
from tinysubnets.tasks.streaming import StreamedImages

Transform = Callable[[Tensor], Tensor]


def as_input(value: Any, where: str) -> Tensor:
    """One input read from a user's dataset, as a float32 tensor (numpy arrays accepted)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":  # object, str, ...: torch raises a raw TypeError
            raise DataError(f"{where} yields a numpy array of dtype {shown(str(value.dtype))}: "
                            "inputs must be numbers (a float array)")
        value = torch.from_numpy(value)
    if not isinstance(value, Tensor):
        raise DataError(
            f"{where} yields inputs of type {type(value).__name__}, not tensors: give the "
            "dataset a transform that makes a tensor (e.g. image -> float tensor)"
        )
    if not value.is_floating_point():
        raise DataError(
            f"{where} yields {value.dtype} inputs: convert them to floating point (e.g. "
            "scale uint8 images to [0, 1] in the dataset's transform)"
        )
    return value.to(torch.float32)


class _Rows(Dataset):
    """Items ``rows`` of a dataset as (float32 input, row position), ``transform`` applied."""

    def __init__(self, dataset: Dataset, rows: np.ndarray, transform: Transform | None,
                 where: str) -> None:
        self.dataset, self.rows, self.transform, self.where = dataset, rows, transform, where

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Tensor:
        item = self.dataset[int(self.rows[i])]
        x = as_input(item[0], self.where)
        return self.transform(x) if self.transform is not None else x


class DatasetInputs:
    """The inputs of a user's map-style dataset, rows ``rows`` of it, read when indexed.

    Reading goes through a ``DataLoader`` (``workers`` processes), so a task need not fit in
    memory; ``transform`` (a train-time augmentation) is applied to each input read.
    """

    def __init__(self, dataset: Dataset, rows: np.ndarray, shape: tuple[int, ...], where: str,
                 transform: Transform | None = None, workers: int = 0,
                 device: torch.device | str = "cpu") -> None:
        self.dataset, self.rows, self.where = dataset, np.asarray(rows, dtype=np.int64), where
        self.item_shape, self.transform, self.workers = tuple(shape), transform, workers
        self._device = torch.device(device)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.item_shape))

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> DatasetInputs:
        return DatasetInputs(self.dataset, self.rows, self.item_shape, self.where,
                             self.transform, self.workers, device)

    def detach(self) -> DatasetInputs:
        return self

    def subset(self, index: Tensor | np.ndarray) -> DatasetInputs:
        index = index.cpu().numpy() if isinstance(index, Tensor) else np.asarray(index)
        return DatasetInputs(self.dataset, self.rows[index], self.item_shape, self.where,
                             self.transform, self.workers, self._device)

    def __getitem__(self, key: slice | Tensor | np.ndarray) -> Tensor:
        positions = np.arange(len(self))[key.cpu().numpy() if isinstance(key, Tensor) else key]
        if not len(positions):
            return torch.zeros(0, *self.item_shape, device=self._device)
        return torch.cat(list(self.batches(positions, len(positions))))

    def batches(self, order: np.ndarray, batch_size: int) -> Iterator[Tensor]:
        """Inputs of rows ``order`` (positions in this split), ``batch_size`` at a time."""
        rows = _Rows(self.dataset, self.rows[order], self.transform, self.where)
        loader = DataLoader(rows, batch_size=batch_size, num_workers=self.workers)
        for x in loader:
            yield self._checked(x)

    def _checked(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.item_shape:
            raise DataError(f"{self.where} yields inputs of shape {list(x.shape[1:])}, "
                            f"expected {list(self.item_shape)} like its first one")
        return x.to(self._device)


Inputs = Tensor | StreamedImages | DatasetInputs  # what a `Split` holds as its inputs


@dataclass(frozen=True)
class Split:
    """Inputs (float32, model-ready) and class indices (0..k-1) of one split of one task."""

    x: Inputs
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)

    def to(self, device: torch.device | str) -> Split:
        """The split on ``device`` (itself when it is there already)."""
        if self.x.device == torch.device(device):
            return self
        return Split(self.x.to(device), self.y.to(device))


def take_rows(x: Inputs, index: Tensor) -> Inputs:
    """Rows ``index`` of a split's inputs: a tensor is indexed, streamed or dataset inputs are
    not read until a batch is."""
    return x.subset(index) if isinstance(x, StreamedImages | DatasetInputs) else x[index]


def check_finite(x: Tensor, where: str) -> None:
    """Refuse inputs holding NaN or inf before training (once, for inputs held in memory): the
    run would otherwise fail only after training, at quantization, with a misleading message."""
    bad = int((~torch.isfinite(x)).sum())
    if bad:
        raise DataError(f"{where}: {bad} of {x.numel()} input value(s) are NaN or infinite; "
                        "inputs must be finite numbers")


def check_not_empty(where: str, counts: dict[str, int]) -> None:
    """Refuse a split of 0 inputs (counts: split -> inputs) before any work starts: training,
    statistics or testing on nothing fail deep inside torch, or report a meaningless score."""
    empty = [which for which, n in counts.items() if n < 1]
    if empty:
        held = ", ".join(f"{n} {which}" for which, n in counts.items())
        splits = " and ".join(empty) + (" splits hold" if len(empty) > 1 else " split holds")
        raise DataError(f"{where}: the {splits} no inputs ({held}); each needs at least 1")


def check_carve(n: int, val_fraction: float, where: str = "the training split") -> int:
    """How many of ``n`` training inputs `train_val_indices` holds out for validation; a split
    too small for ``val_fraction`` (either part empty) is refused, ``where`` naming it."""
    n_val = min(n, max(1, round(val_fraction * n)))
    if n - n_val < 1:
        raise DataError(
            f"{where}: {n} training input(s) with val_fraction {val_fraction} leave "
            f"{n - n_val} to train on and {n_val} to validate on; each needs at least 1"
        )
    return n_val


def train_val_indices(
    n: int, val_fraction: float, seed: int, where: str = "the training split"
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(n)`` into train and validation indices (sorted, disjoint).

    Every task's training split is carved here, so this is where one too small for
    ``val_fraction`` is refused (`check_carve`): both parts must hold an input.
    """
    n_val = check_carve(n, val_fraction, where)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def iterate_batches(
    split: Split, batch_size: int, generator: torch.Generator | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Mini-batches of a split; shuffled when a generator is given.

    Indexing tensors directly is several times faster than a DataLoader for data held in
    memory; a user's dataset is read through a DataLoader, in the same order.
    """
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else None
    if isinstance(split.x, DatasetInputs):
        index = np.arange(n) if order is None else order.numpy()
        for start, x in zip(range(0, n, batch_size), split.x.batches(index, batch_size),
                            strict=True):
            y = split.y[start : start + batch_size] if order is None else split.y[
                order[start : start + batch_size].to(split.y.device)]
            yield x, y
        return
    for start in range(0, n, batch_size):
        if order is None:
            yield split.x[start : start + batch_size], split.y[start : start + batch_size]
        else:
            idx = order[start : start + batch_size]
            yield split.x[idx], split.y[idx]
