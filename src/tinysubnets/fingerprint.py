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

from tinysubnets.errors import DataError, shown
from tinysubnets.scenarios.base import Scenario
from tinysubnets.tasks import Split

VERSION = 1
ROWS = 64
GROUPS = 4
TOLERANCE = 1e-5  # absolute and relative, on sketch values of order 1 (normalised inputs)

_MEMO: dict[int, tuple[weakref.ref, list[dict[str, Any]]]] = {}


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


def of_scenario(scenario: Scenario, tasks: int) -> dict[str, Any]:
    """The fingerprint of the first ``tasks`` tasks' test splits (a model file records its
    finished tasks'), each computed once per scenario object (a run rewrites its model file
    after every task) and only when asked for (a run may plan far more tasks than it reaches).
    """
    hit = _MEMO.get(id(scenario))
    if hit is None or hit[0]() is not scenario:
        key = id(scenario)
        hit = _MEMO[key] = (weakref.ref(scenario), [])
        weakref.finalize(scenario, _MEMO.pop, key, None)
    done = hit[1]
    while len(done) < tasks:
        done.append(of_split(scenario.tasks[len(done)].split("test")))
    return {"version": VERSION, "rows": ROWS, "tasks": done[:tasks]}


def _is_int(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _task_ok(task: object) -> bool:
    return (isinstance(task, dict) and _is_int(task.get("n"), 0, 1 << 62)
            and isinstance(task.get("shape"), list)
            and all(_is_int(d, 0, 1 << 31) for d in task["shape"])
            and isinstance(task.get("labels_sha256"), str)
            and isinstance(task.get("sketch"), list) and len(task["sketch"]) <= 3 * GROUPS
            and all(isinstance(v, int | float) and not isinstance(v, bool)
                    and abs(v) < 1e300 for v in task["sketch"]))


def check_recorded(recorded: dict[str, Any]) -> None:
    """A fingerprint from a model file's header, checked before it is compared (the file is
    untrusted: ``rows`` decides how many inputs are read)."""
    tasks = recorded.get("tasks")
    if not (_is_int(recorded.get("rows", ROWS), 1, 16 * ROWS) and isinstance(tasks, list)
            and all(map(_task_ok, tasks))):
        raise DataError(f"the header's test-data fingerprint is malformed: {shown(recorded)}")


def _close(a: Sequence[float], b: Sequence[float]) -> bool:
    return len(a) == len(b) and bool(np.allclose(np.asarray(a, np.float64),
                                                 np.asarray(b, np.float64),
                                                 rtol=TOLERANCE, atol=TOLERANCE))


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
