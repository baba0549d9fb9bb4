"""Write a learner's finished tasks as one compressed model file (`model.tsn`).

The sections are listed in `layout`. The header records the backbone (a built-in's name and
arguments, or a user module's class name), the input shape, the masked parameters' and the norm
tensors' shapes, per task its classes and each block's bit-width, codebook size and code
layout, the
scenario (so that `tsn eval` can rebuild the test data) and, with a replay memory, each task's
sample count and input shape.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from torch import Tensor

from tinysubnets import __version__
from tinysubnets.artifact.capacity import ModelCapacity
from tinysubnets.artifact.container import Section, pack
from tinysubnets.artifact.layout import (
    RENEW,
    REPLAY,
    REPLAY_X,
    REPLAY_Y,
    TASK_INFO,
    block_names,
    encode_replay,
    expected_sections,
    renew_candidates,
)
from tinysubnets.atomic import write_bytes
from tinysubnets.compression.mask_coding import BlockCache, encode_masks
from tinysubnets.compression.record import FinishedTask
from tinysubnets.compression.value_coding import ValueBlock
from tinysubnets.nn.network import HEAD, TSNNetwork
from tinysubnets.tasks import Split

MODEL_FILE = "model.tsn"


class Trained(Protocol):
    """What the writer reads of a learner (the model file knows nothing else of training)."""

    net: TSNNetwork
    masks: list[dict[str, Tensor]]
    finished: list[FinishedTask]
    n_classes: list[int]
    replay: list[Split]
    backbone_spec: dict[str, Any]

    @property
    def num_tasks(self) -> int: ...


def model_bytes(
    learner: Trained, scenario: dict[str, Any] | None = None,
    mask_cache: dict[str, BlockCache] | None = None,
) -> bytes:
    """The model file of ``learner``'s finished tasks; ``scenario`` is metadata for `tsn eval`.

    ``mask_cache`` (per layer, held by the caller across calls) keeps each finished task's mask
    coding, so rewriting the file after every task does not re-code every earlier mask.
    """
    net, T = learner.net, learner.num_tasks
    layers = net.masked_layers()
    masks = {
        name: [learner.masks[t][name].detach().cpu().numpy().ravel() for t in range(T)]
        for name in layers
    }
    caches = {} if mask_cache is None else mask_cache
    sections = [
        Section(f"masks/{name}", "masks",
                encode_masks(masks[name], caches.setdefault(name, {})), None, name)
        for name in layers
    ]
    slots = max(layer.slots for layer in layers.values())
    if slots > 1:  # per task which of the claimed positions it shares it renewed
        for name, layer in layers.items():
            sections.append(Section(f"{RENEW}/{name}", "masks", _renewed_bits(
                masks[name], layer.slot_owner.view(slots - 1, -1).cpu().numpy()), None, name))
    finished = learner.finished[:T]
    # Each task's record, as consolidation froze it: blocks, norms, name and labels.
    tasks: list[dict[str, Any]] = [
        {"classes": n, "blocks": {name: _block_entry(f.block(name)) for name in [*layers, HEAD]}}
        for n, f in zip(learner.n_classes[:T], finished, strict=True)
    ]
    payload = {}
    for t, f in enumerate(finished):
        for name in [*layers, HEAD]:
            codebook, codes = block_names(t, name)
            payload[codebook], payload[codes] = f.block(name).codebook, f.block(name).codes
    norm_names = net.kept_norm_names()
    for t, f in enumerate(finished if norm_names else []):
        payload[f"norms/{t}"] = b"".join(f.norms[n].astype("<f4").tobytes() for n in norm_names)
    for t, f in enumerate(finished):
        payload[f"{TASK_INFO}/{t}"] = json.dumps(
            f.info(), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    replay = learner.replay[:T]
    if replay and len(replay) != T:
        raise RuntimeError(f"replay memories of {len(replay)} of {T} tasks (a learner bug)")
    for t, memory in enumerate(replay):
        payload[f"{REPLAY}/{t}"] = encode_replay(memory.x.numpy(), memory.y.numpy())
    sections += [
        Section(entry, part, payload[entry], task, layer)
        for entry, part, task, layer in expected_sections(
            list(layers), T, bool(norm_names), bool(replay), slots > 1)[len(sections):]
    ]
    header = {
        "library": f"tinysubnets {__version__}",
        "backbone": learner.backbone_spec,
        "input_shape": list(net.input_shape),
        "layers": [[name, list(layer.frozen.shape)] for name, layer in layers.items()],
        "norms": [[name, list(net.norm_template()[name].shape)] for name in norm_names],
        "features": net.out_features,
        "tasks": tasks,
        "scenario": scenario or {},
    }
    if slots > 1:  # a file without slots has no entry, and reads as version 3 did
        header["slots"] = slots
    if getattr(learner, "criterion", None):  # the task-inference criterion its run chose
        header["inference"] = {"criterion": learner.criterion}
    if net.n_copies:  # a file without backbone copies has no entry
        header["copies"] = net.n_copies
        for task, f in zip(tasks, finished, strict=True):
            task["copy"] = f.copy
    if replay:  # a file without replay has no entry, and reads as it always did
        header[REPLAY] = {"x": REPLAY_X, "y": REPLAY_Y, "tasks": [
            {"count": len(m), "shape": list(m.x.shape[1:])} for m in replay]}
    return pack(header, sections)


def _renewed_bits(masks: list[np.ndarray], later_owners: np.ndarray) -> bytes:
    """The ``renew/<layer>`` section: a bit per `renew_candidates` position, whether the task
    stored a later value there (it owns one of the position's later slots)."""
    bits = [(later_owners[:, where] == t).any(0)
            for t, where in enumerate(renew_candidates(masks))]
    joined = np.concatenate(bits) if bits else np.zeros(0, bool)
    return encode_masks([joined]) if joined.size else b""


def _block_entry(block: ValueBlock) -> list[int]:
    """A block's header entry: code bits, codebook size, code layout."""
    return [block.bits, block.centroids, block.coding]


def write_model(
    path: Path, learner: Trained, scenario: dict[str, Any] | None = None
) -> ModelCapacity:
    """Write the model file atomically; return its capacity, measured from the bytes written."""
    data = model_bytes(learner, scenario)
    write_bytes(Path(path), data)
    from tinysubnets.artifact.reader import parse  # reader imports this module's layout

    return parse(data, str(path)).capacity
