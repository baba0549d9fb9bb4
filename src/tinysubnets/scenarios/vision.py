"""Image scenarios: class-incremental splits of one dataset, and one task per dataset.

Images become float tensors (N, C, H, W), normalised per channel with the training split's own
mean and deviation; grey images get 3 channels where the backbone wants colour, 28×28 digits are
padded to 32×32 (as GPM's 5-datasets loader does) and other sizes resized.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tinysubnets.data import ImageSet
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.scenarios.base import Scenario, Split, Task, train_val_indices


def to_tensor(images: ImageSet, size: int, channels: int = 3) -> Tensor:
    """uint8 (N, H, W[, C]) → float32 (N, channels, size, size) in [0, 1]."""
    x = torch.from_numpy(images.images)
    x = x.unsqueeze(-1) if x.dim() == 3 else x
    x = x.permute(0, 3, 1, 2).float().div_(255.0)
    if x.shape[1] == 1 and channels == 3:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] == 3 and channels == 1:
        x = x.mean(1, keepdim=True)
    elif x.shape[1] != channels:
        raise DataError(f"images with {x.shape[1]} channels cannot become {channels}-channel")
    h, w = x.shape[2:]
    if (h, w) != (size, size):
        if h == w and size - h in (2, 4):  # 28 -> 32: pad, as the field does for digits
            pad = (size - h) // 2
            x = F.pad(x, (pad, size - h - pad, pad, size - h - pad))
        else:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                              align_corners=False)
    return x.contiguous()


def normalise(train: Tensor, *others: Tensor) -> list[Tensor]:
    """Standardise every tensor per channel with ``train``'s statistics."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return [(t - mean) / std for t in (train, *others)]


def class_split(
    name: str, train: ImageSet, test: ImageSet, n_tasks: int, classes_per_task: int,
    seed: int, val_fraction: float, source: str, size: int,
) -> Scenario:
    """``n_tasks`` tasks of ``classes_per_task`` classes each, in a seeded class order; labels
    within a task are 0..classes_per_task-1. Each task carves its validation split from its
    training images (seeded)."""
    classes = np.unique(train.labels)
    if not np.array_equal(classes, np.unique(test.labels)):
        raise DataError(f"{name}: train and test hold different classes")
    if n_tasks * classes_per_task > len(classes):
        raise ConfigError(
            f"{name} has {len(classes)} classes: {n_tasks} tasks of {classes_per_task} classes "
            f"need {n_tasks * classes_per_task}"
        )
    order = np.random.default_rng([seed, 0xC1A55]).permutation(classes)
    x_train, x_test = normalise(to_tensor(train, size), to_tensor(test, size))
    y_train, y_test = torch.from_numpy(train.labels), torch.from_numpy(test.labels)

    def maker(t: int):
        chosen = order[t * classes_per_task : (t + 1) * classes_per_task]
        remap = torch.full((int(classes.max()) + 1,), -1, dtype=torch.int64)
        remap[torch.from_numpy(chosen)] = torch.arange(len(chosen))
        in_train = torch.from_numpy(np.isin(train.labels, chosen)).nonzero().view(-1)
        in_test = torch.from_numpy(np.isin(test.labels, chosen)).nonzero().view(-1)
        fit, val = train_val_indices(len(in_train), val_fraction, seed * 1_000 + t)
        index = {"train": in_train[fit], "val": in_train[val]}

        def make_split(which: str) -> Split:
            if which == "test":
                return Split(x_test[in_test], remap[y_test[in_test]])
            idx = index[which]
            return Split(x_train[idx], remap[y_train[idx]])

        return make_split

    tasks = tuple(
        Task(task_id=t, name=f"{name}-{t}", n_classes=classes_per_task, make_split=maker(t))
        for t in range(n_tasks)
    )
    return Scenario(name=name, tasks=tasks, input_shape=(3, size, size), source=source)


def one_task_per_dataset(
    name: str, datasets: Sequence[tuple[str, ImageSet, ImageSet]], seed: int,
    val_fraction: float, source: str, size: int = 32,
) -> Scenario:
    """One task per (name, train, test) dataset, all as size×size×3, each normalised with its
    own training statistics; the task's classes are the dataset's."""
    tasks = []
    for t, (dataset, train, test) in enumerate(datasets):
        x_train, x_test = normalise(to_tensor(train, size), to_tensor(test, size))
        y_train, y_test = torch.from_numpy(train.labels), torch.from_numpy(test.labels)
        fit, val = train_val_indices(len(train), val_fraction, seed * 1_000 + t)
        parts = {
            "train": Split(x_train[fit], y_train[fit]),
            "val": Split(x_train[val], y_train[val]),
            "test": Split(x_test, y_test),
        }
        n_classes = int(max(train.labels.max(), test.labels.max())) + 1
        tasks.append(Task(task_id=t, name=dataset, n_classes=n_classes,
                          make_split=parts.__getitem__))
    return Scenario(name=name, tasks=tuple(tasks), input_shape=(3, size, size), source=source)
