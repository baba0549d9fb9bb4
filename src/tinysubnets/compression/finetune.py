"""Fine-tuning a task's codebooks with its codes fixed (quantization-aware, before freezing).

The same pass retrains a task's remaining own weights after post-pruning: unquantized, every
weight is its own centroid.

Plain post-hoc k-means costs accuracy at 2-3 bits. Here each block's centroids become the only
trainable values: a weight is ``centroids[code]``, so a centroid's gradient is the sum over
the weights that share it, and the block stays at its bit-width. Only task t's own values and
head move; frozen values of earlier tasks are read, never written (docs/design.md,
invariants 1 and 2). The
best validation epoch is kept, the unfine-tuned centroids included, so it never loses accuracy
on validation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from tinysubnets.compression.quantize import Block, round_codebook
from tinysubnets.nn.evaluate import accuracy
from tinysubnets.nn.network import HEAD, TSNNetwork, head_values
from tinysubnets.tasks import Split, iterate_batches


@dataclass
class FinetuneReport:
    """Validation accuracy before and after; the epoch kept (0: the k-means centroids)."""

    val_acc_before: float
    val_acc_after: float
    best_epoch: int
    val_acc: list[float] = field(default_factory=list)


def finetune_codebooks(
    net: TSNNetwork,
    task_id: int,
    masks: dict[str, Tensor],
    blocks: list[Block],
    train: Split,
    val: Split,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    generator: torch.Generator,
    codebook_bits: int,
) -> dict:
    """Train the centroids of ``blocks`` (codes fixed) for ``epochs``; write the best back.

    ``blocks`` must already hold quantized values (see `quantize_task`). With
    ``codebook_bits`` 16, each epoch's centroids are rounded to float16 before they are
    evaluated and written, as the model file stores them.
    """
    layers = net.masked_layers()
    head = net.heads[task_id]
    n_weight = head.weight.numel()
    centroids: dict[str, Tensor] = {}
    codes: dict[str, Tensor] = {}
    for block in blocks:  # codebook and codes of the values as quantized (distinct centroids)
        table, codes[block.name] = torch.unique(_current(net, task_id, block), return_inverse=True)
        centroids[block.name] = table.clone().requires_grad_(True)
    optimizer = torch.optim.Adam(list(centroids.values()), lr=lr)
    best = accuracy(net, task_id, masks, val)
    report = FinetuneReport(best, best, 0)
    best_values = {n: c.detach().clone() for n, c in centroids.items()}
    by_name = {b.name: b for b in blocks}
    with torch.no_grad():
        base = {n: layer.masked_weight(masks[n]) for n, layer in layers.items()}

    def forward(x: Tensor) -> Tensor:
        weights = {}
        for name, w in base.items():
            if name in centroids:
                values = centroids[name][codes[name]]
                w = w.flatten().index_put((by_name[name].positions,), values).view_as(w)
            weights[name] = w
        features = net.features(x, task_id, weights)
        if HEAD in centroids:
            v = centroids[HEAD][codes[HEAD]]
            return F.linear(features, v[:n_weight].view_as(head.weight), v[n_weight:])
        return head(features)

    for epoch in range(1, epochs + 1):
        with torch.enable_grad():
            for x, y in iterate_batches(train, batch_size, generator):
                loss = F.cross_entropy(forward(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            for name, c in centroids.items():
                c.copy_(round_codebook(c, codebook_bits))
                by_name[name].write(c[codes[name]])
        acc = accuracy(net, task_id, masks, val)
        report.val_acc.append(acc)
        if acc > best:
            best, report.best_epoch = acc, epoch
            best_values = {n: c.detach().clone() for n, c in centroids.items()}
    with torch.no_grad():
        for name, c in best_values.items():
            by_name[name].write(c[codes[name]])
    report.val_acc_after = best
    return asdict(report)


def _current(net: TSNNetwork, task_id: int, block: Block) -> Tensor:
    """The block's values as they are now (quantized)."""
    if block.positions is None:
        return head_values(net.heads[task_id])
    layer = dict(net.masked_layers())[block.name]
    return layer.weight.detach().view(-1)[block.positions]
