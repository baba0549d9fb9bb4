"""Fingerprints of a scenario's test data: the model file records them, so `tsn eval` can tell
whether the data it rebuilt is the data the model was tested on (not, say, Fashion-MNIST files
named like MNIST's).

Per task: the number of test inputs and their shape, sha256 of the labels (exact), and a sketch
of the inputs. The sketch takes up to ``ROWS`` evenly spaced test inputs, in ``GROUPS`` groups,
and keeps per group the mean, the mean square and the mean of a fixed projection (which moves
when pixels move, e.g. under another permutation). It is compared with a tolerance, not hashed:
the inputs are floats normalised with statistics from reductions whose last bits may differ
between thread counts, torch versions or machines, and the right data must not be refused.
Reading ``ROWS`` inputs a task keeps it cheap even for data streamed from disk.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from tinysubnets.scenarios.base import Scenario
from tinysubnets.tasks import Split

VERSION = 1
ROWS = 64
GROUPS = 4
TOLERANCE = 1e-5  # absolute and relative, on sketch values of order 1 (normalised inputs)

_MEMO: dict[int, tuple[weakref.ref, dict[str, Any]]] = {}


def _rows(n: int, rows: int) -> np.ndarray:
    """``rows`` evenly spaced positions of ``range(n)`` (all of them when fewer)."""
    return np.unique(np.linspace(0, n - 1, min(n, rows)).round().astype(np.int64))


def _projection(features: int) -> torch.Tensor:
    """A fixed weight per input value (the golden angle keeps neighbours apart)."""
    return torch.from_numpy(np.cos(np.arange(features, dtype=np.float64) * 2.399963229728653))


def _sketch(x: torch.Tensor) -> list[float]:
    """Mean, mean square and mean projection of each group of rows, float64, 9 digits."""
    flat = x.detach().cpu().to(torch.float64).reshape(len(x), -1)
    features = max(1, flat.shape[1])
    weights = _projection(flat.shape[1])
    out: list[float] = []
    for group in np.array_split(np.arange(len(flat)), GROUPS):
        if not len(group):
            out += [0.0, 0.0, 0.0]
            continue
        part = flat[torch.from_numpy(group)]
        out += [part.mean().item(), part.square().mean().item(),
                (part @ weights).mean().item() / features]
    return [float(f"{v:.9g}") for v in out]


def of_split(split: Split, rows: int = ROWS) -> dict[str, Any]:
    """The fingerprint of one task's test split."""
    labels = split.y.detach().cpu().numpy().astype("<i8")
    picked = _rows(len(split), rows)
    x = split.x[torch.from_numpy(picked)] if len(picked) else split.x[:0]
    return {
        "n": len(split),
        "shape": [int(v) for v in split.x.shape[1:]],
        "labels_sha256": hashlib.sha256(labels.tobytes()).hexdigest(),
        "sketch": _sketch(x),
    }


def of_scenario(scenario: Scenario) -> dict[str, Any]:
    """The fingerprint of every task's test split, computed once per scenario object (a run
    rewrites its model file after every task)."""
    hit = _MEMO.get(id(scenario))
    if hit is not None and hit[0]() is scenario:
        return hit[1]
    value = {"version": VERSION, "rows": ROWS,
             "tasks": [of_split(task.split("test")) for task in scenario.tasks]}
    key = id(scenario)
    _MEMO[key] = (weakref.ref(scenario), value)
    weakref.finalize(scenario, _MEMO.pop, key, None)
    return value


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and bool(np.allclose(a, b, rtol=TOLERANCE, atol=TOLERANCE))


def differences(recorded: dict[str, Any], scenario: Scenario, tasks: int) -> list[str]:
    """How the test data of ``scenario``'s first ``tasks`` tasks differ from the ``recorded``
    fingerprint, one line per differing task (empty: the same data)."""
    rows = int(recorded.get("rows", ROWS))
    wanted = list(recorded.get("tasks", []))[:tasks]
    found = []
    for t, want in enumerate(wanted):
        have = of_split(scenario.tasks[t].split("test"), rows)
        if (have["n"], have["shape"]) != (want.get("n"), want.get("shape")):
            found.append(f"task {t}: {have['n']} test inputs of shape {have['shape']}, "
                         f"recorded {want.get('n')} of shape {want.get('shape')}")
        elif have["labels_sha256"] != want.get("labels_sha256"):
            found.append(f"task {t}: other test labels")
        elif not _close(have["sketch"], want.get("sketch", [])):
            found.append(f"task {t}: other test inputs")
    return found
