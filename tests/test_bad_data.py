"""Hostile data (issue 14): decompression bombs, IDX headers that overflow, datasets too small
to learn from. Each is one DataError naming the file (or task) and the problem, raised before
any work and without allocating what a lying header claims.

Bombs are built small: 64 MiB of zeros compress to a few hundred KB, and the bounds they must
pass are lowered per test where the default is larger than that.
"""

from __future__ import annotations

import io
import pickle
import re
import tarfile
import tracemalloc
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import tinysubnets as tsn
from tinysubnets.cli import main
from tinysubnets.data import archive as archive_module
from tinysubnets.data import cifar, folders, idx, tiny_imagenet, write_idx
from tinysubnets.data.archive import iter_archive
from tinysubnets.errors import DataError
from tinysubnets.scenarios import build_scenario

BOMB = 64 << 20  # what each bomb decompresses to
PEAK = BOMB // 8  # the most memory reading one may take: far below the bomb, far above a chunk
MiB = 1 << 20

Load = Callable[[], object]


class _Zeros(io.RawIOBase):
    """`size` zero bytes, read without ever holding them all."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def _gzip(path: Path, head: bytes, zeros: int) -> Path:
    """A gzip file of `head` followed by `zeros` zero bytes, compressed a chunk at a time."""
    packer = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: gzip header and trailer
    parts = [packer.compress(head)]
    for start in range(0, zeros, MiB):
        parts.append(packer.compress(bytes(min(MiB, zeros - start))))
    path.write_bytes(b"".join(parts) + packer.flush())
    return path


def _tar_gz(path: Path, members: dict[str, int]) -> Path:
    """A .tar.gz of members of that many zero bytes each."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for name, size in members.items():
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BufferedReader(_Zeros(size)))
    return path


def _zip(path: Path, members: dict[str, int]) -> Path:
    """A deflated .zip of members of that many zero bytes each."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, size in members.items():
            with archive.open(name, "w") as handle:
                for start in range(0, size, MiB):
                    handle.write(bytes(min(MiB, size - start)))
    return path


def _lying_zip(path: Path, name: str, size: int, declared: int) -> Path:
    """A .zip whose one member holds `size` zero bytes but whose headers declare `declared`."""
    data = bytearray(_zip(path, {name: size}).read_bytes())
    local, central = data.index(b"PK\x03\x04"), data.index(b"PK\x01\x02")
    data[local + 22 : local + 26] = declared.to_bytes(4, "little")
    data[central + 24 : central + 28] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    return path


def _refused(load: Load, fragment: str) -> str:
    """The DataError `load` raises (matching `fragment`), checked to be one short line and to
    have been raised without memory anywhere near a bomb's."""
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=fragment) as info:
            load()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < PEAK, f"{peak} bytes allocated while refusing"
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    return message


# --- archives --------------------------------------------------------------------------------


def _cifar_tar_bomb(tmp: Path, patch: pytest.MonkeyPatch) -> tuple[Load, Path]:
    patch.setattr(cifar, "_BATCH_BYTES", MiB)
    archive = _tar_gz(tmp / "cifar-10-python.tar.gz", {"cifar-10-batches-py/data_batch_1": BOMB})
    return lambda: cifar.load_cifar10(archive), archive


def _folder_tar_bomb(tmp: Path, patch: pytest.MonkeyPatch) -> tuple[Load, Path]:
    patch.setattr(folders, "MAX_IMAGE_BYTES", MiB)
    archive = _tar_gz(tmp / "pics.tar.gz", {"train/cat/0.png": 10, "train/cat/1.png": BOMB})
    cache = tmp / "cache"
    return lambda: folders.load_image_folder_archive(archive, "train", cache_dir=cache), archive


def _tiny_zip_bomb(tmp: Path, patch: pytest.MonkeyPatch) -> tuple[Load, Path]:
    # No bound lowered: a 64 MiB member is over Tiny ImageNet's own 16 MiB per member.
    name = "tiny-imagenet-200/train/n01/images/n01_0.JPEG"
    archive = _zip(tmp / "tiny-imagenet-200.zip", {name: BOMB})
    return lambda: tiny_imagenet.load_tiny_imagenet(archive, cache_dir=tmp / "cache"), archive


