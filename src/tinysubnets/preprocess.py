"""Raw inputs → the tensors a task was trained on, from the task's recorded preprocessing.

A model file keeps per task the ``preprocess`` record its scenario wrote (``Task.preprocess``),
so a prediction needs nothing but the file and the raw inputs, as a user has them: uint8 images
((N, H, W) or (N, H, W, C) arrays, or decoded image files). `apply` repeats the scenario's own
operations, in the same order, so it gives the same tensors the task was tested on:

* ``{}``: a user's task: inputs are given model-ready (float arrays), taken as they are.
* ``"pmnist"``: /scale, (x - mean) / std, flattened, then the task's pixel permutation (the
  ``draw``-th successive ``default_rng(numpy_seed).permutation(pixels)``).
* ``"image"``: to ``channels`` x ``size`` x ``size`` (``resize`` "pad-or-bilinear": square images
  2 or 4 pixels short are zero-padded evenly, as 28 → 32 digits, others resized bilinearly,
  antialiased; "shorter-side-center-crop": ImageNet's evaluation transform), /scale, then
  (x - mean) / std per channel with the training split's float32 statistics.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from tinysubnets.data import ImageSet
from tinysubnets.data.memmap import resize_center_crop
from tinysubnets.errors import ConfigError, DataError, shown
from tinysubnets.scenarios.vision import to_tensor

KINDS = ("pmnist", "image")
RESIZES = ("pad-or-bilinear", "shorter-side-center-crop")
Raw = np.ndarray | Tensor | Sequence[Image.Image]


def apply(record: dict[str, Any], raw: Raw) -> Tensor:
    """``raw`` inputs as the float32 batch the task's backbone takes (see the module text)."""
    if not record:
        return _model_ready(raw)
    kind = record.get("kind")
    if kind == "pmnist":
        return _pmnist(_checked(record, PMNIST_FIELDS), raw)
    if kind == "image":
        return _image(_checked(record, IMAGE_FIELDS), raw)
    raise ConfigError(f"unknown preprocessing kind {shown(kind)} in the model file (known: "
                      f"{', '.join(KINDS)}); a newer tinysubnets may have written it")


# --- the record, checked before use (it comes from a file) -------------------------------


MAX_DRAW = (1 << 15) - 1  # a task index (owners are int16): drawing more would be a hang
MAX_PIXELS = 1 << 24


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and (
        np.isfinite(value) if isinstance(value, float) else abs(value) < 1 << 53)


def _nonzero(value: object) -> bool:
    return _number(value) and value != 0


