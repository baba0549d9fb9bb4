"""Image scenarios: class-incremental splits of one dataset, and one task per dataset.

Images become float tensors (N, C, H, W), normalised per channel with the training split's own
mean and deviation; grey images get 3 channels where the backbone wants colour, 28×28 digits are
padded to 32×32 (as GPM's 5-datasets loader does) and other sizes resized. Class splits are built
by `class_tasks`, from tensors in memory or from images streamed from disk alike.

Each task records this recipe (`image_record`: size, channels, how images are brought there, the
float32 statistics used) in ``Task.preprocess``, so `tinysubnets.preprocess.apply` turns raw
images into the same tensors after training, from the model file alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from tinysubnets.data import ImageSet
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.scenarios.base import Scenario
from tinysubnets.tasks import Split, Task, take_rows, train_val_indices
from tinysubnets.tasks.split import Inputs, check_carve, check_not_empty


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


def channel_stats(train: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and deviation (1, C, 1, 1) of ``train``, as `normalise` uses them."""
    mean = train.mean(dim=(0, 2, 3), keepdim=True)
    std = train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return mean, std


def normalise(train: Tensor, *others: Tensor) -> list[Tensor]:
    """Standardise every tensor per channel with ``train``'s statistics."""
    mean, std = channel_stats(train)
    return [(t - mean) / std for t in (train, *others)]


def image_record(
    size: int, mean: Tensor, std: Tensor, dataset: str, resize: str = "pad-or-bilinear",
    **extra: object,
) -> dict[str, object]:
    """``Task.preprocess`` of an image task: what `to_tensor` (or, with ``resize``
    "shorter-side-center-crop", the ImageNet decoder) and `normalise` did, with the exact
    float32 statistics (exact as JSON numbers too: a float32 is a double)."""
    return {
        "kind": "image", "dataset": dataset, "size": size, "channels": int(mean.numel()),
        "layout": "NCHW", "scale": 255.0, "resize": resize,
        "grey_to_rgb": "repeat", "rgb_to_grey": "mean",
        "mean": [float(v) for v in mean.flatten().tolist()],
        "std": [float(v) for v in std.flatten().tolist()],
        **extra,
    }


def class_order(
    name: str, train_labels: np.ndarray, test_labels: np.ndarray, n_tasks: int,
    classes_per_task: int, seed: int, val_fraction: float | None = None,
) -> np.ndarray:
    """Every class of the dataset in a seeded order (task t takes the t-th group of
    ``classes_per_task``), checked before anything is decoded: neither split is empty, train
    and test hold the same classes, and there are enough of them for the tasks (and, given
    ``val_fraction``, enough training images in each for it: `check_task_sizes`)."""
    check_not_empty(name, {"train": len(train_labels), "test": len(test_labels)})
    classes = np.unique(train_labels)
    if not np.array_equal(classes, np.unique(test_labels)):
        raise DataError(f"{name}: train and test hold different classes")
    if n_tasks * classes_per_task > len(classes):
        raise ConfigError(
            f"{name} has {len(classes)} classes: {n_tasks} tasks of {classes_per_task} classes "
            f"need {n_tasks * classes_per_task}"
        )
    order = np.random.default_rng([seed, 0xC1A55]).permutation(classes)
    if val_fraction is not None:
        check_task_sizes(name, train_labels, test_labels, order, n_tasks, classes_per_task,
                         val_fraction)
    return order


def check_task_sizes(
    name: str, train_labels: np.ndarray, test_labels: np.ndarray, order: np.ndarray,
    n_tasks: int, classes_per_task: int, val_fraction: float,
) -> None:
    """Every task's split sizes, checked from the labels before any task is built (a task
    built lazily would otherwise fail mid-run): none empty, none too small for val_fraction."""
    size = int(order.max()) + 1
    per_class = [np.bincount(labels, minlength=size) for labels in (train_labels, test_labels)]
    for t in range(n_tasks):
        chosen = order[t * classes_per_task : (t + 1) * classes_per_task]
        n_train, n_test = (int(counts[chosen].sum()) for counts in per_class)
        check_not_empty(f"task {name}-{t}", {"train": n_train, "test": n_test})
        check_carve(n_train, val_fraction, f"task {name}-{t}")


