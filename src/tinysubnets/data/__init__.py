"""Data layer: datasets as validated uint8 ImageSets, from IDX files, downloads or embedded data."""

from .download import RemoteFile, default_cache_dir, fetch
from .embedded import load_embedded_mnist
from .idx import load_idx_pair, read_idx, write_idx
from .images import ImageSet
from .mnist import MNIST_FILES, MNIST_MIRRORS, load_mnist, mnist_source

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "ImageSet",
    "RemoteFile",
    "default_cache_dir",
    "fetch",
    "load_embedded_mnist",
    "load_idx_pair",
    "load_mnist",
    "mnist_source",
    "read_idx",
    "write_idx",
]
