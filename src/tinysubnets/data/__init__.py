"""Data layer: datasets as validated uint8 ImageSets, from standard files, downloads or embedded."""

from .cifar import load_cifar10, load_cifar100
from .download import RemoteFile, default_cache_dir, fetch
from .embedded import load_embedded_mnist
from .folders import load_image_folder, load_image_folder_archive, load_image_folder_pair
from .idx import load_idx_pair, read_idx, write_idx
from .images import ImageSet
from .mnist import MNIST_FILES, MNIST_MIRRORS, load_mnist, mnist_source
from .svhn import load_svhn
from .tiny_imagenet import load_tiny_imagenet

__all__ = [
    "MNIST_FILES",
    "MNIST_MIRRORS",
    "ImageSet",
    "RemoteFile",
    "default_cache_dir",
    "fetch",
    "load_cifar10",
    "load_cifar100",
    "load_embedded_mnist",
    "load_idx_pair",
    "load_image_folder",
    "load_image_folder_archive",
    "load_image_folder_pair",
    "load_mnist",
    "load_svhn",
    "load_tiny_imagenet",
    "mnist_source",
    "read_idx",
    "write_idx",
]
