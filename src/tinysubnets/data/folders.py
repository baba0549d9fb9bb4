"""Image folders in torchvision's ImageFolder layout, on disk or inside a .tar.gz, decoded once."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from tinysubnets.errors import ConfigError, DataError

from .archive import is_archive, iter_archive
from .cache import Arrays, cached_arrays, file_stamp, files_stamp
from .images import ImageSet

# The extensions ImageFolder accepts; anything else in a class folder (notes, boxes) is skipped.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
FOLDER_LAYOUT = "<root>/<class>/<image> (one sub-folder per class, images .jpg, .png, ...)"
# The largest image file read from an archive: a member declaring more is refused before it is
# read (`iter_archive`; the archive's total has its default bound).
MAX_IMAGE_BYTES = 256 << 20

Size = int | tuple[int, int] | None
Tree = dict[str, list["ImageFile"]]


@dataclass(frozen=True)
class ImageFile:
    """One image to decode: a file on disk, or the bytes of an archive member already read."""

    name: str
    path: Path | None = None
    data: bytes | None = None

    def read(self) -> bytes:
        if self.data is not None or self.path is None:
            return self.data or b""
        try:
            return self.path.read_bytes()
        except OSError as error:
            raise DataError(f"cannot read image {self.path}: {error}") from None


def is_image_name(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def check_size(size: Size) -> tuple[int, int] | None:
    """size as (height, width): an int means a square."""
    if size is None:
        return None
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ConfigError(f"size must be a positive int or (height, width), got {size!r}")
    return pair[0], pair[1]


def check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive number of images per class, got {limit!r}")


def open_rgb(data: bytes, name: str) -> Image.Image:
    """The image fully decoded as RGB (grayscale and palette images converted)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.convert("RGB")
    # Pillow reports a bad file with many exception types; all mean the same to the user.
    except Exception as error:
        raise DataError(
            f"cannot decode image {name} ({error}); expected a valid image file"
        ) from None


