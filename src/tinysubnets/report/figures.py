"""The report's figures as PNG: accuracy matrix, capacity, ACC and capacity against tasks,
bit-widths, mask density, time.

Each figure is its own `Figure` drawn on an Agg canvas: no pyplot, no global rcParams, so a
report changes nothing in the caller's matplotlib state and needs no display. Sizes and tick
steps grow with the number of tasks so that 40 tasks stay readable.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tinysubnets.atomic import write_bytes
from tinysubnets.report.rundir import RunData

# replay and tasks (labels, preprocessing): shown where a run's file has them
PARTS = ("weights", "codebooks", "masks", "heads", "norms", "tasks", "replay")
OPTIONAL = ("tasks", "replay")


def parts_of(runs: Sequence[RunData]) -> list[str]:
    """The parts to show: all of the model's; the optional ones only where a run has them."""
    kept = {p for r in runs for p in ((r.capacity or {}).get("parts_bytes") or {})}
    return [p for p in PARTS if p not in OPTIONAL or p in kept]
PHASES = ("similarity", "train", "prune", "quantize", "consolidate", "evaluate", "model_file")
# One colour per part and per phase, the same in every figure.
PART_COLORS = dict(zip(PARTS, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple",
                               "tab:cyan", "tab:olive"), strict=True))
PHASE_COLORS = dict(zip(PHASES, ("tab:gray", "tab:blue", "tab:orange", "tab:green", "tab:purple",
                                 "tab:brown", "tab:pink"), strict=True))
ANNOTATE_UP_TO = 12  # tasks: beyond this, numbers in the heatmap's cells would not fit
BARS_UP_TO = 15  # tasks: beyond this, bit-widths are drawn as a grid of numbers, not bars


def _width(n: int) -> float:
    return max(6.0, min(16.0, 3.0 + 0.3 * n))


def _new(width: float, height: float = 4.0, nrows: int = 1, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=(width, height), layout="constrained", dpi=100)
    FigureCanvasAgg(fig)
    return fig, list(fig.subplots(nrows, ncols, squeeze=False).flat)


def _task_ticks(axis, n: int, extra: Sequence[str] = (), first: int = 0) -> None:
    """Every task's tick up to 20 tasks, then the first and every k-th; tasks are labelled from
    ``first`` (1 for counts of tasks learned: 1, 5, 10, ...); ``extra`` labels follow them."""
    step = max(1, math.ceil(n / 20))
    shown = [t for t in range(n) if t == 0 or (t + first) % step == 0]
    axis.set_ticks([*shown, *range(n, n + len(extra))])
    axis.set_ticklabels([*[str(t + first) for t in shown], *extra])


def _legend_outside(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _task_heatmap(grid: np.ndarray, vmin: float, digits: int, colorbar: str,
                  axes: tuple[str, str], title: str) -> Figure:
    """A T x T grid of percentages over tasks (NaN cells blank), numbers in the cells while
    they fit."""
    T = len(grid)
    side = max(5.0, min(12.0, 3.0 + 0.25 * T))
    fig, (ax,) = _new(side + 1.0, side)
    image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=vmin, vmax=100,
                      aspect="equal", interpolation="nearest")
    fig.colorbar(image, ax=ax, shrink=0.8).set_label(colorbar)
    _task_ticks(ax.xaxis, T)
    _task_ticks(ax.yaxis, T)
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title)
    if T <= ANNOTATE_UP_TO:
        middle = (vmin + 100) / 2
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.{digits}f}", ha="center", va="center",
                        fontsize=10 if T <= 6 else 8, color="black" if v > middle else "white")
    return fig


def accuracy_matrix(run: RunData) -> Figure:
    """R[i][j] as a heatmap: trained task i down, tested task j across, blank above the diagonal."""
    R = run.R
    T = len(R)
    grid = np.full((T, T), np.nan)
    for i, row in enumerate(R):
        grid[i, : len(row)] = row
    low = min(math.floor(np.nanmin(grid) / 5) * 5, 95)
    return _task_heatmap(grid, low, 1, "accuracy (%)", ("tested task j", "after training task i"),
                         f"Accuracy matrix R[i][j] (%): {run.label}")


def _stack(ax, x: np.ndarray, series: dict[str, np.ndarray], colors: dict[str, str]) -> None:
    """Stacked bars; a series that is zero everywhere is left out of the legend."""
    bottom = np.zeros(len(x))
    for name, values in series.items():
        if np.any(values):
            ax.bar(x, values, bottom=bottom, color=colors[name], label=name, width=0.8)
            bottom += values


