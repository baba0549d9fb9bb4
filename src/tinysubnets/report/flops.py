"""FLOPs and bit-operations of one task's forward pass (the paper's Table 6).

Counted per sample, from layer shapes and the task's mask M_t, for the MAC layers only: the
masked layers and the task's head. A multiply-accumulate (MAC) is 2 FLOPs. BatchNorm, ReLU,
pooling, residual additions and bias additions are left out, as is usual (and as
``torch.utils.flop_counter`` does): they cost O(1) per activation, against O(fan-in) per
output for a MAC layer, and they do not depend on the mask, so they would blur the
dense-versus-sparse comparison without changing it.

Bit-operations (BOPs) weigh each MAC by its operands' widths: MACs × weight bits × activation
bits. "Codebook" BOPs count each weight at the bit-width its owner stored it with (a task also
computes with weights earlier tasks own and quantized): the code width of the owner's block
for that layer, as the model file's header records it (32 where a block was kept raw). That is
exact per weight, where taking the task's own block width for every weight would not be.
(The paper notes a float MAC costs ~9-10× an <8b,8b> one; BOPs, a hardware-agnostic measure,
put <32,32> at 16× <8,8>.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tinysubnets.artifact.model import CompressedModel
from tinysubnets.errors import ConfigError, ShapeError
from tinysubnets.nn.network import HEAD, TSNNetwork, check_task_id

PRECISIONS = (32, 16, 8, 4)  # uniform <w,a> bit-widths reported: fp32, <16,16>, <8,8>, <4,4>
CODEBOOK_ACTIVATION_BITS = (8, 16)  # activations beside codebook weights


@dataclass(frozen=True)
class LayerOps:
    """One MAC layer of a task: its weights, those the mask keeps, and how often each is used.

    ``positions`` is the number of outputs per sample a weight takes part in (1 for a linear
    layer, out_h × out_w for a convolution), so MACs are weights × positions. ``kept_bits``
    is the sum of the kept weights' stored bit-widths (None where they are unknown).
    """

    name: str
    weights: int
    kept: int
    positions: int
    kept_bits: int | None = None

    @property
    def dense_macs(self) -> int:
        return self.weights * self.positions

    @property
    def sparse_macs(self) -> int:
        return self.kept * self.positions

    def codebook_bops(self, activation_bits: int) -> int | None:
        """Sparse BOPs with each weight at its owner's bit-width."""
        if self.kept_bits is None:
            return None
        return self.kept_bits * self.positions * activation_bits

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.name, "weights": self.weights, "kept": self.kept,
            "positions": self.positions, "dense_macs": self.dense_macs,
            "sparse_macs": self.sparse_macs, "kept_bits": self.kept_bits,
        }


@dataclass(frozen=True)
class TaskOps:
    """MACs, FLOPs and BOPs of one task's forward pass of one sample, layer by layer."""

    task_id: int
    layers: tuple[LayerOps, ...]

    @property
    def dense_macs(self) -> int:
        return sum(layer.dense_macs for layer in self.layers)

    @property
    def sparse_macs(self) -> int:
        return sum(layer.sparse_macs for layer in self.layers)

    @property
    def dense_flops(self) -> int:
        return 2 * self.dense_macs

    @property
    def sparse_flops(self) -> int:
        return 2 * self.sparse_macs

    def bops(self, weight_bits: int, activation_bits: int, sparse: bool = True) -> int:
        """MACs × weight bits × activation bits, with the mask (``sparse``) or without."""
        macs = self.sparse_macs if sparse else self.dense_macs
        return macs * weight_bits * activation_bits

    def codebook_bops(self, activation_bits: int) -> int | None:
        """Sparse BOPs with every weight at its owner's stored bit-width (None if unknown)."""
        if any(layer.kept_bits is None for layer in self.layers):
            return None
        return sum(layer.kept_bits * layer.positions for layer in self.layers) * activation_bits

    def to_dict(self) -> dict[str, Any]:
        """Totals, BOPs by precision (keys ``w{b}a{b}``, dense and sparse) and layers."""
        return {
            "task": self.task_id,
            "dense_macs": self.dense_macs, "sparse_macs": self.sparse_macs,
            "dense_flops": self.dense_flops, "sparse_flops": self.sparse_flops,
            "bops": {
                f"w{b}a{b}": {"dense": self.bops(b, b, False), "sparse": self.bops(b, b)}
                for b in PRECISIONS
            },
            "codebook_bops": {f"a{a}": self.codebook_bops(a) for a in CODEBOOK_ACTIVATION_BITS},
            "layers": [layer.to_dict() for layer in self.layers],
        }


