"""Capacity measured from the bytes a model file holds (docs/design.md, invariant 3).

Every section of the file is counted in its part, per task and per layer; the header and the
checksum are reported apart as overhead. Percentages are of the dense fp32 backbone
(32 bits × backbone weights), as in the paper's tables; heads are outside that backbone but
inside the file, so they are counted too. A replay memory (the paper's "with replay memory")
is a part of its own, ``replay``, present only in files that keep one: a file without it
measures exactly as before.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from tinysubnets.artifact.container import Section

PARTS = ("weights", "codebooks", "masks", "heads", "norms", "tasks")  # listed always, 0 when absent


@dataclass
class ModelCapacity:
    """Bytes of a model file by part, by task and by layer, and the dense reference."""

    backbone_weights: int
    file_bytes: int
    overhead_bytes: int
    parts: dict[str, int] = field(default_factory=dict)
    per_task: list[dict[str, int]] = field(default_factory=list)
    per_layer: dict[str, dict[str, int]] = field(default_factory=dict)
    bits: list[dict[str, int]] = field(default_factory=list)  # per task: bit-width per block

    @property
    def dense_bits(self) -> int:
        return 32 * self.backbone_weights

    def pct(self, n_bytes: int) -> float:
        """``n_bytes`` as % of the dense fp32 backbone."""
        return 100.0 * 8 * n_bytes / self.dense_bits if self.dense_bits else 0.0

    @property
    def total_bytes(self) -> int:
        """Bytes of all parts (the file minus its overhead)."""
        return sum(self.parts.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "backbone_weights": self.backbone_weights,
            "dense_fp32_bytes": self.dense_bits // 8,
            "file_bytes": self.file_bytes,
            "overhead_bytes": self.overhead_bytes,
            "total_bytes": self.total_bytes,
            "total_pct": self.pct(self.total_bytes),
            "file_pct": self.pct(self.file_bytes),
            "parts_bytes": dict(self.parts),
            "parts_pct": {p: self.pct(b) for p, b in self.parts.items()},
            "per_task_bytes": self.per_task,
            "per_layer_bytes": self.per_layer,
            "bits": self.bits,
        }


def measure(
    sections: list[Section], file_bytes: int, overhead: int, backbone_weights: int,
    n_tasks: int, bits: list[dict[str, int]],
) -> ModelCapacity:
    """Sum the sections of a file by part, task and layer."""
    parts: dict[str, int] = dict.fromkeys(PARTS, 0)
    per_task = [dict.fromkeys(PARTS, 0) for _ in range(n_tasks)]
    per_layer: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(PARTS, 0))
    for s in sections:
        size = len(s.data)
        parts[s.part] = parts.get(s.part, 0) + size
        if s.task is not None and 0 <= s.task < n_tasks:
            per_task[s.task][s.part] = per_task[s.task].get(s.part, 0) + size
        if s.layer is not None:
            per_layer[s.layer][s.part] = per_layer[s.layer].get(s.part, 0) + size
    return ModelCapacity(
        backbone_weights, file_bytes, overhead, parts, per_task, dict(per_layer), bits
    )
