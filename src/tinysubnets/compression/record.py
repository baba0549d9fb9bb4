"""What consolidation froze for one task, typed, and written to the model file as it is.

Besides its mask M_t (kept with the learner's masks, which every evaluation reads), a finished
task owns: its own values in each masked parameter and its head, coded once when they freeze
(a codebook and codes, `value_coding`); the bit-width the quantization search chose for each
of those blocks; its norm layers' state; its name, labels and input preprocessing; the
backbone copy it computes with. The model file writes these records; it re-derives nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from tinysubnets.compression.value_coding import ValueBlock, encode_values
from tinysubnets.nn.network import HEAD, TSNNetwork, head_values
from tinysubnets.tasks import Task

EMPTY = encode_values(np.zeros(0, np.float32))  # a parameter where a task owns nothing


@dataclass(frozen=True)
class FinishedTask:
    """One finished task's record (see the module docstring)."""

    name: str
    labels: tuple[Any, ...]
    preprocess: dict[str, Any]
    blocks: dict[str, ValueBlock]  # masked parameter name or HEAD -> its own values, coded
    bits: dict[str, int]  # the bit-width quantization chose per block (empty: not quantized)
    norms: dict[str, np.ndarray]  # norm tensor name -> float32 values
    copy: int = 0

    def block(self, name: str) -> ValueBlock:
        """The task's own values in ``name`` (none in a parameter added after it finished)."""
        return self.blocks.get(name, EMPTY)

    def info(self) -> dict[str, Any]:
        """Name, labels and preprocessing: what a prediction needs besides the weights."""
        return {"name": self.name, "labels": list(self.labels), "preprocess": self.preprocess}

    def state(self) -> dict[str, Any]:
        """Tensors and plain values only, for ``torch.load(..., weights_only=True)``."""
        return {
            "info": self.info(), "bits": dict(self.bits), "copy": self.copy,
            "blocks": {n: [b.bits, b.centroids, b.coding, _tensor(b.codebook), _tensor(b.codes)]
                       for n, b in self.blocks.items()},
            "norms": {n: torch.from_numpy(v.copy()) for n, v in self.norms.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FinishedTask:
        info = state["info"]
        blocks = {n: ValueBlock(bits, k, _bytes(table), _bytes(codes), coding)
                  for n, (bits, k, coding, table, codes) in state["blocks"].items()}
        return cls(info["name"], tuple(info["labels"]), info["preprocess"], blocks,
                   dict(state["bits"]), {n: v.numpy() for n, v in state["norms"].items()},
                   int(state["copy"]))


def _tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.zeros(
        0, dtype=torch.uint8)


def _bytes(t: torch.Tensor) -> bytes:
    return t.numpy().tobytes()


@torch.no_grad()
def freeze_record(
    net: TSNNetwork, t: int, task: Task, own: dict[str, torch.Tensor], bits: dict[str, int]
) -> FinishedTask:
    """Task ``t``'s record right after consolidation: ``own[name]`` marks the positions it
    claimed or renewed (in flat order the values it reads there are its block), ``bits`` the
    search's choice."""
    layers = net.masked_layers()
    blocks = {name: encode_values(layers[name].values_for(t)[mask].cpu().numpy())
              for name, mask in own.items()}
    blocks[HEAD] = encode_values(head_values(net.heads[t]).cpu().numpy())
    state = net.norm_state(t)
    norms = {n: state[n].detach().cpu().numpy().astype(np.float32)
             for n in net.kept_norm_names()}
    return FinishedTask(task.name, tuple(task.labels), dict(task.preprocess), blocks,
                        dict(bits), norms, net.copy_of[t])
