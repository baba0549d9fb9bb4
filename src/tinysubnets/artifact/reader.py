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
from torch import Tensor, nn

from tinysubnets.artifact import bounds
from tinysubnets.artifact.capacity import ModelCapacity, measure
from tinysubnets.artifact.container import Section, is_int, overhead_bytes, unpack
from tinysubnets.artifact.layout import (
    RENEW,
    REPLAY,
    REPLAY_X,
    REPLAY_Y,
    TASK_INFO,
    block_names,
    decode_replay,
    expected_sections,
    owners_from_masks,
    renew_candidates,
    replay_size,
)
from tinysubnets.artifact.model import CompressedModel
from tinysubnets.compression.mask_coding import decode_masks
from tinysubnets.compression.value_coding import ValueBlock, check_block, decode_values
from tinysubnets.errors import DataError, TSNError, clipped, shown
from tinysubnets.nn.adopt import adopt_parts
from tinysubnets.nn.backbones import BACKBONES, build_backbone
from tinysubnets.nn.inference import CRITERIA
from tinysubnets.nn.network import (
    COPY_PREFIX,
    HEAD,
    TSNNetwork,
    base_layer_name,
    set_head_values,
)
from tinysubnets.tasks import Split
from tinysubnets.tasks.task import LABEL_TYPES


@dataclass
class ParsedModel:
    """A checked header and its sections, before anything is decoded."""

    source: str
    header: dict[str, Any]
    sections: dict[str, Section]
    layers: dict[str, tuple[int, ...]]
    capacity: ModelCapacity
    coded_bytes: int  # of the masks, weights, codebooks and heads: what justifies decoding
    replay: list[tuple[int, tuple[int, ...]]] = field(default_factory=list)  # count, shape
    norms: dict[str, tuple[int, ...]] = field(default_factory=dict)
    slots: int = 1  # values a weight position may hold (the header's "slots")

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.header["input_shape"])


def _label(t: int, block: str) -> str:
    return f"task {t}, head" if block == HEAD else f"task {t}, layer {clipped(block)}"


def _shapes(source: str, header: dict[str, Any], key: str) -> dict[str, tuple[int, ...]]:
    """The header's list of [name, shape] pairs (``layers`` or ``norms``) as a mapping."""
    entries = header.get(key)
    if not (isinstance(entries, list) and all(
            isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) for e in entries)):
        raise DataError(f"{source}: the header's {key} list is malformed")
    shapes = {e[0]: bounds.check_shape(source, f"the {key} entry {clipped(e[0])}: shape", e[1])
              for e in entries}
    if len(shapes) != len(entries):
        raise DataError(f"{source}: the header's {key} list names an entry twice")
    return shapes


def _check_backbone_spec(source: str, spec: object) -> None:
    name = spec.get("name") if isinstance(spec, dict) else None
    builtin = isinstance(name, str) and name in BACKBONES and isinstance(spec.get("kwargs"), dict)
    user = isinstance(spec, dict) and "name" not in spec and isinstance(spec.get("module"), str)
    if not (builtin or user):
        raise DataError(f"{source}: the header's backbone {shown(spec)} is neither a built-in "
                        f"({', '.join(sorted(BACKBONES))}) nor a named module")


def _count(source: str, header: dict[str, Any], key: str, low: int, high: int,
           default: object = None) -> int:
    """A header count in [low, high]."""
    value = header.get(key, default)
    if not is_int(value, low, high):
        raise DataError(f"{source}: the header's {key} {shown(value)} is not a count in "
                        f"{low}..{high}")
    return value