def _task_layers(net: TSNNetwork, task_id: int) -> dict[str, nn.Module]:
    """The masked weights the task computes with (its backbone's or its copy's); biases are
    additions, left out like the other O(1)-per-activation operations."""
    return {name: layer for name, (_, layer) in net.task_layers(task_id).items()
            if layer.owner.dim() > 1}


def _mac_layers(net: TSNNetwork, task_id: int) -> dict[str, nn.Module]:
    """The modules whose outputs the MACs produce: each masked weight's layer, and the head."""
    return {**{name: net.module_of(name) for name in _task_layers(net, task_id)},
            HEAD: net.heads[task_id]}


@torch.no_grad()
def output_positions(net: TSNNetwork, task_id: int, masks: Mapping[str, Tensor]) -> dict[str, int]:
    """Outputs per sample of each MAC layer, per output channel: read by forward hooks on one
    zero input (batch 1), so any backbone is covered without re-deriving its architecture."""
    modules = _mac_layers(net, task_id)
    shapes: dict[str, torch.Size] = {}
    hooks = [
        module.register_forward_hook(
            lambda _m, _i, out, name=name: shapes.__setitem__(name, out.shape)
        )
        for name, module in modules.items()
    ]
    modes = {m: m.training for m in net.modules()}
    net.eval()  # BatchNorm must neither update its statistics nor see a batch of one
    try:
        x = torch.zeros(1, *net.input_shape, device=net.heads[task_id].weight.device)
        net(x, task_id, dict(masks))
    finally:
        for hook in hooks:
            hook.remove()
        for m, training in modes.items():
            m.training = training
    return {name: shapes[name][1:].numel() // _out_channels(net, name, task_id)
            for name in modules}


def _out_channels(net: TSNNetwork, name: str, task_id: int) -> int:
    if name == HEAD:
        return net.heads[task_id].out_features
    return net.masked_layers()[name].owner.shape[0]


def task_ops(
    net: TSNNetwork, masks: Mapping[str, Tensor], task_id: int,
    weight_bits: Sequence[Mapping[str, int]] | None = None,
) -> TaskOps:
    """Operations of task ``task_id`` computed with its masks M_t (layer name -> bool tensor).

    ``weight_bits[o][block]`` is the bit-width task o stored block (a layer's name, or HEAD)
    with, as in a model file's header; with it, codebook BOPs count each kept weight at its
    owner's width (a position no task owns yet counts as the task's own).
    """
    check_task_id(task_id, len(net.heads))
    layers = _task_layers(net, task_id)
    for name, layer in layers.items():
        if name not in masks or masks[name].shape != layer.owner.shape:
            raise ShapeError(f"task {task_id}: no mask of shape {tuple(layer.owner.shape)} "
                             f"for layer {name}")
    if weight_bits is not None and len(weight_bits) <= task_id:
        raise ConfigError(f"bit-widths for {len(weight_bits)} tasks, task {task_id} needs "
                          f"{task_id + 1}")
    positions = output_positions(net, task_id, masks)
    result = []
    for name, layer in layers.items():
        mask = masks[name].to(layer.owner.device, torch.bool)
        kept_bits = None
        if weight_bits is not None:
            owner = layer.owners_for(task_id)[mask].long()
            owner = torch.where(owner < 0, task_id, owner)
            table = torch.tensor([bits.get(name, 0) for bits in weight_bits], device=owner.device)
            kept_bits = int(table[owner].sum())
        result.append(LayerOps(name, mask.numel(), int(mask.sum()), positions[name], kept_bits))
    head = net.heads[task_id].weight  # dense: a head has no mask; its bias adds are left out
    head_bits = None if weight_bits is None else head.numel() * weight_bits[task_id][HEAD]
    result.append(LayerOps(HEAD, head.numel(), head.numel(), positions[HEAD], head_bits))
    return TaskOps(task_id, tuple(result))


def model_ops(model: CompressedModel) -> list[TaskOps]:
    """Operations of every task of a loaded model file, with the bit-widths of its header
    (which the reader keeps, per task and block, in ``model.capacity.bits``)."""
    bits = model.capacity.bits
    return [task_ops(model.net, model.masks[t], t, bits) for t in range(model.num_tasks)]