def capacity(run: RunData) -> Figure | None:
    """What each task stores by part (% of dense); model.tsn after each task is in `over_tasks`,
    beside the accuracy."""
    cap = run.capacity
    if not cap:
        return None
    dense = cap.get("dense_fp32_bytes") or 1
    per_task = cap.get("per_task_bytes") or []
    fig, (ax,) = _new(_width(len(run.R)), 4.2)
    parts = [p for p in PARTS if p in cap["parts_bytes"]]
    if per_task:
        # Masks are coded over all tasks at once: bytes no single task owns get their own bar.
        joint = {p: cap["parts_bytes"][p] - sum(t.get(p, 0) for t in per_task) for p in parts}
        series = {p: 100.0 * np.array([*[t.get(p, 0) for t in per_task], joint[p]]) / dense
                  for p in parts}
        _stack(ax, np.arange(len(per_task) + 1), series, PART_COLORS)
        _task_ticks(ax.xaxis, len(per_task), extra=["all\n(joint)"])
        ax.set_xlabel("task (last bar: bytes coded jointly for all tasks, e.g. masks)")
        ax.set_title(f"Capacity stored per task, by part: {run.label}")
    else:
        series = {p: np.array([cap["parts_pct"][p]]) for p in parts}
        _stack(ax, np.arange(1), series, PART_COLORS)
        ax.set_xticks([0], ["all tasks"])
        ax.set_title(f"Capacity by part (only totals recorded, no per-task parts): {run.label}")
    ax.set_ylabel("% of the dense fp32 backbone")
    _legend_outside(ax)
    return fig


def over_tasks(run: RunData) -> Figure:
    """ACC and model.tsn's capacity against the number of tasks learned: over a long sequence,
    whether accuracy holds while the file grows. Runs that did not record the file after each
    task (older ones) get the accuracy only."""
    T = len(run.R)
    growth = [t.get("model", {}).get("parts_pct") for t in run.per_task]
    has_growth = len(growth) == T and all(growth)
    fig, axes = _new(_width(T), 3.4 * (2 if has_growth else 1) + 0.6, nrows=2 if has_growth else 1)
    x = np.arange(T)
    ax = axes[0]
    ax.plot(x, run.acc_after, color="black", marker="o" if T <= 40 else None, markersize=4)
    ax.set_ylabel("ACC (%): mean of R[i]")
    ax.grid(alpha=0.3)
    if has_growth:
        ax = axes[1]
        parts = [p for p in PARTS if any(p in g for g in growth)]
        _stack(ax, x, {p: np.array([g.get(p, 0.0) for g in growth]) for p in parts}, PART_COLORS)
        ax.set_ylabel("model.tsn (% of the dense\nfp32 backbone)")
        _legend_outside(ax)
    for ax in axes:
        ax.set_xlim(-0.6, T - 0.4)
        _task_ticks(ax.xaxis, T, first=1)
    axes[-1].set_xlabel("number of tasks learned")
    fig.suptitle(f"ACC and capacity against the number of tasks: {run.label}"
                 + ("" if has_growth else "\n(capacity after each task not recorded)"))
    return fig


def bit_widths(run: RunData) -> Figure | None:
    """Bits chosen per task for each block (layers' own weights, head): grouped bars for a few
    tasks, a task-by-block grid of numbers for many (bars would be too thin to read)."""
    rows = run.compression
    blocks = next((list(r["bits"]) for r in rows if r.get("bits")), [])
    if not blocks:
        return None
    T = len(rows)
    bits = np.array([[(r.get("bits") or {}).get(b, 0) for r in rows] for b in blocks], float)
    if T <= BARS_UP_TO:
        fig, (ax,) = _new(_width(T * len(blocks) / 2))
        width = 0.8 / len(blocks)
        for k, block in enumerate(blocks):
            ax.bar(np.arange(T) + (k - (len(blocks) - 1) / 2) * width, bits[k], width, label=block)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("bit-width (bits per weight)")
        _legend_outside(ax)
    else:
        fig, (ax,) = _new(_width(T), 1.6 + 0.45 * len(blocks))
        image = ax.imshow(bits, cmap="Blues", aspect="auto", vmin=0, vmax=max(8, bits.max()),
                          interpolation="nearest")
        for (k, t), b in np.ndenumerate(bits):
            ax.text(t, k, f"{b:.0f}", ha="center", va="center", fontsize=8,
                    color="white" if b > 0.6 * max(8, bits.max()) else "black")
        ax.set_yticks(range(len(blocks)), blocks)
        ax.set_ylabel("block")
        fig.colorbar(image, ax=ax, pad=0.01).set_label("bits")
    _task_ticks(ax.xaxis, T)
    ax.set_xlabel("task")
    ax.set_title(f"Bit-width per task and block: {run.label}")
    return fig