def parse(data: bytes, source: str) -> ParsedModel:
    """Check a model file's container and header against the layout; measure its capacity.

    Every size the header gives is checked for type and range, and what decoding it would
    allocate is checked against the file's size (`bounds`), before anything is decoded.
    Nothing here needs the backbone module: `decode` checks it against what this records.
    """
    header, chunks = unpack(data, source)
    _check_backbone_spec(source, header.get("backbone"))
    input_shape = bounds.check_shape(source, "the header's input shape",
                                     header.get("input_shape"))
    tasks = header.get("tasks")
    if not isinstance(tasks, list):
        raise DataError(f"{source}: the header has no task list")
    if len(tasks) > bounds.MAX_TASKS:
        raise DataError(f"{source}: {len(tasks)} tasks; a model holds at most "
                        f"{bounds.MAX_TASKS}")
    copies = _count(source, header, "copies", 0, len(tasks), default=0)
    features = _count(source, header, "features", 1, bounds.MAX_DIM)
    layers = _shapes(source, header, "layers")
    norms = _shapes(source, header, "norms")
    base = [n for n in layers if base_layer_name(n) == n]
    if not base or len(layers) != (copies + 1) * len(base) or list(layers) != base + [
            f"{COPY_PREFIX}{c}.{n}" for c in range(1, copies + 1) for n in base] or any(
            layers[n] != layers[base_layer_name(n)] for n in layers):
        raise DataError(f"{source}: the header's layers do not form a backbone and "
                        f"{copies} copies of it")
    n_weights = sum(prod(layers[n]) for n in base)  # capacity's 100 %
    classes = [_check_task(source, t, task, layers, copies) for t, task in enumerate(tasks)]
    if not isinstance(header.get("scenario", {}), dict):
        raise DataError(f"{source}: the header's scenario is not a mapping")
    replay = _replay_entries(source, header, len(tasks), input_shape)
    slots = _count(source, header, "slots", 1, bounds.MAX_SLOTS, default=1)
    inference = header.get("inference", {})
    if not (isinstance(inference, dict) and inference.get("criterion", "entropy") in CRITERIA):
        raise DataError(f"{source}: the header's inference entry {shown(inference)} does not "
                        f"name a criterion of {', '.join(CRITERIA)}")
    expected = expected_sections(list(layers), len(tasks), bool(norms), replay is not None,
                                 slots > 1)
    if len(chunks) != len(expected):
        raise DataError(
            f"{source}: {len(chunks)} sections for {len(layers)} layers and {len(tasks)} tasks, "
            f"expected {len(expected)}"
        )
    sections = [Section(name, part, chunk, task, layer)
                for (name, part, task, layer), chunk in zip(expected, chunks, strict=True)]
    by_name = {s.name: s for s in sections}
    coded = sum(len(s.data) for s in sections if s.part in bounds.CODED_PARTS)
    need = bounds.decoded_bytes((copies + 1) * n_weights, len(tasks),
                                sum(k * (features + 1) for k in classes), prod(input_shape),
                                slots)
    bounds.check(source, need, coded, f"a backbone of {n_weights:,} weights with {copies} "
                 f"copies, {len(tasks)} tasks and {sum(classes):,} classes")
    for t, k in enumerate(classes):  # each label takes at least a byte of the task's record
        if k > len(by_name[f"{TASK_INFO}/{t}"].data):
            raise DataError(f"{source}: task {t} claims {k:,} classes, its record holds "
                            f"{len(by_name[f'{TASK_INFO}/{t}'].data):,} bytes of labels")
    for t, (count, shape_t) in enumerate(replay or []):
        size, wanted = len(by_name[f"{REPLAY}/{t}"].data), replay_size(count, shape_t)
        if size != wanted:
            raise DataError(
                f"{source}: replay memory of task {t}: {size} bytes, expected {wanted} "
                f"({count} samples of shape {list(shape_t)})"
            )
    bits = [{name: b[0] for name, b in task["blocks"].items()} for task in tasks]
    capacity = measure(sections, len(data), overhead_bytes(data), n_weights, len(tasks), bits)
    return ParsedModel(source, header, by_name, layers, capacity, coded, replay or [], norms,
                       slots)


