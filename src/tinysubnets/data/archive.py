"""Archives (.tar.gz, .tgz, .tar, .zip) read member by member in memory, never extracted to disk."""

from __future__ import annotations

import functools
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from tinysubnets.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")

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


def _tar_bytes(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    return handle.read() if handle is not None else b""


def member_name(name: str) -> str:
    """A member name without a leading "./" or "/", so "./a/b" and "a/b" are the same file."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def _iter_tar(archive: Path, layout: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    with tarfile.open(archive, mode="r|*") as tar:
        for member in tar:
            if member.isfile():
                read = functools.partial(_tar_bytes, tar, member)
                yield member_name(member.name), _guarded(read, archive, layout)
        # tarfile stops quietly at a cut that falls between members, and its stream reader
        # never checks that the compressed data ended: read to the end and ask.
        while tar.fileobj.read(1 << 20):
            pass
        decompressor = getattr(tar.fileobj, "cmp", None)
        if decompressor is not None and not getattr(decompressor, "eof", True):
            raise EOFError("the compressed data ends before its end-of-stream marker")


def _iter_zip(archive: Path, layout: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    # A zip's index sits at its end, so a cut-off file fails at open; each member's CRC is
    # checked when it is read.
    with zipfile.ZipFile(archive) as zip_file:
        for info in zip_file.infolist():
            if not info.is_dir():
                read = functools.partial(zip_file.read, info)
                yield member_name(info.filename), _guarded(read, archive, layout)


def iter_archive(archive: Path, layout: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, read) for each regular file, in archive order.

    A tar is streamed in a single pass, keeping a .tar.gz to one decompression: call read()
    before asking for the next item. A zip is read through its index.
    Any damage (missing file, truncation, bad data) raises DataError naming archive and `layout`.
    """
    archive = Path(archive)
    try:
        yield from (_iter_zip if _is_zip(archive) else _iter_tar)(archive, layout)
    except FileNotFoundError:
        raise DataError(f"archive not found: {archive}; expected {layout}") from None
    except IsADirectoryError:
        raise DataError(f"{archive} is a folder, not an archive; expected {layout}") from None
    except _ARCHIVE_ERRORS as error:
        raise _damaged(archive, error, layout) from None
