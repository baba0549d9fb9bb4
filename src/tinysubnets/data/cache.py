"""A disk cache of decoded images: JPEGs are decoded once, later loads read a single .npz."""

from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from tinysubnets.atomic import atomic_open

from .download import default_cache_dir

# Bump when the same key would now decode to different arrays (e.g. another resize filter).
CACHE_VERSION = 1

Arrays = dict[str, np.ndarray]


def file_stamp(path: Path) -> dict[str, object]:
    """A source file's identity, cheap to take: resolved path, size and mtime."""
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def files_stamp(paths: Iterable[Path]) -> str:
    """One digest of many files' stamps: a folder tree changes when any file in it does."""
    digest = hashlib.sha256()
    for path in paths:
        stamp = file_stamp(path)
        digest.update(f"{stamp['path']}\t{stamp['size']}\t{stamp['mtime_ns']}\n".encode())
    return digest.hexdigest()


def cache_path(
    name: str, key: Mapping[str, object], cache_dir: Path | None = None, suffix: str = ".npz"
) -> Path:
    """Where the arrays for `key` live: <cache_dir>/<name>-<digest of key><suffix>."""
    text = json.dumps({"version": CACHE_VERSION, **key}, sort_keys=True, default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:24]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir() / "decoded"
    return folder / f"{name}-{digest}{suffix}"


def _read(path: Path) -> Arrays | None:
    """The cached arrays, or None when absent or damaged (a bad entry is rebuilt, not fatal)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile):
        return None


def _write(path: Path, arrays: Arrays) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_open(path) as handle:
            np.savez(handle, **arrays)
    except OSError as error:
        # The data is already decoded: an unwritable cache only costs time on the next load.
        warnings.warn(f"could not write decoded-image cache {path}: {error}", stacklevel=3)


def cached_arrays(
    name: str,
    key: Mapping[str, object],
    build: Callable[[], Arrays],
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> Arrays:
    """build() once per key: later calls read the .npz written the first time instead."""
    if not use_cache:
        return build()
    path = cache_path(name, key, cache_dir)
    arrays = _read(path)
    if arrays is None:
        arrays = build()
        _write(path, arrays)
    return arrays
