"""Readers for the standard dataset files: CIFAR batches, SVHN .mat, image folders, Tiny ImageNet.

Each format is written here in miniature exactly as the real files are, then read back; every
kind of damage must surface as one DataError that names the file and the expected layout.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from tinysubnets.data import folders as folders_module
from tinysubnets.data import (
    load_cifar10,
    load_cifar100,
    load_image_folder,
    load_image_folder_archive,
    load_image_folder_pair,
    load_svhn,
    load_tiny_imagenet,
)
from tinysubnets.errors import ConfigError, DataError

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CIFAR10_CLASSES = [
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
]  # fmt: skip


def _tar_gz(archive: Path, folder: Path, arcname: str) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return archive


def _truncated(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: len(data) // 2])
    return target


def _no_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any image decode fail, to prove a load was served from the cache."""

    def refuse(data: bytes, name: str, size: object = None) -> np.ndarray:
        raise AssertionError(f"decoded {name} although the cache should have served it")

    monkeypatch.setattr(folders_module, "decode_image", refuse)


# --- CIFAR ------------------------------------------------------------------------------

_RECONSTRUCT = np.ndarray((0,), np.uint8).__reduce__()[0]


class _Python2Pickler(pickle._Pickler):
    """Writes what cPickle wrote for the original batches: str opcodes and numpy.core names."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _save_str(self, obj: bytes | str) -> None:
        raw = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_str
    dispatch[str] = _save_str

    def save_global(self, obj: object, name: str | None = None) -> None:
        if obj is _RECONSTRUCT:
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\n_reconstruct\n")
            self.memoize(obj)
        else:
            super().save_global(obj, name)


def _dump_python2(obj: object) -> bytes:
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def _dump_python3(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


WRITERS = {"python2-original": _dump_python2, "python3-protocol2": _dump_python3}


def _batch(n: int, seed: int, labels: dict[bytes, list[int]]) -> dict[bytes, object]:
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
        **labels,
    }


def _write_cifar10(parent: Path, dump: Callable[[object], bytes]) -> dict[str, dict]:
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = {}
    for seed, name in enumerate([*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]):
        batches[name] = _batch(3, seed, {b"labels": [(seed + i) % 10 for i in range(3)]})
        (folder / name).write_bytes(dump(batches[name]))
    (folder / "batches.meta").write_bytes(dump({b"label_names": [b"airplane"] * 10}))
    return batches


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_cifar10_from_folder_parent_and_archive(tmp_path: Path, writer: str) -> None:
    batches = _write_cifar10(tmp_path / "data", WRITERS[writer])
    folder = tmp_path / "data" / "cifar-10-batches-py"
    archive = _tar_gz(tmp_path / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    loads = [load_cifar10(root) for root in (folder, tmp_path / "data", archive)]
    train, test = loads[0]
    assert train.images.shape == (15, 32, 32, 3) and test.images.shape == (3, 32, 32, 3)
    assert train.images.dtype == np.uint8 and train.labels.dtype == np.int64
    train_rows = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    # A row holds the red, green and blue 32x32 planes in turn: (y, x, c) is at c*1024 + y*32 + x.
    assert train.images[4, 5, 7, 2] == train_rows[4, 2 * 1024 + 5 * 32 + 7]
    np.testing.assert_array_equal(
        train.images, train_rows.reshape(15, 3, 32, 32).transpose(0, 2, 3, 1)
    )
    expected = [label for i in range(1, 6) for label in batches[f"data_batch_{i}"][b"labels"]]
    assert train.labels.tolist() == expected
    assert test.labels.tolist() == batches["test_batch"][b"labels"]
    for other_train, other_test in loads[1:]:
        np.testing.assert_array_equal(other_train.images, train.images)
        np.testing.assert_array_equal(other_test.labels, test.labels)


@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_cifar100_fine_labels(tmp_path: Path, writer: str) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for seed, name in enumerate(["train", "test"]):
        fine = [99, 0, 42, 7][: 4 - seed]
        labels = {b"fine_labels": fine, b"coarse_labels": [label // 5 for label in fine]}
        (folder / name).write_bytes(WRITERS[writer](_batch(len(fine), seed, labels)))
    archive = _tar_gz(tmp_path / "cifar-100-python.tar.gz", folder, "cifar-100-python")
    for root in (tmp_path, archive):
        train, test = load_cifar100(root)
        assert train.images.shape == (4, 32, 32, 3) and test.images.shape == (3, 32, 32, 3)
        assert train.labels.tolist() == [99, 0, 42, 7] and test.labels.tolist() == [99, 0, 42]


def _command_pickle(module: str, name: str, argument: str) -> bytes:
    """A protocol-2 pickle that calls module.name(argument) when loaded by plain pickle."""
    text = argument.encode()
    return (
        b"\x80\x02c" + f"{module}\n{name}\n".encode()
        + b"X" + struct.pack("<I", len(text)) + text + b"\x85R."
    )  # fmt: skip


@pytest.mark.parametrize(
    ("module", "name", "message"),
    [("os", "system", "os.system"), ("__builtin__", "eval", "__builtin__.eval")],
)
def test_cifar_pickle_with_forbidden_global_is_refused(
    tmp_path: Path, module: str, name: str, message: str
) -> None:
    _write_cifar10(tmp_path, _dump_python3)
    marker = tmp_path / "executed"
    command = f"touch {marker}" if name == "system" else f"open({str(marker)!r}, 'w')"
    (tmp_path / "cifar-10-batches-py" / "data_batch_2").write_bytes(
        _command_pickle(module, name, command)
    )
    with pytest.raises(DataError, match=rf"data_batch_2 references the global {message}"):
        load_cifar10(tmp_path)
    assert not marker.exists()


def test_cifar_codecs_only_rebuild_latin1_bytes(tmp_path: Path) -> None:
    _write_cifar10(tmp_path, _dump_python3)
    payload = b"\x80\x02c_codecs\nencode\nX\x01\x00\x00\x00xX\x05\x00\x00\x00rot13\x86R."
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(payload)
    with pytest.raises(DataError, match=r"test_batch is not a readable CIFAR batch.*'rot13'"):
        load_cifar10(tmp_path)


def test_cifar_missing_and_truncated_files(tmp_path: Path) -> None:
    _write_cifar10(tmp_path, _dump_python2)
    folder = tmp_path / "cifar-10-batches-py"
    batch = folder / "data_batch_3"
    _truncated(batch, batch)
    with pytest.raises(DataError, match=r"data_batch_3 is not a readable CIFAR batch"):
        load_cifar10(folder)
    batch.unlink()
    with pytest.raises(DataError, match=r"CIFAR batch file missing: .*data_batch_3; expected"):
        load_cifar10(folder)
    with pytest.raises(DataError, match=r"nowhere is missing; expected the folder cifar-10"):
        load_cifar10(tmp_path / "nowhere")


def test_cifar_corrupt_and_incomplete_archives(tmp_path: Path) -> None:
    _write_cifar10(tmp_path / "data", _dump_python3)
    folder = tmp_path / "data" / "cifar-10-batches-py"
    archive = _tar_gz(tmp_path / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    cut = _truncated(archive, tmp_path / "cut.tar.gz")
    with pytest.raises(DataError, match=r"cut.tar.gz is not a complete, readable tar archive"):
        load_cifar10(cut)
    garbage = tmp_path / "garbage.tgz"
    garbage.write_bytes(b"this is not a tar archive at all" * 40)
    with pytest.raises(DataError, match=r"garbage.tgz is not a complete, readable tar archive"):
        load_cifar10(garbage)
    (folder / "test_batch").unlink()
    partial = _tar_gz(tmp_path / "partial.tar.gz", folder, "cifar-10-batches-py")
    with pytest.raises(DataError, match=r"partial.tar.gz lacks cifar-10-batches-py/test_batch"):
        load_cifar10(partial)
    with pytest.raises(DataError, match=r"archive not found: .*missing.tar.gz"):
        load_cifar10(tmp_path / "missing.tar.gz")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({b"data": np.zeros((3, 3000), np.uint8)}, r"b'data' is uint8 \(3, 3000\); expected"),
        ({b"data": np.zeros((3, 3072), np.float32)}, r"b'data' is float32"),
        ({b"labels": [0, 1]}, r"b'labels' has int64 shape \(2,\); expected 3 integer labels"),
        ({b"labels": [0, 1, 10]}, r"labels outside 0..9"),
        ({b"data": None}, r"b'data' is <class 'NoneType'>"),
    ],
)
def test_cifar_batch_with_wrong_content(tmp_path: Path, change: dict, message: str) -> None:
    batches = _write_cifar10(tmp_path, _dump_python3)
    path = tmp_path / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(_dump_python3({**batches["data_batch_1"], **change}))
    with pytest.raises(DataError, match=message):
        load_cifar10(tmp_path)
    path.write_bytes(_dump_python3([1, 2, 3]))
    with pytest.raises(DataError, match=r"data_batch_1 holds a list; expected a pickled dict"):
        load_cifar10(tmp_path)


# --- SVHN -------------------------------------------------------------------------------


def _write_svhn(folder: Path, counts: tuple[int, int] = (5, 3)) -> dict[str, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for seed, (name, n) in enumerate(
        zip(["train_32x32.mat", "test_32x32.mat"], counts, strict=True)
    ):
        rng = np.random.default_rng(seed)
        images = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
        labels = ((np.arange(n) + seed) % 10 + 1).astype(np.uint8).reshape(n, 1)  # 1..10
        written[name] = {"X": images, "y": labels}
        scipy.io.savemat(folder / name, written[name])
    return written


def test_svhn_reads_mat_files_and_maps_label_10_to_0(tmp_path: Path) -> None:
    written = _write_svhn(tmp_path)
    train, test = load_svhn(tmp_path)
    assert train.images.shape == (5, 32, 32, 3) and test.images.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(train.images[2], written["train_32x32.mat"]["X"][..., 2])
    assert train.labels.tolist() == [1, 2, 3, 4, 5]
    assert test.labels.tolist() == [2, 3, 4]
    written = _write_svhn(tmp_path, counts=(10, 1))
    assert load_svhn(tmp_path)[0].labels.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def test_svhn_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"SVHN folder not found"):
        load_svhn(tmp_path / "nowhere")
    _write_svhn(tmp_path)
    test_file = tmp_path / "test_32x32.mat"
    _truncated(test_file, test_file)
    with pytest.raises(DataError, match=r"test_32x32.mat is not a readable MATLAB v5 file"):
        load_svhn(tmp_path)
    test_file.write_bytes(b"not a mat file" * 20)
    with pytest.raises(DataError, match=r"test_32x32.mat is not a readable MATLAB v5 file"):
        load_svhn(tmp_path)
    test_file.unlink()
    with pytest.raises(DataError, match=r"SVHN file missing: .*test_32x32.mat"):
        load_svhn(tmp_path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"X": np.zeros((28, 28, 3, 2), np.uint8), "y": np.ones((2, 1), np.uint8)}, r"X is uint8"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.ones((3, 1), np.uint8)}, r"y is uint8"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [1]])}, r"y holds labels"),
        ({"X": np.zeros((32, 32, 3, 2), np.uint8)}, r"lacks the variable X or y"),
    ],
)
def test_svhn_wrong_variables(tmp_path: Path, content: dict, message: str) -> None:
    _write_svhn(tmp_path)
    scipy.io.savemat(tmp_path / "train_32x32.mat", content)
    with pytest.raises(DataError, match=rf"train_32x32.mat {message}"):
        load_svhn(tmp_path)


# --- image folders ----------------------------------------------------------------------


def _pixels(seed: int, shape: tuple[int, ...] = (6, 5, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _write_tree(root: Path, classes: dict[str, int], seed: int = 0) -> dict[str, list[np.ndarray]]:
    """root/<class>/<k>.png with random RGB pixels; returns the arrays per class."""
    written: dict[str, list[np.ndarray]] = {}
    for offset, (name, count) in enumerate(classes.items()):
        (root / name).mkdir(parents=True, exist_ok=True)
        written[name] = [_pixels(seed * 100 + offset * 10 + k) for k in range(count)]
        for k, array in enumerate(written[name]):
            Image.fromarray(array).save(root / name / f"{k:04d}.png")
        (root / name / "notes.txt").write_text("not an image, skipped as ImageFolder does")
    return written


def _write_pair(root: Path) -> dict[str, dict[str, list[np.ndarray]]]:
    return {
        "train": _write_tree(root / "train", {"dog": 2, "ant": 3, "cat": 1}, seed=1),
        "test": _write_tree(root / "test", {"cat": 1, "ant": 1, "dog": 1}, seed=2),
    }


def _expected(written: dict[str, list[np.ndarray]]) -> tuple[np.ndarray, list[int]]:
    names = sorted(written)
    images = [array for name in names for array in written[name]]
    return np.stack(images), [label for label, n in enumerate(names) for _ in written[n]]


def test_image_folder_labels_by_sorted_class_and_keeps_pixels(tmp_path: Path) -> None:
    written = _write_tree(tmp_path / "train", {"dog": 2, "ant": 3, "cat": 1})
    images, classes = load_image_folder(tmp_path / "train", cache_dir=tmp_path / "cache")
    assert classes == ["ant", "cat", "dog"]
    expected_images, expected_labels = _expected(written)
    np.testing.assert_array_equal(images.images, expected_images)
    assert images.labels.tolist() == expected_labels == [0, 0, 0, 1, 2, 2]


def test_image_folder_converts_to_rgb_resizes_and_limits(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "b").mkdir(parents=True)
    (root / "a" / "nested").mkdir(parents=True)
    gray = np.full((10, 12), 77, np.uint8)
    Image.fromarray(gray, mode="L").save(root / "a" / "gray.png")
    Image.fromarray(np.full((10, 12, 3), 200, np.uint8)).save(root / "a" / "nested" / "x.jpg")
    Image.fromarray(_pixels(3, (20, 24, 3))).save(root / "b" / "big.JPEG", quality=95)
    with pytest.raises(DataError, match=r"big.JPEG is 20x24 but .*gray.png is 10x12; pass size="):
        load_image_folder(root, use_cache=False)
    images, classes = load_image_folder(root, size=(8, 6), use_cache=False)
    assert classes == ["a", "b"] and images.images.shape == (3, 8, 6, 3)
    assert images.labels.tolist() == [0, 0, 1]
    assert (images.images[0] == 77).all()  # grayscale expanded to three equal channels
    assert np.abs(images.images[1].astype(int) - 200).max() <= 2  # JPEG: nearly exact
    limited, _ = load_image_folder(root, size=4, limit=1, use_cache=False)
    assert limited.images.shape == (2, 4, 4, 3) and limited.labels.tolist() == [0, 1]
    with pytest.raises(ConfigError, match=r"size must be"):
        load_image_folder(root, size=(0, 3))
    with pytest.raises(ConfigError, match=r"limit must be"):
        load_image_folder(root, limit=0)


def test_image_folder_from_archive_matches_folder(tmp_path: Path) -> None:
    written = _write_pair(tmp_path / "mini")
    archive = _tar_gz(tmp_path / "mini.tar.gz", tmp_path / "mini", "mini")
    cache = tmp_path / "cache"
    from_archive, classes = load_image_folder_archive(archive, "mini/train", cache_dir=cache)
    assert classes == ["ant", "cat", "dog"]
    np.testing.assert_array_equal(from_archive.images, _expected(written["train"])[0])
    train, test, pair_classes = load_image_folder_pair(
        archive, "mini/train", "mini/test", cache_dir=cache
    )
    assert pair_classes == classes
    np.testing.assert_array_equal(train.images, from_archive.images)
    np.testing.assert_array_equal(test.images, _expected(written["test"])[0])
    assert test.labels.tolist() == [0, 1, 2]
    folder_train, folder_test, _ = load_image_folder_pair(tmp_path / "mini", cache_dir=cache)
    np.testing.assert_array_equal(folder_train.images, train.images)
    np.testing.assert_array_equal(folder_test.labels, test.labels)
    flat = _tar_gz(tmp_path / "flat.tgz", tmp_path / "mini" / "test", ".")
    assert load_image_folder(flat, cache_dir=cache)[1] == ["ant", "cat", "dog"]


def test_image_folder_cache_skips_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_pair(tmp_path / "mini")
    archive = _tar_gz(tmp_path / "mini.tar.gz", tmp_path / "mini", "mini")
    cache = tmp_path / "cache"
    first = load_image_folder_pair(archive, "mini/train", "mini/test", cache_dir=cache)
    first_folder = load_image_folder(tmp_path / "mini" / "train", cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    _no_decoding(monkeypatch)
    again = load_image_folder_pair(archive, "mini/train", "mini/test", cache_dir=cache)
    for before, after in zip(first[:2], again[:2], strict=True):
        np.testing.assert_array_equal(before.images, after.images)
        np.testing.assert_array_equal(before.labels, after.labels)
    assert again[2] == first[2]
    again_folder = load_image_folder(tmp_path / "mini" / "train", cache_dir=cache)
    np.testing.assert_array_equal(again_folder[0].images, first_folder[0].images)
    # A changed source (new mtime) or other settings make a new key: those must decode again.
    changed = tmp_path / "mini" / "train" / "ant" / "0000.png"
    os.utime(changed, ns=(1_000_000_000, 1_000_000_000))
    with pytest.raises(AssertionError, match=r"decoded .*mini/train"):
        load_image_folder(tmp_path / "mini" / "train", cache_dir=cache)
    with pytest.raises(AssertionError, match=r"decoded"):
        load_image_folder_pair(archive, "mini/train", "mini/test", size=4, cache_dir=cache)


def test_damaged_cache_is_rebuilt_and_cache_can_be_off(tmp_path: Path) -> None:
    _write_tree(tmp_path / "train", {"a": 1, "b": 1})
    cache = tmp_path / "cache"
    first, _ = load_image_folder(tmp_path / "train", cache_dir=cache)
    (entry,) = cache.glob("*.npz")
    entry.write_bytes(b"damaged")
    second, _ = load_image_folder(tmp_path / "train", cache_dir=cache)
    np.testing.assert_array_equal(first.images, second.images)
    assert entry.stat().st_size > 100
    other = tmp_path / "other-cache"
    load_image_folder(tmp_path / "train", cache_dir=other, use_cache=False)
    assert not other.exists()


def test_image_folder_pair_with_different_classes(tmp_path: Path) -> None:
    _write_tree(tmp_path / "mini" / "train", {"ant": 1, "bee": 1, "cat": 1})
    _write_tree(tmp_path / "mini" / "test", {"ant": 1, "cat": 1, "cow": 1})
    archive = _tar_gz(tmp_path / "mini.tar.gz", tmp_path / "mini", "mini")
    message = (
        r"differ between .*only in '(mini/)?train': \['bee'\]; only in '(mini/)?test': \['cow'\]"
    )
    with pytest.raises(DataError, match=message):
        load_image_folder_pair(tmp_path / "mini", cache_dir=tmp_path)
    with pytest.raises(DataError, match=message):
        load_image_folder_pair(archive, "mini/train", "mini/test", cache_dir=tmp_path)


def test_image_folder_bad_inputs(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    _write_tree(root, {"a": 1, "b": 1})
    with pytest.raises(DataError, match=r"image folder not found: .*nowhere; expected <root>/"):
        load_image_folder(tmp_path / "nowhere", use_cache=False)
    (root / "c").mkdir()
    (root / "c" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"class folder .*tree/c holds no images"):
        load_image_folder(root, use_cache=False)
    (root / "c" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but then garbage")
    with pytest.raises(DataError, match=r"cannot decode image .*c/broken.png"):
        load_image_folder(root, use_cache=False)
    (root / "c" / "broken.png").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty holds no class folders"):
        load_image_folder(empty, use_cache=False)


def test_image_folder_archive_bad_inputs(tmp_path: Path) -> None:
    _write_pair(tmp_path / "mini")
    archive = _tar_gz(tmp_path / "mini.tar.gz", tmp_path / "mini", "mini")
    with pytest.raises(DataError, match=r"no class folders under 'train/' \(it holds mini/test"):
        load_image_folder_pair(archive, use_cache=False)
    cut = _truncated(archive, tmp_path / "cut.tar.gz")
    with pytest.raises(DataError, match=r"cut.tar.gz is not a complete, readable tar archive"):
        load_image_folder_archive(cut, "mini/train", use_cache=False)
    with pytest.raises(DataError, match=r"archive not found: .*gone.tar.gz"):
        load_image_folder_archive(tmp_path / "gone.tar.gz", "mini/train", cache_dir=tmp_path)
    with pytest.raises(DataError, match=r"not named like a tar archive"):
        load_image_folder_archive(tmp_path / "mini", "train")


# --- Tiny ImageNet ----------------------------------------------------------------------

WNIDS = ["n09", "n01", "n05"]  # deliberately unsorted: labels follow wnids.txt, not the alphabet


def _flat_jpeg(path: Path, value: int, gray: bool = False) -> None:
    """A 64x64 JPEG of one gray level, which JPEG keeps nearly exactly: the level is the tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (64, 64) if gray else (64, 64, 3)
    Image.fromarray(np.full(shape, value, np.uint8)).save(path, format="JPEG", quality=95)


