"""Tiny ImageNet (tiny-imagenet-200) in its original layout: the folder, or a .zip or .tar.gz."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tinysubnets.errors import DataError

from .archive import is_archive, iter_archive
from .cache import Arrays, cached_arrays, file_stamp, files_stamp
from .folders import ImageFile, Size, check_limit, check_size, decode_images, is_image_name
from .images import ImageSet

TINY_FOLDER = "tiny-imagenet-200"
TINY_LAYOUT = (
    f"{TINY_FOLDER}/ holding wnids.txt, train/<wnid>/images/*.JPEG and val/images/*.JPEG "
    "labelled by val/val_annotations.txt (file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1)"
)
_WNIDS = "wnids.txt"
_ANNOTATIONS = "val/val_annotations.txt"
# Names that sit at the top of the dataset folder; any other first component is that folder.
_TOP_LEVEL = {"wnids.txt", "words.txt", "train", "val", "test"}
# Its JPEGs are a few KB and val_annotations.txt 0.3 MB: a member declaring more than this, or
# members summing to more than the total, are refused before they are read (`iter_archive`).
_MEMBER_BYTES = 16 << 20
_TOTAL_BYTES = 2 << 30

Samples = list[tuple[ImageFile, int]]


@dataclass
class _TinyFiles:
    """What the loader needs, gathered from a folder or an archive before anything is decoded."""

    where: str  # prefix naming the dataset folder in messages: "<folder>/" or "<archive>:<top>/"
    texts: dict[str, str] = field(default_factory=dict)  # _WNIDS / _ANNOTATIONS -> content
    train: dict[str, list[ImageFile]] = field(default_factory=dict)  # wnid -> images
    val: dict[str, ImageFile] = field(default_factory=dict)  # file name -> image


def _text(data: bytes, name: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{name} is not UTF-8 text ({error}); expected {TINY_LAYOUT}") from None


def _from_folder(root: Path) -> tuple[_TinyFiles, str]:
    """The files under the dataset folder (root itself or root/tiny-imagenet-200), and a stamp."""
    base = root / TINY_FOLDER if (root / TINY_FOLDER).is_dir() else root
    if not base.is_dir():
        raise DataError(f"Tiny ImageNet folder not found: {root}; expected {TINY_LAYOUT}")
    files = _TinyFiles(where=f"{base.as_posix()}/")
    paths = [base / _WNIDS, base / _ANNOTATIONS]
    for path, rel in zip(paths, (_WNIDS, _ANNOTATIONS), strict=True):
        if path.is_file():
            try:
                files.texts[rel] = _text(path.read_bytes(), str(path))
            except OSError as error:
                raise DataError(f"cannot read {path}: {error}") from None
    train_dir = base / "train"
    for wnid_dir in (d for d in train_dir.iterdir() if d.is_dir()) if train_dir.is_dir() else ():
        images = [p for p in (wnid_dir / "images").glob("*") if is_image_name(p.name)]
        files.train[wnid_dir.name] = [ImageFile(p.as_posix(), path=p) for p in images]
    val_dir = base / "val" / "images"
    for path in val_dir.glob("*") if val_dir.is_dir() else ():
        if is_image_name(path.name):
            files.val[path.name] = ImageFile(path.as_posix(), path=path)
    images = [f.path for group in files.train.values() for f in group] + [
        f.path for f in files.val.values()
    ]
    return files, files_stamp([p for p in paths if p.is_file()] + images)


def _from_archive(archive: Path) -> _TinyFiles:
    """The same files read from a zip or tar archive in one pass (its members stay in memory)."""
    files, tops = _TinyFiles(where=""), set()
    members = iter_archive(archive, f"an archive of {TINY_LAYOUT}", _MEMBER_BYTES, _TOTAL_BYTES)
    for name, read in members:
        parts = name.split("/")
        top = "" if parts[0] in _TOP_LEVEL else parts[0]
        rel = parts[1:] if top else parts
        path = "/".join(rel)
        if path in (_WNIDS, _ANNOTATIONS):
            files.texts[path] = _text(read(), f"{archive}:{name}")
        elif len(rel) == 4 and rel[0] == "train" and rel[2] == "images" and is_image_name(path):
            files.train.setdefault(rel[1], []).append(ImageFile(f"{archive}:{name}", data=read()))
        elif len(rel) == 3 and rel[:2] == ["val", "images"] and is_image_name(path):
            files.val[rel[2]] = ImageFile(f"{archive}:{name}", data=read())
        else:
            continue
        tops.add(top)
    if len(tops) > 1:
        raise DataError(
            f"{archive} holds more than one dataset folder ({', '.join(sorted(tops))}); "
            f"expected one {TINY_LAYOUT}"
        )
    top = tops.pop() if tops else ""
    files.where = f"{archive}:{top}/" if top else f"{archive}:"
    return files


def _wnids(files: _TinyFiles) -> dict[str, int]:
    """wnid -> label, the line order of wnids.txt."""
    if _WNIDS not in files.texts:
        raise DataError(f"{files.where}{_WNIDS} is missing; expected {TINY_LAYOUT}")
    wnids = [line.strip() for line in files.texts[_WNIDS].splitlines() if line.strip()]
    repeated = sorted(wnid for wnid, count in Counter(wnids).items() if count > 1)
    if not wnids or repeated:
        problem = f"lists {', '.join(repeated)} more than once" if repeated else "is empty"
        raise DataError(f"{files.where}{_WNIDS} {problem}; expected one class id per line")
    return {wnid: label for label, wnid in enumerate(wnids)}


def _train_samples(files: _TinyFiles, index: dict[str, int], limit: int | None) -> Samples:
    unknown = sorted(set(files.train) - set(index))
    if unknown:
        raise DataError(
            f"{files.where}train/ has folders not listed in {_WNIDS}: {', '.join(unknown[:5])}; "
            f"expected train/<wnid>/images/ only for the wnids in {_WNIDS}"
        )
    empty = [wnid for wnid in index if not files.train.get(wnid)]
    if empty:
        raise DataError(
            f"{files.where}train/{empty[0]}/images/ holds no images ({len(empty)} of the "
            f"{len(index)} wnids in {_WNIDS} have none); expected {TINY_LAYOUT}"
        )
    return [
        (image, label)
        for wnid, label in index.items()
        for image in sorted(files.train[wnid], key=lambda image: image.name)[:limit]
    ]


def _val_samples(files: _TinyFiles, index: dict[str, int], limit: int | None) -> Samples:
    """val images in annotation-file order, labelled by the wnid each line names."""
    where = f"{files.where}{_ANNOTATIONS}"
    if _ANNOTATIONS not in files.texts:
        raise DataError(f"{where} is missing; expected {TINY_LAYOUT}")
    samples: Samples = []
    labelled: set[str] = set()
    taken: Counter[str] = Counter()
    for number, line in enumerate(files.texts[_ANNOTATIONS].splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\r").split("\t")
        if len(fields) < 2:
            raise DataError(
                f"{where} line {number} is {line!r}; expected tab-separated "
                "file, wnid, x0, y0, x1, y1"
            )
        name, wnid = fields[0], fields[1]
        if wnid not in index:
            raise DataError(
                f"{where} line {number} labels {name} {wnid!r}, which is not in {_WNIDS}"
            )
        if name not in files.val:
            raise DataError(f"{where} line {number} names {name}, which is not in val/images/")
        if name in labelled:
            raise DataError(f"{where} line {number} labels {name} a second time")
        labelled.add(name)
        if limit is None or taken[wnid] < limit:
            samples.append((files.val[name], index[wnid]))
            taken[wnid] += 1
    unlabelled = sorted(set(files.val) - labelled)
    if unlabelled:
        raise DataError(
            f"{files.where}val/images/ holds {len(unlabelled)} image(s) with no line in {where} "
            f"(e.g. {unlabelled[0]}); expected one annotation per val image"
        )
    return samples


def load_tiny_imagenet(
    path: Path,
    size: Size = None,
    *,
    limit: int | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
) -> tuple[ImageSet, ImageSet]:
    """(train, val) Tiny ImageNet: (N, 64, 64, 3) uint8, label = line of the wnid in wnids.txt.

    path: the tiny-imagenet-200 folder, the folder holding it, or a .zip (the official download)
    or .tar.gz/.tgz/.tar of it.
    val (labelled by val_annotations.txt) is the usual test set: the official test/ has no labels.
    size, limit, cache_dir, use_cache: as for load_image_folder.
    """
    path, shape = Path(path), check_size(size)
    check_limit(limit)
    gathered: _TinyFiles | None = None
    if is_archive(path):
        if not path.is_file():
            raise DataError(f"archive not found: {path}; expected an archive of {TINY_LAYOUT}")
        stamp: object = file_stamp(path)
    else:
        gathered, stamp = _from_folder(path)

    def build() -> Arrays:
        files = gathered if gathered is not None else _from_archive(path)
        index = _wnids(files)
        # Check the whole layout before the slow part, so a bad annotation fails at once.
        train_samples, val_samples = (
            _train_samples(files, index, limit),
            _val_samples(files, index, limit),
        )
        train, val = decode_images(train_samples, shape), decode_images(val_samples, shape)
        return {
            "train_images": train.images,
            "train_labels": train.labels,
            "val_images": val.images,
            "val_labels": val.labels,
        }

    key = {
        "loader": "tiny-imagenet",
        "source": str(path.resolve()),
        "stamp": stamp,
        "size": shape,
        "limit": limit,
    }
    arrays = cached_arrays("tiny-imagenet", key, build, cache_dir, use_cache)
    return (
        ImageSet(images=arrays["train_images"], labels=arrays["train_labels"]),
        ImageSet(images=arrays["val_images"], labels=arrays["val_labels"]),
    )
