"""ImageNet-100: 10 tasks of 10 classes from ImageFolder trees, streamed from disk.

130k images at 224 × 224 do not fit in memory as float32 (78 GB), so each tree is decoded once
into a uint8 memory map (`tinysubnets.data.memmap`) and read batch by batch
(`StreamedImages`); the tasks are built exactly like the other class splits (`class_tasks`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinysubnets.data.memmap import (
    TRANSFORM,
    channel_mean_std,
    decoded_folder,
    list_folder_pair,
    tree_labels,
)
from tinysubnets.scenarios.base import Scenario
from tinysubnets.scenarios.sources import find_folder_pair
from tinysubnets.scenarios.vision import class_order, class_tasks, image_record
from tinysubnets.tasks.streaming import StreamedImages

CLASSES_PER_TASK = 10


def streamed_class_split(
    name: str, data_dir: str | None, n_tasks: int, seed: int, val_fraction: float, size: int,
    cache_dir: Path | None = None,
) -> Scenario:
    """``n_tasks`` tasks of ``CLASSES_PER_TASK`` classes from the ImageFolder trees of dataset
    ``name`` under ``data_dir``, decoded at ``size`` (once; later builds map the cache)."""
    root, test_folder = find_folder_pair(name, data_dir)
    train_tree, test_tree = list_folder_pair(root, "train", test_folder)
    # Classes are checked (and ordered) from the listing, before hours of decoding.
    train_labels, test_labels = tree_labels(train_tree), tree_labels(test_tree)
    order = class_order(name, train_labels, test_labels, n_tasks, CLASSES_PER_TASK, seed,
                        val_fraction)
    train = decoded_folder(root / "train", train_tree, size, cache_dir)
    test = decoded_folder(root / test_folder, test_tree, size, cache_dir)
    mean, std = (torch.from_numpy(v) for v in channel_mean_std(train))
    inputs = [StreamedImages(d.images, mean, std) for d in (train, test)]
    source = (
        f"{name} ImageFolder trees in {root.resolve()} ({test_folder}/ as the test set), "
        f"decoded at {size}x{size} into {train.path.parent} (uint8, memory-mapped)"
    )
    record = image_record(
        size, inputs[0].mean, inputs[0].std, name, resize="shorter-side-center-crop",
        shorter_side=round(size * 256 / 224), crop=size, transform=TRANSFORM,
    )
    return class_tasks(name, (inputs[0], train.labels), (inputs[1], test.labels), order,
                       n_tasks, CLASSES_PER_TASK, seed, val_fraction, source, record)