def _write_tiny(parent: Path) -> list[tuple[str, str]]:
    """A miniature tiny-imagenet-200: 2 train images per wnid, 5 val images; returns val labels."""
    root = parent / "tiny-imagenet-200"
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("".join(f"{wnid}\n" for wnid in WNIDS))
    (root / "words.txt").write_text("n09\tnine\nn01\tone\nn05\tfive\n")
    for label, wnid in enumerate(WNIDS):
        for k in range(2):
            _flat_jpeg(root / "train" / wnid / "images" / f"{wnid}_{k}.JPEG", 40 * label + 10 * k)
        (root / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t9\t9\n")
    val = [("val_0.JPEG", "n05"), ("val_1.JPEG", "n09"), ("val_2.JPEG", "n05"),
           ("val_3.JPEG", "n01"), ("val_4.JPEG", "n09")]  # fmt: skip
    for index, (name, _) in enumerate(val):
        _flat_jpeg(root / "val" / "images" / name, 200 + 10 * index, gray=index == 3)
    lines = "".join(f"{name}\t{wnid}\t0\t0\t63\t63\n" for name, wnid in val)
    (root / "val" / "val_annotations.txt").write_text(lines)
    return val


def _level(images: np.ndarray) -> list[int]:
    return [int(round(float(image.mean()))) for image in images]


def test_tiny_imagenet_from_folder_parent_and_archive(tmp_path: Path) -> None:
    val = _write_tiny(tmp_path / "data")
    root = tmp_path / "data" / "tiny-imagenet-200"
    archive = _tar_gz(tmp_path / "tiny.tar.gz", root, "tiny-imagenet-200")
    loads = [
        load_tiny_imagenet(source, cache_dir=tmp_path / "cache")
        for source in (root, tmp_path / "data", archive)
    ]
    train, test = loads[0]
    assert train.images.shape == (6, 64, 64, 3) and test.images.shape == (5, 64, 64, 3)
    assert train.labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert _level(train.images) == [0, 10, 40, 50, 80, 90]
    assert test.labels.tolist() == [WNIDS.index(wnid) for _, wnid in val] == [2, 0, 2, 1, 0]
    assert _level(test.images) == [200, 210, 220, 230, 240]
    assert (test.images[3, ..., 0] == test.images[3, ..., 2]).all()  # grayscale made RGB
    for other_train, other_test in loads[1:]:
        np.testing.assert_array_equal(other_train.images, train.images)
        np.testing.assert_array_equal(other_test.labels, test.labels)
    few_train, few_val = load_tiny_imagenet(archive, size=16, limit=1, use_cache=False)
    assert few_train.images.shape == (3, 16, 16, 3) and few_train.labels.tolist() == [0, 1, 2]
    assert few_val.labels.tolist() == [2, 0, 1]


def test_tiny_imagenet_cache_skips_decoding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_tiny(tmp_path)
    archive = _tar_gz(tmp_path / "tiny.tar.gz", tmp_path / "tiny-imagenet-200", "tiny-imagenet-200")
    first = load_tiny_imagenet(archive, cache_dir=tmp_path / "cache")
    _no_decoding(monkeypatch)
    again = load_tiny_imagenet(archive, cache_dir=tmp_path / "cache")
    for before, after in zip(first, again, strict=True):
        np.testing.assert_array_equal(before.images, after.images)
        np.testing.assert_array_equal(before.labels, after.labels)


def _edit(path: Path, old: str, new: str) -> None:
    assert old in path.read_text()
    path.write_text(path.read_text().replace(old, new))


def _annotations(root: Path, old: str, new: str) -> None:
    _edit(root / "val" / "val_annotations.txt", old, new)


# name -> (how to damage a good tree, the message expected from both the folder and the archive)
TINY_DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "unknown-wnid-in-annotation": (
        lambda root: _annotations(root, "val_3.JPEG\tn01", "val_3.JPEG\tn77"),
        r"val_annotations.txt line 4 labels val_3.JPEG 'n77', which is not in wnids.txt",
    ),
    "val-image-without-annotation": (
        lambda root: _annotations(root, "val_4.JPEG\tn09\t0\t0\t63\t63\n", ""),
        r"val/images/ holds 1 image\(s\) with no line in .*val_annotations.txt \(e.g. val_4",
    ),
    "annotation-without-image": (
        lambda root: (root / "val" / "images" / "val_1.JPEG").unlink(),
        r"val_annotations.txt line 2 names val_1.JPEG, which is not in val/images/",
    ),
    "annotation-without-tabs": (
        lambda root: _annotations(root, "val_0.JPEG\tn05\t0\t0\t63\t63", "val_0.JPEG"),
        r"val_annotations.txt line 1 is 'val_0.JPEG'; expected tab-separated",
    ),
    "train-folder-not-in-wnids": (
        lambda root: _flat_jpeg(root / "train" / "n42" / "images" / "n42_0.JPEG", 1),
        r"train/ has folders not listed in wnids.txt: n42",
    ),
    "wnid-without-train-images": (
        lambda root: _edit(root / "wnids.txt", "n05\n", "n05\nn07\n"),
        r"train/n07/images/ holds no images \(1 of the 4 wnids",
    ),
    "repeated-wnid": (
        lambda root: _edit(root / "wnids.txt", "n05\n", "n05\nn01\n"),
        r"wnids.txt lists n01 more than once",
    ),
    "no-wnids": (
        lambda root: (root / "wnids.txt").unlink(),
        r"tiny-imagenet-200/wnids.txt is missing",
    ),
    "undecodable-image": (
        lambda root: (root / "val" / "images" / "val_2.JPEG").write_bytes(b"not a jpeg"),
        r"cannot decode image .*val_2.JPEG",
    ),
}


