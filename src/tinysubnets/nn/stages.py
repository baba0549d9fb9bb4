"""A backbone as a sequence of stages, so that an evaluation can start part-way through.

Post-pruning changes one layer at a time: whatever comes before that layer's stage computes
the same activations on every trial, so they are computed once (see `compression.prune`).
Each backbone's ``forward`` is its stages run in order, so the two paths do the same
operations on the same tensors.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

Norms = dict[str, nn.Module]


@dataclass(frozen=True)
class Stage:
    """One step of a backbone's forward: ``run(x, weights, norms)``, and the masked layers it
    computes with (names in its backbone; none for a pooling-only step)."""

    layers: tuple[str, ...]
    run: Callable[[Tensor, dict[str, Tensor], Norms], Tensor]


def run_stages(
    stages: list[Stage], x: Tensor, weights: dict[str, Tensor], norms: Norms, start: int = 0
) -> Tensor:
    """The output of ``stages[start:]`` on ``x`` (the input of stage ``start``)."""
    for stage in stages[start:]:
        x = stage.run(x, weights, norms)
    return x
