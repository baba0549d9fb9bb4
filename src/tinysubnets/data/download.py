"""Checksummed downloads from mirrors: a cached file is either complete and verified, or absent."""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import urllib.request
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tinysubnets.atomic import atomic_open
from tinysubnets.errors import DataError

_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """A file to fetch by name from any mirror, with the one checksum its publisher gives.

    sha256 is of the decompressed content (a .gz is gunzipped first), because mirrors re-compress
    the same data differently. md5 is of the file exactly as served: it is there for sources that
    publish only md5 (CIFAR, SVHN, Fashion-MNIST, Tiny ImageNet), and it catches damaged or cut
    transfers, not a mirror that forges content.
    """

    name: str
    sha256: str = ""
    md5: str = ""

    def __post_init__(self) -> None:
        if bool(self.sha256) == bool(self.md5):
            raise ValueError(f"{self.name}: give exactly one checksum, sha256 or md5")

    @property
    def expected(self) -> str:
        """The checksum in words, for messages: its kind, value and what it is of."""
        if self.sha256:
            return f"sha256 {self.sha256} of the decompressed content"
        return f"md5 {self.md5} of the file as published"

    def digest(self, path: Path) -> str:
        """The same kind of checksum computed over path (which need not carry this name)."""
        if self.sha256:
            return file_digest(path, "sha256", gzipped=self.name.endswith(".gz"))
        return file_digest(path, "md5", gzipped=False)

    def check(self, path: Path) -> None:
        """DataError unless path holds this file's content (path may be a temp file)."""
        got = self.digest(path)
        if got != (self.sha256 or self.md5):
            raise DataError(
                f"checksum mismatch for {self.name}: expected {self.expected}, got {got}"
            )


def default_cache_dir() -> Path:
    """$TSN_CACHE_DIR, else $XDG_CACHE_HOME/tinysubnets, else ~/.cache/tinysubnets."""
    if os.environ.get("TSN_CACHE_DIR"):
        return Path(os.environ["TSN_CACHE_DIR"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "tinysubnets"


def file_digest(path: Path, algorithm: str = "sha256", gzipped: bool | None = None) -> str:
    """Hex digest of the file's content, gunzipped first if gzipped (default: name ends in .gz)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    if gzipped is None:
        gzipped = path.name.endswith(".gz")
    try:
        opener = gzip.open if gzipped else open
        with opener(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise DataError(f"cannot read {path} to check its {algorithm}: {error}") from None
    return digest.hexdigest()


def _is_verified(path: Path, file: RemoteFile) -> bool:
    """True if path holds the expected content; a corrupt leftover just counts as absent."""
    if not path.is_file():
        return False
    try:
        file.check(path)
        return True
    except DataError:
        return False


def _download(url: str, file: RemoteFile, dest: Path, timeout: float) -> None:
    """Stream url into dest atomically, refusing to keep it unless the checksum matches."""
    with atomic_open(dest) as handle:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            total = response.headers.get("Content-Length")
            expected_size = int(total) if total and total.isdigit() else None
            received = 0
            with tqdm(
                total=expected_size, unit="B", unit_scale=True, desc=file.name, disable=None
            ) as bar:
                while chunk := response.read(_CHUNK):
                    handle.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        if expected_size is not None and received != expected_size:
            raise DataError(f"download ended after {received} of {expected_size} bytes")
        handle.flush()
        file.check(Path(handle.name))


def fetch(urls: Sequence[str], file: RemoteFile, dest_dir: Path, timeout: float = 60.0) -> Path:
    """Download `file` into dest_dir from the first mirror that serves the right content.

    `urls` are mirror base URLs, tried in order; the file's name is appended to each.
    A file already in dest_dir with the right checksum is returned without any request.
    """
    dest_dir = Path(dest_dir)
    dest = dest_dir / file.name
    if _is_verified(dest, file):
        return dest
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create download folder {dest_dir}: {error}") from None
    failures = []
    for base in urls:
        url = base.rstrip("/") + "/" + file.name
        try:
            _download(url, file, dest, timeout)
            return dest
        except DataError as error:
            failures.append(f"{url}: {error}")
        except (OSError, http.client.HTTPException, ValueError) as error:
            # URLError/HTTPError/timeouts are OSErrors; ValueError covers malformed URLs.
            failures.append(f"{url}: {error}")
    tried = "\n  ".join(failures) if failures else "(no mirror URLs given)"
    raise DataError(
        f"could not download {file.name} ({file.expected}) into {dest_dir}; tried:\n  {tried}"
    )
