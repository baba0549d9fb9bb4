"""Read a model file back into a network that predicts for every task it holds.

Nothing in the file is trusted: the container checks framing and checksum, then the header is
checked against the layout the writer produces (`layout.expected_sections`), then each section
is decoded with its own checks. Any failure is one DataError naming the file and the problem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinysubnets.artifact.capacity import ModelCapacity, measure
from tinysubnets.artifact.container import Section, is_int, overhead_bytes, unpack
from tinysubnets.artifact.layout import (
    NORM_STATE,
    REPLAY,
    REPLAY_X,
    REPLAY_Y,
    block_names,
    decode_replay,
    expected_sections,
    owners_from_masks,
    replay_size,
)
from tinysubnets.artifact.model import CompressedModel
from tinysubnets.compression.mask_coding import decode_masks
from tinysubnets.compression.value_coding import ValueBlock, check_block, decode_values
from tinysubnets.errors import DataError, TSNError
from tinysubnets.nn.backbones import (
    BACKBONES,
    HEAD,
    TSNNetwork,
    build_backbone,
    set_head_values,
)
from tinysubnets.scenarios.base import Split

MAX_BACKBONE_WEIGHTS = 1 << 30  # a forged header must not make us allocate without bound


@dataclass
class ParsedModel:
    """A checked header and its sections, before anything is decoded."""

    source: str
    header: dict[str, Any]
    sections: dict[str, Section]
    layers: dict[str, tuple[int, ...]]
    capacity: ModelCapacity
    replay: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # count, shape


def _label(t: int, block: str) -> str:
    return f"task {t}, head" if block == HEAD else f"task {t}, layer {block}"


def _meta_backbone(source: str, spec: object) -> torch.nn.Module:
    """The backbone the header names, built on the meta device (no memory, no randomness)."""
    if not (isinstance(spec, dict) and isinstance(spec.get("kwargs"), dict)):
        raise DataError(f"{source}: the header has no backbone spec")
    name = spec.get("name")
    if name not in BACKBONES:
        raise DataError(
            f"{source}: unknown backbone {name!r}; this tinysubnets knows "
            f"{', '.join(sorted(BACKBONES))}"
        )
    try:
        with torch.device("meta"):
            return build_backbone(name, **spec["kwargs"])
    except (TypeError, ValueError, RuntimeError, TSNError) as e:
        raise DataError(
            f"{source}: backbone {name!r} cannot be built from {spec['kwargs']} ({e})"
        ) from None


def parse(data: bytes, source: str) -> ParsedModel:
    """Check a model file's container and header against the layout; measure its capacity."""
    header, chunks = unpack(data, source)
    backbone = _meta_backbone(source, header.get("backbone"))
    net = TSNNetwork(backbone)
    n_weights = sum(m.frozen.numel() for m in net.masked_layers().values())  # capacity's 100 %
    copies = header.get("copies", 0)
    if not is_int(copies) or (copies + 1) * n_weights > MAX_BACKBONE_WEIGHTS:
        raise DataError(
            f"{source}: a backbone of {n_weights} weights with {copies!r} copies is beyond the "
            "reader's limit or malformed"
        )
    _add_copies(net, copies)
    built = {n: tuple(m.frozen.shape) for n, m in net.masked_layers().items()}
    layers = header.get("layers")
    if not isinstance(layers, list) or [
        (n, tuple(s)) if isinstance(s, list) else None for n, s in _pairs(layers)
    ] != list(built.items()):
        raise DataError(f"{source}: the header's layers {layers!r} do not match the backbone")
    if header.get("features") != backbone.out_features:
        raise DataError(f"{source}: the header's feature size does not match the backbone")
    tasks = header.get("tasks")
    if not isinstance(tasks, list):
        raise DataError(f"{source}: the header has no task list")
    for t, task in enumerate(tasks):
        blocks = task.get("blocks") if isinstance(task, dict) else None
        if not (
            isinstance(blocks, dict)
            and is_int(task.get("classes"), 1)
            and set(blocks) == {*built, HEAD}
            and all(isinstance(b, list) and len(b) == 3 and all(is_int(v) for v in b)
                    for b in blocks.values())
            and is_int(task.get("copy", 0)) and task.get("copy", 0) <= copies
        ):
            raise DataError(f"{source}: the header's entry for task {t} is malformed: {task!r}")
        for name, (bits, k, coding) in blocks.items():
            check_block(bits, k, coding, f"{source}: {_label(t, name)}")
    if not isinstance(header.get("scenario", {}), dict):
        raise DataError(f"{source}: the header's scenario is not a mapping")
    replay = _replay_entries(source, header, len(tasks))
    expected = expected_sections(list(built), len(tasks), bool(net.norm_specs), replay is not None)
    if len(chunks) != len(expected):
        raise DataError(
            f"{source}: {len(chunks)} sections for {len(built)} layers and {len(tasks)} tasks, "
            f"expected {len(expected)}"
        )
    sections = [Section(name, part, chunk, task, layer)
                for (name, part, task, layer), chunk in zip(expected, chunks, strict=True)]
    by_name = {s.name: s for s in sections}
    for t, (count, shape) in enumerate(replay or []):
        size, wanted = len(by_name[f"{REPLAY}/{t}"].data), replay_size(count, shape)
        if size != wanted:
            raise DataError(
                f"{source}: replay memory of task {t}: {size} bytes, expected {wanted} "
                f"({count} samples of shape {list(shape)})"
            )
    bits = [{name: b[0] for name, b in task["blocks"].items()} for task in tasks]
    capacity = measure(sections, len(data), overhead_bytes(data), n_weights, len(tasks), bits)
    return ParsedModel(source, header, by_name, built, capacity, replay or [])


