"""One run in detail, one row per task: R, ACC and capacity against the number of tasks,
Table 2 (compression), capacity and time per task.

Each section embeds the figure that draws the same numbers, so a reader can check one against
the other.
"""

from __future__ import annotations

from collections.abc import Sequence

from tinysubnets.report.context import Context, SectionOut
from tinysubnets.report.figures import PHASES, parts_of
from tinysubnets.report.markdown import figure, num, table
from tinysubnets.report.rundir import RunData

# Validation accuracy after each compression step, in the order the steps run.
STEPS = {"trained": "trained", "pruned": "post-pruned", "retrained": "retrained",
         "quantized": "quantized", "fine_tuned": "fine-tuned"}
EDGE = 10  # tasks: the first and last ten of a long sequence, compared at its end


def accuracy_matrix_section(ctx: Context, run: RunData) -> SectionOut:
    """R[i][j] in full (the paper's Figures 2-5), and the FWT probes under it."""
    R, T = run.R, len(run.R)
    rows = [[str(i), *[num(v) for v in row], *[""] * (T - len(row))]
            for i, row in enumerate(R)]
    before = run.results.get("accuracy_before_training") or []
    baseline = run.results.get("random_init_baseline") or []
    if any(v is not None for v in before):
        rows.append(["before training", *[num(v) if v is not None else "" for v in before[:T]]])
    if baseline:
        rows.append(["random init", *[num(v) for v in baseline[:T]]])
    return "Accuracy matrix R (%)", [
        "Row: after training task i; column: tested task j (every finished task re-tested). "
        "Below R: each task just before it is trained, and with the untrained network (FWT).",
        table(["trained i / tested j", *[str(j) for j in range(T)]], rows),
        figure("accuracy matrix", ctx.figure(run, "accuracy_matrix.png")),
    ]


def first_last_means(R: Sequence[Sequence[float]], n: int = EDGE) -> tuple[float, float] | None:
    """Mean final accuracy (last row of R) of the first ``n`` and of the last ``n`` tasks: a
    claim rule that starves the early tasks of a long sequence shows as the first below the
    last. None for fewer than 2n tasks, where the two would share tasks."""
    final = R[-1]
    if len(final) < 2 * n:
        return None
    return sum(final[:n]) / n, sum(final[-n:]) / n


def over_tasks_section(ctx: Context, run: RunData) -> SectionOut:
    """ACC beside the first-ten and last-ten means, and the figure of ACC and capacity after
    each number of tasks."""
    T, means = len(run.R), first_last_means(run.R)
    header = ["tasks", "ACC (%)"]
    row: list[object] = [T, num(run.acc_after[-1])]
    if means:
        header += [f"first {EDGE} (%)", f"last {EDGE} (%)"]
        row += [num(m) for m in means]
    total = (run.per_task[-1].get("model") or {}).get("total_pct") if run.per_task else None
    header.append("model.tsn %")
    row.append(num(total, 3))
    return "ACC and capacity against the number of tasks", [
        f"ACC: mean final accuracy (last row of R); first/last {EDGE}: the same mean over tasks "
        f"0-{EDGE - 1} and over the last {EDGE}"
        + (f" (shown for runs of {2 * EDGE} tasks or more, where the two share no task)."
           if not means else "; finished tasks never change (BWT 0), so the first well "
           "below the last means the early tasks learned with less (a claim rule that starves "
           "them)."),
        table(header, [row]),
        figure("ACC and capacity against the number of tasks", ctx.figure(run, "over_tasks.png")),
    ]


