"""Coding one layer's per-task binary masks in fewer bits than 1 bit per weight per task.

Masks dominate the honest capacity of a compressed model, and the published code's Huffman
over a two-symbol string can never go below 1 bit per weight. Here a symbol carries several
bits, so sparse and shared masks really shrink. Three schemes are built; the shortest byte
string wins and its first byte says which (decoding needs the task count and layer shape)::

    tag 0  raw     the T × N mask bits, task-major, packed MSB first: never more than
                   1 bit per weight per task + 1 byte, whatever the masks
    tag 1  blocks  per task t: u8 L (4, 8, 12 or 16, the best for that task), then a Huffman
                   stream (see `huffman`) of ceil(N / L) L-bit blocks of the flattened mask
                   (first position = most significant bit; the last block is zero-padded)
    tag 2  joint   one Huffman stream of N task sets: bit t of a position's symbol is set iff
                   M_t holds it (as WSN does); unused positions are symbol 0. Symbols are
                   Python ints, so any number of tasks works (no int64 limit at T > 63).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from math import prod

import numpy as np

from tinysubnets.compression.huffman import entropy_from_counts, plan_huffman, read_huffman
from tinysubnets.errors import DataError, ShapeError

BLOCK_LENGTHS = (4, 8, 12, 16)
RAW, BLOCKS, JOINT = 0, 1, 2
SCHEME_NAMES = {RAW: "raw", BLOCKS: "blocks", JOINT: "joint"}


@dataclass
class MaskCodingReport:
    """The size of a layer's coded masks, measured from the bytes, beside its lower bound."""

    scheme: str  # the chosen scheme: "raw", "blocks" or "joint"
    bits: int  # 8 × bytes written (tag, tables and streams included)
    entropy_bits: float  # entropy × count of the chosen scheme's symbols
    raw_bits: int  # n_tasks × positions: 1 bit per weight per task
    bits_per_weight_per_task: float
    table_bits: int = 0  # of `bits`: scheme tag, block lengths and Huffman headers (tables)
    scheme_bits: dict[str, int] = field(default_factory=dict)  # every candidate, for comparison


@dataclass(frozen=True)
class _Candidate:
    scheme: str
    data: bytes
    entropy_bits: float
    table_bytes: int  # everything but the code streams


def _stack(masks: Sequence[np.ndarray]) -> np.ndarray:
    """The masks as one (T, N) bool array; all must be bool arrays of one shape."""
    arrays = [np.asarray(m) for m in masks]
    for m in arrays:
        if m.dtype != np.bool_:
            raise TypeError(f"masks must be bool arrays, got dtype {m.dtype}")
        if m.shape != arrays[0].shape:
            raise ShapeError(f"masks of one layer differ in shape: {arrays[0].shape}, {m.shape}")
    if not arrays:
        return np.zeros((0, 0), dtype=bool)
    return np.stack([m.ravel() for m in arrays])


