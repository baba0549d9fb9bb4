"""The layout of a model file's sections, shared by its writer and its reader.

Sections, in file order:
- ``masks/<layer>``: the masks M_0..M_{T-1} of the layer, coded together (`mask_coding`);
- ``weights/<t>/<layer>/codebook`` and ``.../codes``: task t's own values O_t in the layer
  (`value_coding`), in flat position order;
- ``heads/<t>/codebook`` and ``heads/<t>/values``: task t's head, weight then bias;
- ``norms/<t>`` (backbones with BatchNorm): task t's norms in the backbone's order, each as
  float32 weight, bias, running mean, running variance.

Owners are not stored: the owner of a position is the first task whose mask holds it (own
weights are M_t minus C_{t-1}), so the masks say it at no extra cost.
"""

from __future__ import annotations

import numpy as np

from tinysubnets.nn.backbones import HEAD

SectionKey = tuple[str, str, int | None, str | None]  # name, part, task, layer


def owners_from_masks(masks: list[np.ndarray]) -> np.ndarray:
    """Owner task of each position (the first mask holding it), -1 where none does."""
    owner = np.full(masks[0].shape if masks else 0, -1, dtype=np.int64)
    for t in reversed(range(len(masks))):
        owner[masks[t]] = t
    return owner




def block_names(task: int, block: str) -> tuple[str, str]:
    """Names of the codebook and code sections of a task's block (a layer's name, or HEAD)."""
    if block == HEAD:
        return f"heads/{task}/codebook", f"heads/{task}/values"
    return f"weights/{task}/{block}/codebook", f"weights/{task}/{block}/codes"


NORM_STATE = ("weight", "bias", "running_mean", "running_var")  # per BatchNorm, in this order


def expected_sections(layers: list[str], n_tasks: int, norms: bool = False) -> list[SectionKey]:
    """(name, part, task, layer) of every section, in file order: the layout's single source."""
    table: list[SectionKey] = [(f"masks/{name}", "masks", None, name) for name in layers]
    for t in range(n_tasks):
        for name in layers:
            codebook, codes = block_names(t, name)
            table += [(codebook, "codebooks", t, name), (codes, "weights", t, name)]
    for t in range(n_tasks):
        codebook, values = block_names(t, HEAD)
        table += [(codebook, "heads", t, None), (values, "heads", t, None)]
    if norms:
        table += [(f"norms/{t}", "norms", t, None) for t in range(n_tasks)]
    return table


