"""Data layer: strict IDX reading, the embedded subset, MNIST folders and checksummed downloads."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tinysubnets.data import (
    MNIST_FILES,
    ImageSet,
    RemoteFile,
    default_cache_dir,
    fetch,
    load_embedded_mnist,
    load_idx_pair,
    load_mnist,
    mnist_source,
    read_idx,
    write_idx,
)
from tinysubnets.data import embedded as embedded_module
from tinysubnets.errors import DataError, TSNError

REAL_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"


def _tiny_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    return images, (np.arange(n) % 10).astype(np.uint8)


def _write_tiny_mnist(folder: Path, gzipped: bool = True) -> None:
    """Four IDX files with the standard names: 20 train and 10 test images."""
    folder.mkdir(parents=True, exist_ok=True)
    splits = [_tiny_split(20, 0), _tiny_split(10, 1)]
    arrays = [splits[0][0], splits[0][1], splits[1][0], splits[1][1]]
    for file, array in zip(MNIST_FILES, arrays, strict=True):
        name = file.name if gzipped else file.name.removesuffix(".gz")
        write_idx(folder / name, array)


# --- IDX ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("shape", [(7,), (5, 3, 4), (0, 28, 28)])
def test_idx_round_trip(tmp_path: Path, suffix: str, shape: tuple[int, ...]) -> None:
    array = np.random.default_rng(0).integers(0, 256, size=shape, dtype=np.uint8)
    path = tmp_path / f"x-idx{suffix}"
    write_idx(path, array)
    back = read_idx(path)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, array)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_idx_raw_bytes_are_standard(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.array([3, 1, 4], dtype=np.uint8))
    assert path.read_bytes() == b"\x00\x00\x08\x01" + b"\x00\x00\x00\x03" + b"\x03\x01\x04"


def test_write_idx_rejects_non_uint8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="uint8"):
        write_idx(tmp_path / "bad", np.zeros((2, 3), dtype=np.float32))


def test_read_idx_truncated(tmp_path: Path) -> None:
    path = tmp_path / "images-idx3-ubyte"
    write_idx(path, np.zeros((4, 28, 28), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="truncated") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_extra_bytes(tmp_path: Path) -> None:
    path = tmp_path / "labels-idx1-ubyte"
    write_idx(path, np.zeros(4, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataError, match="longer than its header") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "images-idx3-ubyte"
    path.write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(DataError, match="header") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("magic", [b"\x00\x00\x0d\x03", b"\x00\x00\x08\x02", b"PK\x03\x04"])
def test_read_idx_wrong_magic(tmp_path: Path, magic: bytes) -> None:
    path = tmp_path / "thing-idx3-ubyte"
    path.write_bytes(magic + bytes(12))
    with pytest.raises(DataError, match="magic") as info:
        read_idx(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["not gzip", "cut short", "bad crc"])
def test_read_idx_corrupt_gzip(tmp_path: Path, damage: str) -> None:
    path = tmp_path / "images-idx3-ubyte.gz"
    write_idx(path, np.random.default_rng(0).integers(0, 256, (8, 28, 28), dtype=np.uint8))
    data = path.read_bytes()
    if damage == "not gzip":
        data = b"this is not gzip data at all"
    elif damage == "cut short":
        data = data[: len(data) // 2]
    else:
        data = data[:-8] + bytes(4) + data[-4:]  # zero the CRC32 in the gzip trailer
    path.write_bytes(data)
    with pytest.raises(DataError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere-idx1-ubyte.gz"
    with pytest.raises(DataError, match="not found") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_load_idx_pair_count_mismatch(tmp_path: Path) -> None:
    images, labels = tmp_path / "images-idx3-ubyte", tmp_path / "labels-idx1-ubyte.gz"
    write_idx(images, np.zeros((5, 28, 28), dtype=np.uint8))
    write_idx(labels, np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataError, match="5 images") as info:
        load_idx_pair(images, labels)
    assert str(images) in str(info.value) and str(labels) in str(info.value)


def test_load_idx_pair_swapped_files(tmp_path: Path) -> None:
    images, labels = tmp_path / "images-idx3-ubyte", tmp_path / "labels-idx1-ubyte"
    write_idx(images, np.zeros((5, 28, 28), dtype=np.uint8))
    write_idx(labels, np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataError, match="expected 3-D images"):
        load_idx_pair(labels, images)


def test_image_set_validation() -> None:
    images, labels = np.zeros((3, 2, 2), np.uint8), np.zeros(3, np.int64)
    assert len(ImageSet(images, labels)) == 3
    assert len(ImageSet(np.zeros((3, 2, 2, 3), np.uint8), labels)) == 3
    with pytest.raises(DataError, match="3 images but 2 labels"):
        ImageSet(images, labels[:2])
    with pytest.raises(DataError, match="uint8"):
        ImageSet(images.astype(np.float32), labels)
    with pytest.raises(DataError, match="int64"):
        ImageSet(images, labels.astype(np.uint8))
    assert issubclass(DataError, TSNError)


# --- embedded subset ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded() -> tuple[ImageSet, ImageSet]:
    return load_embedded_mnist()


def test_embedded_split(embedded: tuple[ImageSet, ImageSet]) -> None:
    train, test = embedded
    assert (len(train), len(test)) == (4000, 1000)
    for part, per_class in ((train, 400), (test, 100)):
        assert part.images.shape[1:] == (28, 28) and part.images.dtype == np.uint8
        assert part.labels.dtype == np.int64
        assert np.bincount(part.labels, minlength=10).tolist() == [per_class] * 10
        assert part.images.max() == 255 and part.images.min() == 0
    # Real digits, not noise: mean intensity of MNIST is about 0.13.
    assert 0.08 < train.images.mean() / 255 < 0.2


def test_embedded_is_deterministic_and_disjoint(embedded: tuple[ImageSet, ImageSet]) -> None:
    train, test = embedded
    again_train, again_test = load_embedded_mnist()
    np.testing.assert_array_equal(train.images, again_train.images)
    np.testing.assert_array_equal(test.labels, again_test.labels)
    train_keys = {image.tobytes() for image in train.images}
    assert not any(image.tobytes() in train_keys for image in test.images)


def test_embedded_missing_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(embedded_module, "_RELATIVE_PATH", ("no", "such.csv.gz"))
    with pytest.raises(DataError, match="--download") as info:
        load_embedded_mnist()
    assert "--data-dir" in str(info.value)


def test_load_mnist_defaults_to_embedded(embedded: tuple[ImageSet, ImageSet]) -> None:
    train, _ = load_mnist()
    np.testing.assert_array_equal(train.labels, embedded[0].labels)
    assert "embedded" in mnist_source()


# --- MNIST folders -----------------------------------------------------------------------


@pytest.mark.parametrize("gzipped", [True, False])
def test_load_mnist_from_folder(tmp_path: Path, gzipped: bool) -> None:
    _write_tiny_mnist(tmp_path, gzipped)
    train, test = load_mnist(data_dir=tmp_path)
    assert (len(train), len(test)) == (20, 10)
    np.testing.assert_array_equal(train.images, _tiny_split(20, 0)[0])
    assert test.labels.dtype == np.int64 and test.labels.tolist() == list(range(10))
    assert str(tmp_path) in mnist_source(tmp_path)


def test_load_mnist_missing_folder(tmp_path: Path) -> None:
    folder = tmp_path / "absent"
    with pytest.raises(DataError, match="--download") as info:
        load_mnist(data_dir=folder)
    message = str(info.value)
    assert str(folder) in message and all(f.name in message for f in MNIST_FILES)


def test_load_mnist_missing_file(tmp_path: Path) -> None:
    _write_tiny_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="--download") as info:
        load_mnist(data_dir=tmp_path)
    message = str(info.value)
    assert str(tmp_path / "t10k-labels-idx1-ubyte.gz") in message
    assert all(f.name in message for f in MNIST_FILES)


def test_load_mnist_rejects_wrong_shape_and_labels(tmp_path: Path) -> None:
    _write_tiny_mnist(tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros((20, 27, 27), np.uint8))
    with pytest.raises(DataError, match="28x28"):
        load_mnist(data_dir=tmp_path)
    _write_tiny_mnist(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.full(10, 10, np.uint8))
    with pytest.raises(DataError, match=r"0\.\.9"):
        load_mnist(data_dir=tmp_path)


# --- downloads from a local HTTP server --------------------------------------------------


class _Server:
    """Serves a folder on 127.0.0.1 and records each requested path."""

    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # name fixed by http.server
                requests.append(self.path)
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:
                pass  # keep pytest output clean

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[_Server]:
    root = tmp_path / "www"
    (root / "files").mkdir(parents=True)
    served = _Server(root)
    thread = threading.Thread(
        target=served.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield served
    served.httpd.shutdown()
    served.httpd.server_close()


@pytest.fixture
def remote(server: _Server, tmp_path: Path) -> RemoteFile:
    """A gzipped IDX file on the server, with the sha256 of its decompressed content."""
    path = tmp_path / "www" / "files" / "tiny-images-idx3-ubyte.gz"
    write_idx(path, _tiny_split(6, 2)[0])
    return RemoteFile(path.name, hashlib.sha256(gzip.decompress(path.read_bytes())).hexdigest())


def test_fetch_success(server: _Server, remote: RemoteFile, tmp_path: Path) -> None:
    dest = fetch([f"{server.url}/files/"], remote, tmp_path / "cache" / "mnist")
    assert dest == tmp_path / "cache" / "mnist" / remote.name
    np.testing.assert_array_equal(read_idx(dest), _tiny_split(6, 2)[0])
    assert [p.name for p in dest.parent.iterdir()] == [remote.name]


def test_fetch_checksum_mismatch(server: _Server, remote: RemoteFile, tmp_path: Path) -> None:
    wrong = RemoteFile(remote.name, "0" * 64)
    dest_dir = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        fetch([f"{server.url}/files"], wrong, dest_dir)
    message = str(info.value)
    assert remote.name in message and "0" * 64 in message and remote.sha256 in message
    assert list(dest_dir.iterdir()) == []


def test_fetch_falls_back_to_second_mirror(
    server: _Server, remote: RemoteFile, tmp_path: Path
) -> None:
    mirrors = [f"{server.url}/missing/", f"{server.url}/files/"]
    dest = fetch(mirrors, remote, tmp_path / "cache")
    assert dest.is_file()
    assert server.requests == [f"/missing/{remote.name}", f"/files/{remote.name}"]


def test_fetch_all_mirrors_fail(server: _Server, remote: RemoteFile, tmp_path: Path) -> None:
    mirrors = [f"{server.url}/a/", f"{server.url}/b/"]
    with pytest.raises(DataError, match="404") as info:
        fetch(mirrors, remote, tmp_path / "cache")
    assert all(f"{m}{remote.name}" in str(info.value) for m in mirrors)
    assert list((tmp_path / "cache").iterdir()) == []


def test_fetch_skips_verified_file(server: _Server, remote: RemoteFile, tmp_path: Path) -> None:
    cached = tmp_path / "cache" / remote.name
    cached.parent.mkdir()
    cached.write_bytes((tmp_path / "www" / "files" / remote.name).read_bytes())
    assert fetch([f"{server.url}/files/"], remote, cached.parent) == cached
    assert server.requests == []


def test_fetch_replaces_corrupt_cached_file(
    server: _Server, remote: RemoteFile, tmp_path: Path
) -> None:
    cached = tmp_path / "cache" / remote.name
    cached.parent.mkdir()
    cached.write_bytes(b"half a download")
    fetch([f"{server.url}/files/"], remote, cached.parent)
    assert len(server.requests) == 1 and read_idx(cached).shape == (6, 28, 28)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TSN_CACHE_DIR", str(tmp_path / "tsn"))
    assert default_cache_dir() == tmp_path / "tsn"
    monkeypatch.delenv("TSN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "tinysubnets"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "tinysubnets"


# --- the real full set, when this checkout has it ----------------------------------------


def test_real_mnist() -> None:
    if not all((REAL_MNIST / f.name).is_file() for f in MNIST_FILES):
        pytest.skip(f"full MNIST not found in {REAL_MNIST}")
    # download=True with no mirrors: passes only if every file already has the official sha256.
    train, test = load_mnist(download=True, cache_dir=None, data_dir=REAL_MNIST, mirrors=[])
    assert (len(train), len(test)) == (60000, 10000)
    assert train.images.shape == (60000, 28, 28) and test.images.dtype == np.uint8
    assert int(np.sum(train.labels == 0)) == 5923
    assert set(np.unique(test.labels).tolist()) == set(range(10))
