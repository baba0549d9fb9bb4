"""The layout of a model file's sections, shared by its writer and its reader.

Sections, in file order:
- ``masks/<layer>``: the masks M_0..M_{T-1} of the layer, coded together (`mask_coding`);
- ``renew/<layer>`` (files whose header has ``slots`` above 1): which positions each task
  renewed (a claimed position where it stored a value of its own in the next free slot). Only
  a position the task's mask holds and an earlier task claimed can be renewed, so one bit is
  stored per such position: task 0's, then task 1's, ... in flat order, concatenated and coded
  as one mask (`mask_coding`); empty when no task shares a claimed position;
- ``weights/<t>/<layer>/codebook`` and ``.../codes``: task t's own values O_t in the layer
  (`value_coding`), in flat position order;
- ``heads/<t>/codebook`` and ``heads/<t>/values``: task t's head, weight then bias;
- ``norms/<t>`` (backbones with norm layers): task t's norm tensors, the header's ``norms``
  list (name, shape) in order, each as little-endian float32;
- ``tasks/<t>``: task t's name, labels (the user's values, in class-index order) and input
  preprocessing, as UTF-8 JSON (part ``tasks``: what a prediction needs besides the weights);
- ``replay/<t>`` (runs with a replay memory): task t's kept samples, their inputs as
  little-endian float32 (count × input shape) then their labels as little-endian uint16. The
  header's ``replay`` entry says so: ``{"x": "<f4", "y": "<u2", "tasks": [{"count": m,
  "shape": [...]}, ...]}``, one per task; a file without it holds no replay sections.

Owners are not stored: the owner of a position is the first task whose mask holds it (own
weights are M_t minus C_{t-1}), so the masks say it at no extra cost; with slots, the owner of
a position's next value is the next task that renewed it.
"""

from __future__ import annotations

from math import prod

import numpy as np
import torch

from tinysubnets.nn.network import HEAD
from tinysubnets.tasks import Split

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


TASK_INFO = "tasks"  # the part and the sections' prefix of each task's name, labels, preprocess


REPLAY = "replay"  # the part, the sections' prefix and the header's entry
REPLAY_X, REPLAY_Y = "<f4", "<u2"  # dtypes of the inputs and of the labels


def replay_size(count: int, shape: tuple[int, ...]) -> int:
    """Bytes of a replay section: ``count`` float32 inputs of ``shape`` and uint16 labels."""
    return count * (4 * prod(shape) + 2)


def encode_replay(x: np.ndarray, y: np.ndarray) -> bytes:
    """A replay section's bytes (labels must fit uint16)."""
    if y.size and not 0 <= y.min() <= y.max() <= np.iinfo(REPLAY_Y).max:
        raise ValueError(f"replay labels {y.min()}..{y.max()} do not fit {REPLAY_Y}")
    return x.astype(REPLAY_X).tobytes() + y.astype(REPLAY_Y).tobytes()


def decode_replay(data: bytes, count: int, shape: tuple[int, ...]) -> Split:
    """Inputs (float32) and labels (int64) of a replay section of ``replay_size`` bytes."""
    n_x = count * prod(shape)
    x = np.frombuffer(data, REPLAY_X, n_x).astype(np.float32).reshape(count, *shape)
    y = np.frombuffer(data, REPLAY_Y, count, offset=4 * n_x).astype(np.int64)
    return Split(torch.from_numpy(x), torch.from_numpy(y))


RENEW = "renew"  # the sections' prefix of the renewed positions (part masks)


def renew_candidates(masks: list[np.ndarray]) -> list[np.ndarray]:
    """Per task, the flat positions it could have renewed: those its mask holds that an earlier
    task's mask held (C_{t-1} is the union of the earlier masks)."""
    claimed = np.zeros(masks[0].shape if masks else 0, dtype=bool)
    candidates = []
    for mask in masks:
        candidates.append(np.flatnonzero(mask & claimed))
        claimed |= mask
    return candidates


def expected_sections(
    layers: list[str], n_tasks: int, norms: bool = False, replay: bool = False,
    renew: bool = False,
) -> list[SectionKey]:
    """(name, part, task, layer) of every section, in file order: the layout's single source."""
    table: list[SectionKey] = [(f"masks/{name}", "masks", None, name) for name in layers]
    if renew:
        table += [(f"{RENEW}/{name}", "masks", None, name) for name in layers]
    for t in range(n_tasks):
        for name in layers:
            codebook, codes = block_names(t, name)
            table += [(codebook, "codebooks", t, name), (codes, "weights", t, name)]
    for t in range(n_tasks):
        codebook, values = block_names(t, HEAD)
        table += [(codebook, "heads", t, None), (values, "heads", t, None)]
    if norms:
        table += [(f"norms/{t}", "norms", t, None) for t in range(n_tasks)]
    table += [(f"{TASK_INFO}/{t}", TASK_INFO, t, None) for t in range(n_tasks)]
    if replay:
        table += [(f"{REPLAY}/{t}", REPLAY, t, None) for t in range(n_tasks)]
    return table
