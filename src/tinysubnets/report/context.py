"""What every report section sees: the runs, and where their figures were written.

A section is a function that returns ``(title, blocks)`` or ``None`` when it has nothing to
say; `build` adds the heading at the right level. Keeping sections free of file writing lets
new ones (FLOPs, activation quantization) be added as one function each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from tinysubnets.report.rundir import RunData

Blocks = list[str | None]  # markdown paragraphs/tables/figure links; None ones are dropped
SectionOut = tuple[str, Blocks] | None
# Overview sections: one table row (or column) per run, so one run and an ablation of several
# read the same way. Run sections: one run in detail, one row per task.
OverviewSection = Callable[["Context"], SectionOut]
RunSection = Callable[["Context", RunData], SectionOut]


@dataclass
class Context:
    """The runs of a report and the relative links of the figures drawn for them."""

    runs: list[RunData]
    # (run label, figure file name) -> link relative to report.md; label "" for comparisons
    links: dict[tuple[str, str], str] = field(default_factory=dict)
    data_dir: str | None = None  # the scenario's data, for sections that measure (Table 7)
    activations: bool = True  # measure accuracy with quantized activations (needs the data)
    models: dict[Any, Any] = field(default_factory=dict)  # model files, measurements: once each
    backbone: nn.Module | None = None  # a fresh instance of the user's module, if the runs use one

    @property
    def several(self) -> bool:
        return len(self.runs) > 1

    def figure(self, run: RunData | None, name: str) -> str | None:
        """The link of a figure, or None if it was not drawn (e.g. quantization was off)."""
        return self.links.get(("" if run is None else run.label, name))
