"""Archives (.tar.gz, .tgz, .tar, .zip) read member by member in memory, never extracted to disk.

Every member is read with a size bound, so a small archive that decompresses to gigabytes (a
damaged header or a decompression bomb) is one DataError, not a MemoryError: a member's size,
as its header declares it, must be within `MAX_MEMBER_BYTES` (or the caller's tighter bound),
all members read in one pass within `MAX_ARCHIVE_BYTES`, and no more than the declared size is
ever taken from the decompressor.
"""

from __future__ import annotations

import functools
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from tinysubnets.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
# Default bounds, in uncompressed bytes; callers pass tighter ones that fit their data.
MAX_MEMBER_BYTES = 1 << 30  # one member (1 GiB)
MAX_ARCHIVE_BYTES = 8 << 30  # all members read in one pass over an archive (8 GiB)

# What a damaged archive raises while streaming: bad headers, cut-off gzip, bad deflate data,
# a zip member with a wrong CRC (BadZipFile) or an unknown compression (NotImplementedError).
_ARCHIVE_ERRORS = (
    tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError, NotImplementedError
)  # fmt: skip


def is_archive(path: Path) -> bool:
    """True when path is named like an archive (it need not exist: reading it says if not)."""
    path = Path(path)
    return path.name.lower().endswith(ARCHIVE_SUFFIXES) and not path.is_dir()


def _is_zip(path: Path) -> bool:
    return path.name.lower().endswith(".zip")


def _damaged(archive: Path, error: BaseException, layout: str) -> DataError:
    kind = "zip" if _is_zip(archive) else "tar"
    return DataError(
        f"{archive} is not a complete, readable {kind} archive ({error}); expected {layout}"
    )


def _read_member(read: Callable[[], bytes], archive: Path, layout: str) -> bytes:
    try:
        return read()
    except _ARCHIVE_ERRORS as error:
        raise _damaged(archive, error, layout) from None


def _guarded(read: Callable[[], bytes], archive: Path, layout: str) -> Callable[[], bytes]:
    """read, with any damage it meets turned into the archive's DataError."""
    return functools.partial(_read_member, read, archive, layout)


def _size(size: int) -> str:
    """A byte count for messages: 3221225472 -> "3.0 GiB"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


@dataclass
class _Budget:
    """The bounds of one pass over an archive, and what members read so far have taken."""

    archive: Path
    member_limit: int
    total_limit: int
    used: int = 0

    def take(self, name: str, size: int) -> None:
        """Count a member's declared size, refusing it before any of it is read if too big."""
        where = f"{self.archive}:{name}"
        if size > self.member_limit:
            raise DataError(
                f"{where} declares {_size(size)} ({size} bytes) uncompressed, over the "
                f"{_size(self.member_limit)} bound for one member here; refusing to read it "
                "(a damaged archive or a decompression bomb)"
            )
        if self.used + size > self.total_limit:
            raise DataError(
                f"{where} would bring the bytes read from the archive to "
                f"{_size(self.used + size)}, over the {_size(self.total_limit)} bound for one "
                "archive; refusing to read it (a damaged archive or a decompression bomb)"
            )
        self.used += size


def _bounded_read(handle: IO[bytes], size: int, where: str) -> bytes:
    """The member's declared `size` bytes; one byte more is asked for to catch a header that
    understates what the data decompresses to, and is refused."""
    data = handle.read(size + 1)
    if len(data) > size:
        raise DataError(
            f"{where} holds more than the {size} bytes its header declares "
            "(a damaged archive or a decompression bomb)"
        )
    return data


def _tar_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo, budget: _Budget) -> bytes:
    name = member_name(member.name)
    budget.take(name, member.size)
    handle = tar.extractfile(member)
    if handle is None:
        return b""
    return _bounded_read(handle, member.size, f"{budget.archive}:{name}")


def _zip_bytes(zip_file: zipfile.ZipFile, info: zipfile.ZipInfo, budget: _Budget) -> bytes:
    # file_size comes from the central directory: an attacker's number, so it is bounded
    # first, and the read stops one byte past it (zipfile's CRC check catches the rest).
    name = member_name(info.filename)
    budget.take(name, info.file_size)
    with zip_file.open(info) as handle:
        return _bounded_read(handle, info.file_size, f"{budget.archive}:{name}")


def member_name(name: str) -> str:
    """A member name without a leading "./" or "/", so "./a/b" and "a/b" are the same file."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _iter_tar(
    archive: Path, layout: str, budget: _Budget
) -> Iterator[tuple[str, Callable[[], bytes]]]:
    with tarfile.open(archive, mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                read = functools.partial(_tar_bytes, tar, member, budget)
                yield member_name(member.name), _guarded(read, archive, layout)
        # tarfile stops quietly at a cut that falls between members, and its stream reader
        # never checks that the compressed data ended: read to the end and ask.
        while tar.fileobj.read(1 << 20):
            pass
        decompressor = getattr(tar.fileobj, "cmp", None)
        if decompressor is not None and not getattr(decompressor, "eof", True):
            raise EOFError("the compressed data ends before its end-of-stream marker")


def _iter_zip(
    archive: Path, layout: str, budget: _Budget
) -> Iterator[tuple[str, Callable[[], bytes]]]:
    # A zip's index sits at its end, so a cut-off file fails at open; each member's CRC is
    # checked when it is read.
    with zipfile.ZipFile(archive) as zip_file:
        for info in zip_file.infolist():
            if not info.is_dir():
                read = functools.partial(_zip_bytes, zip_file, info, budget)
                yield member_name(info.filename), _guarded(read, archive, layout)


def iter_archive(
    archive: Path, layout: str, member_limit: int | None = None, total_limit: int | None = None
) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, read) for each regular file, in archive order.

    A tar is streamed in a single pass, keeping a .tar.gz to one decompression: call read()
    before asking for the next item. A zip is read through its index.
    Any damage (missing file, truncation, bad data) raises DataError naming archive and `layout`.
    read() refuses a member over `member_limit` bytes (default MAX_MEMBER_BYTES), or one that
    would bring the bytes read in this pass over `total_limit` (default MAX_ARCHIVE_BYTES),
    before reading any of it.
    """
    archive = Path(archive)
    budget = _Budget(
        archive,
        MAX_MEMBER_BYTES if member_limit is None else member_limit,
        MAX_ARCHIVE_BYTES if total_limit is None else total_limit,
    )
    try:
        yield from (_iter_zip if _is_zip(archive) else _iter_tar)(archive, layout, budget)
    except FileNotFoundError:
        raise DataError(f"archive not found: {archive}; expected {layout}") from None
    except IsADirectoryError:
        raise DataError(f"{archive} is a folder, not an archive; expected {layout}") from None
    except _ARCHIVE_ERRORS as error:
        raise _damaged(archive, error, layout) from None