def _tiny_zip_many(tmp: Path, patch: pytest.MonkeyPatch) -> tuple[Load, Path]:
    patch.setattr(tiny_imagenet, "_TOTAL_BYTES", 5 * MiB // 2)
    names = [f"tiny-imagenet-200/train/n01/images/n01_{i}.JPEG" for i in range(3)]
    archive = _zip(tmp / "tiny-imagenet-200.zip", dict.fromkeys(names, MiB))
    return lambda: tiny_imagenet.load_tiny_imagenet(archive, cache_dir=tmp / "cache"), archive


def _zip_understated(tmp: Path, patch: pytest.MonkeyPatch) -> tuple[Load, Path]:
    archive = _lying_zip(tmp / "tiny.zip", "tiny-imagenet-200/wnids.txt", BOMB, 1000)
    return lambda: tiny_imagenet.load_tiny_imagenet(archive, cache_dir=tmp / "cache"), archive


def _zip_overstated(tmp: Path, patch: pytest.MonkeyPatch) -> tuple[Load, Path]:
    archive = _lying_zip(tmp / "tiny.zip", "tiny-imagenet-200/wnids.txt", 100, 3 << 30)
    return lambda: tiny_imagenet.load_tiny_imagenet(archive, cache_dir=tmp / "cache"), archive


def _iter_with_bound(tmp: Path, patch: pytest.MonkeyPatch) -> tuple[Load, Path]:
    archive = _tar_gz(tmp / "any.tgz", {"a.bin": 10, "b.bin": BOMB})

    def read_all() -> list[bytes]:
        return [read() for _, read in iter_archive(archive, "two files", member_limit=MiB)]

    return read_all, archive


ARCHIVE_CASES = {
    "tar.gz batch over the CIFAR bound": (
        _cifar_tar_bomb,
        r"tar.gz:cifar-10-batches-py/data_batch_1 declares 64.0 MiB \(67108864 bytes\) "
        r"uncompressed, over the 1.0 MiB bound for one member",
    ),
    "tar.gz image over the image-folder bound": (
        _folder_tar_bomb, r"pics.tar.gz:train/cat/1.png declares 64.0 MiB .* over the 1.0 MiB",
    ),
    "zip image over Tiny ImageNet's bound": (
        _tiny_zip_bomb, r"zip:tiny-imagenet-200/train/n01/images/n01_0.JPEG declares 64.0 MiB "
        r"\(67108864 bytes\) uncompressed, over the 16.0 MiB bound",
    ),
    "zip members over the archive's total": (
        _tiny_zip_many, r"n01_2.JPEG would bring the bytes read from the archive to 3.0 MiB, "
        r"over the 2.5 MiB bound for one archive",
    ),
    "zip header understating its member": (
        _zip_understated, r"tiny.zip is not a complete, readable zip archive \(Bad CRC-32 for "
        r"file 'tiny-imagenet-200/wnids.txt'\)",
    ),
    "zip header overstating its member": (
        _zip_overstated, r"tiny.zip:tiny-imagenet-200/wnids.txt declares 3.0 GiB",
    ),
    "iter_archive with a bound passed in": (
        _iter_with_bound, r"any.tgz:b.bin declares 64.0 MiB .* over the 1.0 MiB bound",
    ),
}


@pytest.mark.parametrize("case", ARCHIVE_CASES)
def test_archive_bombs_are_refused_before_they_are_read(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    build, fragment = ARCHIVE_CASES[case]
    load, archive = build(tmp_path, monkeypatch)
    assert archive.stat().st_size < BOMB // 32  # a small file ...
    message = _refused(load, fragment)  # ... refused without reading what it claims
    assert str(archive) in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*.npz"))


def test_members_within_their_bounds_are_read_whole(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "two.zip", {"a.bin": MiB, "b.bin": 10})
    read = {name: read() for name, read in iter_archive(archive, "two files", MiB, MiB + 10)}
    assert read == {"a.bin": bytes(MiB), "b.bin": bytes(10)}


def test_a_member_giving_more_than_its_header_declares_is_refused() -> None:
    # zipfile and tarfile stop at the declared size themselves; this guards any reader that
    # would not (one byte past the declared size is asked for, and refused).
    with pytest.raises(DataError, match=r"a.zip:m holds more than the 2 bytes its header"):
        archive_module._bounded_read(io.BytesIO(b"abc"), 2, "a.zip:m")


# --- IDX files -------------------------------------------------------------------------------


def _idx_head(*dims: int) -> bytes:
    return bytes([0, 0, 8, len(dims)]) + b"".join(d.to_bytes(4, "big") for d in dims)


MAX32 = 0xFFFFFFFF
IDX_CASES = {
    # name: (file name, header dims, zero bytes after the header, limit, message fragment)
    "gzip whose header claims more than the limit": (
        "images-idx3-ubyte.gz", (1 << 16, 32, 32), BOMB, MiB,
        r"shape \(65536, 32, 32\), 67108864 data bytes, over the 1048576-byte limit",
    ),
    "gzip holding far more than its header says": (
        "images-idx3-ubyte.gz", (2, 28, 28), BOMB, None,
        r"is longer than its header says: shape \(2, 28, 28\) needs 1568 data bytes, found more",
    ),
    "gzip holding far less than its header says": (
        "images-idx3-ubyte.gz", (1 << 19, 32, 32), 10, None,
        r"is truncated: shape \(524288, 32, 32\) needs 536870912 data bytes, found 10",
    ),
    "dims overflowing int64": (
        "images-idx3-ubyte", (MAX32, MAX32, MAX32), 0, None,
        rf"truncated: shape \({MAX32}, {MAX32}, {MAX32}\) needs {MAX32**3} data bytes, found 0",
    ),
    "dims whose int64 product wraps to exactly the bytes present": (
        "images-idx3-ubyte", (1 << 31, 1 << 31, 4), 0, None,
        rf"truncated: shape \({1 << 31}, {1 << 31}, 4\) needs {1 << 64} data bytes, found 0",
    ),
    "gzip dims overflowing int64": (
        "images-idx3-ubyte.gz", (MAX32, MAX32, MAX32), 0, None,
        rf"shape \({MAX32}, {MAX32}, {MAX32}\), {MAX32**3} data bytes, over the 1073741824-byte",
    ),
    "labels far fewer than their count": (
        "labels-idx1-ubyte", (MAX32,), 3, None, rf"needs {MAX32} data bytes, found 3",
    ),
}


@pytest.mark.parametrize("case", IDX_CASES)
def test_idx_headers_are_checked_before_data_is_read(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name, dims, zeros, limit, fragment = IDX_CASES[case]
    path = tmp_path / name
    if name.endswith(".gz"):
        _gzip(path, _idx_head(*dims), zeros)
    else:
        path.write_bytes(_idx_head(*dims) + bytes(zeros))
    if limit is not None:
        monkeypatch.setattr(idx, "MAX_IDX_BYTES", limit)
    message = _refused(lambda: idx.read_idx(path), fragment)
    assert str(path) in message


def test_idx_limit_can_be_passed_per_call(tmp_path: Path) -> None:
    path = tmp_path / "images-idx3-ubyte.gz"
    write_idx(path, np.full((4, 28, 28), 7, dtype=np.uint8))
    assert idx.read_idx(path, max_bytes=4 * 28 * 28).sum() == 7 * 4 * 28 * 28
    with pytest.raises(DataError, match=r"3136 data bytes, over the 3135-byte limit"):
        idx.read_idx(path, max_bytes=4 * 28 * 28 - 1)


# --- datasets too small to learn from --------------------------------------------------------


def _mnist(folder: Path, n_train: int, n_test: int, t10k_only: bool = False) -> None:
    """MNIST-named IDX files (28x28 digits, labels 0..9 in turn)."""
    folder.mkdir(parents=True)
    for prefix, n in [("t10k", n_test)] + ([] if t10k_only else [("train", n_train)]):
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", np.zeros((n, 28, 28), np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def _cifar10(folder: Path, per_class_train: int, per_class_test: int) -> None:
    """cifar-10-batches-py/ with this many images of each class (train spread over 5 batches)."""
    batches = folder / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    counts = {f"data_batch_{i}": per_class_train if i == 1 else 0 for i in range(1, 6)}
    for name, per_class in {**counts, "test_batch": per_class_test}.items():
        n = 10 * per_class
        batch = {b"data": np.zeros((n, 3 * 32 * 32), np.uint8),
                 b"labels": [i % 10 for i in range(n)]}
        (batches / name).write_bytes(pickle.dumps(batch, protocol=2))


def _pmnist(n_train: int, n_test: int, **settings: object) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        _mnist(tmp / "mnist", n_train, n_test)
        return {"scenario": "pmnist", "data_dir": str(tmp / "mnist"), **settings}

    return build


def _notmnist_t10k(n: int) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        _mnist(tmp / "notmnist", 0, n, t10k_only=True)  # split 80/20 by the reader
        return {"scenario": "five-datasets", "datasets": "notmnist", "tasks": 1,
                "data_dir": str(tmp)}

    return build


def _split_cifar(per_train: int, per_test: int, **settings: object) -> Callable[[Path], dict]:
    def build(tmp: Path) -> dict:
        _cifar10(tmp / "cifar10", per_train, per_test)
        return {"scenario": "cifar10", "data_dir": str(tmp), **settings}

    return build


SCENARIO_CASES = {
    "pmnist, 0 training images": (
        _pmnist(0, 10), r"pmnist \(MNIST\): the train split holds no inputs \(0 train, 10 test\)",
    ),
    "pmnist, 0 test images": (
        _pmnist(20, 0), r"pmnist \(MNIST\): the test split holds no inputs \(20 train, 0 test\)",
    ),
    "pmnist, 1 training image": (
        _pmnist(1, 10), r"pmnist \(MNIST\): 1 training input\(s\) with val_fraction 0.1 leave "
        r"0 to train on and 1 to validate on",
    ),
    "pmnist, val_fraction 0.99999": (
        _pmnist(20, 10, val_fraction=0.99999),
        r"20 training input\(s\) with val_fraction 0.99999 leave 0 to train on and 20",
    ),
    "five-datasets, notMNIST's t10k of 1 image (0 left to train)": (
        _notmnist_t10k(1), r"task notmnist \(five-datasets task 0\): the train split holds no "
        r"inputs \(0 train, 1 test\)",
    ),
    "five-datasets, notMNIST's t10k of 2 images (1 to train)": (
        _notmnist_t10k(2), r"task notmnist \(five-datasets task 0\): 1 training input\(s\)",
    ),
    "split CIFAR-10, 0 training images": (
        _split_cifar(0, 1), r"cifar10: the train split holds no inputs \(0 train, 10 test\)",
    ),
    "split CIFAR-10, 0 test images": (
        _split_cifar(1, 0), r"cifar10: the test split holds no inputs \(10 train, 0 test\)",
    ),
    "split CIFAR-10, val_fraction 0.99999": (
        _split_cifar(2, 1, val_fraction=0.99999), r"task cifar10-0: 4 training input\(s\) with "
        r"val_fraction 0.99999 leave 0 to train on and 4 to validate on",
    ),
}


@pytest.mark.parametrize("case", SCENARIO_CASES)
def test_built_in_scenarios_refuse_empty_splits(case: str, tmp_path: Path) -> None:
    build, fragment = SCENARIO_CASES[case]
    cfg = tsn.RunConfig.for_scenario(**build(tmp_path))
    with pytest.raises(DataError, match=fragment) as info:
        build_scenario(cfg)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


def test_a_split_large_enough_is_carved_as_before(tmp_path: Path) -> None:
    cfg = tsn.RunConfig.for_scenario(**_pmnist(2, 10, val_fraction=0.5)(tmp_path))
    task = build_scenario(cfg).tasks[0]
    assert [len(task.split(w)) for w in ("train", "val", "test")] == [1, 1, 10]


class _Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.zeros(3), i % 2


X, Y = torch.zeros(8, 3), [0, 1] * 4
USER_CASES = {
    "0 test inputs": (
        lambda: tsn.Task.from_tensors("u", X, Y, X[:0], []),
        r"task 'u': the test split holds no inputs \(8 train, 0 test\)",
    ),
    "0 training inputs": (
        lambda: tsn.Task.from_tensors("u", X[:0], [], X, Y),
        r"task 'u': the train split holds no inputs \(0 train, 8 test\)",
    ),
    "an empty validation split given": (
        lambda: tsn.Task.from_tensors("u", X, Y, X, Y, x_val=X[:0], y_val=[]),
        r"task 'u': the val split holds no inputs \(8 train, 8 test, 0 val\)",
    ),
    "val_fraction 0.99999 of tensors": (
        lambda: tsn.Task.from_tensors("u", X, Y, X, Y, val_fraction=0.99999),
        r"task 'u': 8 training input\(s\) with val_fraction 0.99999 leave 0 to train on",
    ),
    "val_fraction 0.99999 of a dataset": (
        lambda: tsn.Task.from_datasets("d", _Pairs(8), _Pairs(4), val_fraction=0.99999),
        r"task 'd': 8 training input\(s\) with val_fraction 0.99999 leave 0 to train on",
    ),
    "an empty test dataset": (
        lambda: tsn.Task.from_datasets("d", _Pairs(8), _Pairs(0)),
        r"task 'd', test split: the dataset is empty",
    ),
}


@pytest.mark.parametrize("case", USER_CASES)
def test_user_tasks_refuse_empty_splits(case: str) -> None:
    make, fragment = USER_CASES[case]
    with pytest.raises(DataError, match=fragment):
        make()


# --- through the CLI -------------------------------------------------------------------------


def _idx_bomb_dir(tmp: Path, patch: pytest.MonkeyPatch) -> list[str]:
    _mnist(tmp / "mnist", 20, 10)
    _gzip(tmp / "mnist" / "train-images-idx3-ubyte.gz", _idx_head(1 << 16, 32, 32), BOMB)
    patch.setattr(idx, "MAX_IDX_BYTES", MiB)
    return ["--data-dir", str(tmp / "mnist")]


def _one_image_dir(tmp: Path, patch: pytest.MonkeyPatch) -> list[str]:
    _mnist(tmp / "mnist", 1, 10)
    return ["--data-dir", str(tmp / "mnist")]


def _val_fraction_config(tmp: Path, patch: pytest.MonkeyPatch) -> list[str]:
    _mnist(tmp / "mnist", 20, 10)
    config = tmp / "settings.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp / "mnist"), "val_fraction": 0.99999}))
    return ["--config", str(config)]


CLI_CASES = {
    "an IDX gzip bomb": (_idx_bomb_dir, r"train-images-idx3-ubyte.gz: its IDX header gives "
                                        r"shape \(65536, 32, 32\), 67108864 data bytes, over"),
    "1 training image": (_one_image_dir, r"pmnist \(MNIST\): 1 training input\(s\)"),
    "val_fraction 0.99999": (_val_fraction_config,
                             r"20 training input\(s\) with val_fraction 0.99999 leave 0"),
}


@pytest.mark.parametrize("case", CLI_CASES)
def test_cli_says_what_is_wrong_with_the_data_in_one_line(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    build, fragment = CLI_CASES[case]
    args = build(tmp_path, monkeypatch)
    out = tmp_path / "run"
    code = main(["run", "--scenario", "pmnist", "--tasks", "2", *args, "--out", str(out),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert err.startswith("tsn: error: ")
    assert re.search(fragment, err), err
    assert not out.exists()  # nothing half-written
