"""What a model file may make the reader allocate, checked before anything is allocated.

Most of a file's values are coded (Huffman, bit-packed), and a stream of one distinct symbol
takes no bits at all: an empty mask over a layer of any size, or a head of any class count,
costs the file a few bytes. The header's sizes (layers, tasks, classes, copies, input shape)
are therefore bounded by what the file's coded sections (masks, weights, codebooks, heads:
`CODED_PARTS`) could honestly hold: the decoded size may be at most `FIXED_BYTES` plus
`PER_CODED_BYTE` times their size. The header and the raw sections do not count: a long
header, or a task record of ten million labels, must not buy a ten-million-class head. Honest
files are far inside it: the 10-task p-MNIST model (75 KB) is estimated at 6.4 MiB, inside
the fixed part alone, and the 5-task split CIFAR-10 AlexNet (4.6 MB) at 323 MiB, 74 times its
size (it peaks at ~320 MiB above the imports). Raw sections (norms, replay, task records) are
bounded by their own bytes, which the reader checks exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call

from tinysubnets.artifact.container import is_int
from tinysubnets.errors import DataError, shown

FIXED_BYTES = 256 << 20
PER_CODED_BYTE = 256
CODED_PARTS = ("masks", "weights", "codebooks", "heads")
# Owners are stored as int16 (`MaskedParam.owner`): a file cannot hold more tasks.
MAX_TASKS = (1 << 15) - 1
MAX_SLOTS = 32  # values per weight position, as the config allows (`config.MAX_SLOTS`)
MAX_DIMS = 8  # of an input or a layer's shape
MAX_DIM = (1 << 31) - 1

# Bytes the reader holds per decoded element, transients included.
PER_WEIGHT = 32  # weight, scores and frozen values (float32), owner, decode transients
PER_MASK_BIT = 4  # each task's bool mask, and the decoder's stacked copies of it
PER_SLOT = 16  # a later value of a position (float32) and its owner, and decode transients
PER_HEAD_VALUE = 32  # the head's parameters, its decoded values and their transients
PROBE_BATCH = 2  # inputs of the forward that finds the feature size


def limit(coded_bytes: int) -> int:
    """The most a file of ``coded_bytes`` bytes of coded sections may make the reader
    allocate."""
    return FIXED_BYTES + PER_CODED_BYTE * coded_bytes


def decoded_bytes(
    weights: int, tasks: int, head_values: int, input_values: int, slots: int = 1
) -> int:
    """What decoding a file of these sizes allocates: every stored position of the backbone
    and its copies (``weights``) with a mask per task (and a renewed set per task, with
    ``slots`` above 1, and its later values), the heads, and the probe's inputs."""
    masks = tasks * (1 if slots == 1 else 2)
    return (weights * (PER_WEIGHT + PER_MASK_BIT * masks + PER_SLOT * (slots - 1))
            + head_values * PER_HEAD_VALUE + 4 * PROBE_BATCH * input_values)


def check(source: str, need: int, coded_bytes: int, what: str) -> None:
    """DataError unless decoding ``need`` bytes is justified by ``coded_bytes``."""
    if need > limit(coded_bytes):
        raise DataError(
            f"{source}: {what} would take {need / 2**20:,.0f} MiB to decode, more than "
            f"{coded_bytes:,} bytes of coded masks and values can hold (the reader's limit is "
            f"{limit(coded_bytes) / 2**20:,.0f} MiB): the header is forged or damaged"
        )


def module_bytes(module: nn.Module) -> int:
    """Bytes of a module's parameters and buffers (on the meta device: nothing allocated)."""
    tensors = [*module.parameters(), *module.buffers()]
    return sum(t.numel() * t.element_size() for t in tensors)


def activation_bytes(module: nn.Module, input_shape: tuple[int, ...]) -> int | None:
    """Bytes of every submodule's output in the probe forward, computed on the meta device
    (shapes only, nothing allocated); None when the module cannot run on meta tensors."""
    total = 0

    def count(_module: nn.Module, _inputs: object, output: object) -> None:
        nonlocal total
        if isinstance(output, Tensor):
            total += output.numel() * output.element_size()

    meta = {name: torch.empty_like(t, device="meta") for name, t in
            [*module.named_parameters(), *module.named_buffers()]}
    hooks = [m.register_forward_hook(count) for m in module.modules()]
    was_training = module.training
    try:
        module.eval()
        functional_call(module, meta, (torch.empty(PROBE_BATCH, *input_shape, device="meta"),))
    except Exception:  # noqa: BLE001  (a user's module may not run on meta tensors)
        return None
    finally:
        module.train(was_training)
        for hook in hooks:
            hook.remove()
    return total


def check_shape(source: str, what: str, shape: object) -> tuple[int, ...]:
    """A shape from the header: a list of 1..MAX_DIMS positive ints, each a 32-bit size."""
    if not (isinstance(shape, list) and 1 <= len(shape) <= MAX_DIMS
            and all(is_int(d, 1, MAX_DIM) for d in shape)):
        raise DataError(f"{source}: {what} {shown(shape)} is not a shape (1 to {MAX_DIMS} "
                        f"sizes in 1..{MAX_DIM})")
    return tuple(shape)
