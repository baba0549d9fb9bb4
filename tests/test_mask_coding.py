"""Huffman symbol coding and per-layer mask coding: exact round trips, sizes that beat 1 bit
per weight per task on sparse masks, never below the entropy bound, and corrupt bytes that
fail with DataError only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinysubnets.compression.huffman import (
    decode_symbols,
    encode_symbols,
    entropy_bits,
    read_huffman,
)
from tinysubnets.compression.mask_coding import (
    _candidates,
    decode_masks,
    encode_masks,
    measure_masks,
)
from tinysubnets.errors import DataError, ShapeError

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT64 = st.integers(-(2**63), 2**63 - 1)


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 0x80 >> (bit % 8)
    return bytes(out)


# --- symbols ------------------------------------------------------------------------------


@FAST
@given(st.lists(st.one_of(st.integers(-3, 3), INT64), max_size=300))
def test_symbols_round_trip(values: list[int]) -> None:
    symbols = np.array(values, dtype=np.int64)
    data = encode_symbols(symbols)
    assert np.array_equal(decode_symbols(data), symbols)
    assert 8 * len(data) >= entropy_bits(symbols)


@pytest.mark.parametrize(
    "symbols",
    [
        np.zeros(0, dtype=np.int64),
        np.full(1000, -7),
        np.arange(2**16),
        np.random.default_rng(0).geometric(0.3, size=5000),
        np.array([2**64 - 1, 0, 2**63], dtype=np.uint64),
        np.array([2**100, -(2**90), 3], dtype=object),
        np.array([[True, False], [True, True]]),
    ],
    ids=["empty", "single", "2^16-distinct", "geometric", "uint64", "bigint", "bool-2d"],
)
def test_symbols_edge_cases(symbols: np.ndarray) -> None:
    back = decode_symbols(encode_symbols(symbols))
    assert back.shape == (symbols.size,)
    assert [int(v) for v in back] == [int(v) for v in symbols.ravel()]


def test_single_symbol_stores_only_the_count() -> None:
    assert len(encode_symbols(np.full(10**6, 5))) <= 6
    assert entropy_bits(np.full(10, 5)) == 0.0


def test_forged_counts_are_refused_before_allocating() -> None:
    with pytest.raises(DataError):  # 2^62 copies of one symbol: no bits to bound them
        decode_symbols(bytes([0x80] * 8 + [0x40, 0x01, 0x02]))
    with pytest.raises(DataError):  # 2^62 symbols, 2 distinct, almost no stream bytes
        decode_symbols(bytes([0x80] * 8 + [0x40, 0x02, 0x01, 0x02, 0x00, 0x02, 0xFF]))
    with pytest.raises(DataError, match="expected 3 symbols"):
        read_huffman(encode_symbols(np.arange(5)), expected=3)


@FAST
@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=40),
    st.data(),
)
def test_corrupt_symbol_streams_raise_data_error(values: list[int], data: st.DataObject) -> None:
    encoded = encode_symbols(np.array(values))
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    with pytest.raises(DataError):
        decode_symbols(encoded[:cut])
    bit = data.draw(st.integers(0, 8 * len(encoded) - 1), label="bit")
    try:
        assert decode_symbols(_flip(encoded, bit)).ndim == 1
    except DataError:
        pass


@FAST
@given(st.binary(max_size=64))
def test_random_bytes_never_crash_the_symbol_decoder(data: bytes) -> None:
    try:
        decode_symbols(data)
    except DataError:
        pass


# --- masks --------------------------------------------------------------------------------


@st.composite
def layer_masks(draw: st.DrawFn) -> list[np.ndarray]:
    """1..8 tasks on a random shape: independent, nested (M_1 ⊂ M_2 ⊂ …) or disjoint."""
    shape = tuple(draw(st.lists(st.integers(0, 12), min_size=1, max_size=3)))
    n_tasks = draw(st.integers(1, 8))
    kind = draw(st.sampled_from(["independent", "nested", "disjoint"]))
    density = draw(st.floats(0.0, 1.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    u = rng.random(shape)
    if kind == "independent":
        return [rng.random(shape) < density for _ in range(n_tasks)]
    if kind == "nested":
        return [u < density * (t + 1) / n_tasks for t in range(n_tasks)]
    owner = rng.integers(0, n_tasks, size=shape)
    return [(owner == t) & (u < density) for t in range(n_tasks)]


@FAST
@given(layer_masks())
def test_masks_round_trip_with_every_scheme(masks: list[np.ndarray]) -> None:
    shape = masks[0].shape
    for candidate in _candidates(masks):
        back = decode_masks(candidate.data, len(masks), shape)
        assert len(back) == len(masks) and all(b.dtype == bool for b in back)
        assert all(map(np.array_equal, back, masks))
    data = encode_masks(masks)
    assert len(data) == min(len(c.data) for c in _candidates(masks))
    assert len(data) <= 1 + (len(masks) * masks[0].size + 7) // 8  # never above raw + a byte


def test_many_tasks_beyond_int64() -> None:
    rng = np.random.default_rng(3)
    masks = [rng.random((7, 9)) < 0.3 for _ in range(70)]
    for candidate in _candidates(masks):
        back = decode_masks(candidate.data, 70, (7, 9))
        assert len(back) == 70 and all(map(np.array_equal, back, masks))


def test_sparse_masks_take_clearly_less_than_a_bit() -> None:
    rng = np.random.default_rng(0)
    masks = [rng.random(50_000) < 0.05 for _ in range(8)]
    report = measure_masks(masks)
    assert report.bits == 8 * len(encode_masks(masks))
    assert report.raw_bits == 8 * 50_000
    assert report.bits_per_weight_per_task < 0.5
    assert report.entropy_bits <= report.bits <= report.raw_bits + 8
    assert 0 < report.table_bits and report.entropy_bits <= report.bits - report.table_bits
    assert report.scheme_bits[report.scheme] == report.bits


def test_shared_masks_prefer_joint_coding() -> None:
    rng = np.random.default_rng(1)
    base = rng.random(20_000) < 0.2
    masks = [base | (rng.random(20_000) < 0.01) for _ in range(6)]
    report = measure_masks(masks)
    assert report.scheme == "joint"
    assert report.entropy_bits <= report.bits < 0.3 * report.raw_bits


@FAST
@given(layer_masks(), st.data())
def test_corrupt_mask_streams_raise_data_error(
    masks: list[np.ndarray], data: st.DataObject
) -> None:
    shape = masks[0].shape
    for candidate in _candidates(masks):
        encoded = candidate.data
        cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
        with pytest.raises(DataError):
            decode_masks(encoded[:cut], len(masks), shape)
        bit = data.draw(st.integers(0, 8 * len(encoded) - 1), label="bit")
        try:
            back = decode_masks(_flip(encoded, bit), len(masks), shape)
        except DataError:
            continue
        assert len(back) == len(masks) and all(b.shape == shape for b in back)


def test_every_bit_flip_of_a_small_stream() -> None:
    rng = np.random.default_rng(2)
    masks = [rng.random((4, 6)) < 0.2 for _ in range(3)]
    for candidate in _candidates(masks):
        for bit in range(8 * len(candidate.data)):
            try:
                back = decode_masks(_flip(candidate.data, bit), 3, (4, 6))
            except DataError:
                continue
            assert len(back) == 3 and all(b.shape == (4, 6) and b.dtype == bool for b in back)


@FAST
@given(st.binary(max_size=64), st.integers(0, 9), st.integers(0, 30))
def test_random_bytes_never_crash_the_mask_decoder(data: bytes, n_tasks: int, n: int) -> None:
    try:
        back = decode_masks(data, n_tasks, (n,))
    except DataError:
        return
    assert len(back) == n_tasks and all(b.shape == (n,) for b in back)


def test_bad_inputs() -> None:
    with pytest.raises(ShapeError):
        encode_masks([np.zeros(3, bool), np.zeros(4, bool)])
    with pytest.raises(TypeError):
        encode_masks([np.zeros(3, np.int8)])
    assert decode_masks(encode_masks([]), 0, (5,)) == []
    with pytest.raises(DataError):
        decode_masks(b"", 1, (3,))
    with pytest.raises(DataError):
        decode_masks(b"\x07", 1, (3,))
