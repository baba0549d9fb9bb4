"""A task: a name, its classes (the user's own label values) and train / val / test splits.

The network sees class indices 0..k-1; ``labels[i]`` is the user's label of index i. Labels may
be any ints (not necessarily from 0), strings, floats or bools; they are sorted, so the same
labels give the same indices in every process, and the model file stores them, so predictions
come back as the user's labels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from tinysubnets.errors import ConfigError, DataError, shown
from tinysubnets.tasks.split import (
    DatasetInputs,
    Split,
    Transform,
    as_input,
    check_finite,
    check_not_empty,
    train_val_indices,
)

Label = int | str | float | bool
LABEL_TYPES = (bool, int, float, str)  # what a label may be: JSON values, for the model file
SPLITS = ("train", "val", "test")


def _plain(label: Any, where: str) -> Label:
    """A label as a plain JSON-able Python value (numpy and 0-d tensor scalars unwrapped)."""
    if isinstance(label, Tensor | np.generic | np.ndarray) and np.ndim(label) == 0:
        label = label.item()
    if isinstance(label, float) and not math.isfinite(label):  # NaN != NaN: no class index
        raise DataError(f"{where}: label {label!r} is not a finite number")
    if isinstance(label, LABEL_TYPES):
        return label
    raise DataError(f"{where}: label {label!r} of type {type(label).__name__} is not an int, "
                    "str, float or bool")


def _sort_key(label: Label) -> tuple[str, Any]:
    return (type(label).__name__, label)


def label_list(values: Any, where: str) -> list[Label]:
    """A sequence of labels (tensor, array or list) as plain Python values."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise DataError(f"{where}: labels must be one per input, got shape "
                            f"{list(values.shape)}")
        values = values.tolist()
    if values is None or isinstance(values, str | bytes) or not hasattr(values, "__iter__"):
        raise DataError(f"{where}: labels must be a sequence (list, array or tensor), got "
                        f"{type(values).__name__}")
    return [_plain(v, where) for v in values]


