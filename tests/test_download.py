"""``--download`` for every dataset it offers, against a local HTTP server, never the network.

Each dataset is written in miniature in its official format and under its official file names,
served from 127.0.0.1 (test_data's server), and put in place of the real entry of
REMOTE_DATASETS with checksums computed here: what is checked is the fetching, verifying and
caching, and that the readers open the cache where the files land.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import socket
import threading
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import test_data
from test_data import _Server, _write_tiny_mnist
from test_readers import _batch, _dump_python3, _tar_gz, _write_svhn, _write_tiny

from tinysubnets import RunConfig
from tinysubnets.data import RemoteFile, load_tiny_imagenet
from tinysubnets.data.cifar import CIFAR10_TEST, CIFAR10_TRAIN
from tinysubnets.data.registry import REMOTE_DATASETS, download_dataset
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.scenarios import build_scenario
from tinysubnets.scenarios.sources import load_dataset

server = test_data.server  # the fixture: files under tmp_path/www on 127.0.0.1, requests recorded


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private download cache: no test reads or writes the user's."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("TSN_CACHE_DIR", str(folder))
    return folder


def _files_under(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --- each dataset in miniature, in its published form ---------------------------------------


def _cifar10(src: Path, out: Path) -> tuple[int, int]:
    folder = src / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for seed, name in enumerate([*CIFAR10_TRAIN, CIFAR10_TEST]):
        batch = _batch(10, seed, {b"labels": list(range(10))})
        (folder / name).write_bytes(_dump_python3(batch))
    _tar_gz(out / "cifar-10-python.tar.gz", folder, "cifar-10-batches-py")
    return 50, 10


def _cifar100(src: Path, out: Path) -> tuple[int, int]:
    folder = src / "cifar-100-python"
    folder.mkdir(parents=True)
    for seed, (name, n) in enumerate([("train", 8), ("test", 4)]):
        fine = [(7 * i) % 100 for i in range(n)]
        labels = {b"fine_labels": fine, b"coarse_labels": [label // 5 for label in fine]}
        (folder / name).write_bytes(_dump_python3(_batch(n, seed, labels)))
    _tar_gz(out / "cifar-100-python.tar.gz", folder, "cifar-100-python")
    return 8, 4


def _zip_folder(archive: Path, folder: Path, arcname: str) -> Path:
    """Like the official tiny-imagenet-200.zip: one top folder, directory entries included."""
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zip_file:
        for path in sorted(folder.rglob("*")):
            zip_file.write(path, f"{arcname}/{path.relative_to(folder).as_posix()}")
    return archive


def _tiny(src: Path, out: Path) -> tuple[int, int]:
    _write_tiny(src)
    _zip_folder(out / "tiny-imagenet-200.zip", src / "tiny-imagenet-200", "tiny-imagenet-200")
    return 6, 5


PUBLISHERS: dict[str, Callable[[Path, Path], tuple[int, int]]] = {
    "mnist": lambda src, out: (_write_tiny_mnist(out), (20, 10))[1],
    "fashion-mnist": lambda src, out: (_write_tiny_mnist(out), (20, 10))[1],
    "cifar10": _cifar10,
    "cifar100": _cifar100,
    "svhn": lambda src, out: (_write_svhn(out), (5, 3))[1],
    "tinyimagenet": _tiny,
}


def _checksum_like(official: RemoteFile, path: Path) -> RemoteFile:
    """The served file's entry, with a checksum of the same kind as the official one."""
    data = path.read_bytes()
    if official.sha256:  # of the decompressed content
        content = gzip.decompress(data) if path.name.endswith(".gz") else data
        return RemoteFile(official.name, sha256=hashlib.sha256(content).hexdigest())
    return RemoteFile(official.name, md5=hashlib.md5(data).hexdigest())


def _publish(
    name: str, server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, int]:
    """Serve dataset `name` in miniature and point its registry entry at it; (train, test) sizes."""
    out = tmp_path / "www" / name
    out.mkdir(parents=True)
    sizes = PUBLISHERS[name](tmp_path / "src" / name, out)
    official = REMOTE_DATASETS[name]
    # The miniature must carry exactly the official names, or the test proves nothing.
    assert sorted(p.name for p in out.iterdir()) == sorted(f.name for f in official.files)
    files = tuple(_checksum_like(f, out / f.name) for f in official.files)
    entry = dataclasses.replace(official, mirrors=(f"{server.url}/{name}/",), files=files)
    monkeypatch.setitem(REMOTE_DATASETS, name, entry)
    return sizes


