"""Tar archives (.tar.gz, .tgz, .tar) read member by member in memory, never extracted to disk."""

from __future__ import annotations

import functools
import tarfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from tinysubnets.errors import DataError

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")

# What a damaged archive raises while streaming: bad headers, cut-off gzip, bad deflate data.
_ARCHIVE_ERRORS = (tarfile.TarError, EOFError, zlib.error, OSError)


def is_archive(path: Path) -> bool:
    """True when path is named like a tar archive (it need not exist: reading it says if not)."""
    path = Path(path)
    return path.name.lower().endswith(ARCHIVE_SUFFIXES) and not path.is_dir()


def _damaged(archive: Path, error: BaseException, layout: str) -> DataError:
    return DataError(
        f"{archive} is not a complete, readable tar archive ({error}); expected {layout}"
    )


def _read_member(
    tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path, layout: str
) -> bytes:
    try:
        handle = tar.extractfile(member)
        return handle.read() if handle is not None else b""
    except _ARCHIVE_ERRORS as error:
        raise _damaged(archive, error, layout) from None


def member_name(name: str) -> str:
    """A member name without a leading "./" or "/", so "./a/b" and "a/b" are the same file."""
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


def iter_archive(archive: Path, layout: str) -> Iterator[tuple[str, Callable[[], bytes]]]:
    """(name, read) for each regular file, in archive order, in a single streaming pass.

    Streaming keeps a .tar.gz to one decompression; call read() before asking for the next item.
    Any damage (missing file, truncation, bad data) raises DataError naming archive and `layout`.
    """
    archive = Path(archive)
    try:
        with tarfile.open(archive, mode="r|*") as tar:
            for member in tar:
                if member.isfile():
                    read = functools.partial(_read_member, tar, member, archive, layout)
                    yield member_name(member.name), read
            # tarfile stops quietly at a cut that falls between members, and its stream reader
            # never checks that the compressed data ended: read to the end and ask.
            while tar.fileobj.read(1 << 20):
                pass
            decompressor = getattr(tar.fileobj, "cmp", None)
            if decompressor is not None and not getattr(decompressor, "eof", True):
                raise EOFError("the compressed data ends before its end-of-stream marker")
    except FileNotFoundError:
        raise DataError(f"archive not found: {archive}; expected {layout}") from None
    except IsADirectoryError:
        raise DataError(f"{archive} is a folder, not an archive; expected {layout}") from None
    except _ARCHIVE_ERRORS as error:
        raise _damaged(archive, error, layout) from None
