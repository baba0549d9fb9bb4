"""The accuracy matrix in long format: one row per measured (trained task, tested task) pair.

A wide matrix per run is for reading; long rows from many runs concatenate and load straight
into pandas or R for plots across seeds and ablations. Only the standard library: `runs` calls
this after every task.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

LONG_CSV = "results_long.csv"
COLUMNS = ("run", "scenario", "seed", "trained_task", "tested_task", "kind", "accuracy")
# kind: "after_training" is R[i][j]; "before_training" is task j just before it is trained
# (after task j-1, with task j's fresh head: FWT's R[j-1][j]); "random_init" is FWT's baseline
# b_j, measured with the untrained network, so its trained_task is empty.
KINDS = ("after_training", "before_training", "random_init")


def long_rows(results: dict[str, Any], run: str) -> list[dict[str, Any]]:
    """Rows of one run's ``results.json`` dict, R first (T(T+1)/2 rows), then the FWT probes."""
    config = results.get("config") or {}
    common = {"run": run, "scenario": config.get("scenario", ""), "seed": config.get("seed", "")}
    rows = [
        {**common, "trained_task": i, "tested_task": j, "kind": "after_training", "accuracy": acc}
        for i, row in enumerate(results["R"])
        for j, acc in enumerate(row)
    ]
    for j, acc in enumerate(results.get("accuracy_before_training") or []):
        if acc is not None:
            rows.append({**common, "trained_task": j - 1, "tested_task": j,
                         "kind": "before_training", "accuracy": acc})
    for j, acc in enumerate(results.get("random_init_baseline") or []):
        rows.append({**common, "trained_task": "", "tested_task": j, "kind": "random_init",
                     "accuracy": acc})
    return rows


def long_csv(rows: Iterable[dict[str, Any]]) -> str:
    """Rows as CSV text with the header ``COLUMNS``; accuracy in % with 4 decimals."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "accuracy": f"{row['accuracy']:.4f}"})
    return out.getvalue()
