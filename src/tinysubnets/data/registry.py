"""The datasets ``--download`` can fetch: official URLs and published checksums, one cache.

Each dataset lands in its own sub-folder of the download cache (``default_cache_dir()``), named
as in a folder of datasets (``mnist/``, ``cifar10/``, ``tiny-imagenet/`` ...), holding the files
exactly as published, so the usual readers open them where they lie.

Where the official source publishes md5 rather than sha256, md5 of the file as served is what is
checked (CIFAR, SVHN, Fashion-MNIST, Tiny ImageNet). notMNIST has no official checksummed release
in IDX format, so it is not offered: it must be provided.

Tests (or a private mirror) swap an entry of ``REMOTE_DATASETS`` for one with other mirrors and
checksums; nothing else needs patching.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tinysubnets.errors import DataError

from .download import RemoteFile, default_cache_dir, fetch
from .mnist import MNIST_FILES, MNIST_MIRRORS


@dataclass(frozen=True)
class RemoteDataset:
    """A dataset's files, each fetched by name from the first mirror that serves it intact."""

    folder: str  # sub-folder of the download cache
    mirrors: tuple[str, ...]
    files: tuple[RemoteFile, ...]
    origin: str  # where the URLs and checksums were published, for the record


# URLs and md5 as in torchvision.datasets (cifar.py CIFAR10/CIFAR100.url and tgz_md5,
# svhn.py SVHN.split_list, mnist.py FashionMNIST.mirrors and resources); Fashion-MNIST's are
# also in the README of github.com/zalandoresearch/fashion-mnist, whose repository serves the
# same files. Tiny ImageNet is not in torchvision: URL and md5 as in Avalanche
# (avalanche/benchmarks/datasets/tiny_imagenet/tiny_imagenet.py, TinyImagenet.filename and md5).
REMOTE_DATASETS: dict[str, RemoteDataset] = {
    "mnist": RemoteDataset(
        "mnist", MNIST_MIRRORS, MNIST_FILES, "LeCun's MNIST via the mirrors in data/mnist.py"
    ),
    "fashion-mnist": RemoteDataset(
        "fashion-mnist",
        (
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        ),
        (
            RemoteFile("train-images-idx3-ubyte.gz", md5="8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            RemoteFile("train-labels-idx1-ubyte.gz", md5="25c81989df183df01b3e8a0aad5dffbe"),
            RemoteFile("t10k-images-idx3-ubyte.gz", md5="bef4ecab320f06d8554ea6380940ec79"),
            RemoteFile("t10k-labels-idx1-ubyte.gz", md5="bb300cfdad3c16e7a12a480ee83cd310"),
        ),
        "Zalando Research (github.com/zalandoresearch/fashion-mnist)",
    ),
    "cifar10": RemoteDataset(
        "cifar10",
        ("https://www.cs.toronto.edu/~kriz/",),
        (RemoteFile("cifar-10-python.tar.gz", md5="c58f30108f718f92721af3b95e74349a"),),
        "Alex Krizhevsky (www.cs.toronto.edu/~kriz/cifar.html)",
    ),
    "cifar100": RemoteDataset(
        "cifar100",
        ("https://www.cs.toronto.edu/~kriz/",),
        (RemoteFile("cifar-100-python.tar.gz", md5="eb9058c3a382ffc7106e4002c42a8d85"),),
        "Alex Krizhevsky (www.cs.toronto.edu/~kriz/cifar.html)",
    ),
    "svhn": RemoteDataset(
        "svhn",
        ("http://ufldl.stanford.edu/housenumbers/",),
        (
            RemoteFile("train_32x32.mat", md5="e26dedcc434d2e4c54c9b2d4a06d8373"),
            RemoteFile("test_32x32.mat", md5="eb5a983be6a315427106f1b164d9cef3"),
        ),
        "Stanford UFLDL (ufldl.stanford.edu/housenumbers), cropped digits, format 2",
    ),
    "tinyimagenet": RemoteDataset(
        "tiny-imagenet",
        ("http://cs231n.stanford.edu/",),
        (RemoteFile("tiny-imagenet-200.zip", md5="90528d7ca1a48142e341f4ef8d21d0de"),),
        "Stanford CS231n (cs231n.stanford.edu)",
    ),
}


def download_dataset(
    name: str,
    cache_dir: Path | None = None,
    registry: Mapping[str, RemoteDataset] | None = None,
) -> Path:
    """The cache folder holding every file of dataset `name`, verified; fetch what is missing.

    Files already there with the right checksum are kept without any request; a file that
    cannot be fetched intact is never left behind (see `fetch`). cache_dir defaults to
    default_cache_dir().
    """
    registry = REMOTE_DATASETS if registry is None else registry
    if name not in registry:
        raise DataError(
            f"{name} cannot be downloaded; --download knows {', '.join(sorted(registry))}"
        )
    dataset = registry[name]
    folder = (default_cache_dir() if cache_dir is None else Path(cache_dir)) / dataset.folder
    for file in dataset.files:
        fetch(dataset.mirrors, file, folder)
    return folder
