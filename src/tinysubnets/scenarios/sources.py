"""Where each dataset's standard files are looked for under ``--data-dir``, and how they load.

``--data-dir`` may be the dataset's own folder, or a folder of datasets laid out like
``../shared/data`` (``mnist/``, ``fashion-mnist/``, ``notmnist/``, ``cifar10/``, ``svhn/``,
``tiny-imagenet/`` ...). A missing dataset is one error naming the files expected and where.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tinysubnets.data import (
    ImageSet,
    load_cifar10,
    load_cifar100,
    load_idx_pair,
    load_image_folder_pair,
    load_mnist,
    load_svhn,
    load_tiny_imagenet,
)
from tinysubnets.errors import ConfigError, DataError

Loaded = tuple[ImageSet, ImageSet, str]  # train, test, where they came from

LAYOUTS = {
    "mnist": "the four MNIST IDX files (train-images-idx3-ubyte.gz, ...)",
    "fashion-mnist": "the four Fashion-MNIST IDX files (same names as MNIST's)",
    "notmnist": "notMNIST as IDX files (train-* and t10k-*, or t10k-* alone: split 80/20)",
    "cifar10": "cifar-10-batches-py/ (or cifar-10-python.tar.gz), or cifar10-jpg.tar.gz "
               "(ImageFolder train/ and test/)",
    "cifar100": "cifar-100-python/ (or cifar-100-python.tar.gz)",
    "svhn": "train_32x32.mat and test_32x32.mat",
    "tinyimagenet": "tiny-imagenet-200/ (or a .tar.gz of it) in the original layout",
}
FOLDERS = {"tinyimagenet": "tiny-imagenet"}  # sub-folder names in a folder of datasets


def _candidates(name: str, root: Path) -> list[Path]:
    return [root / FOLDERS.get(name, name), root]


def _missing(name: str, root: Path) -> DataError:
    return DataError(
        f"{name}: no dataset files found in {root} or {root / FOLDERS.get(name, name)}; "
        f"expected {LAYOUTS[name]} (--download is only available for MNIST so far)"
    )


def _idx(name: str, root: Path, seed: int) -> Loaded:
    for d in _candidates(name, root):
        if any(d.glob("t10k-images-idx3-ubyte*")):
            if any(d.glob("train-images-idx3-ubyte*")):
                train, test = load_mnist(d)
                return train, test, f"{name} IDX files in {d.resolve()}"
            images = next(iter(sorted(d.glob("t10k-images-idx3-ubyte*"))))
            labels = next(iter(sorted(d.glob("t10k-labels-idx1-ubyte*"))), None)
            if labels is None:
                raise DataError(f"{name}: {images} has no t10k-labels-idx1-ubyte beside it")
            both = load_idx_pair(images, labels)
            order = np.random.default_rng([seed, 0x1D3]).permutation(len(both))
            cut = int(0.8 * len(both))
            pick = [np.sort(order[:cut]), np.sort(order[cut:])]
            train, test = (ImageSet(both.images[i], both.labels[i]) for i in pick)
            return train, test, f"{name} t10k IDX files in {d.resolve()}, split 80/20 (seeded)"
    raise _missing(name, root)


def _cifar10(root: Path, seed: int) -> Loaded:
    for d in _candidates("cifar10", root):
        for name in ("cifar-10-batches-py", "cifar-10-python.tar.gz"):
            if (d / name).exists():
                train, test = load_cifar10(d / name)
                return train, test, f"CIFAR-10 python batches in {(d / name).resolve()}"
        for name in ("cifar10-jpg.tar.gz", "cifar10-jpg"):
            if (d / name).exists():
                sub = "cifar10-jpg/" if name.endswith(".tar.gz") else ""
                train, test, _ = load_image_folder_pair(d / name, f"{sub}train", f"{sub}test")
                return train, test, f"CIFAR-10 JPEG (lossy) ImageFolder in {(d / name).resolve()}"
    raise _missing("cifar10", root)


def _cifar100(root: Path, seed: int) -> Loaded:
    for d in _candidates("cifar100", root):
        for name in ("cifar-100-python", "cifar-100-python.tar.gz"):
            if (d / name).exists():
                train, test = load_cifar100(d / name)
                return train, test, f"CIFAR-100 python batches in {(d / name).resolve()}"
    raise _missing("cifar100", root)


def _svhn(root: Path, seed: int) -> Loaded:
    for d in _candidates("svhn", root):
        if (d / "train_32x32.mat").exists():
            train, test = load_svhn(d)
            return train, test, f"SVHN .mat files in {d.resolve()}"
    raise _missing("svhn", root)


def _tinyimagenet(root: Path, seed: int) -> Loaded:
    for d in _candidates("tinyimagenet", root):
        found = [d / "tiny-imagenet-200", *sorted(d.glob("tiny-imagenet-200*.tar.gz"))]
        for path in found:
            if path.exists():
                train, val = load_tiny_imagenet(path)
                return train, val, f"Tiny ImageNet ({path.resolve()}; val as the test set)"
    raise _missing("tinyimagenet", root)


LOADERS: dict[str, Callable[[Path, int], Loaded]] = {
    "mnist": lambda root, seed: _idx("mnist", root, seed),
    "fashion-mnist": lambda root, seed: _idx("fashion-mnist", root, seed),
    "notmnist": lambda root, seed: _idx("notmnist", root, seed),
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "svhn": _svhn,
    "tinyimagenet": _tinyimagenet,
}


def load_dataset(name: str, data_dir: str | None, seed: int) -> Loaded:
    """(train, test, source) of dataset ``name`` found under ``data_dir``."""
    if name not in LOADERS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    if data_dir is None:
        raise ConfigError(
            f"{name} has no embedded copy: pass --data-dir with {LAYOUTS[name]} "
            f"(or a folder holding a {FOLDERS.get(name, name)}/ folder)"
        )
    root = Path(data_dir)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    return LOADERS[name](root, seed)
