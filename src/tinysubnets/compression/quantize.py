"""Adaptive non-linear quantization (TSN step 4): k-means codebooks, the bit-width searched.

For task t, each block of its own values (per layer, the own weights M_t minus C_{t-1}; and
its head) is clustered into 2^b centroids. The bit-width starts at ``b_min`` and grows until
task t's validation accuracy (with M_t) is within ``threshold`` points of the unquantized value;
then each block, largest first, tries fewer bits on its own. Optionally the centroids are then
fine-tuned with the codes fixed (`finetune`), which wins back most of the drop.

The quantized values are written into the trainable tensors, so consolidation freezes the
centroids themselves: a value is quantized once, by its owner, and never again
(docs/design.md, invariant 2).
Codes and codebooks need not be kept apart: they are the distinct values of the owner's
positions, which is what the model file stores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from tinysubnets.compression.kmeans import kmeans_1d
from tinysubnets.config import QuantizeConfig
from tinysubnets.nn.evaluate import accuracy, accuracy_at_least
from tinysubnets.nn.network import HEAD, TSNNetwork, head_values, set_head_values
from tinysubnets.tasks import Split


@dataclass
class QuantizeReport:
    """The bit-width chosen per block (layers and head), and the accuracy it kept."""

    bits: dict[str, int] = field(default_factory=dict)
    own: dict[str, int] = field(default_factory=dict)
    val_acc_before: float = 0.0
    val_acc_after: float = 0.0
    evaluations: int = 0
    time_s: float = 0.0
    finetune: dict | None = None  # see finetune.FinetuneReport
    # Validation accuracy with every block at b bits (plain k-means, before fine-tuning), for
    # each b tried: the paper's Table 3 (accuracy against bit-width).
    uniform_val_acc: dict[int, float] = field(default_factory=dict)


# Uniform bit-widths always measured (when within b_min..b_max), even past the chosen one:
# they cost an evaluation each and fill the paper's Table 3. They never change the result.
TABLE3_BITS = (3, 4, 5)


FLOAT16_MAX = 65504.0


def round_codebook(centroids: Tensor, codebook_bits: int) -> Tensor:
    """Centroids as the model file stores them: rounded to float16 (``codebook_bits`` 16),
    unless one is beyond float16's range; then, as with 32, unchanged (float32)."""
    if codebook_bits != 16 or not centroids.numel() or centroids.abs().max() > FLOAT16_MAX:
        return centroids
    return centroids.half().float()


@dataclass
class Block:
    """One task's own values in one layer (``positions``: flat indices) or its head (None)."""

    name: str
    original: Tensor
    write: Callable[[Tensor], None]
    positions: Tensor | None = None


def own_blocks(net: TSNNetwork, task_id: int, masks: dict[str, Tensor], head: bool) -> list[Block]:
    """The task's quantizable blocks: each layer's own weights, then (if ``head``) its head."""
    blocks = []
    for name, layer in net.masked_layers().items():
        positions = layer.own_positions(masks[name])
        if positions.numel():
            flat = layer.weight.data.view(-1)

            def write(v: Tensor, flat: Tensor = flat, p: Tensor = positions) -> None:
                flat[p] = v

            blocks.append(Block(name, flat[positions].clone(), write, positions))
    if head:
        h = net.heads[task_id]
        blocks.append(Block(HEAD, head_values(h).clone(), lambda v: set_head_values(h, v)))
    return blocks


@torch.no_grad()
def quantize_task(
    net: TSNNetwork,
    task_id: int,
    masks: dict[str, Tensor],
    val: Split,
    cfg: QuantizeConfig,
    finetune: Callable[[list[Block]], dict] | None = None,
) -> QuantizeReport:
    """Quantize task ``task_id``'s own values in place (before consolidation); report bits.

    If even ``cfg.b_max`` bits lose more than ``cfg.threshold`` points, ``b_max`` is kept and
    the report shows the drop; ``cfg.heads`` quantizes the head too. ``finetune(blocks)`` is
    called last, on the quantized blocks. With ``cfg.codebook_bits`` 16 the centroids are
    rounded to float16 before they are tried, so the accuracy searched is that of the values
    the model file stores.
    """
    start = time.perf_counter()
    report = QuantizeReport(val_acc_before=accuracy(net, task_id, masks, val))
    b_min, b_max, codebook_bits = cfg.b_min, cfg.b_max, cfg.codebook_bits
    floor = report.val_acc_before - cfg.threshold
    blocks = {b.name: b for b in own_blocks(net, task_id, masks, cfg.heads)}
    cache: dict[tuple[str, int], tuple[Tensor, Tensor]] = {}

    def quantized(name: str, bits: int) -> tuple[Tensor, Tensor]:
        if (name, bits) not in cache:
            original = blocks[name].original
            codebook, codes = kmeans_1d(original.cpu().numpy(), bits)
            centroids = torch.from_numpy(codebook.centroids)
            cache[name, bits] = (
                round_codebook(centroids, codebook_bits).to(original.device),
                torch.from_numpy(codes.astype("int64")).to(original.device),
            )
        return cache[name, bits]

    def write(bits: dict[str, int]) -> None:
        for name, b in bits.items():
            centroids, codes = quantized(name, b)
            blocks[name].write(centroids[codes])
        report.evaluations += 1

    def trial(bits: dict[str, int]) -> float:
        write(bits)
        return accuracy(net, task_id, masks, val)

    def passes(bits: dict[str, int]) -> bool:
        write(bits)
        return accuracy_at_least(net, task_id, masks, val, floor)

    bits, found = dict.fromkeys(blocks, b_max), False
    for b in range(b_min, b_max + 1):
        if found and b > max(TABLE3_BITS):
            break
        report.uniform_val_acc[b] = trial(dict.fromkeys(blocks, b))
        if not found and report.uniform_val_acc[b] >= floor:
            bits, found = dict.fromkeys(blocks, b), True
    # Per-block bit-widths where they save bits at the same accuracy: largest block first.
    for name in sorted(blocks, key=lambda n: -blocks[n].original.numel()):
        while bits[name] > b_min and passes({**bits, name: bits[name] - 1}):
            bits[name] -= 1
    report.val_acc_after = trial(bits)
    report.evaluations -= 1  # the last call only writes the chosen values back
    report.bits = bits
    report.own = {n: b.original.numel() for n, b in blocks.items()}
    if finetune is not None and blocks:
        report.finetune = finetune(list(blocks.values()))
    report.time_s = time.perf_counter() - start
    return report
