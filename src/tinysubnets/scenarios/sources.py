"""Where each dataset's standard files are looked for under ``--data-dir``, and how they load.

``--data-dir`` may be the dataset's own folder, or a folder of datasets laid out like
``../shared/data`` (``mnist/``, ``fashion-mnist/``, ``notmnist/``, ``cifar10/``, ``svhn/``,
``tiny-imagenet/``, ``imagenet100/`` ...). A missing dataset is one error naming the files
expected and where.
With ``download``, a dataset not found there is taken from the download cache, which has the same
layout, after fetching its official files if they are not there yet.
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
from tinysubnets.data.registry import REMOTE_DATASETS, download_dataset
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
    "tinyimagenet": "tiny-imagenet-200/ (or a .zip or .tar.gz of it) in the original layout",
    "imagenet100": "train/ and val/ (or test/) ImageFolder trees, <split>/<class>/<image>, the "
                   "same class folders in both (val serves as the test set)",
}
FOLDERS = {"tinyimagenet": "tiny-imagenet"}  # sub-folder names in a folder of datasets
# Where to get what --download cannot fetch: there is no official checksummed IDX release.
NOT_DOWNLOADABLE = {
    "notmnist": "notMNIST has no official checksummed release in IDX format, so --download "
                "cannot fetch it: take train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
                "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (or the t10k-* pair "
                "alone, split 80/20) from github.com/davidflanagan/notMNIST-to-MNIST, or convert "
                "notMNIST (yaroslavvb.blogspot.com/2011/09/notmnist-dataset.html) with its "
                "script, and place them in <data-dir>/notmnist/",
    "imagenet100": "ImageNet is licensed and served only after a login at image-net.org, so "
                   "--download cannot fetch it: download ILSVRC-2012 there and place the train "
                   "and val images of its 100 classes (val sorted into class folders) in "
                   "<data-dir>/imagenet100/train/ and <data-dir>/imagenet100/val/",
}


def _missing(name: str, root: Path) -> DataError:
    where = f"{root} or {root / FOLDERS.get(name, name)}"
    hint = NOT_DOWNLOADABLE.get(name, "or pass --download to fetch it")
    return DataError(
        f"{name}: no dataset files found in {where}; expected {LAYOUTS[name]} ({hint})"
    )


def _idx(name: str, d: Path, seed: int) -> Loaded | None:
    if not any(d.glob("t10k-images-idx3-ubyte*")):
        return None
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


def _cifar10(d: Path, seed: int) -> Loaded | None:
    for name in ("cifar-10-batches-py", "cifar-10-python.tar.gz"):
        if (d / name).exists():
            train, test = load_cifar10(d / name)
            return train, test, f"CIFAR-10 python batches in {(d / name).resolve()}"
    for name in ("cifar10-jpg.tar.gz", "cifar10-jpg"):
        if (d / name).exists():
            sub = "cifar10-jpg/" if name.endswith(".tar.gz") else ""
            train, test, _ = load_image_folder_pair(d / name, f"{sub}train", f"{sub}test")
            return train, test, f"CIFAR-10 JPEG (lossy) ImageFolder in {(d / name).resolve()}"
    return None


def _cifar100(d: Path, seed: int) -> Loaded | None:
    for name in ("cifar-100-python", "cifar-100-python.tar.gz"):
        if (d / name).exists():
            train, test = load_cifar100(d / name)
            return train, test, f"CIFAR-100 python batches in {(d / name).resolve()}"
    return None


def _svhn(d: Path, seed: int) -> Loaded | None:
    if not (d / "train_32x32.mat").exists():
        return None
    train, test = load_svhn(d)
    return train, test, f"SVHN .mat files in {d.resolve()}"


def _tinyimagenet(d: Path, seed: int) -> Loaded | None:
    globs = ("tiny-imagenet-200*.zip", "tiny-imagenet-200*.tar.gz")
    for path in [d / "tiny-imagenet-200", *(p for g in globs for p in sorted(d.glob(g)))]:
        if path.exists():
            train, val = load_tiny_imagenet(path)
            return train, val, f"Tiny ImageNet ({path.resolve()}; val as the test set)"
    return None


# Each reads the dataset from one folder, or returns None when the folder does not hold it.
LOADERS: dict[str, Callable[[Path, int], Loaded | None]] = {
    "mnist": lambda d, seed: _idx("mnist", d, seed),
    "fashion-mnist": lambda d, seed: _idx("fashion-mnist", d, seed),
    "notmnist": lambda d, seed: _idx("notmnist", d, seed),
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "svhn": _svhn,
    "tinyimagenet": _tinyimagenet,
}


def _downloaded(name: str, seed: int) -> Loaded:
    """The dataset from the download cache, fetching (and verifying) what is not there yet."""
    if name in NOT_DOWNLOADABLE:
        raise DataError(f"{name}: {NOT_DOWNLOADABLE[name]}")
    folder = download_dataset(name)
    loaded = LOADERS[name](folder, seed)
    if loaded is None:  # only if the registry and the readers disagree on file names
        raise _missing(name, folder)
    train, test, source = loaded
    origin = REMOTE_DATASETS[name].origin
    return train, test, f"{source} (download from {origin}, checksums verified)"


def load_dataset(name: str, data_dir: str | None, seed: int, download: bool = False) -> Loaded:
    """(train, test, source) of dataset ``name`` found under ``data_dir``.

    download: when ``data_dir`` does not hold it (or is None), take it from the download cache
    (``tinysubnets.data.registry``), fetching and verifying the official files first if needed.
    """
    if name not in LOADERS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(LOADERS)}")
    downloadable = name not in NOT_DOWNLOADABLE
    if data_dir is None:
        if download:
            return _downloaded(name, seed)
        raise ConfigError(
            f"{name} has no embedded copy: pass --data-dir with {LAYOUTS[name]} "
            f"(or a folder holding a {FOLDERS.get(name, name)}/ folder)"
            + (", or pass --download" if downloadable else f"; {NOT_DOWNLOADABLE[name]}")
        )
    root = Path(data_dir)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    for d in (root / FOLDERS.get(name, name), root):
        loaded = LOADERS[name](d, seed)
        if loaded is not None:
            return loaded
    if download and downloadable:
        return _downloaded(name, seed)
    raise _missing(name, root)


def find_folder_pair(name: str, data_dir: str | None) -> tuple[Path, str]:
    """(root, test folder) of a dataset kept as ImageFolder trees, too large to load: ``root``
    holds ``train/`` and ``val/`` (or ``test/``), and is ``<data-dir>/<name>/`` or
    ``<data-dir>`` itself. Such a dataset (ImageNet) cannot be downloaded."""
    if data_dir is None:
        raise ConfigError(
            f"{name} has no embedded copy: pass --data-dir with {LAYOUTS[name]}; "
            f"{NOT_DOWNLOADABLE[name]}"
        )
    root = Path(data_dir)
    if not root.exists():
        raise DataError(f"data folder not found: {root}")
    for d in (root / FOLDERS.get(name, name), root):
        if (d / "train").is_dir():
            test = next((t for t in ("val", "test") if (d / t).is_dir()), None)
            if test is None:
                raise DataError(
                    f"{name}: {d / 'train'} has no val/ (or test/) folder beside it; "
                    f"expected {LAYOUTS[name]} in {d}"
                )
            return d, test
    raise _missing(name, root)
