"""IDX files (the MNIST container), read strictly so a damaged download fails loudly, at once."""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from tinysubnets.atomic import atomic_open
from tinysubnets.errors import DataError

from .images import ImageSet

# Magic = 0x00 0x00 <type> <ndim>; only unsigned bytes (type 0x08) are used by the MNIST family.
_UBYTE = 0x08
LABELS_MAGIC = 0x0801
IMAGES_MAGIC = 0x0803


def _read_bytes(path: Path) -> bytes:
    """Whole file content, gunzipped when the name ends in .gz."""
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as handle:
                return handle.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(
            f"{path} is not a complete gzip file ({error}); expected gzip-compressed IDX data"
        ) from None
    except OSError as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from None


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (labels 0x0801 -> 1-D, images 0x0803 -> 3-D), gzipped or raw, as uint8."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise DataError(f"{path} is too short for an IDX header: {len(data)} bytes")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (LABELS_MAGIC, IMAGES_MAGIC):
        raise DataError(
            f"{path} has IDX magic 0x{magic:08x}; expected 0x{LABELS_MAGIC:08x} (labels) "
            f"or 0x{IMAGES_MAGIC:08x} (images)"
        )
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(
            f"{path} is truncated inside its IDX header ({len(data)} of {header} bytes)"
        )
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape, dtype=np.int64))
    found = len(data) - header
    if found != expected:
        problem = "truncated" if found < expected else "longer than its header says"
        raise DataError(
            f"{path} is {problem}: shape {shape} needs {expected} data bytes, found {found}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 1-D (labels) or 3-D (images) array as IDX, gzipped if the name ends .gz."""
    path = Path(path)
    array = np.asarray(array)
    if array.dtype != np.uint8 or array.ndim not in (1, 3):
        raise DataError(
            f"cannot write {path}: IDX needs a uint8 1-D or 3-D array, "
            f"got {array.dtype} with shape {array.shape}"
        )
    header = bytes([0, 0, _UBYTE, array.ndim])
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + np.ascontiguousarray(array).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)  # mtime=0: identical bytes on every run
    try:
        with atomic_open(path) as handle:
            handle.write(payload)
    except OSError as error:
        raise DataError(f"cannot write IDX file {path}: {error}") from None


def load_idx_pair(images_path: Path, labels_path: Path) -> ImageSet:
    """Read an images file and its labels file, checking they describe the same examples."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise DataError(f"{images_path} holds shape {images.shape}; expected 3-D images (N, H, W)")
    if labels.ndim != 1:
        raise DataError(f"{labels_path} holds shape {labels.shape}; expected 1-D labels (N,)")
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} has {len(images)} images but {labels_path} has {len(labels)} labels; "
            "expected the same count"
        )
    return ImageSet(images=images, labels=labels.astype(np.int64))