def _count(low: int, high: int) -> Callable[[object], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and low <= v <= high


def _numbers(value: object) -> bool:
    return isinstance(value, list) and 1 <= len(value) <= 4 and all(map(_number, value))


def _permutation_record(value: object) -> bool:
    seed = value.get("numpy_seed") if isinstance(value, dict) else None
    return (isinstance(seed, list) and 1 <= len(seed) <= 4
            and all(_count(0, (1 << 64) - 1)(v) for v in seed)
            and _count(0, MAX_DRAW)(value.get("draw"))
            and _count(1, MAX_PIXELS)(value.get("pixels")))


PMNIST_FIELDS = {"mean": _number, "std": _nonzero, "scale": _nonzero,
                 "permutation": _permutation_record}
IMAGE_FIELDS = {"size": _count(1, 4096), "channels": lambda v: v in (1, 3),
                "resize": lambda v: isinstance(v, str), "scale": _nonzero,
                "mean": _numbers, "std": lambda v: _numbers(v) and all(v)}


def _checked(record: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    """The record, once every field it needs has the type and range the writer gives it."""
    for name, ok in fields.items():
        if not ok(record.get(name)):
            raise DataError(f"the model file's {record['kind']} preprocessing field {name} "
                            f"is malformed: {shown(record.get(name))}")
    return record


# Most pixels an input image may have (8192 x 8192): a small compressed file can claim far more
# (a "decompression bomb": a 420 KB PNG of 12000 x 12000 decodes to 1.4 GB), so the size in its
# header is checked before decoding. Pillow's own warning comes later (about 89 M pixels).
MAX_IMAGE_PIXELS = 1 << 26


def read_images(paths: Sequence[Path]) -> list[Image.Image]:
    """Image files decoded in full (files closed), in their own mode; `apply` converts them
    as the scenario did. An unreadable or too large file is a DataError naming it."""
    images = []
    for path in paths:
        try:
            with warnings.catch_warnings():
                # Pillow warns from about 89 M pixels, above the bound checked here.
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(path) as image:  # lazy: reads the header only
                    width, height = image.size
                    if width * height > MAX_IMAGE_PIXELS:
                        raise DataError(f"image {path} is too large to decode: {width}x{height} "
                                        f"pixels, more than the {MAX_IMAGE_PIXELS} allowed")
                    image.load()
                    images.append(image.copy())
        except DataError:
            raise
        except Image.DecompressionBombError as error:  # past twice Pillow's limit: no size
            raise DataError(f"image {path} is too large to decode ({error})") from None
        except Exception as error:  # Pillow reports a bad file with many exception types
            raise DataError(f"cannot decode image {path} ({error}); expected an image file"
                            ) from None
    return images


def _is_images(raw: Raw) -> bool:
    return isinstance(raw, list | tuple) and all(isinstance(v, Image.Image) for v in raw)


def _array(raw: Raw) -> np.ndarray:
    if isinstance(raw, Tensor):
        return raw.detach().cpu().numpy()
    if isinstance(raw, np.ndarray):
        return raw
    raise DataError(f"inputs must be a numpy array or a list of PIL images, got "
                    f"{type(raw).__name__}")


def _model_ready(raw: Raw) -> Tensor:
    """A task recording no preprocessing (a user's task) takes float inputs as they are."""
    if _is_images(raw):
        raise DataError("this task records no preprocessing (a user's task: its inputs are "
                        "model-ready floats), so images cannot be read for it: give a .npy of "
                        "float inputs shaped like its training inputs")
    x = _array(raw)
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"this task records no preprocessing (a user's task), so its inputs "
                        f"are model-ready floats; got {x.dtype}")
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def _uint8(x: np.ndarray, what: str) -> np.ndarray:
    """Raw image values as uint8; integers outside 0..255 or floats are refused."""
    if x.dtype == np.uint8:
        return x
    if np.issubdtype(x.dtype, np.integer) and (not x.size or (x.min() >= 0 and x.max() <= 255)):
        return x.astype(np.uint8)
    raise DataError(f"{what} takes raw images, uint8 values 0..255; got {x.dtype} values (for "
                    "inputs already model-ready, call model.predict from Python)")


def _stack(images: Sequence[Image.Image], mode: str) -> list[np.ndarray]:
    return [np.asarray(image.convert(mode), dtype=np.uint8) for image in images]


# --- p-MNIST ------------------------------------------------------------------------------


@lru_cache(maxsize=16)
def _permutation(numpy_seed: tuple[int, ...], draw: int, pixels: int) -> Tensor:
    rng = np.random.default_rng(list(numpy_seed))
    for _ in range(draw):
        rng.permutation(pixels)
    return torch.from_numpy(rng.permutation(pixels))


def one_image(record: dict[str, Any], shape: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` is one image to the task's preprocessing, not a batch of
    rows: p-MNIST takes a single (28, 28) image. A reader then keeps its rows together (and
    names it as one input) instead of splitting them into batches."""
    if record.get("kind") != "pmnist" or len(shape) != 2:
        return False
    perm = record.get("permutation")
    pixels = perm.get("pixels") if isinstance(perm, dict) else None
    return isinstance(pixels, int) and shape[1] != pixels and shape[0] * shape[1] == pixels


def _pmnist(record: dict[str, Any], raw: Raw) -> Tensor:
    perm = record["permutation"]
    pixels = int(perm["pixels"])
    if _is_images(raw):
        arrays = _stack(raw, "L")
        sizes = {a.shape for a in arrays}
        if any(a.size != pixels for a in arrays):
            raise DataError(f"p-MNIST takes grey images of {pixels} pixels (28x28); got "
                            f"{sorted(sizes)}")
        x = np.stack(arrays) if arrays else np.zeros((0, pixels), np.uint8)
    else:
        x = _uint8(_array(raw), "p-MNIST")
    if one_image(record, x.shape):
        x = x[None]  # one (28, 28) image
    if x.ndim < 2 or int(np.prod(x.shape[1:])) != pixels:
        raise DataError(f"p-MNIST takes images of {pixels} pixels each ((N, 28, 28) or "
                        f"(N, {pixels})); got shape {list(x.shape)}")
    flat = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32))
    # `scenarios.pmnist._normalise`, then the task's permutation, in the same order.
    flat = (flat / float(record["scale"]) - float(record["mean"])) / float(record["std"])
    order = _permutation(tuple(int(v) for v in perm["numpy_seed"]), int(perm["draw"]), pixels)
    return flat[:, order].contiguous()


# --- images -----------------------------------------------------------------------------


def _stats(record: dict[str, Any]) -> tuple[Tensor, Tensor]:
    mean = torch.tensor(record["mean"], dtype=torch.float32).reshape(1, -1, 1, 1)
    std = torch.tensor(record["std"], dtype=torch.float32).reshape(1, -1, 1, 1)
    return mean, std


def _center_cropped(images: list[np.ndarray], size: int) -> np.ndarray:
    """Each image through ImageNet's evaluation transform (`data.memmap.decode_cropped`)."""
    crops = [np.asarray(resize_center_crop(Image.fromarray(a).convert("RGB"), size), np.uint8)
             for a in images]
    return np.stack(crops) if crops else np.zeros((0, size, size, 3), np.uint8)


def _as_list(raw: Raw, channels: int) -> list[np.ndarray] | np.ndarray:
    """Images as one uint8 (N, H, W[, C]) array, or a list of them when sizes differ."""
    if _is_images(raw):
        arrays = _stack(raw, "RGB" if channels == 3 else "L")
        same = len({a.shape for a in arrays}) <= 1
        return np.stack(arrays) if same and arrays else arrays
    x = _uint8(_array(raw), "this image task")
    if x.ndim not in (3, 4):
        raise DataError(f"image inputs are (N, H, W) or (N, H, W, C) uint8 arrays; got shape "
                        f"{list(x.shape)}")
    return x


def _image(record: dict[str, Any], raw: Raw) -> Tensor:
    size, channels, resize = int(record["size"]), int(record["channels"]), record["resize"]
    if {len(record["mean"]), len(record["std"])} - {1, channels}:
        raise DataError(f"the model file's image preprocessing has {len(record['mean'])} means "
                        f"and {len(record['std'])} deviations for {channels} channels")
    if resize not in RESIZES:
        raise ConfigError(f"unknown image resize {shown(resize)} in the model file (known: "
                          f"{', '.join(RESIZES)})")
    images = _as_list(raw, channels)
    if resize == "shorter-side-center-crop":
        images = _center_cropped(list(images), size)
    batches = [images] if isinstance(images, np.ndarray) else [a[None] for a in images]
    if not batches:
        return torch.zeros(0, channels, size, size)
    x = torch.cat([to_tensor(ImageSet(b, np.zeros(len(b), np.int64)), size, channels)
                   for b in batches])
    mean, std = _stats(record)
    return (x - mean) / std
