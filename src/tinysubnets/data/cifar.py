"""CIFAR-10/100 python batches, unpickled through an allow-list so a batch file cannot run code."""

from __future__ import annotations

import io
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tinysubnets.errors import DataError

from .archive import is_archive, iter_archive
from .images import ImageSet

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR100_FOLDER = "cifar-100-python"

_PIXELS = 3 * 32 * 32
# The largest batch, CIFAR-100's train (50,000 images), pickles to about 160 MB: a member
# declaring more is refused before it is read (`iter_archive`).
_BATCH_BYTES = 256 << 20
# ndarray.__reduce__ hands back numpy's own reconstructor, whatever module numpy keeps it in.
_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    """_codecs.encode as Python 3 protocol-2 pickles call it to rebuild bytes; only latin1."""
    if encoding != "latin1":
        raise pickle.UnpicklingError(f"_codecs.encode called with {encoding!r}, expected 'latin1'")
    return text.encode("latin1")


def _empty_bytes(*args: object) -> bytes:
    """bytes() as Python 3 protocol-2 pickles call it for b"" (an empty batch's pixels); any
    argument is refused, since bytes(n) would allocate n bytes a batch never holds."""
    if args:
        raise pickle.UnpicklingError("bytes called with arguments, expected none (b'')")
    return b""


# Everything the batches reference: the Python 2 originals name numpy.core.multiarray; files
# re-pickled under numpy 2 name numpy._core; Python 3 protocol-2 pickles add _codecs.encode
# (and __builtin__.bytes for b"").
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,
}


class _BatchUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in _ALLOWED; anything else is refused."""

    def __init__(self, data: bytes, source: str) -> None:
        # encoding="bytes": the originals are Python 2 pickles whose str keys load as bytes.
        super().__init__(io.BytesIO(data), encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED)
            raise DataError(
                f"{self._source} references the global {module}.{name}, which a CIFAR batch "
                f"never needs; refusing to unpickle it (allowed: {allowed})"
            ) from None


def _unpickle(data: bytes, source: str) -> dict[str, object]:
    """The batch dict with str keys; any damage or foreign content is a DataError."""
    expected = "a pickled dict with b'data' (N x 3072 uint8) and its labels"
    try:
        batch = _BatchUnpickler(data, source).load()
    except DataError:
        raise
    # A damaged pickle can fail with almost any exception type; all mean the same to the user.
    except Exception as error:
        raise DataError(
            f"{source} is not a readable CIFAR batch ({error}); expected {expected}"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"{source} holds a {type(batch).__name__}; expected {expected}")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in batch.items()}


def _batch_set(source: str, data: bytes, label_key: str, num_classes: int) -> ImageSet:
    """One batch as (N, 32, 32, 3) HWC images: the files store each row as 3 planes of 32x32."""
    batch = _unpickle(data, source)
    for key in ("data", label_key):
        if key not in batch:
            raise DataError(
                f"{source} has no b{key!r} entry; expected keys b'data' and b{label_key!r}"
            )
    pixels = batch["data"]
    if (
        not isinstance(pixels, np.ndarray)
        or pixels.dtype != np.uint8
        or pixels.ndim != 2
        or (pixels.shape[1] != _PIXELS)
    ):
        found = f"{pixels.dtype} {pixels.shape}" if isinstance(pixels, np.ndarray) else type(pixels)
        raise DataError(f"{source} b'data' is {found}; expected uint8 of shape (N, {_PIXELS})")
    labels = np.asarray(batch[label_key])
    if labels.shape == (0,):  # an empty list reads as float64: no labels is no wrong labels
        labels = labels.astype(np.int64)
    if labels.dtype.kind not in "iu" or labels.shape != (len(pixels),):
        raise DataError(
            f"{source} b{label_key!r} has {labels.dtype} shape {labels.shape}; "
            f"expected {len(pixels)} integer labels, one per image"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{source} b{label_key!r} holds labels outside 0..{num_classes - 1}")
    images = pixels.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return ImageSet(images=np.ascontiguousarray(images), labels=labels.astype(np.int64))


def _read_batches(root: Path, folder: str, names: Sequence[str]) -> dict[str, tuple[str, bytes]]:
    """name -> (where it came from, bytes), from the batches folder, its parent or a tar archive."""
    root = Path(root)
    layout = f"{folder}/ holding {', '.join(names)} (the python version of the dataset)"
    if is_archive(root):
        wanted = {f"{folder}/{name}": name for name in names} | {name: name for name in names}
        found: dict[str, tuple[str, bytes]] = {}
        for member, read in iter_archive(root, f"a tar archive of {layout}", _BATCH_BYTES):
            if member in wanted and wanted[member] not in found:
                found[wanted[member]] = (f"{root}:{member}", read())
        missing = [f"{folder}/{name}" for name in names if name not in found]
        if missing:
            raise DataError(
                f"{root} lacks {', '.join(missing)}; expected a tar archive of {layout}"
            )
        return found
    if not root.is_dir():
        problem = "is not a folder or a tar archive" if root.exists() else "is missing"
        raise DataError(
            f"CIFAR data {root} {problem}; expected the folder {layout}, its parent or its archive"
        )
    batches = root / folder if (root / folder).is_dir() else root
    found = {}
    for name in names:
        path = batches / name
        try:
            found[name] = (str(path), path.read_bytes())
        except FileNotFoundError:
            raise DataError(f"CIFAR batch file missing: {path}; expected {layout}") from None
        except OSError as error:
            raise DataError(f"cannot read CIFAR batch {path}: {error}") from None
    return found


def _load(
    root: Path, folder: str, train: Sequence[str], test: str, label_key: str, num_classes: int
) -> tuple[ImageSet, ImageSet]:
    batches = _read_batches(root, folder, [*train, test])
    sets = {name: _batch_set(*batches[name], label_key, num_classes) for name in batches}
    train_set = ImageSet(
        images=np.concatenate([sets[name].images for name in train]),
        labels=np.concatenate([sets[name].labels for name in train]),
    )
    return train_set, sets[test]


def load_cifar10(root: Path) -> tuple[ImageSet, ImageSet]:
    """(train, test) CIFAR-10 as (N, 32, 32, 3) uint8 with labels 0..9 (50,000 / 10,000).

    root: the cifar-10-batches-py folder, the folder holding it, or cifar-10-python.tar.gz.
    """
    return _load(root, CIFAR10_FOLDER, CIFAR10_TRAIN, CIFAR10_TEST, "labels", 10)


def load_cifar100(root: Path) -> tuple[ImageSet, ImageSet]:
    """(train, test) CIFAR-100 as (N, 32, 32, 3) uint8 with the 100 fine labels 0..99.

    root: the cifar-100-python folder, the folder holding it, or cifar-100-python.tar.gz.
    """
    return _load(root, CIFAR100_FOLDER, ("train",), "test", "fine_labels", 100)
