"""A readable end-of-run summary: the accuracy matrix and the headline measures."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table


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
    cap = results["capacity"]
    fwt = results["fwt"]
    per_task = results["per_task"]
    layers = ", ".join(f"{n} {v['used_pct']:.1f}%" for n, v in cap["layers"].items())
    times = ", ".join(f"{t['time_s']:.1f}" for t in per_task)
    console.print(
        f"ACC {results['acc']:.2f}  BWT {results['bwt']:+.2f}  "
        f"FWT {'n/a' if fwt is None else f'{fwt:+.2f}'}  "
        f"capacity used {cap['used_pct']:.1f}% of {cap['backbone_weights']:,} backbone weights  "
        f"({layers})"
    )
    console.print(f"time per task (s): {times}; total {results['time_total_s']:.0f} s")
