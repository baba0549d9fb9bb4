"""Permuted MNIST: every task is MNIST with its own fixed, seeded pixel permutation."""

from __future__ import annotations

import numpy as np
import torch

from tinysubnets.data import ImageSet
from tinysubnets.scenarios.base import LazyTasks, Scenario
from tinysubnets.tasks import Split, Task, train_val_indices
from tinysubnets.tasks.split import check_not_empty

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def permutation_seed(seed: int) -> tuple[int, int]:
    """The numpy seed whose successive ``permutation(pixels)`` draws are the tasks' P_t."""
    return (seed, 0x9E37)


class Permutations:
    """P_0, P_1, ...: P_t is the (t+1)-th successive ``permutation(pixels)`` of one generator
    seeded by `permutation_seed` (what the model file records), drawn when first asked for and
    kept (compactly), so asking for P_t costs t earlier draws once, never one per planned task.
    """

    def __init__(self, seed: int, pixels: int) -> None:
        self._rng = np.random.default_rng(permutation_seed(seed))
        self._pixels = pixels
        self._dtype = np.int16 if pixels <= 2**15 else np.int64
        self._drawn: list[np.ndarray] = []

    def __getitem__(self, t: int) -> torch.Tensor:
        while len(self._drawn) <= t:
            self._drawn.append(self._rng.permutation(self._pixels).astype(self._dtype))
        return torch.from_numpy(self._drawn[t].astype(np.int64))


def _normalise(images: ImageSet) -> torch.Tensor:
    x = torch.from_numpy(images.images.reshape(len(images), -1).astype(np.float32))
    return (x / 255.0 - MNIST_MEAN) / MNIST_STD


def permuted_mnist(
    train: ImageSet, test: ImageSet, n_tasks: int, seed: int, val_fraction: float, source: str
) -> Scenario:
    """T tasks over the same images; task t's pixels are shuffled by permutation P_t.

    The validation split is carved from train once (seeded) and shared by all tasks, so every
    task is scored on the same images, only permuted. Tasks are built when first reached.
    """
    check_not_empty("pmnist (MNIST)", {"train": len(train), "test": len(test)})
    fit_idx, val_idx = train_val_indices(len(train), val_fraction, seed, "pmnist (MNIST)")
    x_train, y_train = _normalise(train), torch.from_numpy(train.labels.astype(np.int64))
    x_test, y_test = _normalise(test), torch.from_numpy(test.labels.astype(np.int64))
    parts = {
        "train": (x_train[fit_idx], y_train[fit_idx]),
        "val": (x_train[val_idx], y_train[val_idx]),
        "test": (x_test, y_test),
    }
    n_pixels = x_train.shape[1]
    perms = Permutations(seed, n_pixels)

    def maker(perm: torch.Tensor):
        def make_split(which: str) -> Split:
            x, y = parts[which]
            return Split(x[:, perm].contiguous(), y)

        return make_split

    def task(t: int) -> Task:
        return Task(f"pmnist-{t}", tuple(range(10)), maker(perms[t]), preprocess={
            "kind": "pmnist", "mean": MNIST_MEAN, "std": MNIST_STD, "scale": 255.0,
            "permutation": {"numpy_seed": list(permutation_seed(seed)), "draw": t,
                            "pixels": n_pixels},
        })

    return Scenario(name="pmnist", tasks=LazyTasks(n_tasks, task), input_shape=(n_pixels,),
                    source=source)