def class_tasks(
    name: str, train: tuple[Inputs, np.ndarray], test: tuple[Inputs, np.ndarray],
    order: np.ndarray, n_tasks: int, classes_per_task: int, seed: int, val_fraction: float,
    source: str, preprocess: dict | None = None,
) -> Scenario:
    """``n_tasks`` tasks of the classes in ``order`` (see `class_order`), ``classes_per_task``
    each, from model-ready (inputs, labels) of the train and test images; labels within a task
    are 0..classes_per_task-1. Each task carves its validation split from its training images
    (seeded). ``preprocess`` is every task's record of how raw images became the inputs."""
    (x_train, train_labels), (x_test, test_labels) = train, test
    check_task_sizes(name, train_labels, test_labels, order, n_tasks, classes_per_task,
                     val_fraction)
    y_train, y_test = torch.from_numpy(train_labels), torch.from_numpy(test_labels)

    def maker(t: int):
        chosen = order[t * classes_per_task : (t + 1) * classes_per_task]
        remap = torch.full((int(order.max()) + 1,), -1, dtype=torch.int64)
        remap[torch.from_numpy(chosen)] = torch.arange(len(chosen))
        in_train = torch.from_numpy(np.isin(train_labels, chosen)).nonzero().view(-1)
        in_test = torch.from_numpy(np.isin(test_labels, chosen)).nonzero().view(-1)
        fit, val = train_val_indices(len(in_train), val_fraction, seed * 1_000 + t,
                                     f"task {name}-{t}")
        index = {"train": in_train[fit], "val": in_train[val]}

        def make_split(which: str) -> Split:
            if which == "test":
                return Split(take_rows(x_test, in_test), remap[y_test[in_test]])
            idx = index[which]
            return Split(take_rows(x_train, idx), remap[y_train[idx]])

        return make_split

    tasks = tuple(
        Task(f"{name}-{t}", tuple(int(c) for c in order[t * classes_per_task :
                                                          (t + 1) * classes_per_task]),
             maker(t), dict(preprocess or {}))
        for t in range(n_tasks)
    )
    return Scenario(name=name, tasks=tasks, input_shape=tuple(x_train.shape[1:]), source=source)


def class_split(
    name: str, train: ImageSet, test: ImageSet, n_tasks: int, classes_per_task: int,
    seed: int, val_fraction: float, source: str, size: int,
) -> Scenario:
    """`class_tasks` of a dataset held in memory, as size×size×3 images normalised with the
    training split's statistics."""
    order = class_order(name, train.labels, test.labels, n_tasks, classes_per_task, seed,
                        val_fraction)
    x_train, x_test = to_tensor(train, size), to_tensor(test, size)
    mean, std = channel_stats(x_train)
    x_train, x_test = ((x - mean) / std for x in (x_train, x_test))  # `normalise`, spelled out
    return class_tasks(name, (x_train, train.labels), (x_test, test.labels), order, n_tasks,
                       classes_per_task, seed, val_fraction, source,
                       image_record(size, mean, std, name))


def one_task_per_dataset(
    name: str, datasets: Sequence[tuple[str, ImageSet, ImageSet]], seed: int,
    val_fraction: float, source: str, size: int = 32,
) -> Scenario:
    """One task per (name, train, test) dataset, all as size×size×3, each normalised with its
    own training statistics; the task's classes are the dataset's."""
    carved = []  # every dataset's splits are checked before any is converted
    for t, (dataset, train, test) in enumerate(datasets):
        where = f"task {dataset} ({name} task {t})"
        check_not_empty(where, {"train": len(train), "test": len(test)})
        carved.append(train_val_indices(len(train), val_fraction, seed * 1_000 + t, where))
    tasks = []
    for (dataset, train, test), (fit, val) in zip(datasets, carved, strict=True):
        x_train, x_test = to_tensor(train, size), to_tensor(test, size)
        mean, std = channel_stats(x_train)
        x_train, x_test = ((x - mean) / std for x in (x_train, x_test))  # `normalise`
        y_train, y_test = torch.from_numpy(train.labels), torch.from_numpy(test.labels)
        parts = {
            "train": Split(x_train[fit], y_train[fit]),
            "val": Split(x_train[val], y_train[val]),
            "test": Split(x_test, y_test),
        }
        n_classes = int(max(train.labels.max(), test.labels.max())) + 1
        tasks.append(Task(dataset, tuple(range(n_classes)), parts.__getitem__,
                          image_record(size, mean, std, dataset)))
    return Scenario(name=name, tasks=tuple(tasks), input_shape=(3, size, size), source=source)
