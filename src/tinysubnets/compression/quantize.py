"""Adaptive non-linear quantization (TSN step 4): k-means codebooks, the bit-width searched.

For task t, each layer's own weights (M_t minus C_{t-1}) are clustered into 2^b centroids.
The bit-width starts at ``b_min`` and grows until task t's validation accuracy (with M_t) is
within ``threshold`` points of the unquantized value; then each layer, largest first, tries
fewer bits on its own. The quantized values are written into the trainable tensor at the own
positions, so consolidation freezes the centroids themselves: a value is quantized once, by
its owner, and never again (invariant 2). Codes and codebooks need not be stored apart: they
are the distinct frozen values of the owner's positions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
from torch import Tensor

from tinysubnets.compression.kmeans import kmeans_1d
from tinysubnets.learner.trainer import accuracy
from tinysubnets.nn.backbones import TSNNetwork
from tinysubnets.scenarios.base import Split


@dataclass
class QuantizeReport:
    """The bit-width chosen per layer, and the accuracy it kept."""

    bits: dict[str, int] = field(default_factory=dict)
    own: dict[str, int] = field(default_factory=dict)
    val_acc_before: float = 0.0
    val_acc_after: float = 0.0
    evaluations: int = 0
    time_s: float = 0.0


@torch.no_grad()
def quantize_task(
    net: TSNNetwork,
    task_id: int,
    masks: dict[str, Tensor],
    val: Split,
    b_min: int = 2,
    b_max: int = 8,
    threshold: float = 0.5,
) -> QuantizeReport:
    """Quantize task ``task_id``'s own weights in place (before consolidation); report bits.

    If even ``b_max`` bits lose more than ``threshold`` points, ``b_max`` is kept and the
    report shows the drop.
    """
    start = time.perf_counter()
    report = QuantizeReport(val_acc_before=accuracy(net, task_id, masks, val))
    floor = report.val_acc_before - threshold
    own = {n: m.own_positions(masks[n]) for n, m in net.masked_layers().items()}
    positions = {n: p for n, p in own.items() if p.numel()}
    layers = {n: m for n, m in net.masked_layers().items() if n in positions}
    original = {n: layers[n].weight.detach().flatten()[p].clone() for n, p in positions.items()}
    cache: dict[tuple[str, int], Tensor] = {}

    def quantized(name: str, bits: int) -> Tensor:
        if (name, bits) not in cache:
            codebook, codes = kmeans_1d(original[name].numpy(), bits)
            cache[name, bits] = torch.from_numpy(codebook.decode(codes))
        return cache[name, bits]

    def trial(bits: dict[str, int]) -> float:
        for name, b in bits.items():
            layers[name].weight.data.view(-1)[positions[name]] = quantized(name, b)
        report.evaluations += 1
        return accuracy(net, task_id, masks, val)

    bits = dict.fromkeys(layers, b_max)
    for b in range(b_min, b_max + 1):
        if trial(dict.fromkeys(layers, b)) >= floor:
            bits = dict.fromkeys(layers, b)
            break
    # Per-layer bit-widths where they save bits at the same accuracy: largest layer first.
    for name in sorted(layers, key=lambda n: -positions[n].numel()):
        while bits[name] > b_min and trial({**bits, name: bits[name] - 1}) >= floor:
            bits[name] -= 1
    report.val_acc_after = trial(bits)
    report.evaluations -= 1  # the last call only writes the chosen values back
    report.bits = bits
    report.own = {n: p.numel() for n, p in positions.items()}
    report.time_s = time.perf_counter() - start
    return report