def compression_section(ctx: Context, run: RunData) -> SectionOut:
    """Table 2: mask density before/after post-pruning, bits per block, validation per step."""
    rows = run.compression
    if not rows:
        return None
    blocks = next((list(r["bits"]) for r in rows if r.get("bits")), [])
    steps = [s for s in STEPS if any(s in r.get("val_acc", {}) for r in rows)]
    body = []
    for r in rows:
        bits, val = r.get("bits") or {}, r.get("val_acc") or {}
        body.append([r.get("task"), num(r.get("mask_pct_before_pruning")),
                     num(r.get("mask_pct_after_pruning")), *[bits.get(b) for b in blocks],
                     *[num(val.get(s)) for s in steps]])
    header = ["task", "mask % before", "mask % after", *[f"bits {b}" for b in blocks],
              *[f"val {STEPS[s]}" for s in steps]]
    return "Compression per task (Table 2)", [
        "Mask M_t as % of the backbone before and after post-pruning; bit-width chosen per "
        "block (a layer's own weights, the head); validation accuracy (%) after each step."
        + ("" if blocks else " Quantization was off: weights are stored as float32."),
        table(header, body),
        figure("mask density", ctx.figure(run, "mask_density.png")),
        figure("bit-widths", ctx.figure(run, "bit_widths.png")),
    ]


def capacity_per_task_section(ctx: Context, run: RunData) -> SectionOut:
    """Bytes each task stores by part, and the capacity of model.tsn after each task."""
    cap = run.capacity
    if not cap:
        return None
    dense = cap.get("dense_fp32_bytes") or 1
    per_task = cap.get("per_task_bytes") or []
    growth = [t.get("model", {}).get("total_pct") for t in run.per_task]
    parts = parts_of([run])
    rows = [[t, *[row.get(p, 0) for p in parts],
             num(100.0 * sum(row.values()) / dense, 3),
             num(growth[t] if t < len(growth) else None, 3)]
            for t, row in enumerate(per_task)]
    if per_task:
        joint = [cap["parts_bytes"].get(p, 0) - sum(r.get(p, 0) for r in per_task) for p in parts]
        rows.append(["all (joint)", *joint, num(100.0 * sum(joint) / dense, 3), ""])
    text = ("Bytes in model.tsn per task by part; \"all (joint)\": bytes coded for all tasks "
            "at once (masks, as each position's set of tasks). Last column: the whole file's "
            "capacity (all parts) after that task.")
    if not per_task:
        text = "Only totals are recorded for this run (no per-task parts): see Table 1."
    return "Capacity per task", [
        text,
        table(["task", *[f"{p} (B)" for p in parts], "%", "model.tsn after, %"], rows)
        if per_task else None,
        figure("capacity", ctx.figure(run, "capacity.png")),
    ]


def time_per_task_section(ctx: Context, run: RunData) -> SectionOut:
    """Table 4 per task: wall time of each phase."""
    tasks = run.per_task
    if not tasks:
        return None
    phases = PHASES if run.has_phases else ()
    rows = [[t.get("task_id", i), *[num((t.get("phase_s") or {}).get(p), 2) for p in phases],
             num(t.get("time_s"), 2)] for i, t in enumerate(tasks)]
    return "Time per task (Table 4)", [
        table(["task", *[f"{p} (s)" for p in phases], "total (s)"], rows),
        figure("time per phase", ctx.figure(run, "phase_times.png")),
    ]


def bitwidth_accuracy_section(ctx: Context, run: RunData) -> SectionOut:
    """Table 3: validation accuracy with every block of a task at b bits (plain k-means)."""
    trials = [((t.get("quantize") or {}).get("uniform_val_acc") or {}) for t in run.per_task]
    widths = sorted({int(b) for row in trials for b in row})
    if not widths:
        return None
    rows = [[t.get("task_id", i), *[num(row.get(str(b), row.get(b))) for b in widths],
             num((t.get("quantize") or {}).get("val_acc_before"))]
            for i, (t, row) in enumerate(zip(run.per_task, trials, strict=True))]
    return "Accuracy against bit-width (Table 3)", [
        "Validation accuracy (%) of each task with all its own blocks (layers and head) "
        "quantized to b bits by k-means, before codebook fine-tuning, as the bit-width search "
        "measured it; the last column is the unquantized value. The search stops once a width "
        "is within the threshold, but always measures 3, 4 and 5 bits; wider ones are blank.",
        table(["task", *[f"{b} bits" for b in widths], "unquantized"], rows),
    ]
