"""1-D k-means codebooks: valid codebooks and codes for any finite input, nearest-centroid codes,
exact when levels suffice, optimal on small inputs and near-optimal on weight-like blocks
(against an exact dynamic programme), never worse than a uniform grid, deterministic, clear
errors, and at least as good as scikit-learn's KMeans."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tinysubnets.compression.kmeans import Codebook, kmeans_1d, squared_error
from tinysubnets.errors import ConfigError

FAST = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# Ties and clusters matter as much as spread: mix a few repeated values into wide floats.
VALUE = st.one_of(
    st.floats(-1e4, 1e4, width=32, allow_subnormal=False),
    st.sampled_from([0.0, -0.5, 0.25, 1.0, 3.0]),
)
VALUES = arrays(np.float32, st.integers(0, 300), elements=VALUE)
BITS = st.integers(1, 10)


def _optimal_error(values: np.ndarray, bits: int) -> float:
    """The least squared error of any partition into 2**bits runs: the O(k n^2) programme over
    the distinct sorted values (float64), every (start, end) run's error from prefix sums."""
    distinct, count = np.unique(values.astype(np.float64), return_counts=True)
    s0, s1, s2 = (np.concatenate(([0.0], np.cumsum(count * distinct**p))) for p in (0, 1, 2))
    start, end = np.triu_indices(distinct.size + 1, 1)
    cost = np.full((distinct.size + 1, distinct.size + 1), np.inf)
    size = s0[end] - s0[start]
    cost[start, end] = s2[end] - s2[start] - (s1[end] - s1[start]) ** 2 / size
    best = cost[0]
    for _ in range(min(2**bits, distinct.size) - 1):
        best = (best[:, None] + cost).min(axis=0)
    return float(max(best[-1], 0.0))


