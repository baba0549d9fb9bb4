"""Full permuted-MNIST benchmark: TSN with its defaults, and in the same run the same backbone
trained densely, to report the masked/dense time per epoch.

    make bench            # = python benchmarks/pmnist.py --data-dir ../shared/data/mnist

Prints ACC, BWT, FWT, capacity, time per task and the epoch-time ratio; writes the run folder
(results.json etc.) to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from tinysubnets import RunConfig, run
from tinysubnets.compression import quantize as quantize_module
from tinysubnets.learner.trainer import make_optimizer
from tinysubnets.metrics import claimed
from tinysubnets.scenarios import build_scenario, iterate_batches
from tinysubnets.summary import print_summary


class DenseMLP(nn.Module):
    """The same 784-100-100 backbone and a head, without masks or scores."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 100, bias=False)
        self.fc2 = nn.Linear(100, 100, bias=False)
        self.head = nn.Linear(100, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(F.relu(self.fc2(F.relu(self.fc1(x)))))


def dense_epoch_times(cfg: RunConfig, epochs: int) -> list[float]:
    """Seconds per training epoch (no evaluation) of the dense backbone on task 0's data,
    with the same optimizer, learning rate and batch size as TSN."""
    task = build_scenario(cfg).tasks[0]
    train = task.split("train")
    torch.manual_seed(cfg.seed)
    model = DenseMLP()
    optimizer = make_optimizer(list(model.parameters()), cfg.train)
    generator = torch.Generator().manual_seed(cfg.seed)
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        for x, y in iterate_batches(train, cfg.train.batch_size, generator):
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        times.append(time.perf_counter() - start)
    return times


@contextmanager
def recording_kmeans() -> Iterator[list[tuple[np.ndarray, int]]]:
    """Record the (values, bits) of every k-means call the quantization search makes."""
    calls: list[tuple[np.ndarray, int]] = []
    original = quantize_module.kmeans_1d

    def recording(values: np.ndarray, bits: int, *args: object) -> object:
        calls.append((np.array(values, copy=True), bits))
        return original(values, bits, *args)

    quantize_module.kmeans_1d = recording
    try:
        yield calls
    finally:
        quantize_module.kmeans_1d = original


def overrides(items: list[str]) -> dict:
    """KEY=VALUE flags as settings (values read as YAML, so 0.3, true and {fc1: 0} work)."""
    return {k.partition("=")[0]: yaml.safe_load(k.partition("=")[2]) for k in items}


def given(settings: dict) -> dict:
    """The settings a flag set (None: keep the preset's)."""
    return {k: v for k, v in settings.items() if v is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/mnist"))
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dense-epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs/bench-pmnist"))
    parser.add_argument("--train", action="append", default=[], metavar="KEY=VALUE",
                        help="override a training setting of the preset, e.g. epochs=10")
    parser.add_argument("--post-prune", action=argparse.BooleanOptionalAction, default=True,
                        help="prune (and retrain) after each task (default: on)")
    parser.add_argument("--prune-threshold", type=float, help="default: the preset's")
    parser.add_argument("--quantize", action=argparse.BooleanOptionalAction, default=True,
                        help="quantize after each task (default: on)")
    parser.add_argument("--quantize-threshold", type=float, help="default: the preset's")
    parser.add_argument("--prune", action="append", default=[], metavar="KEY=VALUE",
                        help="override a post-pruning setting, e.g. retrain_epochs=4")
    parser.add_argument("--q", action="append", default=[], metavar="KEY=VALUE",
                        help="override a quantization setting, e.g. finetune_epochs=4")
    parser.add_argument("--no-sklearn", action="store_true",
                        help="skip timing scikit-learn's k-means on the quantized blocks")
    args = parser.parse_args()
    train, prune, quantize = (overrides(items) for items in (args.train, args.prune, args.q))
    torch.set_num_threads(args.threads)
    cfg = RunConfig.for_scenario(
        "pmnist", tasks=args.tasks, seed=args.seed, data_dir=str(args.data_dir),
        threads=args.threads, train=train,
        prune=given({"enabled": args.post_prune, "threshold": args.prune_threshold, **prune}),
        quantize=given({"enabled": args.quantize, "threshold": args.quantize_threshold,
                        **quantize}),
    )
    # Dense epochs before and after the TSN run, so both see the same machine state.
    dense = dense_epoch_times(cfg, args.dense_epochs)
    with recording_kmeans() as kmeans_calls:
        result, learner = run(cfg, out=args.out, resume=(args.out / "checkpoint.pt").exists())
    dense += dense_epoch_times(cfg, args.dense_epochs)
    results = result.to_json(claimed(learner.net))
    print_summary(results)
    masked = [t for task in result.tasks for t in task["outcome"]["epoch_train_s"]]
    ratio = statistics.median(masked) / statistics.median(dense)
    summary = {
        "acc": results["acc"],
        "bwt": results["bwt"],
        "fwt": results["fwt"],
        "claimed_pct": results["claimed"]["used_pct"],
        "claimed_per_layer_pct": {
            name: layer["used_pct"] for name, layer in results["claimed"]["layers"].items()
        },
        "time_total_s": results["time_total_s"],
        "time_per_task_s": [round(t["time_s"], 1) for t in result.tasks],
        "bits_per_task": [(t["quantize"] or {}).get("bits") for t in result.tasks],
        "model_file_bytes": result.model["file_bytes"],
        "model_capacity_pct": result.model["total_pct"],
        "model_parts_pct": result.model["parts_pct"],
        "masked_epoch_s_median": statistics.median(masked),
        "dense_epoch_s_median": statistics.median(dense),
        "masked_over_dense": ratio,
        "threads": args.threads,
        "torch": torch.__version__,
    }
    if kmeans_calls and not args.no_sklearn:
        # The very blocks this run quantized (every bit-width the search tried), same run.
        from kmeans_vs_sklearn import compare
        from threadpoolctl import threadpool_limits

        # At the run's threads (sklearn's k-means uses them; ours is one numpy thread), and on
        # one core each, where the two algorithms meet on equal terms.
        with threadpool_limits(limits=args.threads):
            summary["kmeans_vs_sklearn"] = compare(kmeans_calls)
        if args.threads != 1:
            with threadpool_limits(limits=1):
                summary["kmeans_vs_sklearn_1_thread"] = compare(kmeans_calls)
    print(json.dumps(summary, indent=2))
    (args.out / "benchmark.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
