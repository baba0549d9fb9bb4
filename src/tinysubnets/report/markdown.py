"""Markdown building blocks for report.md: tables, numbers, figure links.

Every table goes through `table` so that all sections look alike and a missing value reads as
"n/a" rather than "None".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MISSING = "n/a"


def num(value: Any, digits: int = 2, signed: bool = False) -> str:
    """A number with fixed decimals ("n/a" for None); ``signed`` adds "+" (for BWT/FWT);
    integers (counts, bytes) keep no decimals."""
    if value is None or value == "":
        return MISSING
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _numeric(cell: str) -> bool:
    try:
        float(cell.replace(",", "").rstrip("%"))
    except ValueError:
        return cell in ("", MISSING)
    return True


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A pipe table; columns of numbers are right-aligned, the first column and text left."""
    cells = [[MISSING if c is None else str(c).replace("|", "\\|") for c in row] for row in rows]
    right = [i > 0 and all(_numeric(row[i]) for row in cells if i < len(row))
             for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if r else ":---" for r in right) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def section(title: str, *blocks: str | None, level: int = 2) -> str:
    """A heading followed by the non-empty blocks, separated by blank lines."""
    return "\n\n".join([f"{'#' * level} {title}", *[b for b in blocks if b]])


def figure(alt: str, link: str | None) -> str | None:
    """An embedded image with a relative link; nothing when the figure was not drawn."""
    return f"![{alt}]({link})" if link else None


def notes(items: Sequence[str]) -> str | None:
    """A bullet list of notes (what a run lacks), or nothing."""
    return "\n".join(f"- {n}" for n in items) if items else None