def _check_task(source: str, t: int, task: object, layers: dict[str, tuple[int, ...]],
                copies: int) -> int:
    """Task t's header entry checked (a block per layer and the head); its class count."""
    blocks = task.get("blocks") if isinstance(task, dict) else None
    if not (
        isinstance(blocks, dict)
        and is_int(task.get("classes"), 1, bounds.MAX_DIM)
        and set(blocks) == {*layers, HEAD}
        and all(isinstance(b, list) and len(b) == 3 and all(is_int(v) for v in b)
                for b in blocks.values())
        and is_int(task.get("copy", 0)) and task.get("copy", 0) <= copies
    ):
        raise DataError(f"{source}: the header's entry for task {t} is malformed: {shown(task)}")
    for name, (bits, k, coding) in blocks.items():
        check_block(bits, k, coding, f"{source}: {_label(t, name)}")
    return task["classes"]


def _replay_entries(
    source: str, header: dict[str, Any], n_tasks: int, input_shape: tuple[int, ...]
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
            f"{REPLAY_Y} labels and one entry per task): {shown(entry)}"
        )
    out = []
    for t, task in enumerate(tasks):
        count, shape = (task.get("count"), task.get("shape")) if isinstance(task, dict) else (0, 0)
        if not (is_int(count) and shape == list(input_shape)):
            raise DataError(f"{source}: the header's replay entry for task {t} is not a count "
                            f"of inputs of shape {list(input_shape)}: {shown(task)}")
        out.append((count, input_shape))
    return out


def _block(parsed: ParsedModel, t: int, name: str, n: int) -> np.ndarray:
    bits, k, coding = parsed.header["tasks"][t]["blocks"][name]
    codebook, codes = block_names(t, name)
    sections = parsed.sections
    block = ValueBlock(bits, k, sections[codebook].data, sections[codes].data, coding)
    return decode_values(block, n, f"{parsed.source}: {_label(t, name)}")


def _module(parsed: ParsedModel, backbone: nn.Module | None) -> nn.Module:
    """The module to decode into: the one given, else the built-in the header names (built
    on the meta device first, so that its size is checked before anything is allocated)."""
    spec, source = parsed.header["backbone"], parsed.source
    if backbone is not None:
        _check_layers(parsed, backbone)
        _check_probe(parsed, backbone)
        return backbone
    if "name" not in spec:
        module = clipped(spec["module"])
        raise DataError(f"{source}: the model was trained with a user backbone ({module}): "
                        f"pass a fresh instance, load(path, backbone={module}())")
    for device in ("meta", "cpu"):
        try:
            with torch.random.fork_rng(devices=[]), torch.device(device):  # values come later
                module = build_backbone(spec["name"], **spec["kwargs"])
        except Exception as e:  # noqa: BLE001  (any error: the file's settings do not build)
            raise DataError(f"{source}: backbone {spec['name']!r} cannot be built from "
                            f"{shown(spec['kwargs'])} ({clipped(str(e), 200)})") from None
        if device == "meta":
            bounds.check(source, bounds.module_bytes(module), parsed.coded_bytes,
                         f"backbone {spec['name']!r} built from {shown(spec['kwargs'])}")
            _check_layers(parsed, module)
            _check_probe(parsed, module)
    return module


def _check_layers(parsed: ParsedModel, module: nn.Module) -> None:
    """The module's masked parameters must be the file's layers, by name and shape."""
    try:
        parts = adopt_parts(module)
    except TSNError as e:
        raise DataError(f"{parsed.source}: the backbone {type(module).__name__} does not fit "
                        f"the file: {clipped(str(e), 300)}") from None
    built = {spec.name: tuple(module.get_submodule(spec.module).get_parameter(spec.param).shape)
             for spec in parts.masked}
    stored = {n: s for n, s in parsed.layers.items() if base_layer_name(n) == n}
    _compare(parsed.source, "layer", type(module).__name__, built, stored)


def _compare(source: str, kind: str, module: str, have: dict[str, tuple[int, ...]],
             want: dict[str, tuple[int, ...]]) -> None:
    for name in dict.fromkeys([*want, *have]):
        if have.get(name) != want.get(name):
            a, b = want.get(name), have.get(name)
            raise DataError(f"{source}: {kind} {clipped(name)}: the file holds "
                            f"{list(a) if a else 'none'}, the backbone {module} "
                            f"{list(b) if b else 'none'}")


