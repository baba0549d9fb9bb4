"""The replay memory (the paper's Table 5, "with replay memory"): a few samples per task.

After task t is learned, ``m`` of its training samples are kept, chosen by reservoir sampling
(Vitter's Algorithm R) over the training split read in a seeded order, so the same run seed
keeps the same samples, also across a resume. A task's memory never changes afterwards; it is
stored in the model file, where its bytes count in capacity like everything else.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tinysubnets.tasks import Split


def reservoir_indices(n: int, m: int, generator: torch.Generator) -> Tensor:
    """Indices of ``min(m, n)`` distinct items of ``range(n)``, each kept with probability m/n.

    Algorithm R over the items in the order ``randperm(n)``: the first m fill the reservoir;
    item i >= m then draws j uniform in [0, i] and, if j < m, replaces slot j. A slot ends up
    with the last item that drew it, computed here without a Python loop.
    """
    order = torch.randperm(n, generator=generator)
    if n <= m:
        return order
    i = torch.arange(m, n)
    j = (torch.rand(n - m, generator=generator, dtype=torch.float64) * (i + 1)).long()
    hit = j < m
    slot = torch.arange(m).scatter_reduce(0, j[hit], i[hit], reduce="amax")
    return order[slot]


def keep_samples(split: Split, m: int, generator: torch.Generator) -> Split:
    """A task's replay memory: ``min(m, len(split))`` reservoir-sampled items of ``split``, as
    float32 inputs and their labels on the host."""
    idx = reservoir_indices(len(split), m, generator).to(split.x.device)
    x, y = split.x.detach()[idx], split.y.detach()[idx]
    return Split(x.to("cpu", torch.float32).contiguous(), y.cpu())
