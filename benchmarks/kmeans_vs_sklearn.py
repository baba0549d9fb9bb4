"""Our 1-D k-means (tinysubnets.compression.kmeans) against scikit-learn's KMeans, same data,
same run: time (best of --repeats) and squared error per size and bit-width.

    python benchmarks/kmeans_vs_sklearn.py --threads 2

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


def weight_like(n: int, seed: int) -> np.ndarray:
    """Trained-weight-like values: heavy-tailed around zero, a little skewed, rare outliers."""
    rng = np.random.default_rng(seed)
    half = n // 2
    values = np.concatenate((rng.laplace(0.0, 0.02, half), rng.normal(0.003, 0.05, n - half)))
    outliers = rng.choice(n, max(1, n // 2000), replace=False)
    values[outliers] *= 4.0
    return rng.permutation(values).astype(np.float32)


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


def compare(
    cases: list[tuple[np.ndarray, int]], repeats: int = 3, sk_repeats: int = 1,
    n_init: int | str = 1,
) -> dict[str, float]:
    """Time and SSE of ours against sklearn on each (values, bits) case; ratios summarised.

    Used by the p-MNIST benchmark on the very blocks its run quantized.
    """
    speedups, ratios, ours_total, sk_total = [], [], 0.0, 0.0
    for values, bits in cases:
        ours_s, (codebook, codes) = best_time(repeats, kmeans_1d, values, bits)
        sk_s, centroids = best_time(sk_repeats, fit_sklearn, values, bits, n_init)
        speedups.append(sk_s / ours_s)
        ratios.append(squared_error(values, codebook, codes) / max(
            nearest_sse(values, centroids, bits), 1e-30))
        ours_total, sk_total = ours_total + ours_s, sk_total + sk_s
    return {
        "cases": len(cases),
        "ours_total_s": ours_total,
        "sklearn_total_s": sk_total,
        "speedup_total": sk_total / ours_total,
        "speedup_geomean": math.exp(sum(map(math.log, speedups)) / len(speedups)),
        "speedup_min": min(speedups),
        "sse_ratio_geomean": math.exp(sum(map(math.log, ratios)) / len(ratios)),
        "sse_ratio_worst": max(ratios),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads for both")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case (ours)")
    parser.add_argument("--sk-repeats", type=int, default=3, help="timed runs per case (sklearn)")
    parser.add_argument("--n-init", default="1", help="sklearn n_init: 1, 10 or 'auto'")
    args = parser.parse_args()
    n_init: int | str = args.n_init if args.n_init == "auto" else int(args.n_init)

    header = f"{'size':>6} {'bits':>4} {'ours ms':>9} {'sklearn ms':>10} {'speed-up':>8}"
    header += f" {'our SSE':>11} {'sklearn SSE':>11} {'SSE ratio':>9}"
    print(
        f"threads={args.threads}, sklearn n_init={n_init}, best of {args.repeats}/{args.sk_repeats}"
    )
    print(header)
    speedups, ratios = [], []
    with threadpool_limits(limits=args.threads):
        kmeans_1d(weight_like(100, 0), 2)  # warm-up: imports, first-call costs
        KMeans(n_clusters=2, n_init=1, random_state=0).fit(
            np.zeros((10, 1)) + np.arange(10)[:, None]
        )
        for size in SIZES:
            values = weight_like(size, seed=size)
            for bits in BITS:
                ours_s, (codebook, codes) = best_time(args.repeats, kmeans_1d, values, bits)
                ours_sse = squared_error(values, codebook, codes)
                sk_s, centroids = best_time(args.sk_repeats, fit_sklearn, values, bits, n_init)
                sk_sse = nearest_sse(values, centroids, bits)
                speedups.append(sk_s / ours_s)
                ratios.append(ours_sse / sk_sse)
                print(
                    f"{size:>6} {bits:>4} {ours_s * 1e3:>9.2f} {sk_s * 1e3:>10.1f}"
                    f" {sk_s / ours_s:>7.0f}x {ours_sse:>11.4g} {sk_sse:>11.4g}"
                    f" {ours_sse / sk_sse:>9.4f}"
                )
    geo = math.exp(sum(map(math.log, speedups)) / len(speedups))
    geo_ratio = math.exp(sum(map(math.log, ratios)) / len(ratios))
    print(
        f"geometric-mean speed-up {geo:.0f}x (min {min(speedups):.0f}x); "
        f"SSE ratio ours/sklearn: geometric mean {geo_ratio:.4f}, worst {max(ratios):.4f}"
    )


if __name__ == "__main__":
    main()