def _check_probe(parsed: ParsedModel, module: nn.Module) -> None:
    """The forward at the file's input shape must fit the reader's bounds (measured on the
    meta device: a hostile input shape must not make the probe allocate gigabytes)."""
    need = bounds.activation_bytes(module, parsed.input_shape)
    if need is not None:
        bounds.check(parsed.source, need, parsed.coded_bytes,
                     f"a forward at input shape {list(parsed.input_shape)}")


def _network(parsed: ParsedModel, backbone: nn.Module | None) -> TSNNetwork:
    """The network of the file's backbone, checked against the shapes the file records."""
    source, header = parsed.source, parsed.header
    module = _module(parsed, backbone)
    try:
        net = TSNNetwork(module, header["input_shape"], torch.Generator().manual_seed(0),
                         slots=parsed.slots)
    except TSNError as e:
        raise DataError(f"{source}: the backbone {type(module).__name__} does not fit the "
                        f"file: {clipped(str(e), 300)}") from None
    template = net.norm_template()
    norms = {n: tuple(template[n].shape) for n in net.kept_norm_names()}
    _compare(source, "norm tensor", type(module).__name__, norms, parsed.norms)
    if net.out_features != header["features"]:
        raise DataError(f"{source}: the backbone gives {net.out_features} features, the file's "
                        f"heads take {header['features']}")
    generator = torch.Generator().manual_seed(0)  # copies' values come from the file
    for _ in range(header.get("copies", 0)):
        net.add_copy(generator)
    return net


@dataclass
class DecodedValues:
    """Everything a file stores, decoded and checked, before it meets a module: per layer
    its masks (one per task), stored values and owners; per task its head, norms, record and
    replay memory."""

    masks: list[dict[str, Tensor]]
    layers: dict[str, tuple[Tensor, Tensor]]  # name -> (values, owner), in the layer's shape
    # name -> (later values, their owners), (slots - 1, *shape); empty without slots
    later: dict[str, tuple[Tensor, Tensor]]
    heads: list[Tensor]
    norms: list[Tensor]
    info: list[dict[str, Any]]
    replay: list[Split]


def decode_values_only(parsed: ParsedModel) -> DecodedValues:
    """Decode and check every section (what needs no backbone module)."""
    T = len(parsed.header["tasks"])
    masks: list[dict[str, Tensor]] = [{} for _ in range(T)]
    layers, later = {}, {}
    for name, shape in parsed.layers.items():
        layer_masks = _masks(parsed, "masks", name, T, shape)
        for t in range(T):
            masks[t][name] = torch.from_numpy(layer_masks[t]).view(shape)
        if parsed.slots > 1:
            layers[name], later[name] = _slotted(parsed, name, shape, layer_masks)
            continue
        owner = owners_from_masks([m.ravel() for m in layer_masks]) if T else np.full(
            prod(shape), -1)
        values = np.zeros(prod(shape), dtype=np.float32)
        # Positions by owner, in position order within each (a block's order): one sort,
        # not a scan per task.
        order = np.argsort(owner, kind="stable")
        ends = np.cumsum(np.bincount(owner + 1, minlength=T + 1))
        for t in range(T):
            own = order[ends[t] : ends[t + 1]]
            values[own] = _block(parsed, t, name, len(own))
        layers[name] = (torch.from_numpy(values).view(shape),
                        torch.from_numpy(owner.astype(np.int16)).view(shape))
    info = [_task_info(parsed, t) for t in range(T)]
    features = parsed.header["features"]
    heads = [torch.from_numpy(_block(parsed, t, HEAD, task["classes"] * (features + 1)))
             for t, task in enumerate(parsed.header["tasks"])]
    norms = [_norm_values(parsed, t) for t in range(T)] if parsed.norms else []
    replay = [_replay(parsed, t, count, shape) for t, (count, shape) in enumerate(parsed.replay)]
    return DecodedValues(masks, layers, later, heads, norms, info, replay)


