"""Read a model file back into a network that predicts for every task it holds.

Nothing in the file is trusted: the container checks framing and checksum, then the header is
checked against the layout the writer produces (`layout.expected_sections`), then each section
is decoded with its own checks. Any failure is one DataError naming the file and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from math import prod
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tinysubnets.artifact.capacity import ModelCapacity, measure
from tinysubnets.artifact.container import Section, is_int, overhead_bytes, unpack
from tinysubnets.artifact.layout import (
    REPLAY,
    REPLAY_X,
    REPLAY_Y,
    TASK_INFO,
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
from tinysubnets.nn.backbones import BACKBONES, build_backbone
from tinysubnets.nn.network import (
    COPY_PREFIX,
    HEAD,
    TSNNetwork,
    base_layer_name,
    set_head_values,
)
from tinysubnets.tasks import Split
from tinysubnets.tasks.task import LABEL_TYPES

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
    norms: dict[str, tuple[int, ...]] = field(default_factory=dict)


def _label(t: int, block: str) -> str:
    return f"task {t}, head" if block == HEAD else f"task {t}, layer {block}"


def _shapes(source: str, header: dict[str, Any], key: str) -> dict[str, tuple[int, ...]]:
    """The header's list of [name, shape] pairs (``layers`` or ``norms``) as a mapping."""
    entries = header.get(key)
    ok = isinstance(entries, list) and all(
        isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and isinstance(e[1], list)
        and all(is_int(d, 1) for d in e[1]) for e in entries)
    shapes = {e[0]: tuple(e[1]) for e in entries} if ok else {}
    if not ok or len(shapes) != len(entries):
        raise DataError(f"{source}: the header's {key} list is malformed")
    return shapes


def _check_backbone_spec(source: str, spec: object) -> None:
    builtin = isinstance(spec, dict) and isinstance(spec.get("kwargs"), dict) and (
        spec.get("name") in BACKBONES)
    user = isinstance(spec, dict) and isinstance(spec.get("module"), str)
    if not (builtin or user):
        raise DataError(f"{source}: the header's backbone {spec!r} is neither a built-in "
                        f"({', '.join(sorted(BACKBONES))}) nor a named module")


