"""ImageFolder trees too large for memory (ImageNet-100: 130k images, 78 GB as float32), decoded
once into a uint8 memory-mapped array in the decoded-image cache and read from disk batch by batch.

Each image is decoded with the standard ImageNet evaluation transform at one size: its shorter
side resized to round(size * 256 / 224) (bilinear, antialiased), then the central size × size
(torchvision's ``Resize`` + ``CenterCrop``). The array is a ``.npy`` file keyed, like
``cached_arrays``, by the files' stamps and the size; it is written to a temporary file and
renamed, so a crash never leaves a half-written cache, and a second build only maps it.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from tinysubnets.atomic import atomic_open, write_json
from tinysubnets.errors import DataError

from .cache import cache_path, files_stamp
from .folders import ImageFile, Tree, check_same_classes, folder_tree, open_rgb

# Bump when the same key would now decode to different pixels (another filter, another crop).
MEMMAP_VERSION = 1
TRANSFORM = "shorter side to round(size*256/224), bilinear; centre crop size x size"


@dataclass(frozen=True, eq=False)
class DecodedFolder:
    """One ImageFolder tree, decoded: ``images`` uint8 (N, size, size, 3), memory-mapped
    read-only; ``labels`` int64 (N,), the index of each image's class in ``classes`` (sorted)."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    path: Path  # the cached .npy file the images are mapped from


def resize_center_crop(image: Image.Image, size: int) -> Image.Image:
    """The standard ImageNet evaluation transform at ``size`` (torchvision's arithmetic)."""
    short = round(size * 256 / 224)
    width, height = image.size
    if width <= height:
        new = (short, int(short * height / width))
    else:
        new = (int(short * width / height), short)
    resized = image if new == image.size else image.resize(new, Image.Resampling.BILINEAR)
    left, top = round((new[0] - size) / 2.0), round((new[1] - size) / 2.0)
    return resized.crop((left, top, left + size, top + size))


def decode_cropped(file: ImageFile, size: int) -> np.ndarray:
    """One image as uint8 (size, size, 3) RGB; an unreadable file is a DataError naming it."""
    return np.asarray(resize_center_crop(open_rgb(file.read(), file.name), size), np.uint8)


def list_folder_pair(root: Path, train: str, test: str) -> tuple[Tree, Tree]:
    """The two ImageFolder trees under ``root``, checked to hold the same (non-empty) classes."""
    trees = [folder_tree(root / train), folder_tree(root / test)]
    check_same_classes(trees, [train, test], root)
    return trees[0], trees[1]


def tree_labels(tree: Tree) -> np.ndarray:
    """int64 label of each image of ``tree`` in listing order: its class's index (sorted)."""
    counts = [len(files) for files in tree.values()]
    return np.repeat(np.arange(len(counts), dtype=np.int64), counts)


def _open(path: Path, shape: tuple[int, ...]) -> np.ndarray | None:
    """The cached array, or None when absent, damaged or of another shape (then rebuilt)."""
    try:
        images = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    return images if images.shape == shape and images.dtype == np.uint8 else None


def _write(path: Path, files: Sequence[ImageFile], size: int, workers: int) -> None:
    """Decode ``files`` in order into the .npy at ``path``: written sequentially through a file
    handle (a full disk is an error here, not a crash in a memory map), renamed when complete."""
    shape = (len(files), size, size, 3)
    chunk = 64 * workers
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as handle, ThreadPoolExecutor(workers) as pool:
            header = {"descr": "|u1", "fortran_order": False, "shape": shape}
            np.lib.format.write_array_header_1_0(handle, header)
            bar = tqdm(total=len(files), desc=f"decoding {path.name}", unit="img", disable=None)
            with bar:
                for start in range(0, len(files), chunk):
                    # Pillow releases the GIL while it decodes and resizes: threads scale.
                    part = files[start : start + chunk]
                    handle.write(np.stack(list(pool.map(decode_cropped, part, [size] * len(part)))))
                    bar.update(len(part))
    except OSError as error:
        raise DataError(
            f"cannot write decoded images to {path} ({error}); they need "
            f"{np.prod(shape) / 1e9:.1f} GB there: free some space or set TSN_CACHE_DIR"
        ) from None


def decoded_folder(
    folder: Path, tree: Tree, size: int, cache_dir: Path | None = None, workers: int | None = None
) -> DecodedFolder:
    """``tree`` (listed from ``folder``) decoded at ``size`` into the cache, once per set of
    files and size; labels follow the sorted class names."""
    files = [file for files in tree.values() for file in files]
    key = {
        "loader": "image-folder-memmap", "version": MEMMAP_VERSION, "transform": TRANSFORM,
        "source": str(Path(folder).resolve()), "stamp": files_stamp(f.path for f in files),
        "size": size,
    }
    name = "-".join(p for p in Path(folder).resolve().parts[-2:] if p.strip("/"))
    path = cache_path(name, key, cache_dir, suffix=".npy")
    shape = (len(files), size, size, 3)
    images = _open(path, shape)
    if images is None:
        _write(path, files, size, workers or min(8, os.cpu_count() or 1))
        images = _open(path, shape)
        if images is None:  # only if the file changed under us
            raise DataError(f"the decoded-image cache {path} could not be read back")
    return DecodedFolder(images, tree_labels(tree), list(tree), path)


def _channel_sums(images: np.ndarray, chunk_bytes: int = 1 << 24) -> dict[str, object]:
    """Per-channel sum and sum of squares of uint8 (N, H, W, C) images, read in chunks, as
    exact integers: the statistics do not depend on the chunking or on summation order."""
    per_image = max(1, int(np.prod(images.shape[1:])))
    step = max(1, chunk_bytes // per_image)
    sums = np.zeros(images.shape[-1], dtype=np.int64)
    squares = np.zeros(images.shape[-1], dtype=np.int64)
    for start in range(0, len(images), step):
        block = np.asarray(images[start : start + step])
        sums += block.sum(axis=(0, 1, 2), dtype=np.int64)
        squares += np.square(block, dtype=np.uint16).sum(axis=(0, 1, 2), dtype=np.int64)
    count = len(images) * int(np.prod(images.shape[1:-1]))
    return {"count": count, "sums": sums.tolist(), "squares": squares.tolist()}


def channel_mean_std(decoded: DecodedFolder) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (unbiased) per channel of the images as [0, 1] floats, the
    statistics `scenarios.vision.normalise` takes of a training split in memory. Computed in
    chunks over the memory map once, then kept beside it (``.stats.json``)."""
    stats_path = decoded.path.with_suffix(".stats.json")
    try:
        stats = json.loads(stats_path.read_text())
        n, sums, squares = int(stats["count"]), stats["sums"], stats["squares"]
    except (OSError, ValueError, KeyError, TypeError):
        stats = _channel_sums(decoded.images)
        n, sums, squares = int(stats["count"]), stats["sums"], stats["squares"]
        with contextlib.suppress(OSError):  # a read-only cache: computed again next time
            write_json(stats_path, stats)
    # Exact integer arithmetic, one rounding at the end (Python ints do not overflow).
    mean = np.array([s / (255 * n) for s in sums], dtype=np.float64)
    var = [(n * q - s * s) / (n * max(n - 1, 1) * 255 * 255) for s, q in zip(sums, squares,
                                                                              strict=True)]
    return mean, np.sqrt(np.array(var, dtype=np.float64))
