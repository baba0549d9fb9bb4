"""The `model.tsn` container: a JSON header, binary sections, a SHA-256 checksum.

The container knows nothing of TSN; it frames bytes so that a reader can trust them before it
interprets them (see `writer` and `reader` for what the sections hold)::

    magic        8 bytes   b"TSNMODEL"
    version      u16 LE    FORMAT_VERSION
    header size  u32 LE    h
    header       h bytes   UTF-8 JSON object; its "sections" list holds each section's size
                           in bytes, in file order (what each one is, the layout says)
    sections     the sections' bytes, back to back (their sizes sum to what is left)
    checksum     32 bytes  SHA-256 of everything before it

Capacity is measured on this layout: every section is counted in its part (weights,
codebooks, masks, heads), and the rest (magic to header, checksum) is overhead.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass
from typing import Any

from tinysubnets.errors import DataError, clipped, shown

MAGIC = b"TSNMODEL"
# 2: codebooks may be float16 (2 bytes a centroid).
# 3: any backbone (masked parameters named by their path, "fc1.weight"; norm tensors listed),
#    the input shape, and per task a section of its name, labels and preprocessing. Files of
#    versions 1-2 name the layers of the backbones before the redesign, and are not read.
# 4: multi-slot weight positions: with a header "slots" above 1, a position holds values of
#    up to that many tasks, and per layer a section says which shared positions each task
#    renewed. A file without "slots" reads as version 3 did.
FORMAT_VERSION = 4
READS = (3, 4)
_PREFIX = struct.Struct("<8sHI")
CHECKSUM_BYTES = 32
MIN_SIZE = _PREFIX.size + 2 + CHECKSUM_BYTES  # the smallest header is "{}"


@dataclass(frozen=True)
class Section:
    """One named run of bytes, counted in ``part``; ``task``/``layer`` say whose it is."""

    name: str
    part: str
    data: bytes
    task: int | None = None
    layer: str | None = None


def pack(header: dict[str, Any], sections: list[Section]) -> bytes:
    """The file's bytes: ``header`` (a JSON object) gains the section table."""
    head = json.dumps(
        {**header, "sections": [len(s.data) for s in sections]}, separators=(",", ":")
    ).encode("utf-8")
    prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(head))
    body = prefix + head + b"".join(s.data for s in sections)
    return body + hashlib.sha256(body).digest()


def overhead_bytes(data: bytes) -> int:
    """Bytes of a packed file that belong to no section: prefix, header and checksum."""
    return _PREFIX.size + _PREFIX.unpack_from(data)[2] + CHECKSUM_BYTES


def unpack(data: bytes, source: str) -> tuple[dict[str, Any], list[bytes]]:
    """Check framing, version and checksum, then split ``data`` into header and sections.

    Every failure is a DataError naming ``source`` (the file) and what is wrong with it.
    """
    if len(data) < MIN_SIZE or not data.startswith(MAGIC):
        if data.startswith(MAGIC[: len(data)]) and len(data) < MIN_SIZE:
            raise DataError(f"{source}: truncated: {len(data)} bytes is too short for a model")
        raise DataError(f"{source}: not a tinysubnets model file (no {MAGIC.decode()} magic)")
    _, version, header_size = _PREFIX.unpack_from(data)
    if version not in READS:
        raise DataError(
            f"{source}: format version {version}; this tinysubnets reads version(s) "
            f"{', '.join(map(str, READS))}"
            + (" (versions 1-2 were written before tinysubnets took any backbone: retrain, or "
               "read it with tinysubnets 0.1)" if version in (1, 2) else "")
        )
    if _PREFIX.size + header_size + CHECKSUM_BYTES > len(data):
        raise DataError(
            f"{source}: truncated: the header alone needs {header_size} bytes, the file has "
            f"{len(data)}"
        )
    if hashlib.sha256(data[:-CHECKSUM_BYTES]).digest() != data[-CHECKSUM_BYTES:]:
        raise DataError(f"{source}: checksum mismatch: the file is corrupted or truncated")
    try:
        header = json.loads(data[_PREFIX.size : _PREFIX.size + header_size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:  # ValueError: the digit limit
        reason = clipped(str(e), 200)
        raise DataError(f"{source}: the header is not valid JSON ({reason})") from None
    if not isinstance(header, dict) or not isinstance(header.get("sections"), list):
        raise DataError(f"{source}: the header has no section table")
    pos, end = _PREFIX.size + header_size, len(data) - CHECKSUM_BYTES
    sections = []
    for i, size in enumerate(header.pop("sections")):
        if not is_int(size):
            raise DataError(
                f"{source}: entry {i} of the section table is not a size: {shown(size)}")
        if pos + size > end:
            raise DataError(f"{source}: section {i} ({size} bytes) runs past the end of the file")
        sections.append(data[pos : pos + size])
        pos += size
    if pos != end:
        raise DataError(f"{source}: {end - pos} bytes after the last section belong to none")
    return header, sections


def is_int(value: object, low: int = 0, high: int | None = None) -> bool:
    """A JSON integer (not a bool) of at least ``low`` (and at most ``high``, if given)."""
    return (isinstance(value, int) and not isinstance(value, bool) and value >= low
            and (high is None or value <= high))
