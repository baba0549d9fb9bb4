"""Read and check a run folder for a report.

A report must never end in a traceback: a folder that is not a run, or whose results cannot be
read, is one `DataError` naming the folder; a run that lacks an optional part (capacity.json,
model.tsn, phase timings: older runs) is reported with what it has, and a note says what is
missing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinysubnets.artifact.writer import MODEL_FILE
from tinysubnets.errors import DataError
from tinysubnets.runs import RESULTS_FORMAT

RESULTS = "results.json"
CAPACITY = "capacity.json"


@dataclass
class RunData:
    """What a report knows about one run folder; ``notes`` say what was missing or odd."""

    path: Path
    label: str
    results: dict[str, Any]
    capacity: dict[str, Any] | None  # ModelCapacity.to_dict() of the last model.tsn
    model_path: Path | None  # for sections that measure the model file itself (e.g. FLOPs)
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> dict[str, Any]:
        return self.results.get("config") or {}

    @property
    def R(self) -> list[list[float]]:
        return self.results["R"]

    @property
    def acc_after(self) -> list[float]:
        """ACC after each task: the mean of row i of R (the last one is the run's ACC)."""
        return [sum(row) / len(row) for row in self.R]

    @property
    def per_task(self) -> list[dict[str, Any]]:
        return self.results.get("per_task") or []

    @property
    def compression(self) -> list[dict[str, Any]]:
        """Table 2's rows (mask density, bits, validation accuracy per step), one per task."""
        return self.results.get("compression") or []

    @property
    def has_phases(self) -> bool:
        return bool(self.per_task) and all(t.get("phase_s") for t in self.per_task)

    @property
    def slug(self) -> str:
        """The label as a safe file name (figures of several runs go in one folder each)."""
        return re.sub(r"[^A-Za-z0-9._-]+", "_", self.label).strip("_") or "run"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError(f"{path} is not readable JSON ({e})") from None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_probes(path: Path, results: dict[str, Any]) -> None:
    """FWT's probes (optional; results_long.csv lists them): lists of accuracies, the first
    probe before training may be null (task 0 has no earlier task)."""
    for key, nulls in (("accuracy_before_training", True), ("random_init_baseline", False)):
        values = results.get(key) or []
        if not isinstance(values, list) or not all(
            _is_number(v) or (nulls and v is None) for v in values
        ):
            raise DataError(f"{path}: {key} is not a list of accuracies")


def _check_results(path: Path, results: Any) -> None:
    if not isinstance(results, dict):
        raise DataError(f"{path} does not hold a run's results (not a JSON object)")
    fmt = results.get("format")
    if fmt != RESULTS_FORMAT:
        raise DataError(
            f"{path} has an unknown format {fmt!r}; this version reads format {RESULTS_FORMAT}"
        )
    if not isinstance(results.get("config") or {}, dict):
        raise DataError(f"{path}: its config is not a mapping")
    for key in ("per_task", "compression"):
        records = results.get(key) or []
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise DataError(f"{path}: {key} is not a list of records")
    R = results.get("R")
    if not isinstance(R, list) or not R:
        raise DataError(f"{path} holds no finished task (its accuracy matrix R is empty)")
    for i, row in enumerate(R):
        if not isinstance(row, list) or len(row) != i + 1 or not all(
            _is_number(v) for v in row
        ):
            raise DataError(f"{path}: row {i} of the accuracy matrix R is not {i + 1} numbers")
    _check_probes(path, results)


def _capacity(run_dir: Path, results: dict[str, Any], notes: list[str]) -> dict[str, Any] | None:
    """capacity.json's model capacity; results.json's copy of it when the file is missing."""
    path = run_dir / CAPACITY
    if not path.is_file():
        problem = f"{CAPACITY} is missing"
    else:
        try:
            model = _read_json(path).get("model")
        except (DataError, AttributeError):
            model = None
        if isinstance(model, dict) and model.get("parts_pct"):
            return model
        problem = f"{CAPACITY} is not readable"
    if isinstance(results.get("model"), dict) and results["model"].get("parts_pct"):
        notes.append(f"{problem}: capacity is taken from {RESULTS}")
        return results["model"]
    notes.append(f"{problem}: no capacity is recorded, so Table 1 and the capacity figure are "
                 "left out")
    return None


def read_run(path: Path, label: str | None = None) -> RunData:
    """Read ``path`` as a run folder written by ``tsn run``; raise `DataError` if it is not one."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path} is not a run folder: no such folder")
    results_path = path / RESULTS
    if not results_path.is_file():
        raise DataError(f"{path} is not a run folder: it has no {RESULTS} (`tsn run --out` writes "
                        "one after the first task)")
    results = _read_json(results_path)
    _check_results(results_path, results)
    notes: list[str] = []
    capacity = _capacity(path, results, notes)
    model_path: Path | None = path / MODEL_FILE
    if not model_path.is_file():
        notes.append(f"{MODEL_FILE} is missing: nothing is measured from the model file")
        model_path = None
    elif capacity and model_path.stat().st_size != capacity.get("file_bytes"):
        recorded = capacity.get("file_bytes")
        size = f"a {recorded:,}-byte file" if _is_number(recorded) else "no file size"
        notes.append(
            f"{MODEL_FILE} has {model_path.stat().st_size:,} bytes but the recorded capacity is of "
            f"{size} (was the run still going?)"
        )
    run = RunData(path, label or path.resolve().name, results, capacity, model_path, notes)
    planned = run.config.get("tasks")
    if _is_number(planned) and len(run.R) < planned:
        notes.append(f"{len(run.R)} of {planned} planned tasks are finished")
    if len(run.R) == 1:
        notes.append("one task only: BWT and FWT need two or more")
    if not run.compression:
        notes.append("no compression records: Table 2 and its figures are left out")
    if not run.has_phases:
        notes.append("time per phase is not recorded (a run made before phase timings): "
                     "only the total time per task is shown")
    return run


def run_labels(paths: list[Path]) -> list[str]:
    """Folder names, lengthened with parent folders until every label is unique."""
    parts = [Path(p).resolve().parts for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels):
            return labels
    # The same folder given twice: number the repeats of its name.
    names = [p[-1] if p else "run" for p in parts]
    return [f"{name} ({i + 1})" if names.count(name) > 1 else name
            for i, name in enumerate(names)]


def read_runs(paths: list[Path]) -> list[RunData]:
    """Read several run folders, each labelled by its (unique) folder name."""
    return [read_run(p, label) for p, label in zip(paths, run_labels(paths), strict=True)]
