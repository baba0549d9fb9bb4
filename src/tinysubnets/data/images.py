"""A labelled set of images: the one shape every loader returns, checked once at construction."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinysubnets.errors import DataError


# eq=False: the generated __eq__ would compare arrays element-wise and fail on truth-testing.
@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images and their class labels, validated so later code can trust dtypes and lengths.

    images: uint8, shape (N, H, W) or (N, H, W, C); labels: int64, shape (N,).
    """

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.images, np.ndarray) or not isinstance(self.labels, np.ndarray):
            raise DataError("ImageSet expects numpy arrays for images and labels")
        if self.images.dtype != np.uint8 or self.images.ndim not in (3, 4):
            raise DataError(
                "ImageSet images must be uint8 with shape (N, H, W) or (N, H, W, C), "
                f"got {self.images.dtype} with shape {self.images.shape}"
            )
        if self.labels.dtype != np.int64 or self.labels.ndim != 1:
            raise DataError(
                "ImageSet labels must be int64 with shape (N,), "
                f"got {self.labels.dtype} with shape {self.labels.shape}"
            )
        if len(self.images) != len(self.labels):
            raise DataError(
                f"ImageSet has {len(self.images)} images but {len(self.labels)} labels; "
                "expected one label per image"
            )

    def __len__(self) -> int:
        return len(self.labels)
