"""What `tsn predict` reads: the inputs (a .npy file, an image file or a folder of images), in
batches with a name per input, and a user's backbone named ``module:Class``."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image
from torch import nn

from tinysubnets.data.folders import IMAGE_EXTENSIONS, is_image_name
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.preprocess import one_image, read_images

Batch = tuple[list[str], np.ndarray | list[Image.Image]]


def _npy(path: Path) -> np.ndarray:
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)  # read batch by batch
    except (OSError, ValueError, EOFError) as error:
        raise DataError(f"cannot read {path} as a .npy array ({error})") from None
    if not isinstance(array, np.ndarray) or array.ndim < 1:
        raise DataError(f"{path} holds no batch of inputs (shape {np.shape(array)})")
    return array


def image_files(folder: Path) -> list[Path]:
    """The folder's image files, sorted by name (other files are skipped)."""
    files = sorted(p for p in folder.iterdir() if p.is_file() and is_image_name(p.name))
    if not files:
        raise DataError(f"{folder} holds no image files ({', '.join(IMAGE_EXTENSIONS)})")
    return files


def input_batches(path: Path, batch_size: int, record: dict | None = None) -> Iterator[Batch]:
    """(names, raw inputs) ``batch_size`` at a time: a .npy's rows named by index, images by
    file name. Images are decoded batch by batch, so a large folder is never held at once.
    ``record`` is the task's preprocessing: a .npy it takes as one image (p-MNIST's single
    (28, 28)) is one input named "0", not 28 rows, so names match the labels."""
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.is_dir():
        files = image_files(path)
    elif path.suffix.lower() == ".npy":
        array = _npy(path)
        if len(array) == 0:
            raise DataError(f"no inputs in {path} (shape {list(array.shape)})")
        if one_image(record or {}, array.shape):
            yield ["0"], np.array(array)
            return
        for start in range(0, len(array), batch_size):
            part = np.array(array[start : start + batch_size])  # a writable copy
            yield [str(i) for i in range(start, start + len(part))], part
        return
    elif is_image_name(path.name):
        files = [path]
    else:
        raise DataError(f"{path}: INPUTS must be a .npy file, an image file "
                        f"({', '.join(IMAGE_EXTENSIONS)}) or a folder of images")
    for start in range(0, len(files), batch_size):
        part = files[start : start + batch_size]
        yield [p.name for p in part], read_images(part)


def user_backbone(spec: str) -> nn.Module:
    """A fresh instance of the backbone class ``module:Class`` (its values are not used: the
    model file's replace them). The current folder is searched after the Python path."""
    module_name, sep, class_name = spec.partition(":")
    if not (sep and module_name and class_name):
        raise ConfigError(f"--backbone takes MODULE:CLASS (e.g. mynets:MyCNN), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # the user's module: whatever it raises, one message
        raise ConfigError(f"--backbone {spec}: cannot import {module_name} "
                          f"({type(error).__name__}: {error})") from None
    cls: object = module
    for part in class_name.split("."):
        cls = getattr(cls, part, None)
        if cls is None:
            raise ConfigError(f"--backbone {spec}: {module_name} has no {class_name}")
    try:
        backbone = cls()  # type: ignore[operator]
    except Exception as error:
        raise ConfigError(f"--backbone {spec}: {class_name}() failed ({type(error).__name__}: "
                          f"{error}); the class must build with no arguments") from None
    if not isinstance(backbone, nn.Module):
        raise ConfigError(f"--backbone {spec}: {class_name}() is a {type(backbone).__name__}, "
                          "not a torch nn.Module")
    return backbone