def _masks(parsed: ParsedModel, prefix: str, name: str, T: int, shape: tuple[int, ...]
           ) -> list[np.ndarray]:
    """A layer's masks (or, with ``prefix`` RENEW, its renewal bits as one mask), decoded
    and flat."""
    try:
        return [m.ravel() for m in decode_masks(parsed.sections[f"{prefix}/{name}"].data, T,
                                                shape)]
    except DataError as e:
        what = "masks" if prefix == "masks" else "renewed positions"
        raise DataError(f"{parsed.source}: {what} of layer {clipped(name)}: {e}") from None


def _renewed(parsed: ParsedModel, name: str, layer_masks: list[np.ndarray], n: int
             ) -> list[np.ndarray]:
    """Per task, the flat positions it renewed: its `renew_candidates` whose bit is set."""
    candidates = renew_candidates(layer_masks)
    total = sum(len(c) for c in candidates)
    if not total:
        if parsed.sections[f"{RENEW}/{name}"].data:
            raise DataError(f"{parsed.source}: renewed positions of layer {clipped(name)}: no "
                            "task shares a claimed position, yet the section is not empty")
        return [np.zeros(n, bool) for _ in layer_masks]
    bits = _masks(parsed, RENEW, name, 1, (total,))[0]
    renewed, start = [], 0
    for where in candidates:
        flags = np.zeros(n, bool)
        flags[where[bits[start : start + len(where)]]] = True
        renewed.append(flags)
        start += len(where)
    return renewed


def _slotted(parsed: ParsedModel, name: str, shape: tuple[int, ...], layer_masks: list
             ) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """A slotted layer's values, task by task: task t's block holds, in flat position order,
    its values at M_t minus C_{t-1} (a position's first value) and at the positions it renewed
    (their next value). No position may hold more than ``slots`` values."""
    n, S = prod(shape), parsed.slots
    first = np.zeros(n, np.float32)
    owner = np.full(n, -1, np.int16)
    later = np.zeros((S - 1, n), np.float32)
    later_owner = np.full((S - 1, n), -1, np.int16)
    filled = np.zeros(n, np.int64)  # values a position holds so far
    renewed = _renewed(parsed, name, layer_masks, n)
    for t, (mask, renew) in enumerate(zip(layer_masks, renewed, strict=True)):
        claimed = filled > 0
        if (filled[renew] >= S).any():
            raise DataError(f"{parsed.source}: layer {clipped(name)}: task {t} renews a "
                            f"position that already holds {S} values (the header's slots)")
        new = mask & ~claimed
        own = np.flatnonzero(new | renew)
        values = _block(parsed, t, name, len(own))
        is_new = new[own]
        first[own[is_new]], owner[own[is_new]] = values[is_new], t
        again = own[~is_new]
        slot = filled[again] - 1
        later[slot, again], later_owner[slot, again] = values[~is_new], t
        filled[own] += 1
    return ((torch.from_numpy(first).view(shape), torch.from_numpy(owner).view(shape)),
            (torch.from_numpy(later).view(S - 1, *shape),
             torch.from_numpy(later_owner).view(S - 1, *shape)))


def decode(parsed: ParsedModel, backbone: nn.Module | None = None) -> CompressedModel:
    """Decode masks, values, heads and norms into a model (on the CPU)."""
    net = _network(parsed, backbone)
    stored = decode_values_only(parsed)
    for name, layer in net.masked_layers().items():
        values, owner = stored.layers[name]
        with torch.no_grad():
            layer.weight.zero_()
            layer.scores.zero_()
            layer.frozen.copy_(values)
            layer.owner.copy_(owner)
            if name in stored.later:
                layer.slot_frozen.copy_(stored.later[name][0])
                layer.slot_owner.copy_(stored.later[name][1])
    generator = torch.Generator().manual_seed(0)  # heads are overwritten right away
    for t, task in enumerate(parsed.header["tasks"]):
        set_head_values(net.add_head(task["classes"], generator), stored.heads[t])
        net.copy_of[t] = task.get("copy", 0)
        if parsed.norms:
            _load_norms(parsed, net, t, stored.norms[t])
    net.eval()
    return CompressedModel(net, stored.masks, parsed.header, parsed.capacity, stored.replay,
                           stored.info)