def _replay_entries(
    source: str, header: dict[str, Any], n_tasks: int
) -> list[tuple[int, tuple[int, ...]]] | None:
    """Count and input shape of each task's replay memory; None if the file keeps none."""
    if REPLAY not in header:
        return None
    entry = header[REPLAY]
    tasks = entry.get("tasks") if isinstance(entry, dict) else None
    if not (isinstance(tasks, list) and len(tasks) == n_tasks
            and entry.get("x") == REPLAY_X and entry.get("y") == REPLAY_Y):
        raise DataError(
            f"{source}: the header's replay entry is malformed (wanted {REPLAY_X} inputs, "
            f"{REPLAY_Y} labels and one entry per task): {entry!r}"
        )
    out = []
    for t, task in enumerate(tasks):
        count, shape = (task.get("count"), task.get("shape")) if isinstance(task, dict) else (0, 0)
        if not (is_int(count) and isinstance(shape, list) and shape
                and all(is_int(d, 1) for d in shape)):
            raise DataError(f"{source}: the header's replay entry for task {t} is malformed: "
                            f"{task!r}")
        out.append((count, tuple(shape)))
    return out


def _pairs(items: list) -> list[tuple[object, object]]:
    return [tuple(x) if isinstance(x, list) and len(x) == 2 else (None, None) for x in items]


def _block(parsed: ParsedModel, t: int, name: str, n: int) -> np.ndarray:
    bits, k, coding = parsed.header["tasks"][t]["blocks"][name]
    codebook, codes = block_names(t, name)
    sections = parsed.sections
    block = ValueBlock(bits, k, sections[codebook].data, sections[codes].data, coding)
    return decode_values(block, n, f"{parsed.source}: {_label(t, name)}")