def _weight_like(n: int, seed: int) -> np.ndarray:
    """Trained-weight-like values: Laplace and Gaussian halves, a few outliers."""
    rng = np.random.default_rng(seed)
    values = np.concatenate((rng.laplace(0, 0.02, n // 2), rng.normal(0.003, 0.05, n - n // 2)))
    values[rng.choice(n, max(1, n // 200), replace=False)] *= 4.0
    return values.astype(np.float32)


def _nearest_distance(values: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return np.zeros(0)
    return np.abs(values.astype(np.float64)[:, None] - centroids.astype(np.float64)).min(axis=1)


@FAST
@given(VALUES, BITS)
def test_codebook_and_codes_are_valid(values: np.ndarray, bits: int) -> None:
    codebook, codes = kmeans_1d(values, bits)
    centroids = codebook.centroids
    assert codebook.bits == bits and centroids.dtype == np.float32
    assert centroids.size <= 2**bits and np.isfinite(centroids).all()
    assert (np.diff(centroids.astype(np.float64)) > 0).all()  # sorted and unique
    assert codes.shape == values.shape and codes.dtype == (np.uint8 if bits <= 8 else np.uint16)
    assert (codes < max(centroids.size, 1)).all()
    decoded = codebook.decode(codes)
    assert decoded.shape == values.shape and decoded.dtype == np.float32
    if values.size:
        assert centroids.size >= 1


@FAST
@given(VALUES, BITS, st.integers(0, 3))
def test_each_value_gets_its_nearest_centroid(values: np.ndarray, bits: int, it: int) -> None:
    # Holds for any codebook the search stops at, even with max_iter = 0.
    codebook, codes = kmeans_1d(values, bits, max_iter=it)
    mine = np.abs(values.astype(np.float64) - codebook.decode(codes).astype(np.float64))
    assert (mine <= _nearest_distance(values, codebook.centroids)).all()


@FAST
@given(VALUES, BITS)
def test_never_worse_than_a_uniform_grid(values: np.ndarray, bits: int) -> None:
    if values.size == 0:
        return
    codebook, codes = kmeans_1d(values, bits)
    grid = np.linspace(values.min(), values.max(), 2**bits, dtype=np.float64)
    uniform = float((_nearest_distance(values, grid) ** 2).sum())
    # Our centroids are float32: allow their rounding, half a float32 step per value.
    slack = values.size * float(np.spacing(np.abs(values).max())) ** 2
    assert squared_error(values, codebook, codes) <= uniform * (1 + 1e-6) + slack


@FAST
@given(
    st.lists(st.floats(-100, 100, width=32), min_size=1, max_size=256, unique=True),
    BITS,
    st.integers(1, 5),
)
def test_exact_when_there_are_enough_levels(distinct: list, bits: int, repeat: int) -> None:
    distinct = np.unique(np.float32(distinct))[: 2**bits]
    values = np.random.default_rng(0).permutation(np.repeat(distinct, repeat))
    codebook, codes = kmeans_1d(values, bits)
    assert np.array_equal(codebook.centroids, distinct)
    assert np.array_equal(codebook.decode(codes), values)
    assert squared_error(values, codebook, codes) == 0.0


@FAST
@given(arrays(np.float32, st.integers(1, 40), elements=VALUE), st.integers(1, 3))
def test_optimal_on_small_inputs(values: np.ndarray, bits: int) -> None:
    # Few values: the programme runs over every cut, so no partition does better (up to the
    # float32 rounding of the centroids, half a float32 step per value).
    codebook, codes = kmeans_1d(values, bits)
    slack = values.size * float(np.spacing(np.abs(values).max())) ** 2
    best = _optimal_error(values, bits)
    assert squared_error(values, codebook, codes) <= best * (1 + 1e-9) + slack


@pytest.mark.parametrize(("bits", "within"), [(2, 1e-4), (3, 1e-3), (4, 2e-3), (5, 5e-3)])
@pytest.mark.parametrize("n", [300, 700])
def test_near_optimal_on_weight_like_blocks(n: int, bits: int, within: float) -> None:
    # Too many values for the exact programme: band, then windows or Lloyd (measured: the
    # optimum itself at 2-4 bits here, 0.2 % above it at 5).
    for seed in range(4):
        values = _weight_like(n, seed)
        codebook, codes = kmeans_1d(values, bits)
        best = _optimal_error(values, bits)
        assert squared_error(values, codebook, codes) <= best * (1 + within)


@FAST
@given(VALUES, BITS, st.integers(0, 3))
def test_deterministic_and_all_levels_used(values: np.ndarray, bits: int, it: int) -> None:
    codebook, codes = kmeans_1d(values, bits, max_iter=it)
    again, codes_again = kmeans_1d(values.copy(), bits, max_iter=it)
    assert codebook.centroids.tobytes() == again.centroids.tobytes()
    assert codes.tobytes() == codes_again.tobytes()
    # Distinct values never share a centroid while levels are left over.
    assert codebook.centroids.size == min(2**bits, np.unique(values).size)


def test_deterministic_bit_for_bit() -> None:
    values = np.random.default_rng(3).laplace(0, 0.05, 20_000).astype(np.float32)
    for bits in (2, 5, 8, 9):
        first, codes = kmeans_1d(values, bits)
        again, codes_again = kmeans_1d(values.copy(), bits)
        assert first.centroids.tobytes() == again.centroids.tobytes()
        assert codes.tobytes() == codes_again.tobytes()


def test_small_and_degenerate_inputs() -> None:
    codebook, codes = kmeans_1d(np.array([], dtype=np.float32), 4)
    assert codebook.centroids.size == 0 and codes.size == 0 and codes.dtype == np.uint8
    codebook, codes = kmeans_1d(np.full(50, -0.125, dtype=np.float32), 3)
    assert codebook.centroids.tolist() == [-0.125] and (codes == 0).all()
    codebook, codes = kmeans_1d(np.array([0.0, 1.0, 10.0, 11.0], dtype=np.float32), 1)
    assert codebook.centroids.tolist() == [0.5, 10.5] and codes.tolist() == [0, 0, 1, 1]
    weights = np.random.default_rng(0).normal(size=(20, 30)).astype(np.float32)
    codebook, codes = kmeans_1d(weights, 3)  # any shape: codes keep it
    assert codes.shape == (20, 30) and codebook.decode(codes).shape == (20, 30)


def test_squared_error_is_the_sum_of_squares() -> None:
    values = np.array([0.0, 1.0, 2.0, 4.0], dtype=np.float32)
    codebook = Codebook(np.array([0.5, 3.0], dtype=np.float32), bits=1)
    assert squared_error(values, codebook, np.array([0, 0, 1, 1])) == 0.25 + 0.25 + 1 + 1


@pytest.mark.parametrize("bits", [0, -1, 17, 2.0, True, "4"])
def test_bad_bit_width_is_a_config_error(bits: object) -> None:
    with pytest.raises(ConfigError, match="bit-width"):
        kmeans_1d(np.ones(10, dtype=np.float32), bits)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])
def test_non_finite_weight_is_a_config_error(bad: float) -> None:
    values = np.array([0.5, bad, -0.25])
    with pytest.raises(ConfigError, match=str(bad).replace("+", r"\+")):
        kmeans_1d(values, 2)


@pytest.mark.parametrize("bits", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("n", [600, 2500])
def test_at_least_as_good_as_sklearn(n: int, bits: int) -> None:
    cluster = pytest.importorskip("sklearn.cluster")
    for seed in range(2):
        values = _weight_like(n, 100 * bits + seed)
        codebook, codes = kmeans_1d(values, bits)
        model = cluster.KMeans(n_clusters=2**bits, n_init=1, random_state=0).fit(values[:, None])
        theirs = float((_nearest_distance(values, model.cluster_centers_.ravel()) ** 2).sum())
        assert squared_error(values, codebook, codes) <= theirs * (1 + 1e-9)
