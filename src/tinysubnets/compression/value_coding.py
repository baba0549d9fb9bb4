"""Coding one task's own values in one layer (or its head): a codebook and bit-packed codes.

After quantization a task's own weights take at most 2^b distinct float32 values: the codebook
is those values (sorted), and each weight is the index of its value, packed at
``bits = ceil(log2 K)`` bits (at least 1, at most 16) for K centroids. The codebook is stored as
float16 when every centroid is one (quantization rounds them so, see `round_codebook`), else as
float32; its byte count (2K or 4K) says which. Values that were never
quantized are stored raw (float32), which is also chosen whenever the codebook would not pay
(few weights, many distinct values). Decoding gives back the float32 values bit-exactly.

k-means clusters are not equally populated, so the codes may instead be Huffman-coded
(`huffman.encode_symbols`); whichever is shorter is written, and the block says which.

Byte layout of a block of n values (n is known to the reader from the masks)::

    codebook   K float16 or K float32, little-endian, strictly increasing   (K = 0 when raw)
    codes      PACKED:  n codes of `bits` bits each, MSB first, zero-padded to a byte
               HUFFMAN: a canonical Huffman stream of the n codes
               RAW (bits = 32): n float32, little-endian
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinysubnets.compression.huffman import encode_symbols, read_huffman
from tinysubnets.errors import DataError

MAX_CODE_BITS = 16
RAW_BITS = 32
PACKED, HUFFMAN = 0, 1


@dataclass(frozen=True)
class ValueBlock:
    """A coded block: its bit-width (1..16, or 32 = raw float32), codebook size, how the
    codes are laid out (PACKED or HUFFMAN), and its bytes."""

    bits: int
    centroids: int
    codebook: bytes
    codes: bytes
    coding: int = PACKED


def code_bits(centroids: int) -> int:
    """Bits per code for a codebook of ``centroids`` entries (at least 1)."""
    return max(1, (centroids - 1).bit_length())


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Pack non-negative integer codes (< 2**bits) at ``bits`` bits each, MSB first."""
    if not 1 <= bits <= MAX_CODE_BITS:
        raise ValueError(f"bit-width {bits} is outside [1, {MAX_CODE_BITS}]")
    codes = np.asarray(codes, dtype=np.uint32).ravel()
    if codes.size and int(codes.max()) >> bits:
        raise ValueError(f"a code ({int(codes.max())}) does not fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint32)
    return np.packbits(((codes[:, None] >> shifts) & 1).astype(np.uint8)).tobytes()


def unpack_codes(data: bytes, n: int, bits: int) -> np.ndarray:
    """Inverse of `pack_codes` for ``n`` codes; a wrong byte count raises DataError."""
    if len(data) != (n * bits + 7) // 8:
        expected = (n * bits + 7) // 8
        raise DataError(f"{len(data)} bytes of codes, expected {expected} for {n} {bits}-bit codes")
    flat = np.unpackbits(np.frombuffer(data, np.uint8), count=n * bits).reshape(n, bits)
    weights = np.uint32(1) << np.arange(bits - 1, -1, -1, dtype=np.uint32)
    return flat.astype(np.uint32) @ weights


def encode_values(values: np.ndarray) -> ValueBlock:
    """The smaller of (codebook of the distinct values + codes) and raw float32."""
    v = np.ascontiguousarray(values, dtype="<f4").ravel()
    raw = ValueBlock(RAW_BITS, 0, b"", v.tobytes())
    if v.size == 0:
        return ValueBlock(0, 0, b"", b"")
    centroids, codes = np.unique(v, return_inverse=True)  # -0.0 and 0.0 are one value here
    if (
        centroids.size > 1 << MAX_CODE_BITS
        or not np.isfinite(centroids).all()
        or not np.array_equal(centroids[codes].view("<u4"), v.view("<u4"))
    ):  # too many values, non-finite ones, or signed zeros that would not come back exactly
        return raw
    half = centroids.astype("<f2")
    exact = np.array_equal(half.astype("<f4").view("<u4"), centroids.view("<u4"))
    bits, k = code_bits(centroids.size), int(centroids.size)
    table = (half if exact else centroids).tobytes()
    packed, huffman = pack_codes(codes, bits), encode_symbols(codes.astype(np.int64))
    coded = (ValueBlock(bits, k, table, huffman, HUFFMAN) if len(huffman) < len(packed)
             else ValueBlock(bits, k, table, packed, PACKED))
    return coded if len(coded.codebook) + len(coded.codes) < len(raw.codes) else raw


def check_block(
    bits: int, centroids: int, coding: int = PACKED, where: str = "value block"
) -> None:
    """Raise DataError unless (bits, centroids, coding) describe a block (before decoding)."""
    if coding not in (PACKED, HUFFMAN):
        raise DataError(f"{where}: unknown code layout {coding}")
    if bits == RAW_BITS or (bits == 0 and centroids == 0):
        if centroids:
            raise DataError(f"{where}: a raw float32 block cannot have a codebook")
        return
    if not 1 <= bits <= MAX_CODE_BITS:
        raise DataError(
            f"{where}: bit-width {bits} is outside [1, {MAX_CODE_BITS}] (or {RAW_BITS}, raw)"
        )
    if not 1 <= centroids <= 1 << bits:
        raise DataError(f"{where}: {centroids} centroids do not fit {bits}-bit codes")


def decode_values(block: ValueBlock, n: int, where: str = "value block") -> np.ndarray:
    """Inverse of `encode_values` for ``n`` values; every inconsistency raises DataError
    naming ``where`` (e.g. "task 3, layer fc1")."""
    bits, k = block.bits, block.centroids
    check_block(bits, k, block.coding, where)
    if n == 0:
        if bits or k or block.codebook or block.codes:
            raise DataError(f"{where}: holds no values, but its block is not empty")
        return np.zeros(0, np.float32)
    if bits == 0:
        raise DataError(f"{where}: {n} values, but the block says it holds none")
    if bits == RAW_BITS:
        if block.codebook:
            raise DataError(f"{where}: a raw float32 block cannot have a codebook")
        if len(block.codes) != 4 * n:
            raise DataError(f"{where}: {len(block.codes)} bytes of raw values, expected {4 * n}")
        values = np.frombuffer(block.codes, "<f4")
        if not np.isfinite(values).all():  # the writer stores finite values only
            raise DataError(f"{where}: a raw value is not finite")
    else:
        if len(block.codebook) not in (2 * k, 4 * k):
            raise DataError(
                f"{where}: {len(block.codebook)} codebook bytes, expected {2 * k} (float16) or "
                f"{4 * k} (float32) for {k} centroids"
            )
        dtype = "<f2" if len(block.codebook) == 2 * k else "<f4"
        codebook = np.frombuffer(block.codebook, dtype).astype(np.float32)
        if not (np.isfinite(codebook).all() and (codebook[1:] > codebook[:-1]).all()):
            raise DataError(f"{where}: the codebook is not finite and strictly increasing")
        try:
            if block.coding == HUFFMAN:
                symbols, index, end = read_huffman(block.codes, 0, expected=n)
                if end != len(block.codes):
                    raise DataError(f"{len(block.codes) - end} bytes after the Huffman codes")
                if symbols and not 0 <= min(symbols) <= max(symbols) < k:
                    raise DataError(f"a Huffman symbol is beyond the {k} centroids")
                codes = np.array(symbols, dtype=np.int64)[index]
            else:
                codes = unpack_codes(block.codes, n, bits)
        except DataError as e:
            raise DataError(f"{where}: {e}") from None
        if codes.size and int(codes.max()) >= k:
            raise DataError(f"{where}: a code ({int(codes.max())}) is beyond the {k} centroids")
        values = codebook[codes]
    return values.astype(np.float32)