def decode(parsed: ParsedModel) -> CompressedModel:
    """Decode masks, values and heads into a model (on the CPU)."""
    source, header = parsed.source, parsed.header
    tasks = header["tasks"]
    T = len(tasks)
    backbone = build_backbone_empty(header["backbone"])
    net = TSNNetwork(backbone)
    _add_copies(net, header.get("copies", 0))
    masks: list[dict[str, torch.Tensor]] = [{} for _ in range(T)]
    for name, layer in net.masked_layers().items():
        shape = parsed.layers[name]
        try:
            layer_masks = decode_masks(parsed.sections[f"masks/{name}"].data, T, shape)
        except DataError as e:
            raise DataError(f"{source}: masks of layer {name}: {e}") from None
        flat = [m.ravel() for m in layer_masks]
        owner = owners_from_masks(flat) if T else np.full(prod(shape), -1)
        values = np.zeros(prod(shape), dtype=np.float32)
        for t in range(T):
            own = owner == t
            values[own] = _block(parsed, t, name, int(own.sum()))
            masks[t][name] = torch.from_numpy(layer_masks[t])
        with torch.no_grad():
            layer.weight.zero_()
            layer.scores.zero_()
            layer.frozen.copy_(torch.from_numpy(values).view(shape))
            layer.owner.copy_(torch.from_numpy(owner.astype(np.int16)).view(shape))
    generator = torch.Generator().manual_seed(0)  # heads are overwritten right away
    for t, task in enumerate(tasks):
        n_weight = task["classes"] * backbone.out_features
        values = torch.from_numpy(_block(parsed, t, HEAD, n_weight + task["classes"]))
        set_head_values(net.add_head(task["classes"], generator), values)
        net.copy_of[t] = task.get("copy", 0)
    for t in range(T if net.norm_specs else 0):
        _load_norms(parsed, net, t)
    net.eval()
    replay = [_replay(parsed, t, count, shape) for t, (count, shape) in enumerate(parsed.replay)]
    return CompressedModel(net, masks, header, parsed.capacity, replay)


def _replay(parsed: ParsedModel, t: int, count: int, shape: tuple[int, ...]) -> Split:
    memory = decode_replay(parsed.sections[f"{REPLAY}/{t}"].data, count, shape)
    classes = parsed.header["tasks"][t]["classes"]
    if count and int(memory.y.max()) >= classes:
        raise DataError(
            f"{parsed.source}: replay memory of task {t}: label {int(memory.y.max())} is not "
            f"one of its {classes} classes"
        )
    return memory


def _load_norms(parsed: ParsedModel, net: TSNNetwork, t: int) -> None:
    data = parsed.sections[f"norms/{t}"].data
    sizes = [n for _, n in net.norm_specs.values()]
    if len(data) != 4 * len(NORM_STATE) * sum(sizes):
        raise DataError(
            f"{parsed.source}: norms of task {t}: {len(data)} bytes, expected "
            f"{4 * len(NORM_STATE) * sum(sizes)}"
        )
    values = torch.from_numpy(np.frombuffer(data, "<f4").copy())
    pos = 0
    with torch.no_grad():
        for name, n in zip(net.norm_specs, sizes, strict=True):
            for key in NORM_STATE:
                getattr(net.norms[t][name], key).copy_(values[pos : pos + n])
                pos += n


def _add_copies(net: TSNNetwork, copies: int) -> None:
    """The header's backbone copies ("model duplicate"); their values come from the file."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(copies):
        net.add_copy(generator)


def build_backbone_empty(spec: dict[str, Any]) -> torch.nn.Module:
    """The backbone with uninitialised storage: no random draws (the global RNG is untouched)."""
    with torch.device("meta"):
        backbone = build_backbone(spec["name"], **spec["kwargs"])
    return backbone.to_empty(device="cpu")


def read_bytes(path: Path) -> bytes:
    """A file's bytes, or a DataError saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such model file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None


def load(path: str | Path) -> CompressedModel:
    """Load a model file written by `tsn run` (or `write_model`): it predicts for every task."""
    return decode(parse(read_bytes(Path(path)), str(path)))


def inspect(path: str | Path) -> ParsedModel:
    """Header, sections and capacity of a model file, checked but not decoded."""
    return parse(read_bytes(Path(path)), str(path))