def decode_image(data: bytes, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W, 3) uint8 RGB (grayscale and palette images converted); resized if size is given."""
    rgb = open_rgb(data, name)
    if size is not None and rgb.size != (size[1], size[0]):
        rgb = rgb.resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return np.asarray(rgb, dtype=np.uint8)


def decode_images(
    samples: Sequence[tuple[ImageFile, int]], size: tuple[int, int] | None
) -> ImageSet:
    """Decode (file, label) pairs into one ImageSet; without `size` all must share one shape."""
    labels = np.array([label for _, label in samples], dtype=np.int64)
    images: np.ndarray | None = None
    for index, (file, _) in enumerate(samples):
        array = decode_image(file.read(), file.name, size)
        if images is None:
            images = np.empty((len(samples), *array.shape), dtype=np.uint8)
        elif array.shape != images.shape[1:]:
            raise DataError(
                f"{file.name} is {array.shape[0]}x{array.shape[1]} but {samples[0][0].name} is "
                f"{images.shape[1]}x{images.shape[2]}; pass size=(height, width) to resize them"
            )
        images[index] = array
    if images is None:
        images = np.zeros((0, 0, 0, 3), dtype=np.uint8)
    return ImageSet(images=images, labels=labels)


def _checked(tree: Tree, where: str) -> Tree:
    if not tree:
        raise DataError(f"{where} holds no class folders; expected {FOLDER_LAYOUT}")
    for name, files in tree.items():
        if not files:
            raise DataError(
                f"class folder {where}/{name} holds no images; expected {FOLDER_LAYOUT}"
            )
        files.sort(key=lambda file: file.name)
    return dict(sorted(tree.items()))


def folder_tree(root: Path) -> Tree:
    """class -> image files (searched recursively, like ImageFolder), from a folder on disk."""
    if not root.is_dir():
        raise DataError(f"image folder not found: {root}; expected {FOLDER_LAYOUT}")
    tree: Tree = {}
    for class_dir in (path for path in root.iterdir() if path.is_dir()):
        paths = (p for p in class_dir.rglob("*") if is_image_name(p.name) and p.is_file())
        tree[class_dir.name] = [ImageFile(p.as_posix(), path=p) for p in paths]
    return _checked(tree, str(root))


def _archive_trees(archive: Path, folders: Sequence[str]) -> list[Tree]:
    """One tree per sub-folder of the archive, all read in a single pass over it."""
    prefixes = [folder.strip("/") + "/" if folder.strip("/") else "" for folder in folders]
    layout = "a tar archive holding ImageFolder trees (<folder>/<class>/<image>)"
    trees: list[Tree] = [{} for _ in folders]
    seen: set[str] = set()  # the first two levels of folders, to say what is there instead
    for name, read in iter_archive(archive, layout, MAX_IMAGE_BYTES):
        seen.add("/".join(name.split("/")[:2]))
        for prefix, tree in zip(prefixes, trees, strict=True):
            parts = name[len(prefix) :].split("/") if name.startswith(prefix) else []
            if len(parts) >= 2:  # files right under the prefix belong to no class
                files = tree.setdefault(parts[0], [])
                if is_image_name(name):
                    files.append(ImageFile(f"{archive}:{name}", data=read()))
    for prefix, tree in zip(prefixes, trees, strict=True):
        if not tree:
            holds = ", ".join(sorted(seen)[:8]) or "no files"
            raise DataError(
                f"{archive} has no class folders under '{prefix or './'}' (it holds {holds}); "
                f"expected members {prefix}<class>/<image>"
            )
    return [
        _checked(tree, f"{archive}:{prefix.rstrip('/') or '.'}")
        for prefix, tree in zip(prefixes, trees, strict=True)
    ]


def check_same_classes(trees: Sequence[Tree], folders: Sequence[str], source: Path) -> None:
    """Raise DataError unless every tree holds the classes of the first (train and test must
    agree, or labels would mean different classes)."""
    first, *rest = trees
    for folder, tree in zip(folders[1:], rest, strict=True):
        if set(tree) != set(first):
            only_first = sorted(set(first) - set(tree)) or "none"
            only_here = sorted(set(tree) - set(first)) or "none"
            raise DataError(
                f"{source}: class folders differ between '{folders[0]}' and '{folder}' "
                f"(only in '{folders[0]}': {only_first}; only in '{folder}': {only_here}); "
                "expected the same classes in both"
            )


def _load_trees(
    source: Path,
    folders: Sequence[str],
    size: Size,
    limit: int | None,
    cache_dir: Path | None,
    use_cache: bool,
) -> list[tuple[ImageSet, list[str]]]:
    """Decode each sub-folder of a folder or archive (through the cache) with its class names."""
    source, shape = Path(source), check_size(size)
    check_limit(limit)
    listed: list[Tree] | None = None
    if is_archive(source):
        if not source.is_file():
            raise DataError(
                f"archive not found: {source}; expected a tar archive of {FOLDER_LAYOUT}"
            )
        stamp: object = file_stamp(source)
    else:
        listed = [folder_tree(source / folder) for folder in folders]
        stamp = files_stamp(f.path for tree in listed for files in tree.values() for f in files)

    def build() -> Arrays:
        trees = listed if listed is not None else _archive_trees(source, folders)
        check_same_classes(trees, folders, source)
        arrays: Arrays = {}
        for index, tree in enumerate(trees):
            samples = [
                (f, label) for label, files in enumerate(tree.values()) for f in files[:limit]
            ]
            image_set = decode_images(samples, shape)
            arrays[f"images{index}"], arrays[f"labels{index}"] = image_set.images, image_set.labels
            arrays[f"classes{index}"] = np.array(list(tree), dtype=np.str_)
        return arrays

    key = {
        "loader": "image-folder",
        "source": str(source.resolve()),
        "stamp": stamp,
        "folders": list(folders),
        "size": shape,
        "limit": limit,
    }
    arrays = cached_arrays(source.resolve().name or "images", key, build, cache_dir, use_cache)
    return [
        (
            ImageSet(images=arrays[f"images{i}"], labels=arrays[f"labels{i}"]),
            [str(name) for name in arrays[f"classes{i}"]],
        )
        for i in range(len(folders))
    ]


def load_image_folder(
    path: Path,
    size: Size = None,
    *,
    limit: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> tuple[ImageSet, list[str]]:
    """Images in ImageFolder layout, labelled by class folder in sorted order, and the classes.

    path: the folder, or a .tar.gz/.tgz/.tar whose top level holds the class folders.
    size: (height, width) or an int to resize every image; None keeps them (all must match).
    limit: at most this many images per class (the first in name order), e.g. for a quick look.
    cache_dir: where decoded arrays are kept (default_cache_dir()/"decoded" if None).
    """
    return _load_trees(Path(path), [""], size, limit, cache_dir, use_cache)[0]


def load_image_folder_archive(
    archive: Path,
    folder: str = "",
    size: Size = None,
    *,
    limit: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> tuple[ImageSet, list[str]]:
    """Like load_image_folder, for the tree under `folder` inside a tar archive (read in memory).

    Example: load_image_folder_archive("cifar10-jpg.tar.gz", "cifar10-jpg/train").
    """
    archive = Path(archive)
    if not is_archive(archive):
        raise DataError(f"{archive} is not named like a tar archive (.tar.gz, .tgz or .tar)")
    return _load_trees(archive, [folder], size, limit, cache_dir, use_cache)[0]


def load_image_folder_pair(
    root_or_archive: Path,
    train: str = "train",
    test: str = "test",
    size: Size = None,
    *,
    limit: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> tuple[ImageSet, ImageSet, list[str]]:
    """(train, test, class names) from two ImageFolder trees that must hold the same classes.

    root_or_archive: a folder holding `train` and `test`, or a tar archive (read in one pass);
    e.g. load_image_folder_pair("cifar10-jpg.tar.gz", "cifar10-jpg/train", "cifar10-jpg/test").
    """
    (train_set, classes), (test_set, _) = _load_trees(
        Path(root_or_archive), [train, test], size, limit, cache_dir, use_cache
    )
    return train_set, test_set, classes