@pytest.mark.parametrize("damage", sorted(TINY_DAMAGE))
def test_tiny_imagenet_inconsistent_layout(tmp_path: Path, damage: str) -> None:
    _write_tiny(tmp_path)
    root = tmp_path / "tiny-imagenet-200"
    change, message = TINY_DAMAGE[damage]
    change(root)
    with pytest.raises(DataError, match=message):
        load_tiny_imagenet(root, use_cache=False)
    archive = _tar_gz(tmp_path / "tiny.tar.gz", root, "tiny-imagenet-200")
    with pytest.raises(DataError, match=message):
        load_tiny_imagenet(archive, use_cache=False)


def test_tiny_imagenet_missing_or_truncated(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"Tiny ImageNet folder not found: .*nowhere"):
        load_tiny_imagenet(tmp_path / "nowhere")
    _write_tiny(tmp_path)
    archive = _tar_gz(tmp_path / "tiny.tar.gz", tmp_path / "tiny-imagenet-200", "tiny-imagenet-200")
    cut = _truncated(archive, tmp_path / "cut.tar.gz")
    with pytest.raises(DataError, match=r"cut.tar.gz is not a complete, readable tar archive"):
        load_tiny_imagenet(cut, use_cache=False)


# --- the real archives in ../shared/data (skipped where that folder is absent) ---------------


