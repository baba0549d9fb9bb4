"""Our 1-D k-means (tinysubnets.compression.kmeans) against scikit-learn's KMeans, same data,
same run: time (best of --repeats) and squared error per size and bit-width.

    python benchmarks/kmeans_vs_sklearn.py --threads 2
    python benchmarks/kmeans_vs_sklearn.py --threads 1 --run-like

The default mode times large layers (1,000-80,000 values); ``--run-like`` times blocks like
the ones a p-MNIST run quantizes (500-6,000 layer-like values and ~1,000-value heads, each at
every bit-width 2..8 the search may try, 3 seeds) and prints the summary per bit-width. Use
``OMP_NUM_THREADS=1 --threads 1`` on a shared machine: one core each, timed back to back.

The data imitates a layer's trained weights: half Laplace, half Gaussian, a few outliers
(fixed seeds). sklearn runs ``KMeans(n_clusters=2**bits, n_init=1, random_state=0)``: one
k-means++ start, as cheap as sklearn gets; ``--n-init auto`` is the same for k-means++ in
sklearn >= 1.4, ``--n-init 10`` buys it a better error at 10x the time. Both SSEs are measured
the same way: every value coded to its nearest centroid. scikit-learn is needed here only.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

from tinysubnets.compression.kmeans import Codebook, kmeans_1d, squared_error

T = TypeVar("T")
SIZES = (1_000, 10_000, 40_000, 80_000)
BITS = (2, 3, 4, 6, 8)
RUN_SIZES = (500, 1_000, 2_000, 4_000, 6_000)
RUN_BITS = (2, 3, 4, 5, 6, 7, 8)


def weight_like(n: int, seed: int) -> np.ndarray:
    """Trained-weight-like values: heavy-tailed around zero, a little skewed, rare outliers."""
    rng = np.random.default_rng(seed)
    half = n // 2
    values = np.concatenate((rng.laplace(0.0, 0.02, half), rng.normal(0.003, 0.05, n - half)))
    outliers = rng.choice(n, max(1, n // 2000), replace=False)
    values[outliers] *= 4.0
    return rng.permutation(values).astype(np.float32)


def head_like(seed: int, classes: int = 10, hidden: int = 100) -> np.ndarray:
    """A classifier head's values, weight then bias: rows of different scales (one per class),
    then a few biases on a scale of their own, as `head_values` lays them out."""
    rng = np.random.default_rng(seed)
    scale = 0.05 * np.exp(rng.normal(0.0, 0.4, (classes, 1)))
    weight = rng.normal(0.0, 1.0, (classes, hidden)) * scale
    weight[rng.random((classes, hidden)) < 0.1] *= 3.0  # a heavier tail than a Gaussian
    bias = rng.normal(0.0, 0.1, classes)
    return np.concatenate((weight.ravel(), bias)).astype(np.float32)


def run_like_cases(seeds: int = 3) -> list[tuple[np.ndarray, int]]:
    """Blocks like a p-MNIST run's: layer-like values of each size and head-like values, each
    at every bit-width the quantization search tries."""
    blocks = [weight_like(n, seed=n + s) for n in RUN_SIZES for s in range(seeds)]
    blocks += [head_like(seed=s) for s in range(seeds)]
    return [(values, bits) for values in blocks for bits in RUN_BITS]


def best_time(repeats: int, fn: Callable[..., T], *args: object) -> tuple[float, T]:
    """Best wall time of ``repeats`` calls (the least disturbed by the rest of the machine)."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, out


def fit_sklearn(values: np.ndarray, bits: int, n_init: int | str) -> np.ndarray:
    """sklearn's centroids for ``values`` (the timed part: the fit only)."""
    model = KMeans(n_clusters=2**bits, n_init=n_init, random_state=0)
    return model.fit(values.reshape(-1, 1)).cluster_centers_.ravel()


def nearest_sse(values: np.ndarray, centroids: np.ndarray, bits: int) -> float:
    """SSE with every value coded to its nearest (float32) centroid, as our codes are."""
    centroids = np.unique(centroids.astype(np.float32))
    middle = (centroids[1:].astype(np.float64) + centroids[:-1]) / 2
    codes = np.searchsorted(middle, values)
    return squared_error(values, Codebook(centroids, bits), codes)


def time_cases(
    cases: list[tuple[np.ndarray, int]], repeats: int = 3, sk_repeats: int = 1,
    n_init: int | str = 1,
) -> list[tuple[float, float, float]]:
    """(our seconds, sklearn's seconds, our SSE / sklearn's) for each (values, bits) case,
    both timed back to back, so a busy moment of the machine hits both."""
    rows = []
    for values, bits in cases:
        ours_s, (codebook, codes) = best_time(repeats, kmeans_1d, values, bits)
        sk_s, centroids = best_time(sk_repeats, fit_sklearn, values, bits, n_init)
        ratio = squared_error(values, codebook, codes) / max(
            nearest_sse(values, centroids, bits), 1e-30)
        rows.append((ours_s, sk_s, ratio))
    return rows


