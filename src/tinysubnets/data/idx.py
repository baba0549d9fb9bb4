"""IDX files (the MNIST container), read strictly so a damaged download fails loudly, at once."""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import IO

import numpy as np

from tinysubnets.atomic import atomic_open
from tinysubnets.errors import DataError

from .images import ImageSet

# Magic = 0x00 0x00 <type> <ndim>; only unsigned bytes (type 0x08) are used by the MNIST family.
_UBYTE = 0x08
LABELS_MAGIC = 0x0801
IMAGES_MAGIC = 0x0803
# The most data bytes an IDX file may hold (1 GiB): EMNIST ByClass, the family's largest, is
# 0.64 GB. A gzip's header is all that says what it will decompress to, so the header's shape
# is checked against this before the data is read, and the read stops at the size it gives.
MAX_IDX_BYTES = 1 << 30
_CHUNK = 1 << 20


def _read_at_most(handle: IO[bytes], count: int) -> bytearray:
    """Up to `count` bytes, a chunk at a time: memory follows what arrives, not what is claimed."""
    data = bytearray()
    while len(data) < count:
        chunk = handle.read(min(_CHUNK, count - len(data)))
        if not chunk:
            break
        data += chunk
    return data


def _read_header(handle: IO[bytes], path: Path) -> tuple[tuple[int, ...], int]:
    """(shape, header length) from the magic number and the dimensions after it."""
    head = _read_at_most(handle, 4)
    if len(head) < 4:
        raise DataError(f"{path} is too short for an IDX header: {len(head)} bytes")
    magic = int.from_bytes(head, "big")
    if magic not in (LABELS_MAGIC, IMAGES_MAGIC):
        raise DataError(
            f"{path} has IDX magic 0x{magic:08x}; expected 0x{LABELS_MAGIC:08x} (labels) "
            f"or 0x{IMAGES_MAGIC:08x} (images)"
        )
    ndim = magic & 0xFF
    dims = _read_at_most(handle, 4 * ndim)
    if len(dims) < 4 * ndim:
        raise DataError(
            f"{path} is truncated inside its IDX header ({4 + len(dims)} of {4 + 4 * ndim} bytes)"
        )
    shape = tuple(int.from_bytes(dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    return shape, 4 + 4 * ndim


def _size_problem(path: Path, shape: tuple[int, ...], expected: int, found: int | None) -> str:
    """found None: more than expected (a gzip is read no further than one byte past it)."""
    longer = found is None or found > expected
    problem = "longer than its header says" if longer else "truncated"
    shown = "more" if found is None else found
    return f"{path} is {problem}: shape {shape} needs {expected} data bytes, found {shown}"


def _read_data(handle: IO[bytes], path: Path, max_bytes: int) -> np.ndarray:
    """The array the header describes, its size checked (in Python ints: three 32-bit dims
    multiply past int64) against the file's and `max_bytes` before any data is read."""
    shape, header = _read_header(handle, path)
    expected = math.prod(shape)
    gzipped = isinstance(handle, gzip.GzipFile)
    if not gzipped:  # a plain file's size is known: compare before reading anything
        found = os.fstat(handle.fileno()).st_size - header
        if found != expected:
            raise DataError(_size_problem(path, shape, expected, found))
    if expected > max_bytes:
        raise DataError(
            f"{path}: its IDX header gives shape {shape}, {expected} data bytes, over the "
            f"{max_bytes}-byte limit for an IDX file; refusing to read it"
        )
    data = _read_at_most(handle, expected + 1)  # one byte more tells a longer file
    if len(data) != expected:
        found = None if len(data) > expected else len(data)
        raise DataError(_size_problem(path, shape, expected, found))
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def read_idx(path: Path, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (labels 0x0801 -> 1-D, images 0x0803 -> 3-D), gzipped or raw, as uint8.

    max_bytes: the most data the file may hold (default MAX_IDX_BYTES), so a small .gz that
    claims gigabytes is refused before they are decompressed.
    """
    path = Path(path)
    limit = MAX_IDX_BYTES if max_bytes is None else max_bytes
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as handle:
            return _read_data(handle, path, limit)
    except FileNotFoundError:
        raise DataError(f"IDX file not found: {path}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as error:
        raise DataError(
            f"{path} is not a complete gzip file ({error}); expected gzip-compressed IDX data"
        ) from None
    except OSError as error:
        raise DataError(f"cannot read IDX file {path}: {error}") from None


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