def _block_symbols(bits: np.ndarray, length: int) -> np.ndarray:
    padded = np.zeros(-(-len(bits) // length) * length, dtype=np.int64)
    padded[: len(bits)] = bits
    weights = np.int64(1) << np.arange(length - 1, -1, -1, dtype=np.int64)
    return padded.reshape(-1, length) @ weights


def _unblock(symbols: np.ndarray, length: int, n: int) -> np.ndarray:
    shifts = np.arange(length - 1, -1, -1, dtype=np.int64)
    return ((symbols[:, None] >> shifts) & 1).astype(bool).ravel()[:n]


def _raw(stack: np.ndarray) -> _Candidate:
    n = stack.shape[1]
    p = stack.sum(axis=1)
    entropy = sum(entropy_from_counts(np.array([k, n - k])) for k in p)
    return _Candidate("raw", bytes([RAW]) + np.packbits(stack.ravel()).tobytes(), entropy, 1)


BlockCache = dict[bytes, tuple[bytes, float, int]]  # one task's coded blocks, by mask digest


def _blocks(stack: np.ndarray, cache: BlockCache | None = None) -> _Candidate:
    out, entropy, table = bytearray([BLOCKS]), 0.0, 1
    for bits in stack:
        key = hashlib.blake2b(np.packbits(bits).tobytes(), digest_size=16).digest()
        if cache is not None and key in cache:
            piece, piece_entropy, piece_table = cache[key]
        else:
            piece, piece_entropy, piece_table = _task_blocks(bits)
            if cache is not None:
                cache[key] = piece, piece_entropy, piece_table
        out += piece
        entropy += piece_entropy
        table += piece_table
    return _Candidate("blocks", bytes(out), entropy, table)


def _task_blocks(bits: np.ndarray) -> tuple[bytes, float, int]:
    """One task's mask as L-bit blocks, Huffman-coded (L the best of `BLOCK_LENGTHS`): its
    bytes, the entropy of its symbols (bits) and its table bytes."""
    best = None
    for length in BLOCK_LENGTHS:
        symbols = _block_symbols(bits, length)
        all_counts = np.bincount(symbols, minlength=1 << length)
        present = np.flatnonzero(all_counts)
        counts = all_counts[present]
        # Huffman can't beat the entropy and each table entry takes a byte: skip the
        # (pure-Python, slow for 2^16 symbols) code construction for hopeless lengths.
        bound = len(present) + entropy_from_counts(counts) / 8
        if best is not None and bound >= best[0].nbytes:
            continue
        plan = plan_huffman(present.tolist(), counts)
        if best is None or plan.nbytes < best[0].nbytes:
            best = (plan, symbols, length, counts, present)
    plan, symbols, length, counts, present = best
    index = np.zeros(1 << length, dtype=np.int64)
    index[present] = np.arange(len(present))
    piece = bytes([length]) + plan.emit(index[symbols])
    return piece, entropy_from_counts(counts), 1 + len(plan.header)


def _joint(stack: np.ndarray) -> _Candidate:
    # Pack each position's task bits into bytes (task t -> bit t, little-endian) and find the
    # distinct rows with numpy; only the distinct task sets become Python ints.
    rows = np.packbits(stack, axis=0, bitorder="little").T
    if rows.shape[1] <= 8:  # up to 64 tasks: one uint64 key per position sorts ~10x faster
        keys = np.zeros((rows.shape[0], 8), dtype=np.uint8)
        keys[:, : rows.shape[1]] = rows
        uniq, index, counts = np.unique(
            keys.view("<u8").ravel(), return_inverse=True, return_counts=True
        )
        values = [int(v) for v in uniq.tolist()]
    else:
        uniq, index, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        values = [int.from_bytes(row.tobytes(), "little") for row in uniq]
    plan = plan_huffman(values, counts)
    data = bytes([JOINT]) + plan.emit(index)
    return _Candidate("joint", data, entropy_from_counts(counts), 1 + len(plan.header))


def _candidates(
    masks: Sequence[np.ndarray], cache: BlockCache | None = None
) -> list[_Candidate]:
    stack = _stack(masks)
    if stack.size == 0:
        return [_raw(stack)]
    return [_raw(stack), _blocks(stack, cache), _joint(stack)]


def encode_masks(masks: Sequence[np.ndarray], cache: BlockCache | None = None) -> bytes:
    """Code the masks of one layer (masks[t]: bool array of task t, one shape for all).

    A finished task's mask never changes, so its per-task coding can be kept in ``cache``
    (a dict the caller holds) between calls: a run rewrites the model file after every task,
    and without it the coding of a long sequence grows with the square of its length.
    """
    return min(_candidates(masks, cache), key=lambda c: len(c.data)).data


def measure_masks(masks: Sequence[np.ndarray]) -> MaskCodingReport:
    """Measure `encode_masks` (its bytes, exactly) against the entropy of its symbols."""
    candidates = _candidates(masks)
    best = min(candidates, key=lambda c: len(c.data))
    raw_bits = sum(int(np.asarray(m).size) for m in masks)
    return MaskCodingReport(
        scheme=best.scheme,
        bits=8 * len(best.data),
        entropy_bits=best.entropy_bits,
        raw_bits=raw_bits,
        bits_per_weight_per_task=8 * len(best.data) / raw_bits if raw_bits else 0.0,
        table_bits=8 * best.table_bytes,
        scheme_bits={c.scheme: 8 * len(c.data) for c in candidates},
    )


def _decode_blocks(data: bytes, n_tasks: int, n: int) -> tuple[np.ndarray, int]:
    stack, pos = np.zeros((n_tasks, n), dtype=bool), 1
    for t in range(n_tasks):
        if pos >= len(data):
            raise DataError(f"truncated mask stream: task {t} of {n_tasks} is missing")
        length = data[pos]
        if length not in BLOCK_LENGTHS:
            raise DataError(f"corrupt mask stream: block length {length} for task {t}")
        values, index, pos = read_huffman(data, pos + 1, expected=-(-n // length))
        if any(not 0 <= v < 1 << length for v in values):
            raise DataError(f"corrupt mask stream: a block of task {t} exceeds {length} bits")
        stack[t] = _unblock(np.array(values, dtype=np.int64)[index], length, n)
    return stack, pos


def _decode_joint(data: bytes, n_tasks: int, n: int) -> tuple[np.ndarray, int]:
    values, index, pos = read_huffman(data, 1, expected=n)
    if any(not 0 <= v < 1 << n_tasks for v in values):
        raise DataError(f"corrupt mask stream: a task set names a task beyond {n_tasks}")
    width = (n_tasks + 7) // 8
    packed = np.frombuffer(b"".join(v.to_bytes(width, "little") for v in values), np.uint8)
    table = np.unpackbits(
        packed.reshape(len(values), width), axis=1, count=n_tasks, bitorder="little"
    ).astype(bool)
    return table[index].T.reshape(n_tasks, n), pos


def decode_masks(data: bytes, n_tasks: int, shape: tuple[int, ...]) -> list[np.ndarray]:
    """Inverse of `encode_masks`; corrupt or truncated bytes raise DataError."""
    shape = tuple(int(s) for s in shape)
    if n_tasks < 0 or any(s < 0 for s in shape):
        raise ValueError(f"invalid mask layout: {n_tasks} tasks of shape {shape}")
    data, n = bytes(data), prod(shape)
    if not data:
        raise DataError("empty mask stream")
    if data[0] == RAW:
        if len(data) != 1 + (n_tasks * n + 7) // 8:
            raise DataError(
                f"raw mask stream of {len(data) - 1} bytes, expected {(n_tasks * n + 7) // 8}"
            )
        bits = np.unpackbits(np.frombuffer(data, np.uint8, offset=1), count=n_tasks * n)
        stack, pos = bits.astype(bool).reshape(n_tasks, n), len(data)
    elif data[0] == BLOCKS:
        stack, pos = _decode_blocks(data, n_tasks, n)
    elif data[0] == JOINT:
        stack, pos = _decode_joint(data, n_tasks, n)
    else:
        raise DataError(f"unknown mask coding scheme {data[0]}")
    if pos != len(data):
        raise DataError(f"corrupt mask stream: {len(data) - pos} trailing bytes")
    return [stack[t].reshape(shape).copy() for t in range(n_tasks)]
