"""K-means codebooks for one layer's own weights (TSN step 4, adaptive quantization).

In one dimension, after one sort, every cluster is a run of consecutive sorted values: a
partition is k+1 boundaries, and with prefix sums (float64) any run's sum and count cost O(1).
The best partition whose m-th boundary is one of a row of w candidate cuts is then a dynamic
programme over the k rows, one (w x w) max-plus step per boundary (`_best_path`): exact over all
w^(k-1) combinations, a few numpy calls per boundary and none per value. At TSN's block sizes
(500-6,000 values) numpy's per-call cost is the cost, which is why everything is built on it.

- Few values ((k-1) n^2 <= 40,000): every cut is a candidate, so the result is the optimum.
- Otherwise a *band* programme starts: each boundary among the cuts of a grid that follows the
  asymptotically optimal point density p(x)^(1/3) (Panter-Dite), within 1.5 levels of where that
  density puts it. It settles how many centroids each stretch of values gets, which Lloyd's
  algorithm (so sklearn's k-means++) can get wrong by several.
- Few levels (k <= 8), where k-means++ often lands within 0.01 % of the optimum: a finer band,
  then windows of every cut around each boundary until no boundary reaches its window's edge.
  The error is a rough function of each cut (a few values tip it), so the windows are wide.
- More levels: Lloyd steps on the run boundaries, polished by narrow windows up to k = 16.

Measured against an exact O(k n^2) programme on 126 weight- and head-like blocks of 500-6,000
values: at most 0.004 % above the optimum at 2-3 bits, 0.07 % at 4, 0.4 % at 5 and 4 % at 8
(sklearn's KMeans(n_init=1): up to 14 %, 9 %, 19 %, 16 % and 24 %); never above sklearn's
error there, nor on 1,000 further blocks of seven distributions at any of 2-6 bits.
Deterministic (bit-identical reruns); codes are exact nearest-centroid assignments.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from tinysubnets.errors import ConfigError

MAX_BITS = 16
_ZOOM_LEVELS = 8  # up to this many levels: a finer band, then full-resolution windows
_POLISH_LEVELS = 16  # up to this many levels: Lloyd's partition polished by narrow windows
_GRID_CUTS = 128  # the fine band's grid has at least this many cuts (and 8 per level)
_ZOOM_PAIRS = 4000  # a zoom window's width w: (levels - 2) w^2 pairs of cuts at most
_ZOOM_MIN = 6  # a zoom window reaches at least this many cuts either side
_ZOOM_FAR = 8  # and holds at most this many coarser cuts a side beyond them
_EXACT_PAIRS = 40_000  # up to this many (levels - 1) * cuts^2: the exact programme over all cuts
_WIDE_BAND_LEVELS = 32  # up to this many levels the band reaches 1.5 levels, beyond it 1
_BAND_LEVELS = 4096  # beyond this many levels the band keeps the density's quantiles


@dataclass(frozen=True)
class Codebook:
    """A layer's centroids for one task: ``centroids`` (float32, sorted, unique, at most
    ``2**bits`` of them; fewer when the weights have fewer distinct values)."""

    centroids: np.ndarray
    bits: int

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """The quantized weights: each code replaced by its centroid (float32, codes' shape)."""
        return self.centroids[np.asarray(codes, dtype=np.intp)]


def kmeans_1d(values: np.ndarray, bits: int, max_iter: int = 100) -> tuple[Codebook, np.ndarray]:
    """Cluster ``values`` into at most ``2**bits`` centroids; return the codebook and the codes.

    Codes have the shape of ``values`` and dtype uint8 (bits <= 8) or uint16; each value gets
    its nearest float32 centroid. ``max_iter`` bounds the rounds after the band step (window
    passes or Lloyd steps); 0 keeps the band's partition. Few values are clustered exactly.
    """
    if isinstance(bits, bool) or not isinstance(bits, int | np.integer):
        raise ConfigError(f"bit-width must be an integer in [1, {MAX_BITS}], got {bits!r}")
    if not 1 <= bits <= MAX_BITS:
        raise ConfigError(f"bit-width {bits} is out of range: k-means needs 1 to {MAX_BITS} bits")
    if max_iter < 0:
        raise ConfigError(f"max_iter must be >= 0, got {max_iter}")
    flat = np.asarray(values)
    if flat.dtype != np.float32:  # errstate costs as much as a small block's sort
        with np.errstate(over="ignore"):  # a value too large for float32 is reported below
            flat = flat.astype(np.float32)
    flat = flat.reshape(-1)
    x = np.sort(flat)  # -inf sorts first, +inf and NaN last: two checks cover all values
    if x.size and not (np.isfinite(x[0]) and np.isfinite(x[-1])):
        bad = np.asarray(values).reshape(-1)[np.argmin(np.isfinite(flat))]
        raise ConfigError(f"cannot quantize weight {bad}: not a finite float32")
    k, first = 2**bits, np.empty(x.size, dtype=bool)
    first[:1] = True  # first of its value in the sorted order
    np.not_equal(x[1:], x[:-1], out=first[1:])
    distinct = int(np.count_nonzero(first))
    if distinct <= k:
        # No more distinct values than levels: the distinct values themselves, exact.
        centroids = x[first]
    else:
        data = _Sorted(x, first, distinct)
        if distinct == k + 1:  # exactly one pair of neighbours shares a centroid: the cheapest
            bounds = _merge_closest(data)
        elif (k - 1) * (distinct - 1) ** 2 <= _EXACT_PAIRS:  # few values: every cut, exact
            cand = np.repeat(np.arange(distinct + 1)[None, 1:-1], k + 1, axis=0)
            cand[0], cand[k] = 0, distinct
            bounds = _best_path(data, cand, masked=True)
        elif k <= _ZOOM_LEVELS:
            bounds, cell = _band(data, k, max(8, _GRID_CUTS // k))
            bounds = _zoom(data, bounds, cell, max_iter)
        else:
            bounds = _descend(data, _band(data, k, 8)[0], max_iter)
            if k <= _POLISH_LEVELS:
                bounds = _zoom(data, bounds, _ZOOM_MIN, max_iter)
        centroids = data.means(bounds)
    codes = _nearest(flat, centroids, np.uint8 if bits <= 8 else np.uint16)
    return Codebook(centroids, bits), codes.reshape(np.shape(values))


def squared_error(values: np.ndarray, codebook: Codebook, codes: np.ndarray) -> float:
    """Sum of squared differences between ``values`` and their decoded codes (float64)."""
    diff = np.asarray(values, dtype=np.float64) - codebook.decode(codes)
    return float(np.dot(diff.ravel(), diff.ravel()))


class _Sorted:
    """The distinct sorted values (float64; centred when that helps, prefix sums then lose less
    to cancellation), with prefix sums and prefix counts: any run's sum and count in O(1).
    Counts are float64 too (exact below 2^53), so no division mixes integers and floats.
    Cuts index the distinct values, so no cut ever splits equal weights."""

    def __init__(self, x: np.ndarray, first: np.ndarray, distinct: int) -> None:
        self.shift = float(np.add.reduce(x, dtype=np.float64)) / x.size
        if abs(self.shift) <= float(x[-1]) - float(x[0]):
            self.shift, centred = 0.0, x.astype(np.float64)  # centring would gain little
        else:
            centred = np.subtract(x, self.shift, dtype=np.float64)
            if np.count_nonzero(centred[1:] != centred[:-1]) != distinct - 1:
                # Centring merged distinct values (range beyond float64's 53 bits): stay exact.
                self.shift, centred = 0.0, x.astype(np.float64)
        sums = np.zeros(x.size + 1)
        np.cumsum(centred, out=sums[1:])
        if distinct == x.size:
            self.x, self.s1, self.count = centred, sums, np.arange(x.size + 1, dtype=np.float64)
        else:
            starts = np.append(np.flatnonzero(first), x.size)
            self.x, self.s1 = centred[starts[:-1]], sums[starts]
            self.count = starts.astype(np.float64)
        self.n = distinct

    def means(self, bounds: np.ndarray) -> np.ndarray:
        """Run means as float32 centroids; clipped into each run so rounding keeps them sorted
        and unique (runs hold distinct values: the float32 rounding of a mean stays inside)."""
        total, count = self.s1[bounds], self.count[bounds]
        mean = (total[1:] - total[:-1]) / (count[1:] - count[:-1])
        mean = np.minimum(np.maximum(mean, self.x[bounds[:-1]]), self.x[bounds[1:] - 1])
        mean += self.shift
        return mean.astype(np.float32)


def _best_path(data: _Sorted, cand: np.ndarray, masked: bool = False) -> np.ndarray:
    """The best partition whose boundary m is one of the cuts in row m of ``cand`` (rows 0 and k
    hold only 0 and n): ``value[c]`` is the best sum of sum^2 / count (what the runs take off
    the squared error) over the runs up to candidate c. If ``masked``, pairs of cuts that
    would leave a run empty get -inf; otherwise each row's cuts must all lie below the next
    row's. Ties go to the earlier candidate of a row: callers put first what they keep."""
    total, count = data.s1[cand], data.count[cand]
    run = total[1:, :, None] - total[:-1, None, :]  # [m, c, a]: from cut a of row m to c of m+1
    size = count[1:, :, None] - count[:-1, None, :]
    run *= run
    if masked:  # a divide with where= costs more than these plain passes
        empty = size <= 0
        np.maximum(size, 1.0, out=size)
        gain = np.divide(run, size, out=run)
        np.putmask(gain, empty, -np.inf)
    else:
        gain = np.divide(run, size, out=run)
    value, picks, rows = gain[0, :, 0], [], _arange(cand.shape[1])
    for step in gain[1:]:
        step += value
        pick = step.argmax(1)
        picks.append(pick)
        value = step[rows, pick]
    path = [0]  # row k: n, whichever candidate
    for pick in reversed(picks):
        path.append(int(pick[path[-1]]))
    path.append(0)
    return cand[_arange(cand.shape[0]), path[::-1]]


@functools.lru_cache(maxsize=64)
def _arange(n: int) -> np.ndarray:
    """``np.arange(n)``, made once (read-only): at these sizes every numpy call counts."""
    out = np.arange(n)
    out.flags.writeable = False
    return out


@functools.cache
def _centre_out(reach: int) -> np.ndarray:
    """Offsets 0, -1, 1, -2, 2, ... reach: a window's candidates, the current cut first."""
    i = np.arange(2 * reach + 1)
    out = (i + 1) // 2 * np.where(i % 2, -1, 1)
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=64)
def _band_rows(k: int, per: int, reach: int, stride: int) -> np.ndarray:
    """Grid indices of each boundary's band: every ``stride``-th within ``reach * stride`` of
    its level's (``per`` grid cuts a level), its level's own first; rows 0 and k for the ends."""
    rows = np.arange(k + 1)[:, None] * per + stride * _centre_out(reach)
    np.clip(rows, 0, per * k, out=rows)
    rows.flags.writeable = False
    return rows


def _band(data: _Sorted, k: int, per: int) -> tuple[np.ndarray, int]:
    """Start: boundary m among the cuts of a ``per``-cuts-a-level density grid within 1.5 levels
    (1 beyond 32 levels) of the density's m-th k-quantile, on 8 cuts a level; if ``per`` is
    finer, then within half a level of that. Returns it and the grid's widest cell (in values).

    The grid follows p(x)^(1/3) read off the sorted values: a gap dx between quantile knots
    weighs dx^(2/3), capped at one level's share per value in it, since a gap between two values
    holds one boundary however wide it is (a lone outlier would draw levels into its gap)."""
    x, n, grid = data.x, data.n, per * k
    m = min(n - 1, (2 if k <= _ZOOM_LEVELS else 8) * grid)  # windows follow: coarser will do
    knot = x[_arange(m + 1) * (n - 1) // m] if m < n - 1 else x  # quantiles, or every value
    step = (knot[1:] - knot[:-1]) ** (2.0 / 3.0)
    for _ in range(2):  # the cap lowers the total, so apply it twice
        np.minimum(step, np.add.reduce(step) * ((n - 1) / (m * k)), out=step)
    weight = np.zeros(m + 1)
    np.cumsum(step, out=weight[1:])
    target = _arange(grid + 1) * (weight[-1] / grid)
    if m < n - 1:
        cuts = np.searchsorted(x, np.interp(target, weight, knot))
    else:
        cuts = np.searchsorted(weight, target)
    np.minimum(np.maximum(cuts, 1, out=cuts), n - 1, out=cuts)
    coarse = per // 8
    cand = cuts[_band_rows(k, per, 12 if k <= _WIDE_BAND_LEVELS else 8, coarse)]
    # The first column must be a valid partition, hence strictly increasing; other pairs of
    # cuts may leave a run empty, and are masked.
    levels, cand[0] = _arange(k + 1), 0
    cand[:, 0] = np.maximum.accumulate(np.minimum(cand[:, 0] - levels, n - k)) + levels
    cand[k] = n
    if k > _BAND_LEVELS:  # a programme this long costs more than it gains: the quantiles
        return cand[:, 0], 0
    bounds = _best_path(data, cand, masked=True)
    if coarse > 1:
        rows = np.searchsorted(cuts, bounds)[:, None] + _centre_out(per // 2)
        cand = cuts[np.minimum(np.maximum(rows, 0, out=rows), grid, out=rows)]
        cand[:, 0] = bounds
        cand[0], cand[k] = 0, n
        bounds = _best_path(data, cand, masked=True)
    return bounds, int((cuts[1:] - cuts[:-1]).max())


def _merge_closest(data: _Sorted) -> np.ndarray:
    """Every cut but the one whose two sides cost least to merge (n = k + 1 distinct values)."""
    size, gap = data.count[1:] - data.count[:-1], data.x[1:] - data.x[:-1]
    cost = gap * gap * (size[1:] * size[:-1]) / (size[1:] + size[:-1])
    return np.delete(np.arange(data.n + 1), int(cost.argmin()) + 1)


def _zoom(data: _Sorted, bounds: np.ndarray, radius: int, passes: int) -> np.ndarray:
    """Improve ``bounds`` by windows around each boundary: every cut within +-h (h as wide as
    ``_ZOOM_PAIRS`` allows), and every s-th cut out to +-``radius`` (s >= h, at most
    ``_ZOOM_FAR`` of them a side); while some boundary moves h or more, again around the new
    ones out to +-s. A window stops half-way to the neighbouring boundaries: windows never
    overlap, no run is empty."""
    half = max(math.isqrt(_ZOOM_PAIRS // max(bounds.size - 3, 1)) // 2, _ZOOM_MIN)
    half = min(radius, half)
    for _ in range(passes):
        stride = max(half, -(-radius // _ZOOM_FAR))
        middle = (bounds[1:] + bounds[:-1]) // 2
        cand = bounds[:, None] + _zoom_order(half, radius, stride)
        inner = cand[1:-1]
        np.minimum(np.maximum(inner, middle[:-1, None] + 1, out=inner), middle[1:, None], out=inner)
        cand[0], cand[-1] = 0, data.n
        new = _best_path(data, cand)
        moved = np.abs(new - bounds).max()
        bounds = new
        if moved < half:
            break
        radius = stride
    return bounds


@functools.lru_cache(maxsize=256)
def _zoom_order(half: int, radius: int, stride: int) -> np.ndarray:
    """Offsets 0, -1, 1, ... +-half, then +-stride, +-2 stride, ... beyond half, to +-radius."""
    far = np.arange(stride * (half // stride + 1), radius + 1, stride)
    out = np.concatenate((_centre_out(half), np.stack((-far, far), 1).ravel()))
    out.flags.writeable = False
    return out


def _descend(data: _Sorted, bounds: np.ndarray, max_iter: int) -> np.ndarray:
    """Lloyd's algorithm on run boundaries (means from the prefix sums, cuts by ``searchsorted``
    of the midpoints) until the partition stops changing. A centroid whose cell holds no value
    keeps the nearest one (the cuts are pushed apart): no run is ever empty, no centroid NaN."""
    search, s1, count = data.x.searchsorted, data.s1, data.count
    levels = _arange(bounds.size)[1:-1]
    bounds = bounds.copy()
    for _ in range(max_iter):
        total, size = s1[bounds], count[bounds]
        centre = (total[1:] - total[:-1]) / (size[1:] - size[:-1])
        cut = search((centre[1:] + centre[:-1]) * 0.5)
        cut = np.maximum.accumulate(np.maximum(cut - levels, 0)) + levels
        np.minimum(cut, data.n - bounds.size + 1 + levels, out=cut)
        if cut.tolist() == bounds[1:-1].tolist():
            break
        bounds[1:-1] = cut
    return bounds


def _nearest(values: np.ndarray, centroids: np.ndarray, dtype: type) -> np.ndarray:
    """Code of each value's nearest centroid (ties to the lower one). A value is nearer the right
    centroid of a pair iff it lies above their midpoint (float64: exact unless the pair spans
    over 2^29 in scale), i.e. iff it is at least the first float32 above that midpoint."""
    mid = (centroids[1:].astype(np.float64) + centroids[:-1]) * 0.5
    low = mid.astype(np.float32)
    above = np.where(low > mid, low, np.nextafter(low, np.float32(np.inf)))
    if above.size >= 32 or above.size * 300 >= values.size:  # where comparisons stop paying
        return np.searchsorted(above, values, side="right").astype(dtype)
    codes = np.zeros(values.shape, dtype=dtype)
    for threshold in above:
        codes += values >= threshold
    return codes
