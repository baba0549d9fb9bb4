"""Canonical Huffman coding of integer symbols into self-contained, verifiable bytes.

bitarray computes the code lengths and decodes; the container is ours, because capacity is
measured in the bytes we write (docs/design.md, invariant 3) and the artifact is read back
from files we must not trust. A canonical code is fully described by its code lengths, so the
table is "how many codes of each length" plus the symbols in canonical order (by length, then
value). Sorting by value within a length lets us store symbols as small zigzag deltas: a dense
alphabet (mask blocks, task sets) costs about one byte per distinct symbol.

Byte layout (varint = LEB128, unsigned; zvarint = zigzag then varint, so any Python int fits)::

    varint n                   number of symbols
    varint K                   number of distinct symbols
    K == 0:  nothing more      (n == 0)
    K == 1:  zvarint symbol    (0 bits per symbol: only the count is stored)
    K >= 2:  u8 max_len        longest code, 1..31
             max_len varints   number of codes of length 1, 2, ..., max_len
             K zvarints        symbol deltas in canonical order (first one from 0)
             code stream       n codes, most significant bit first, zero-padded to a byte
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice

import numpy as np
from bitarray import bitarray
from bitarray.util import canonical_decode, canonical_huffman, int2ba

from tinysubnets.errors import DataError

MAX_CODE_LENGTH = 31  # bitarray's canonical_decode accepts at most 32 length counts (0..31)
DEFAULT_MAX_SYMBOLS = 1 << 26  # a 0-bit stream (one distinct symbol) is not bounded by bytes
_MAX_COUNT_BYTES = 10  # counts are < 2**70: more varint bytes means a forged header
_MAX_SYMBOL_BYTES = 4096  # symbols up to ~28,000 bits (task sets of that many tasks)


def _put_varint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _zigzag(value: int) -> int:
    return 2 * value if value >= 0 else -2 * value - 1


def _unzigzag(value: int) -> int:
    return value >> 1 if value % 2 == 0 else -(value >> 1) - 1


class _Reader:
    """Bounds-checked cursor over untrusted bytes: every failure is a DataError."""

    def __init__(self, data: bytes, pos: int) -> None:
        self.data, self.pos = data, pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise DataError(f"truncated Huffman header: missing {what}")
        self.pos += 1
        return self.data[self.pos - 1]

    def varint(self, what: str, max_bytes: int = _MAX_COUNT_BYTES) -> int:
        value = shift = 0
        for _ in range(max_bytes):
            b = self.byte(what)
            value |= (b & 0x7F) << shift
            if b < 0x80:
                return value
            shift += 7
        raise DataError(f"corrupt Huffman header: {what} is longer than {max_bytes} bytes")


@dataclass(frozen=True)
class HuffmanPlan:
    """A canonical code for symbols given as indices into `values`, with its exact size.

    Planning apart from emitting lets callers compare candidate codings (block lengths,
    schemes) by their exact byte size without building every stream.
    """

    values: list[int]  # symbol value of each index
    lengths: np.ndarray  # code length of each index, in bits (all 0 when K <= 1)
    order: list[int]  # indices in canonical order: by code length, then by value
    header: bytes  # everything before the code stream
    payload_bits: int  # length of the code stream before padding

    @property
    def nbytes(self) -> int:
        return len(self.header) + (self.payload_bits + 7) // 8

    def emit(self, index: np.ndarray) -> bytes:
        """The header and the code stream of `index` (the counts this plan was made for)."""
        if len(self.values) < 2:
            return self.header
        codes, code, prev_len = {}, 0, int(self.lengths[self.order[0]])
        for i in self.order:  # canonical codes: consecutive integers, shifted at each length
            length = int(self.lengths[i])
            code <<= length - prev_len
            codes[i] = int2ba(code, length=length, endian="big")
            code, prev_len = code + 1, length
        stream = bitarray(endian="big")
        stream.encode(codes, np.asarray(index).ravel().tolist())
        return self.header + stream.tobytes()


def _code_lengths(counts: np.ndarray) -> np.ndarray:
    freq = [int(c) for c in counts]
    while True:
        codes = canonical_huffman(dict(enumerate(freq)))[0]
        lengths = np.array([len(codes[i]) for i in range(len(freq))], dtype=np.int64)
        if lengths.max() <= MAX_CODE_LENGTH:
            return lengths
        # Only Fibonacci-like counts over ~10^6 symbols get here; a flatter distribution has
        # shorter longest codes, at a negligible cost in size.
        freq = [(f + 1) // 2 for f in freq]


def plan_huffman(values: list[int], counts: np.ndarray) -> HuffmanPlan:
    """Plan the code for symbol `values[i]` occurring `counts[i]` (> 0) times."""
    n, k = int(np.sum(counts)), len(values)
    header = bytearray()
    _put_varint(header, n)
    _put_varint(header, k)
    if k <= 1:
        if k == 1:
            _put_varint(header, _zigzag(values[0]))
        return HuffmanPlan(values, np.zeros(k, np.int64), list(range(k)), bytes(header), 0)
    lengths = _code_lengths(counts)
    order = sorted(range(k), key=lambda i: (lengths[i], values[i]))
    max_len = int(lengths.max())
    header.append(max_len)
    per_length = np.bincount(lengths, minlength=max_len + 1)
    for length in range(1, max_len + 1):
        _put_varint(header, int(per_length[length]))
    prev = 0
    for i in order:
        _put_varint(header, _zigzag(values[i] - prev))
        prev = values[i]
    bits = int(np.dot(lengths, np.asarray(counts, dtype=np.int64)))
    return HuffmanPlan(values, lengths, order, bytes(header), bits)


def read_huffman(
    data: bytes, pos: int = 0, expected: int | None = None, max_symbols: int = DEFAULT_MAX_SYMBOLS
) -> tuple[list[int], np.ndarray, int]:
    """Decode one stream at `data[pos:]`: (values in canonical order, index per symbol, end).

    `expected` (the symbol count the caller knows) is checked before anything is allocated;
    otherwise a count is bounded by the bytes left, or by `max_symbols` for a 0-bit stream.
    """
    r = _Reader(data, pos)
    n, k = r.varint("symbol count"), r.varint("distinct symbol count")
    if expected is not None and n != expected:
        raise DataError(f"corrupt Huffman header: expected {expected} symbols, found {n}")
    if k > n or (n > 0 and k == 0):
        raise DataError(f"corrupt Huffman header: {k} distinct symbols for {n} symbols")
    if k == 0:
        return [], np.zeros(0, np.int64), r.pos
    if k == 1:
        if expected is None and n > max_symbols:
            raise DataError(f"Huffman stream of {n} symbols exceeds the limit of {max_symbols}")
        value = _unzigzag(r.varint("symbol", _MAX_SYMBOL_BYTES))
        return [value], np.zeros(n, np.int64), r.pos
    max_len = r.byte("longest code length")
    if not 1 <= max_len <= MAX_CODE_LENGTH:
        raise DataError(f"corrupt Huffman header: longest code of {max_len} bits")
    count = [0] + [r.varint("code length count") for _ in range(max_len)]
    kraft = sum(c << (max_len - length) for length, c in enumerate(count))
    if sum(count) != k or kraft > 1 << max_len:
        raise DataError(f"corrupt Huffman header: code lengths {count[1:]} for {k} symbols")
    if k > r.remaining:  # every table entry takes at least one byte
        raise DataError(f"truncated Huffman table: {k} symbols in {r.remaining} bytes")
    values, prev = [], 0
    for _ in range(k):
        prev += _unzigzag(r.varint("symbol", _MAX_SYMBOL_BYTES))
        values.append(prev)
    if n > 8 * r.remaining:  # every code takes at least one bit
        raise DataError(f"truncated Huffman stream: expected {n} symbols, {r.remaining} bytes")
    stream = bitarray(endian="big")
    stream.frombytes(data[r.pos : r.pos + (n * max_len + 7) // 8])
    try:
        index = np.fromiter(islice(canonical_decode(stream, count, range(k)), n), np.int64)
    except ValueError:  # bitarray: the last code is cut off
        raise DataError(
            f"truncated Huffman stream: expected {n} symbols, the code stream ended early"
        ) from None
    if len(index) != n:
        raise DataError(f"truncated Huffman stream: expected {n} symbols, got {len(index)}")
    lengths = np.repeat(np.arange(max_len + 1), count)
    bits = int(lengths[index].sum())
    return values, index, r.pos + (bits + 7) // 8


def _unique(symbols: np.ndarray) -> tuple[list[int], np.ndarray, np.ndarray]:
    flat = np.asarray(symbols).ravel()
    if flat.dtype.kind not in "biuO":
        raise TypeError(f"Huffman symbols must be integers, got dtype {flat.dtype}")
    uniq, index, counts = np.unique(flat, return_inverse=True, return_counts=True)
    values = uniq.tolist()
    if flat.dtype.kind == "O" and not all(isinstance(v, int) for v in values):
        raise TypeError("Huffman symbols must be integers")
    return [int(v) for v in values], index.ravel(), counts


def encode_symbols(symbols: np.ndarray) -> bytes:
    """Self-contained canonical Huffman coding of an integer array (flattened, any values)."""
    values, index, counts = _unique(symbols)
    return plan_huffman(values, counts).emit(index)


def decode_symbols(data: bytes, max_symbols: int = DEFAULT_MAX_SYMBOLS) -> np.ndarray:
    """Inverse of `encode_symbols` (a 1-D array); corrupt or truncated bytes raise DataError.

    The dtype is int64, else uint64, else object (Python ints), whichever holds the values.
    `max_symbols` only bounds streams of a single distinct symbol, which take no code bits.
    """
    values, index, end = read_huffman(bytes(data), 0, max_symbols=max_symbols)
    if end != len(data):
        raise DataError(f"corrupt Huffman stream: {len(data) - end} trailing bytes")
    for dtype in (np.int64, np.uint64):
        try:
            return np.array(values, dtype=dtype)[index]
        except OverflowError:
            continue
    table = np.empty(len(values), dtype=object)
    table[:] = values
    return table[index]


def entropy_from_counts(counts: np.ndarray) -> float:
    """Shannon entropy × count, in bits: the least any symbol-by-symbol code can take."""
    c = np.asarray(counts, dtype=np.float64)
    c = c[c > 0]
    n = c.sum()
    return float((c * np.log2(n / c)).sum()) if n > 0 else 0.0


def entropy_bits(symbols: np.ndarray) -> float:
    """The entropy bound of `symbols`, in bits (see `entropy_from_counts`)."""
    return entropy_from_counts(_unique(symbols)[2])