def parse(data: bytes, source: str) -> ParsedModel:
    """Check a model file's container and header against the layout; measure its capacity.

    Nothing here needs the backbone module: `decode` checks it against what this records.
    """
    header, chunks = unpack(data, source)
    _check_backbone_spec(source, header.get("backbone"))
    shape = header.get("input_shape")
    if not (isinstance(shape, list) and shape and all(is_int(d, 1) for d in shape)):
        raise DataError(f"{source}: the header's input shape {shape!r} is malformed")
    layers = _shapes(source, header, "layers")
    norms = _shapes(source, header, "norms")
    base = [n for n in layers if base_layer_name(n) == n]
    copies = header.get("copies", 0)
    expected_names = base + [f"{COPY_PREFIX}{c}.{n}" for c in range(1, copies + 1) for n in base
                             ] if is_int(copies) else []
    n_weights = sum(prod(layers[n]) for n in base)  # capacity's 100 %
    if not base or list(layers) != expected_names or any(
            layers[n] != layers[base_layer_name(n)] for n in layers):
        raise DataError(f"{source}: the header's layers do not form a backbone and "
                        f"{copies!r} copies of it")
    if (copies + 1) * n_weights > MAX_BACKBONE_WEIGHTS:
        raise DataError(f"{source}: a backbone of {n_weights} weights with {copies} copies is "
                        "beyond the reader's limit")
    if not is_int(header.get("features"), 1):
        raise DataError(f"{source}: the header's feature size is malformed")
    tasks = header.get("tasks")
    if not isinstance(tasks, list):
        raise DataError(f"{source}: the header has no task list")
    for t, task in enumerate(tasks):
        blocks = task.get("blocks") if isinstance(task, dict) else None
        if not (
            isinstance(blocks, dict)
            and is_int(task.get("classes"), 1)
            and set(blocks) == {*layers, HEAD}
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
    expected = expected_sections(list(layers), len(tasks), bool(norms), replay is not None)
    if len(chunks) != len(expected):
        raise DataError(
            f"{source}: {len(chunks)} sections for {len(layers)} layers and {len(tasks)} tasks, "
            f"expected {len(expected)}"
        )
    sections = [Section(name, part, chunk, task, layer)
                for (name, part, task, layer), chunk in zip(expected, chunks, strict=True)]
    by_name = {s.name: s for s in sections}
    for t, (count, shape_t) in enumerate(replay or []):
        size, wanted = len(by_name[f"{REPLAY}/{t}"].data), replay_size(count, shape_t)
        if size != wanted:
            raise DataError(
                f"{source}: replay memory of task {t}: {size} bytes, expected {wanted} "
                f"({count} samples of shape {list(shape_t)})"
            )
    bits = [{name: b[0] for name, b in task["blocks"].items()} for task in tasks]
    capacity = measure(sections, len(data), overhead_bytes(data), n_weights, len(tasks), bits)
    return ParsedModel(source, header, by_name, layers, capacity, replay or [], norms)


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


def _block(parsed: ParsedModel, t: int, name: str, n: int) -> np.ndarray:
    bits, k, coding = parsed.header["tasks"][t]["blocks"][name]
    codebook, codes = block_names(t, name)
    sections = parsed.sections
    block = ValueBlock(bits, k, sections[codebook].data, sections[codes].data, coding)
    return decode_values(block, n, f"{parsed.source}: {_label(t, name)}")


def _module(parsed: ParsedModel, backbone: nn.Module | None) -> nn.Module:
    """The module to decode into: the one given, else the built-in the header names."""
    spec = parsed.header["backbone"]
    if backbone is not None:
        return backbone
    if "name" not in spec:
        raise DataError(
            f"{parsed.source}: the model was trained with a user backbone "
            f"({spec['module']}): pass a fresh instance, load(path, backbone={spec['module']}())"
        )
    try:
        with torch.random.fork_rng(devices=[]):  # its initial values are overwritten
            return build_backbone(spec["name"], **spec["kwargs"])
    except (TypeError, ValueError, RuntimeError, TSNError) as e:
        raise DataError(f"{parsed.source}: backbone {spec['name']!r} cannot be built from "
                        f"{spec['kwargs']} ({e})") from None


def _network(parsed: ParsedModel, backbone: nn.Module | None) -> TSNNetwork:
    """The network of the file's backbone, checked against the shapes the file records."""
    source, header = parsed.source, parsed.header
    module = _module(parsed, backbone)
    try:
        net = TSNNetwork(module, header["input_shape"], torch.Generator().manual_seed(0))
    except TSNError as e:
        raise DataError(f"{source}: the backbone {type(module).__name__} does not fit the "
                        f"file: {e}") from None
    built = {n: tuple(net.masked_layers()[n].owner.shape) for n in net.param_names}
    stored = {n: s for n, s in parsed.layers.items() if base_layer_name(n) == n}
    template = net.norm_template()
    norms = {n: tuple(template[n].shape) for n in net.kept_norm_names()}
    for kind, have, want in (("layer", built, stored), ("norm tensor", norms, parsed.norms)):
        for name in dict.fromkeys([*want, *have]):
            if have.get(name) != want.get(name):
                a, b = want.get(name), have.get(name)
                raise DataError(
                    f"{source}: {kind} {name}: the file holds "
                    f"{list(a) if a else 'none'}, the backbone {type(module).__name__} "
                    f"{list(b) if b else 'none'}"
                )
    if net.out_features != header["features"]:
        raise DataError(f"{source}: the backbone gives {net.out_features} features, the file's "
                        f"heads take {header['features']}")
    generator = torch.Generator().manual_seed(0)  # copies' values come from the file
    for _ in range(header.get("copies", 0)):
        net.add_copy(generator)
    return net


def decode(parsed: ParsedModel, backbone: nn.Module | None = None) -> CompressedModel:
    """Decode masks, values, heads and norms into a model (on the CPU)."""
    source, header = parsed.source, parsed.header
    tasks = header["tasks"]
    T = len(tasks)
    net = _network(parsed, backbone)
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
        n_weight = task["classes"] * net.out_features
        values = torch.from_numpy(_block(parsed, t, HEAD, n_weight + task["classes"]))
        set_head_values(net.add_head(task["classes"], generator), values)
        net.copy_of[t] = task.get("copy", 0)
        if parsed.norms:
            _load_norms(parsed, net, t)
    net.eval()
    replay = [_replay(parsed, t, count, shape) for t, (count, shape) in enumerate(parsed.replay)]
    info = [_task_info(parsed, t) for t in range(T)]
    return CompressedModel(net, masks, header, parsed.capacity, replay, info)


def _task_info(parsed: ParsedModel, t: int) -> dict[str, Any]:
    """Task t's name, labels (one per class, distinct) and preprocessing."""
    where = f"{parsed.source}: task {t}"
    try:
        info = json.loads(parsed.sections[f"{TASK_INFO}/{t}"].data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise DataError(f"{where}: its name and labels are not valid JSON") from None
    labels = info.get("labels") if isinstance(info, dict) else None
    classes = parsed.header["tasks"][t]["classes"]
    if not (isinstance(labels, list) and len(labels) == classes
            and all(isinstance(v, LABEL_TYPES) for v in labels)
            and len(set(map(repr, labels))) == classes
            and isinstance(info.get("name"), str) and isinstance(info.get("preprocess"), dict)):
        raise DataError(f"{where}: its name, labels or preprocessing are malformed")
    return info


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
    sizes = {name: prod(shape) for name, shape in parsed.norms.items()}
    if len(data) != 4 * sum(sizes.values()):
        raise DataError(f"{parsed.source}: norms of task {t}: {len(data)} bytes, expected "
                        f"{4 * sum(sizes.values())}")
    values = torch.from_numpy(np.frombuffer(data, "<f4").copy())
    state, pos = net.norm_state(t), 0
    with torch.no_grad():
        for name, n in sizes.items():
            state[name].copy_(values[pos : pos + n].view(parsed.norms[name]))
            pos += n


def read_bytes(path: Path) -> bytes:
    """A file's bytes, or a DataError saying why it cannot be read."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such model file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None


def load(path: str | Path, backbone: nn.Module | None = None) -> CompressedModel:
    """Load a model file written by `tsn run` (or `write_model`): it predicts for every task.

    A built-in backbone needs nothing; a user's backbone takes a fresh instance of the same
    module (checked against the shapes the file records; its values are not used).
    """
    return decode(parse(read_bytes(Path(path)), str(path)), backbone)


def inspect(path: str | Path) -> ParsedModel:
    """Header, sections and capacity of a model file, checked but not decoded (a built-in
    backbone is also checked against the shapes the file records)."""
    parsed = parse(read_bytes(Path(path)), str(path))
    if "name" in parsed.header["backbone"]:
        _network(parsed, None)
    return parsed