def _shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"real data not available: {path} (the shared/data folder beside the repo)")
    return path


def test_real_cifar10_jpg_archive(tmp_path: Path) -> None:
    archive = _shared("cifar10/cifar10-jpg.tar.gz")
    train, test, classes = load_image_folder_pair(
        archive, "cifar10-jpg/train", "cifar10-jpg/test", limit=2, cache_dir=tmp_path
    )
    assert classes == CIFAR10_CLASSES
    assert train.images.shape == (20, 32, 32, 3) and test.images.shape == (20, 32, 32, 3)
    assert train.labels.tolist() == [label for label in range(10) for _ in range(2)]
    assert 40 < float(train.images.mean()) < 220  # real photographs, not blank frames


def test_real_tiny_imagenet_archive(tmp_path: Path) -> None:
    archive = _shared("tiny-imagenet/tiny-imagenet-200-subset.tar.gz")
    train, val = load_tiny_imagenet(archive, limit=1, cache_dir=tmp_path)
    assert train.images.shape == (200, 64, 64, 3) and val.images.shape == (200, 64, 64, 3)
    assert train.labels.tolist() == list(range(200))
    assert sorted(val.labels.tolist()) == list(range(200))  # every wnid has val images


def test_archive_without_its_compressed_end_is_an_error(tmp_path: Path) -> None:
    # All members intact but the gzip stream cut before its end: tarfile alone would accept it.
    _write_pair(tmp_path / "mini")
    archive = _tar_gz(tmp_path / "mini.tar.gz", tmp_path / "mini", "mini")
    squeeze = zlib.compressobj(wbits=31)  # gzip format
    raw = gzip.decompress(archive.read_bytes())
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(squeeze.compress(raw) + squeeze.flush(zlib.Z_SYNC_FLUSH))
    with pytest.raises(DataError, match=r"cut.tar.gz is not a complete, readable tar archive"):
        load_image_folder_archive(cut, "mini/train", use_cache=False)
