"""Inputs streamed from disk: a split's images stay uint8 in a memory map and become model-ready
float32 only batch by batch, so a dataset larger than memory trains like one held in it.

``StreamedImages`` answers what the learner asks of a split's inputs (``len``, ``shape``,
``device``, ``to``, ``detach``, indexing by a slice or an index tensor), so ``Split`` holds it
where it would hold a tensor and every consumer reads batches unchanged.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

Index = slice | Tensor | np.ndarray


class StreamedImages:
    """Rows of uint8 (N, H, W, 3) images, read as float32 (B, 3, H, W) on ``device`` and
    standardised per channel with ``mean`` and ``std`` (the training split's)."""

    def __init__(
        self, images: np.ndarray, mean: Tensor, std: Tensor, rows: np.ndarray | None = None,
        device: torch.device | str = "cpu",
    ) -> None:
        self.images = images
        self.rows = rows  # which images of the array, in order; None: all of them
        self._device = torch.device(device)
        # (1, 3, 1, 1) float32, like `normalise`'s statistics of a split held in memory.
        self.mean = mean.reshape(1, -1, 1, 1).to(self._device, torch.float32)
        self.std = std.reshape(1, -1, 1, 1).to(self._device, torch.float32).clamp_min(1e-6)

    def __len__(self) -> int:
        return len(self.images) if self.rows is None else len(self.rows)

    @property
    def shape(self) -> torch.Size:
        _, height, width, channels = self.images.shape
        return torch.Size((len(self), channels, height, width))

    @property
    def device(self) -> torch.device:
        return self._device

    def to(self, device: torch.device | str) -> StreamedImages:
        """The same images, read onto ``device`` (nothing is read now)."""
        return StreamedImages(self.images, self.mean, self.std, self.rows, device)

    def detach(self) -> StreamedImages:
        return self

    def subset(self, index: Tensor | np.ndarray) -> StreamedImages:
        """The rows ``index`` selects, still on disk (indexing with ``[]`` reads them)."""
        index = index.cpu().numpy() if isinstance(index, Tensor) else np.asarray(index)
        rows = index if self.rows is None else self.rows[index]
        return StreamedImages(self.images, self.mean, self.std, rows, self._device)

    def __getitem__(self, key: Index) -> Tensor:
        if isinstance(key, Tensor):
            key = key.cpu().numpy()
        if not isinstance(key, slice | np.ndarray):
            raise TypeError(f"streamed images are indexed by a slice or an index tensor, not "
                            f"{type(key).__name__}")
        rows = key if self.rows is None else self.rows[key]
        batch = self.images[rows]
        if not batch.flags.writeable:  # a slice of the read-only map: torch wants its own copy
            batch = batch.copy()
        # The same operations, in the same order, as `to_tensor` and `normalise` in memory.
        x = torch.from_numpy(batch).to(self._device).permute(0, 3, 1, 2).float().div_(255.0)
        return (x.contiguous() - self.mean) / self.std
