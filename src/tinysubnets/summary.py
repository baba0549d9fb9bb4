"""A readable end-of-run summary: the accuracy matrix and the headline measures."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from tinysubnets.errors import clipped


def print_summary(results: dict[str, Any], console: Console | None = None) -> None:
    """Print R (rows: after training task i; columns: tested task j) and ACC/BWT/FWT/capacity."""
    console = console or Console()
    R = results["R"]
    T = len(R)
    # One decimal and a light box keep a 10-task matrix within 80 columns.
    table = Table(
        title="Accuracy matrix R (%): row = after training task i, column = task j",
        caption=f"data: {results['data']}", box=box.SIMPLE_HEAD, padding=(0, 1),
    )
    table.add_column("i\\j", justify="right", style="bold")
    for j in range(T):
        table.add_column(f"{j}", justify="right")
    for i, row in enumerate(R):
        table.add_row(f"{i}", *[f"{v:.1f}" for v in row], *[""] * (T - len(row)))
    console.print(table)
    cap = results["claimed"]
    fwt = results["fwt"]
    per_task = results["per_task"]
    layers = ", ".join(f"{n} {v['used_pct']:.1f}%" for n, v in cap["layers"].items())
    times = ", ".join(f"{t['time_s']:.1f}" for t in per_task)
    console.print(
        f"ACC {results['acc']:.2f}  BWT {results['bwt']:+.2f}  "
        f"FWT {'n/a' if fwt is None else f'{fwt:+.2f}'}  "
        f"claimed {cap['used_pct']:.1f}% of {cap['backbone_weights']:,} backbone weights  "
        f"({layers})"
    )
    console.print(f"time per task (s): {times}; total {results['time_total_s']:.0f} s")
    rows = results.get("compression") or []
    if any(r["bits"] or "pruned" in r["val_acc"] for r in rows):
        print_compression(rows, console)
    model = results.get("model")
    if model:
        parts = ", ".join(f"{p} {v:.2f}%" for p, v in model["parts_pct"].items())
        console.print(
            f"model.tsn: {model['file_bytes']:,} bytes; capacity {model['total_pct']:.2f}% of "
            f"the dense fp32 backbone ({parts})"
        )


def _kib(n: int) -> str:
    return f"{n / 1024:.1f}"


def print_capacity(model: dict[str, Any], console: Console | None = None) -> None:
    """The capacity of a model file (`ModelCapacity.to_dict()`): by part, task and layer."""
    console = console or Console()
    dense = model["dense_fp32_bytes"]

    def pct(n: int) -> str:
        return f"{100.0 * n / dense:.2f}"

    parts = model["parts_bytes"]
    table = Table(
        title=f"Capacity: % of the dense fp32 backbone ({model['backbone_weights']:,} weights, "
        f"{_kib(dense)} KiB)", box=box.SIMPLE_HEAD, padding=(0, 1),
    )
    for col in ("part", "KiB", "%"):
        table.add_column(col, justify="left" if col == "part" else "right")
    for part, n in parts.items():
        table.add_row(part, _kib(n), pct(n))
    table.add_row("[bold]total[/bold]", _kib(model["total_bytes"]), pct(model["total_bytes"]))
    table.add_row("header+checksum", _kib(model["overhead_bytes"]), pct(model["overhead_bytes"]))
    table.add_row("file", _kib(model["file_bytes"]), pct(model["file_bytes"]))
    console.print(table)

    bits = model.get("bits", [])
    blocks = list(bits[0]) if bits else []
    replay = ["replay"] if "replay" in parts else []  # kept samples, apart from the network
    per_task = Table(title="Per task (bytes; bits per block, 32 = float32)", box=box.SIMPLE_HEAD,
                     padding=(0, 1))
    per_task.add_column("task", justify="right")
    for col in ("weights", "codebooks", "heads", "%", *replay, *[f"bits {b}" for b in blocks]):
        per_task.add_column(col, justify="right")
    for t, row in enumerate(model["per_task_bytes"]):
        own = sum(n for part, n in row.items() if part not in ("masks", "replay"))
        per_task.add_row(
            str(t), str(row["weights"]), str(row["codebooks"]), str(row["heads"]), pct(own),
            *[str(row.get(p, 0)) for p in replay], *[str(bits[t][b]) for b in blocks],
        )
    console.print(per_task)

    per_layer = Table(title="Per layer (bytes; masks are coded over all tasks at once)",
                      box=box.SIMPLE_HEAD, padding=(0, 1))
    for col in ("layer", "weights", "codebooks", "masks", "%"):
        per_layer.add_column(col, justify="left" if col == "layer" else "right")
    for name, row in model["per_layer_bytes"].items():
        n = row["weights"] + row["codebooks"] + row["masks"]
        per_layer.add_row(Text(clipped(name)), str(row["weights"]), str(row["codebooks"]),
                          str(row["masks"]), pct(n))
    console.print(per_layer)


def print_compression(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    """Per task: mask density before/after post-pruning, bit-widths, validation per step."""
    console = console or Console()
    steps = {"trained": "train", "pruned": "prune", "retrained": "retr",
             "quantized": "quant", "fine_tuned": "tune"}
    steps = {s: label for s, label in steps.items() if any(s in r["val_acc"] for r in rows)}
    blocks = next((list(r["bits"]) for r in rows if r["bits"]), [])
    table = Table(
        title="Per task: mask % of the backbone before/after post-pruning, bits per block, "
        "validation accuracy after each step", box=box.SIMPLE_HEAD, padding=(0, 1),
        pad_edge=False,
    )
    for col in ("task", "pre", "post", *blocks, *steps.values()):
        table.add_column(col, justify="right")
    for r in rows:
        bits = r["bits"] or {}
        table.add_row(
            str(r["task"]), f"{r['mask_pct_before_pruning']:.1f}",
            f"{r['mask_pct_after_pruning']:.1f}", *[str(bits.get(b, "")) for b in blocks],
            *[f"{r['val_acc'][s]:.1f}" if s in r["val_acc"] else "" for s in steps],
        )
    console.print(table)