def mask_density(run: RunData) -> Figure | None:
    """Each task's mask as % of the backbone, before and after post-pruning."""
    rows = run.compression
    if not rows:
        return None
    T = len(rows)
    fig, (ax,) = _new(_width(T))
    x = np.arange(T)
    ax.bar(x, [r["mask_pct_before_pruning"] for r in rows], 0.8, color="tab:blue", alpha=0.35,
           label="before post-pruning")
    ax.bar(x, [r["mask_pct_after_pruning"] for r in rows], 0.5, color="tab:blue",
           label="after post-pruning")
    _task_ticks(ax.xaxis, T)
    ax.set_xlabel("task")
    ax.set_ylabel("mask M_t (% of backbone weights)")
    off = not (run.config.get("prune") or {}).get("enabled", True)
    ax.set_title(f"Mask density before/after post-pruning: {run.label}"
                 + ("\n(post-pruning off: before = after)" if off else ""))
    _legend_outside(ax)
    return fig


def phase_times(run: RunData) -> Figure | None:
    """Wall time per task, stacked by phase (the total only, for runs without phase timings)."""
    tasks = run.per_task
    if not tasks:
        return None
    T = len(tasks)
    fig, (ax,) = _new(_width(T))
    x = np.arange(T)
    if run.has_phases:
        series = {p: np.array([t["phase_s"].get(p, 0.0) for t in tasks]) for p in PHASES}
        _stack(ax, x, series, PHASE_COLORS)
        ax.set_title(f"Time per phase and task: {run.label}")
    else:
        ax.bar(x, [t.get("time_s", 0.0) for t in tasks], 0.8, color="tab:gray",
               label="total (phases not recorded)")
        ax.set_title(f"Time per task (no phase timings recorded): {run.label}")
    _task_ticks(ax.xaxis, T)
    ax.set_xlabel("task")
    ax.set_ylabel("wall time (s)")
    _legend_outside(ax)
    return fig


def accuracy_vs_capacity(runs: Sequence[RunData]) -> Figure | None:
    """ACC against capacity, one point per run: ablations at a glance."""
    points = [(r.label, r.capacity["total_pct"], r.results["acc"]) for r in runs if r.capacity]
    if len(points) < 2:
        return None
    fig, (ax,) = _new(7.0, 4.5)
    for k, (label, cap, acc) in enumerate(points):
        ax.scatter([cap], [acc], s=40, color=f"C{k % 10}", label=label, zorder=3)
        ax.annotate(label, (cap, acc), xytext=(5, 5), textcoords="offset points", fontsize=9)
    ax.set_xlabel("capacity of model.tsn (% of the dense fp32 backbone)")
    ax.set_ylabel("ACC (%)")
    ax.set_title("Accuracy against capacity, one point per run")
    ax.grid(alpha=0.3)
    ax.margins(0.15)
    _legend_outside(ax)
    return fig


# File name -> figure of one run. A new figure is one more entry here.
RUN_FIGURES: dict[str, Callable[[RunData], Figure | None]] = {
    "accuracy_matrix.png": accuracy_matrix,
    "capacity.png": capacity,
    "over_tasks.png": over_tasks,
    "bit_widths.png": bit_widths,
    "mask_density.png": mask_density,
    "phase_times.png": phase_times,
}
COMPARE_FIGURES: dict[str, Callable[[Sequence[RunData]], Figure | None]] = {
    "accuracy_vs_capacity.png": accuracy_vs_capacity,
}


def inferred_tasks(inferred: Sequence[Sequence[int]], label: str, criterion: str) -> Figure:
    """Task inference as a heatmap: true task down, inferred task across, each row in % of the
    true task's test inputs (the diagonal is how often the task is found)."""
    counts = np.asarray(inferred, dtype=np.float64)
    share = 100.0 * counts / np.maximum(1.0, counts.sum(axis=1, keepdims=True))
    return _task_heatmap(share, 0.0, 0, "% of the true task's test inputs",
                         ("inferred task", "true task"), f"Task inference ({criterion}): {label}")


def save(fig: Figure, path: Path) -> None:
    """Render to PNG in memory, then replace ``path`` atomically."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    write_bytes(path, buffer.getvalue())