# --- fetching, verifying, caching ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PUBLISHERS))
def test_download_verifies_caches_and_loads(
    name: str, server: _Server, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes = _publish(name, server, tmp_path, monkeypatch)
    entry = REMOTE_DATASETS[name]
    train, test, source = load_dataset(name, None, seed=0, download=True)
    assert (len(train), len(test)) == sizes
    folder = cache / entry.folder
    assert _files_under(folder) == sorted(f.name for f in entry.files)  # no temp file left
    assert str(folder.resolve()) in source and "checksums verified" in source
    assert server.requests == [f"/{name}/{f.name}" for f in entry.files]
    # A second run reads the cache: no request at all.
    again_train, again_test, _ = load_dataset(name, None, seed=0, download=True)
    assert len(server.requests) == len(entry.files)
    np.testing.assert_array_equal(again_train.images, train.images)
    np.testing.assert_array_equal(again_test.labels, test.labels)


def test_data_dir_is_used_before_any_download(
    server: _Server, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish("svhn", server, tmp_path, monkeypatch)
    _write_svhn(tmp_path / "data" / "svhn", counts=(4, 2))
    train, _, source = load_dataset("svhn", str(tmp_path / "data"), seed=0, download=True)
    assert len(train) == 4 and str((tmp_path / "data" / "svhn").resolve()) in source
    assert server.requests == [] and _files_under(cache) == []


def test_checksum_mismatch_is_an_error_and_leaves_nothing(
    server: _Server, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish("cifar10", server, tmp_path, monkeypatch)
    wrong = RemoteFile("cifar-10-python.tar.gz", md5="0" * 32)
    entry = dataclasses.replace(REMOTE_DATASETS["cifar10"], files=(wrong,))
    monkeypatch.setitem(REMOTE_DATASETS, "cifar10", entry)
    with pytest.raises(DataError, match="checksum mismatch") as info:
        load_dataset("cifar10", None, seed=0, download=True)
    assert f"{server.url}/cifar10/cifar-10-python.tar.gz" in str(info.value)
    assert f"md5 {'0' * 32}" in str(info.value)
    assert _files_under(cache) == []


def test_damaged_file_in_the_cache_is_fetched_again(
    server: _Server, tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish("cifar100", server, tmp_path, monkeypatch)
    stale = cache / "cifar100" / "cifar-100-python.tar.gz"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"the first half of a download")
    train, _, _ = load_dataset("cifar100", None, seed=0, download=True)
    assert len(train) == 8 and server.requests == ["/cifar100/cifar-100-python.tar.gz"]


@contextmanager
def _cut_server(body: bytes, announce_length: bool) -> Iterator[str]:
    """A server that sends half of `body` and hangs up, announcing its full length or not."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # name fixed by http.server
            self.send_response(200)
            if announce_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])  # HTTP/1.0: the connection closes after

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


@pytest.mark.parametrize("announce_length", [True, False])
def test_interrupted_transfer_leaves_nothing(
    announce_length: bool,
    server: _Server,
    tmp_path: Path,
    cache: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _publish("svhn", server, tmp_path, monkeypatch)
    body = (tmp_path / "www" / "svhn" / "train_32x32.mat").read_bytes()
    with _cut_server(body, announce_length) as url:
        entry = dataclasses.replace(REMOTE_DATASETS["svhn"], mirrors=(url,))
        with pytest.raises(DataError) as info:
            download_dataset("svhn", registry={"svhn": entry})
    message = str(info.value)
    assert f"{url}train_32x32.mat" in message
    expected = f"ended after {len(body) // 2} of {len(body)} bytes"
    assert (expected if announce_length else "checksum mismatch") in message
    assert _files_under(cache) == []
    # Nothing half-written was kept to be trusted later: the next run fetches it whole.
    train, _, _ = load_dataset("svhn", None, seed=0, download=True)
    assert len(train) == 5


def test_unreachable_mirror_names_the_url(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    entry = dataclasses.replace(REMOTE_DATASETS["cifar100"], mirrors=(f"http://127.0.0.1:{port}/",))
    monkeypatch.setitem(REMOTE_DATASETS, "cifar100", entry)
    with pytest.raises(DataError, match="could not download cifar-100-python.tar.gz") as info:
        load_dataset("cifar100", None, seed=0, download=True)
    assert f"http://127.0.0.1:{port}/cifar-100-python.tar.gz: " in str(info.value)
    assert _files_under(cache) == []


# --- what cannot or need not be downloaded -------------------------------------------------------


def test_notmnist_must_be_provided(tmp_path: Path) -> None:
    assert "notmnist" not in REMOTE_DATASETS
    for data_dir, download in ((None, True), (str(tmp_path), True), (str(tmp_path), False)):
        with pytest.raises(DataError, match="notMNIST-to-MNIST") as info:
            load_dataset("notmnist", data_dir, seed=0, download=download)
        assert "t10k-images-idx3-ubyte.gz" in str(info.value)
        assert "notmnist/" in str(info.value) and str(data_dir or "") in str(info.value)
    with pytest.raises(ConfigError, match="notMNIST-to-MNIST") as info:
        load_dataset("notmnist", None, seed=0)
    assert "--download" not in str(info.value).split(";")[0]


def test_without_download_the_cache_is_not_read_and_messages_offer_it(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish("svhn", server, tmp_path, monkeypatch)
    load_dataset("svhn", None, seed=0, download=True)  # the cache now holds SVHN
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"svhn: no dataset files found .*--download"):
        load_dataset("svhn", str(tmp_path / "empty"), seed=0)
    with pytest.raises(ConfigError, match=r"svhn has no embedded copy: .*--download"):
        load_dataset("svhn", None, seed=0)


def test_remote_file_takes_exactly_one_checksum() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RemoteFile("a.bin")
    with pytest.raises(ValueError, match="exactly one"):
        RemoteFile("a.bin", sha256="0" * 64, md5="0" * 32)


# --- the official Tiny ImageNet .zip, read in place -----------------------------------------------


def test_tiny_imagenet_zip_reads_like_the_tar(tmp_path: Path) -> None:
    _write_tiny(tmp_path / "data")
    root = tmp_path / "data" / "tiny-imagenet-200"
    archive = _zip_folder(tmp_path / "tiny-imagenet-200.zip", root, "tiny-imagenet-200")
    from_zip = load_tiny_imagenet(archive, use_cache=False)
    from_folder = load_tiny_imagenet(root, use_cache=False)
    for zipped, plain in zip(from_zip, from_folder, strict=True):
        np.testing.assert_array_equal(zipped.images, plain.images)
        np.testing.assert_array_equal(zipped.labels, plain.labels)


def test_damaged_tiny_imagenet_zip_is_an_error(tmp_path: Path) -> None:
    _write_tiny(tmp_path / "data")
    archive = _zip_folder(
        tmp_path / "good.zip", tmp_path / "data" / "tiny-imagenet-200", "tiny-imagenet-200"
    )
    data = archive.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match=r"cut.zip is not a complete, readable zip archive"):
        load_tiny_imagenet(cut, use_cache=False)
    # Flip bytes inside one member's compressed data: its CRC (or inflate) must catch it.
    with zipfile.ZipFile(archive) as zip_file:
        info = zip_file.getinfo("tiny-imagenet-200/val/images/val_2.JPEG")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    bad = tmp_path / "bad.zip"
    bad.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 8])
                    + data[middle + 8 :])  # fmt: skip
    with pytest.raises(DataError, match=r"bad.zip is not a complete, readable zip archive"):
        load_tiny_imagenet(bad, use_cache=False)
    with pytest.raises(DataError, match=r"archive not found: .*gone.zip"):
        load_tiny_imagenet(tmp_path / "gone.zip", use_cache=False)


# --- scenarios ------------------------------------------------------------------------------------


def test_scenario_with_download_builds_from_the_cache(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _publish("cifar10", server, tmp_path, monkeypatch)
    cfg = RunConfig.for_scenario("cifar10", download=True, seed=3)
    scenario = build_scenario(cfg)
    assert len(scenario) == 5 and scenario.input_shape == (3, 32, 32)
    assert "checksums verified" in scenario.source
    again = build_scenario(cfg)  # the cached files, without fetching
    assert server.requests == ["/cifar10/cifar-10-python.tar.gz"]
    assert [t.split("test").y.tolist() for t in again.tasks] == [
        t.split("test").y.tolist() for t in scenario.tasks
    ]


def test_five_datasets_with_download(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("svhn", "fashion-mnist"):
        _publish(name, server, tmp_path, monkeypatch)
    cfg = RunConfig.for_scenario(
        "five-datasets", download=True, datasets="svhn,fashion-mnist", tasks=2, seed=0
    )
    scenario = build_scenario(cfg)
    assert [t.name for t in scenario.tasks] == ["svhn", "fashion-mnist"]
    assert scenario.source.count("checksums verified") == 2