def _task_name(name: object) -> str:
    """A task's name, checked: a non-empty string (results, reports and the file name it)."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"a task's name must be a non-empty string, got {shown(name)}")
    return name


def class_indices(labels: Sequence[Label], classes: Sequence[Label], where: str) -> Tensor:
    """Each label's index in ``classes``; a label the task's training split lacks is an error."""
    index = {label: i for i, label in enumerate(classes)}
    missing = [v for v in dict.fromkeys(labels) if v not in index]
    if missing:
        raise DataError(f"{where}: label(s) {missing[:5]} do not occur in the training split")
    return torch.tensor([index[v] for v in labels], dtype=torch.int64)


@dataclass(frozen=True)
class Task:
    """One task of a sequence. Splits are built on demand (``make_split``): p-MNIST's ten
    permuted copies of the whole dataset would otherwise sit in memory at once.

    ``preprocess`` says how raw inputs become the backbone's inputs, for the model file (empty:
    the inputs are given model-ready).
    """

    name: str
    labels: tuple[Label, ...]
    make_split: Callable[[str], Split]
    preprocess: dict[str, Any] = field(default_factory=dict)

    @property
    def n_classes(self) -> int:
        return len(self.labels)

    def split(self, which: str) -> Split:
        """``"train"``, ``"val"`` or ``"test"``."""
        return self.make_split(which)

    @classmethod
    def from_tensors(
        cls, name: str, x_train: Any, y_train: Any, x_test: Any, y_test: Any, *,
        x_val: Any = None, y_val: Any = None, val_fraction: float = 0.1, seed: int = 0,
    ) -> Task:
        """A task from inputs (tensors or arrays, float, model-ready) and labels of any kind.

        Without ``x_val``/``y_val``, ``val_fraction`` of the training inputs (seeded by
        ``seed``) are held out for validation (post-pruning and quantization decide on it).
        """
        where = f"task {shown(_task_name(name))}"
        if (x_val is None) != (y_val is None):
            raise DataError(f"{where}: give both x_val and y_val, or neither")
        parts = {"train": (x_train, y_train), "test": (x_test, y_test)}
        if x_val is not None:
            parts["val"] = (x_val, y_val)
        xs, ys = {}, {}
        for which, (x, y) in parts.items():
            xs[which] = as_input(x, f"{where}, {which} split")
            check_finite(xs[which], f"{where}, {which} split")
            ys[which] = label_list(y, f"{where}, {which} split")
            if xs[which].dim() < 2 or len(xs[which]) != len(ys[which]):
                raise DataError(f"{where}, {which} split: {len(ys[which])} labels for inputs of "
                                f"shape {list(xs[which].shape)} (one input per label, batched)")
            if xs[which].shape[1:] != xs["train"].shape[1:]:
                raise DataError(f"{where}, {which} split: inputs of shape "
                                f"{list(xs[which].shape[1:])}, the training inputs are "
                                f"{list(xs['train'].shape[1:])}")
        check_not_empty(where, {which: len(v) for which, v in ys.items()})
        classes = _classes(ys["train"], where)
        y = {which: class_indices(v, classes, f"{where}, {which} split") for which, v in
             ys.items()}
        if "val" not in parts:
            fit, val = _carve(len(y["train"]), val_fraction, seed, where)
            xs["val"], y["val"] = xs["train"][val], y["train"][val]
            xs["train"], y["train"] = xs["train"][fit], y["train"][fit]
        splits = {which: Split(xs[which].contiguous(), y[which]) for which in SPLITS}
        return cls(name, tuple(classes), splits.__getitem__)

    @classmethod
    def from_datasets(
        cls, name: str, train: Dataset, test: Dataset, *, val: Dataset | None = None,
        val_fraction: float = 0.1, transform: Transform | None = None, seed: int = 0,
        workers: int = 0,
    ) -> Task:
        """A task from map-style datasets yielding (input, label), read batch by batch.

        ``transform`` is a train-time augmentation, applied to the training inputs only;
        ``workers`` processes read the data (a ``DataLoader``). Labels are read once (from a
        ``targets`` attribute where the dataset has one, torchvision-style).
        """
        where = f"task {shown(_task_name(name))}"
        sets = {"train": train, "test": test, **({"val": val} if val is not None else {})}
        labels, shapes = {}, {}
        for which, ds in sets.items():
            labels[which], shapes[which] = _read_labels(ds, f"{where}, {which} split")
            if shapes[which] != shapes["train"]:
                raise DataError(f"{where}, {which} split: inputs of shape {list(shapes[which])},"
                                f" the training inputs are {list(shapes['train'])}")
        classes = _classes(labels["train"], where)
        y = {which: class_indices(v, classes, f"{where}, {which} split")
             for which, v in labels.items()}
        rows = {which: np.arange(len(v)) for which, v in labels.items()}
        source = dict.fromkeys(SPLITS, "train") | {"test": "test"}
        if val is None:
            rows["train"], rows["val"] = _carve(len(y["train"]), val_fraction, seed, where)
            y["val"] = y["train"][rows["val"]]
            y["train"] = y["train"][rows["train"]]
        else:
            source["val"] = "val"
        splits = {
            which: Split(DatasetInputs(
                sets[source[which]], rows[which], shapes["train"], f"{where}, {which} split",
                transform if which == "train" else None, workers), y[which])
            for which in SPLITS
        }
        return cls(name, tuple(classes), splits.__getitem__)


def _classes(train_labels: list[Label], where: str) -> list[Label]:
    classes = sorted(set(train_labels), key=_sort_key)
    if len(classes) < 2:
        raise DataError(f"{where}: the training split holds {len(classes)} class(es) "
                        f"({classes}); a task needs at least 2")
    return classes


def _carve(n: int, val_fraction: float, seed: int, where: str) -> tuple[np.ndarray, np.ndarray]:
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"{where}: val_fraction must be in (0, 1), got {val_fraction}")
    return train_val_indices(n, val_fraction, seed, where)


def _read_labels(ds: Dataset, where: str) -> tuple[list[Label], tuple[int, ...]]:
    """Labels of every item, and the shape of the first input (checked as a tensor)."""
    try:
        n = len(ds)  # type: ignore[arg-type]
    except TypeError:
        raise DataError(f"{where}: the dataset has no length (a map-style Dataset is needed)"
                        ) from None
    if n == 0:
        raise DataError(f"{where}: the dataset is empty")
    first = ds[0]
    if not isinstance(first, tuple | list) or len(first) != 2:
        raise DataError(f"{where}: items must be (input, label) pairs, got "
                        f"{type(first).__name__}")
    shape = tuple(as_input(first[0], where).shape)
    targets = getattr(ds, "targets", None)
    if targets is not None and len(targets) == n:
        return label_list(list(targets) if not isinstance(targets, Tensor | np.ndarray)
                          else targets, where), shape
    return [_plain(ds[i][1], where) for i in range(n)], shape
