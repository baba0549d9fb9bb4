"""Your own tasks from tensors (or numpy arrays), your own MLP, your own label values.

Builds three small synthetic tasks by default (Gaussian blobs in 20 dimensions: replace
`make_data` with your data), learns them in sequence with `tsn.run`, then loads the compressed
model file with `tsn.load` and prints each task's test accuracy from `predict`, which answers
in the task's own labels: strings for one task, the ints 10, 11, 12 for another.

    python examples/own_tensors.py --epochs 10 --out runs/own_tensors
"""

import argparse

import numpy as np
import torch
from torch import nn

import tinysubnets as tsn

LABELS = [["cat", "dog"], [10, 11, 12], ["low", "mid", "high"]]  # any values, per task


def make_mlp() -> nn.Module:
    """The backbone: inputs (N, 20) -> features (N, 64). Heads are added per task."""
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())


def make_data(labels: list, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` float32 inputs around one random centre per label, and their labels."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 1.5, (len(labels), 20))
    index = rng.integers(0, len(labels), n)
    return (centres[index] + rng.normal(size=(n, 20))).astype(np.float32), np.array(labels)[index]


def main(out: str = "runs/own_tensors", epochs: int = 10, n: int = 600, progress: bool = True):
    data = [make_data(labels, n, seed=t) for t, labels in enumerate(LABELS)]
    tasks = [tsn.Task.from_tensors(f"blobs{t}", x[: n // 2], y[: n // 2], x[n // 2 :], y[n // 2 :])
             for t, (x, y) in enumerate(data)]
    cfg = {"train": {"epochs": epochs, "batch_size": 64, "lr": 1e-3}, "seed": 0}
    result, learner = tsn.run(cfg, out, tasks=tasks, backbone=make_mlp(), progress=progress)
    model = tsn.load(f"{out}/model.tsn", backbone=make_mlp())  # a fresh instance of the module
    for t, (x, y) in enumerate(data):
        predicted = model.predict(torch.from_numpy(x[n // 2 :]), t)  # the user's labels
        print(f"task {t}: accuracy {np.mean(predicted == y[n // 2 :]):.1%}, e.g. {predicted[:4]}")
    print(f"ACC {result.acc:.2f}%  BWT {result.bwt:.2f}  model {result.model['file_bytes']} B")
    return result, learner, model, data


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/own_tensors", help="run folder (must be new)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n", type=int, default=600, help="samples per task (half for test)")
    args = parser.parse_args()
    main(args.out, args.epochs, args.n)
