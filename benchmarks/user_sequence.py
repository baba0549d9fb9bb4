"""A task sequence tinysubnets does not ship, on a network it does not ship, through the public
API only: split Fashion-MNIST (5 tasks x 2 classes, labels are the class names) on a user's CNN
with biases and BatchNorm. Prints ACC, BWT, capacity and file bytes, then loads the file in a
fresh process with a fresh module and checks it gives exactly the trained model's labels.

    python benchmarks/user_sequence.py --data-dir ../shared/data/fashion-mnist
"""

from __future__ import annotations

import argparse
import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

import tinysubnets as tsn

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot")


class UserCNN(nn.Module):
    """conv-BN-ReLU-pool twice, then a Linear with a bias: 28x28 -> 128 features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.conv2, self.bn2 = nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.fc = nn.Linear(32 * 7 * 7, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.max_pool2d(torch.relu(self.bn1(self.conv1(x))), 2)
        x = nn.functional.max_pool2d(torch.relu(self.bn2(self.conv2(x))), 2)
        return torch.relu(self.fc(x.flatten(1)))


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (what Fashion-MNIST ships as), as a numpy array."""
    data = gzip.decompress(path.read_bytes())
    dims = data[3]
    shape = np.frombuffer(data, ">u4", dims, 4).astype(int)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def split_fashion(data_dir: Path, n_tasks: int) -> list[tsn.Task]:
    """Task t holds classes 2t and 2t+1, labelled by name; pixels scaled to [0, 1]."""
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x = read_idx(data_dir / f"{prefix}-images-idx3-ubyte.gz")
        y = read_idx(data_dir / f"{prefix}-labels-idx1-ubyte.gz")
        parts[split] = (torch.from_numpy(x.astype(np.float32) / 255.0).unsqueeze(1), y)
    tasks = []
    for t in range(n_tasks):
        chosen = {split: np.isin(y, (2 * t, 2 * t + 1)) for split, (_, y) in parts.items()}
        (xtr, ytr), (xte, yte) = ((x[chosen[s]], [CLASSES[c] for c in y[chosen[s]]])
                                  for s, (x, y) in parts.items())
        tasks.append(tsn.Task.from_tensors(f"fashion-{t}", xtr, ytr, xte, yte))
    return tasks


FRESH = """
import sys, json, torch, numpy as np, tinysubnets as tsn
sys.path.insert(0, {bench!r})
from user_sequence import UserCNN
expected = torch.load({expected!r})
model = tsn.load({model!r}, backbone=UserCNN())
same = [bool(np.array_equal(model.predict(x, t), np.asarray(labels)))
        for t, (x, labels) in enumerate(zip(expected["x"], expected["labels"]))]
print(json.dumps(same))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data/fashion-mnist"))
    parser.add_argument("--out", type=Path, default=Path("runs/user-fashion"))
    parser.add_argument("--tasks", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tasks = split_fashion(args.data_dir, args.tasks)
    cfg = {"seed": args.seed, "train": {"epochs": args.epochs, "batch_size": 64, "lr": 1e-3}}
    start = time.perf_counter()
    result, learner = tsn.run(cfg, args.out, tasks=tasks, backbone=UserCNN(),
                              resume=(args.out / "checkpoint.pt").exists())
    elapsed = time.perf_counter() - start
    xs = [task.split("test").x for task in tasks]
    torch.save({"x": xs, "labels": [learner.predict(x, t).tolist() for t, x in enumerate(xs)]},
               args.out / "expected_labels.pt")
    code = FRESH.format(bench=str(Path(__file__).resolve().parent),
                        expected=str(args.out / "expected_labels.pt"),
                        model=str(args.out / "model.tsn"))
    fresh = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    model = result.model
    print(json.dumps({
        "tasks": [t.name for t in tasks], "R": result.R, "acc": result.acc, "bwt": result.bwt,
        "capacity_pct": model["total_pct"], "parts_pct": model["parts_pct"],
        "file_bytes": model["file_bytes"], "dense_fp32_bytes": model["dense_fp32_bytes"],
        "time_s": elapsed, "threads": args.threads,
        "fresh_process_same_labels": json.loads(fresh.stdout),
    }, indent=2))


if __name__ == "__main__":
    main()