def _task_info(parsed: ParsedModel, t: int) -> dict[str, Any]:
    """Task t's name, labels (one per class, distinct) and preprocessing."""
    where = f"{parsed.source}: task {t}"
    try:
        info = json.loads(parsed.sections[f"{TASK_INFO}/{t}"].data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # ValueError: JSON, digit limit
        raise DataError(f"{where}: its name and labels are not valid JSON") from None
    labels = info.get("labels") if isinstance(info, dict) else None
    classes = parsed.header["tasks"][t]["classes"]
    if not (isinstance(labels, list) and len(labels) == classes
            and all(isinstance(v, LABEL_TYPES) for v in labels)
            and len(set(map(shown_label, labels))) == classes
            and isinstance(info.get("name"), str) and isinstance(info.get("preprocess"), dict)):
        raise DataError(f"{where}: its name, labels or preprocessing are malformed")
    return info


def shown_label(value: object) -> str:
    """A label as a distinct key (repr tells 1 from "1" and True; ints past Python's digit
    limit for repr are keyed by their bytes)."""
    try:
        return repr(value)
    except ValueError:
        return f"int:{value.to_bytes((value.bit_length() + 8) // 8, 'little', signed=True)!r}"


def _replay(parsed: ParsedModel, t: int, count: int, shape: tuple[int, ...]) -> Split:
    memory = decode_replay(parsed.sections[f"{REPLAY}/{t}"].data, count, shape)
    classes = parsed.header["tasks"][t]["classes"]
    if count and int(memory.y.max()) >= classes:
        raise DataError(
            f"{parsed.source}: replay memory of task {t}: label {int(memory.y.max())} is not "
            f"one of its {classes} classes"
        )
    if not torch.isfinite(memory.x).all():
        raise DataError(f"{parsed.source}: replay memory of task {t}: an input is not finite")
    return memory


def _norm_values(parsed: ParsedModel, t: int) -> Tensor:
    """Task t's norm tensors, float32 back to back in the header's order (finite)."""
    data = parsed.sections[f"norms/{t}"].data
    size = sum(prod(shape) for shape in parsed.norms.values())
    if len(data) != 4 * size:
        raise DataError(f"{parsed.source}: norms of task {t}: {len(data)} bytes, expected "
                        f"{4 * size}")
    values = torch.from_numpy(np.frombuffer(data, "<f4").copy())
    if not torch.isfinite(values).all():
        raise DataError(f"{parsed.source}: norms of task {t}: a value is not finite")
    return values


def _load_norms(parsed: ParsedModel, net: TSNNetwork, t: int, values: Tensor) -> None:
    state, pos = net.norm_state(t), 0
    with torch.no_grad():
        for name, shape in parsed.norms.items():
            n = prod(shape)
            state[name].copy_(values[pos : pos + n].view(shape))
            pos += n


def read_bytes(path: str | Path) -> bytes:
    """A file's bytes, or a DataError saying why it cannot be read."""
    if not isinstance(path, str | Path):
        raise DataError(f"a model file is named by a path, got {shown(path)}")
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a model file") from None
    except OSError as e:
        raise DataError(f"{path}: cannot be read ({e.strerror})") from None


def load(path: str | Path, backbone: nn.Module | None = None) -> CompressedModel:
    """Load a model file written by `tsn run` (or `write_model`): it predicts for every task.

    A built-in backbone needs nothing; a user's backbone takes a fresh instance of the same
    module (checked against the shapes the file records; its values are not used).
    """
    if backbone is not None and not isinstance(backbone, nn.Module):
        raise DataError(f"backbone must be a torch.nn.Module, got {type(backbone).__name__}")
    return decode(parse(read_bytes(path), str(path)), backbone)


def inspect(path: str | Path) -> ParsedModel:
    """Header, sections and capacity of a model file, checked as `load` checks it: every
    section is decoded, and a built-in backbone is built and checked against the shapes the
    file records (a user's backbone is checked by `load`, which is given the module)."""
    parsed = parse(read_bytes(path), str(path))
    if "name" in parsed.header["backbone"]:
        decode(parsed)
    else:
        decode_values_only(parsed)
    return parsed