def summarise(rows: list[tuple[float, float, float]]) -> dict[str, float]:
    """Total and geometric-mean speed-up, the worst case, and the SSE ratios (ours / sklearn)."""
    speedups = [sk_s / ours_s for ours_s, sk_s, _ in rows]
    ratios = [ratio for _, _, ratio in rows]
    ours_total, sk_total = sum(row[0] for row in rows), sum(row[1] for row in rows)
    return {
        "cases": len(rows),
        "ours_total_s": ours_total,
        "sklearn_total_s": sk_total,
        "speedup_total": sk_total / ours_total,
        "speedup_geomean": math.exp(sum(map(math.log, speedups)) / len(speedups)),
        "speedup_min": min(speedups),
        "sse_ratio_geomean": math.exp(sum(map(math.log, ratios)) / len(ratios)),
        "sse_ratio_worst": max(ratios),
    }


def compare(
    cases: list[tuple[np.ndarray, int]], repeats: int = 3, sk_repeats: int = 1,
    n_init: int | str = 1,
) -> dict[str, float]:
    """Time and SSE of ours against sklearn on each (values, bits) case; ratios summarised.

    Used by the p-MNIST benchmark on the very blocks its run quantized.
    """
    return summarise(time_cases(cases, repeats, sk_repeats, n_init))


def warm_up() -> None:
    """First-call costs (imports, caches) out of the timings, for both."""
    kmeans_1d(weight_like(100, 0), 2)
    KMeans(n_clusters=2, n_init=1, random_state=0).fit(np.arange(10.0)[:, None])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for both")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (ours)")
    parser.add_argument("--sk-repeats", type=int, default=3, help="timed runs per case (sklearn)")
    parser.add_argument("--n-init", default="1", help="sklearn n_init: 1, 10 or 'auto'")
    parser.add_argument("--run-like", action="store_true",
                        help="time blocks like a p-MNIST run's instead of large layers")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per size (--run-like)")
    args = parser.parse_args()
    n_init: int | str = args.n_init if args.n_init == "auto" else int(args.n_init)
    if args.run_like:
        cases = run_like_cases(args.seeds)
        with threadpool_limits(limits=args.threads):
            warm_up()
            rows = time_cases(cases, args.repeats, args.sk_repeats, n_init)
        print(f"threads={args.threads}, sklearn n_init={n_init}, "
              f"best of {args.repeats}/{args.sk_repeats}, run-like blocks")
        print(f"{'bits':>5} {'cases':>5} {'speed-up: total':>15} {'geomean':>7} {'worst':>6}"
              f" {'SSE ratio worst':>15}")
        for bits in (*RUN_BITS, None):  # None: all cases
            part = summarise([
                row for row, (_, b) in zip(rows, cases, strict=True) if bits is None or b == bits
            ])
            print(f"{bits or 'all':>5} {part['cases']:>5} {part['speedup_total']:>14.1f}x"
                  f" {part['speedup_geomean']:>6.1f}x {part['speedup_min']:>5.1f}x"
                  f" {part['sse_ratio_worst']:>15.9f}")
        return

    header = f"{'size':>6} {'bits':>4} {'ours ms':>9} {'sklearn ms':>10} {'speed-up':>8}"
    header += f" {'our SSE':>11} {'sklearn SSE':>11} {'SSE ratio':>9}"
    print(
        f"threads={args.threads}, sklearn n_init={n_init}, best of {args.repeats}/{args.sk_repeats}"
    )
    print(header)
    speedups, ratios, ours_total, sk_total = [], [], 0.0, 0.0
    with threadpool_limits(limits=args.threads):
        warm_up()
        for size in SIZES:
            values = weight_like(size, seed=size)
            for bits in BITS:
                ours_s, (codebook, codes) = best_time(args.repeats, kmeans_1d, values, bits)
                ours_sse = squared_error(values, codebook, codes)
                sk_s, centroids = best_time(args.sk_repeats, fit_sklearn, values, bits, n_init)
                sk_sse = nearest_sse(values, centroids, bits)
                speedups.append(sk_s / ours_s)
                ratios.append(ours_sse / sk_sse)
                ours_total, sk_total = ours_total + ours_s, sk_total + sk_s
                print(
                    f"{size:>6} {bits:>4} {ours_s * 1e3:>9.2f} {sk_s * 1e3:>10.1f}"
                    f" {sk_s / ours_s:>7.0f}x {ours_sse:>11.4g} {sk_sse:>11.4g}"
                    f" {ours_sse / sk_sse:>9.4f}"
                )
    geo = math.exp(sum(map(math.log, speedups)) / len(speedups))
    geo_ratio = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(
        f"speed-up {sk_total / ours_total:.0f}x in total, geometric mean {geo:.0f}x"
        f" (min {min(speedups):.0f}x); SSE ratio ours/sklearn: geometric mean"
        f" {geo_ratio:.4f}, worst {max(ratios):.4f}"
    )


if __name__ == "__main__":
    main()
