"""SVHN cropped digits (format 2): the train_32x32.mat / test_32x32.mat files, read strictly."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinysubnets.errors import DataError

from .images import ImageSet

SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")
_LAYOUT = "X: uint8 (32, 32, 3, N) and y: integers 1..10 of shape (N, 1), 10 meaning digit 0"


def _read_mat(path: Path) -> ImageSet:
    """One split as (N, 32, 32, 3) uint8 with labels 0..9."""
    import scipy.io  # here, not at module level: importing scipy costs a second at CLI start-up

    if not path.is_file():
        raise DataError(
            f"SVHN file missing: {path}; expected {path.parent} to hold "
            f"{' and '.join(SVHN_FILES)} (cropped digits, format 2)"
        )
    try:
        mat = scipy.io.loadmat(path, variable_names=["X", "y"])
    # scipy reports a bad .mat with many exception types; all mean the same to the user.
    except Exception as error:
        raise DataError(
            f"{path} is not a readable MATLAB v5 file ({error}); expected {_LAYOUT}"
        ) from None
    images, labels = mat.get("X"), mat.get("y")
    if not isinstance(images, np.ndarray) or not isinstance(labels, np.ndarray):
        raise DataError(f"{path} lacks the variable X or y; expected {_LAYOUT}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[:3] != (32, 32, 3):
        raise DataError(f"{path} X is {images.dtype} {images.shape}; expected {_LAYOUT}")
    count = images.shape[3]
    if labels.dtype.kind not in "iu" or labels.shape != (count, 1):
        raise DataError(
            f"{path} y is {labels.dtype} {labels.shape} for {count} images; expected {_LAYOUT}"
        )
    labels = labels[:, 0].astype(np.int64)
    if count and (labels.min() < 1 or labels.max() > 10):
        raise DataError(f"{path} y holds labels outside 1..10; expected {_LAYOUT}")
    labels[labels == 10] = 0
    return ImageSet(images=np.ascontiguousarray(images.transpose(3, 0, 1, 2)), labels=labels)


def load_svhn(root: Path) -> tuple[ImageSet, ImageSet]:
    """(train, test) SVHN as (N, 32, 32, 3) uint8 with labels 0..9 (73,257 / 26,032).

    root: the folder holding train_32x32.mat and test_32x32.mat.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"SVHN folder not found: {root}; expected a folder holding {' and '.join(SVHN_FILES)}"
        )
    train, test = (_read_mat(root / name) for name in SVHN_FILES)
    return train, test
