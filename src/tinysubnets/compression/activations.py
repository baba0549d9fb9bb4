"""Activation quantization for evaluation (the paper's Table 7: <4b,4b>, <8b,8b>, <16b,16b>).

Weights already hold codebook values; here the *inputs* of every masked layer and of the task's
head are fake-quantized to 2^b uniform levels over a range [lo, hi] observed (min/max) on the
task's calibration split, computed with the task's own mask and norms. Ranges are per layer
because scales differ a lot: the first layer sees normalised pixels (negative too), the others
ReLU outputs (lo = 0, which then stays an exact level, so sparsity is kept).

Quantization runs through forward pre-hooks that a context manager always removes, so the
network computes bit-identically afterwards: evaluating it is never a change to the model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from tinysubnets.errors import ConfigError, DataError
from tinysubnets.nn.evaluate import accuracy
from tinysubnets.nn.network import HEAD, TSNNetwork, check_task_id, eval_mode
from tinysubnets.tasks import Split, iterate_batches

if TYPE_CHECKING:  # the artifact package imports compression: no import cycle at run time
    from tinysubnets.artifact.model import CompressedModel

MAX_BITS = 16
PreHook = Callable[[nn.Module, tuple], tuple | None]


@dataclass(frozen=True)
class ActivationRanges:
    """Input range (lo, hi) of each masked layer, and of the head under ``HEAD``, of one task.

    Kept apart from quantizing so one calibration serves every bit-width.
    """

    task_id: int
    ranges: dict[str, tuple[float, float]]

    def to_dict(self) -> dict[str, object]:
        return {"task_id": self.task_id, "ranges": {k: list(v) for k, v in self.ranges.items()}}


def check_bits(bits: object) -> int:
    """Raise ConfigError unless ``bits`` is an int in [1, 16]; return it."""
    if not isinstance(bits, int) or isinstance(bits, bool) or not 1 <= bits <= MAX_BITS:
        raise ConfigError(f"activation bit-width {bits!r} is not an int in 1..{MAX_BITS}")
    return bits


def fake_quantize(x: Tensor, lo: float, hi: float, bits: int) -> Tensor:
    """``x`` clamped to [lo, hi] and rounded to the nearest of 2^bits evenly spaced levels."""
    if hi <= lo:  # a constant input (e.g. a dead layer): its one value is the only level
        return torch.full_like(x, lo)
    step = (hi - lo) / (2**bits - 1)
    return torch.round((x.clamp(lo, hi) - lo) / step) * step + lo


def quantized_modules(net: TSNNetwork, task_id: int) -> dict[str, nn.Module]:
    """The modules whose inputs are quantized, by name: every layer with masked parameters
    (its path in the backbone), the task's head."""
    layers = {name.rsplit(".", 1)[0] if "." in name else "": net.module_of(name)
              for name in net.param_names}
    return {**layers, HEAD: net.heads[task_id]}


@contextmanager
def _pre_hooks(modules: dict[str, nn.Module], make: Callable[[str], PreHook]) -> Iterator[None]:
    handles = [module.register_forward_pre_hook(make(name)) for name, module in modules.items()]
    try:
        yield
    finally:  # also on an exception: a hook left behind would change every later forward
        for handle in handles:
            handle.remove()


@torch.no_grad()
def calibrate(
    net: TSNNetwork, task_id: int, masks: dict[str, Tensor], split: Split,
    batch_size: int = 2000,
) -> ActivationRanges:
    """Min and max of each quantized input of task ``task_id`` over ``split`` (eval mode)."""
    check_task_id(task_id, len(net.heads))
    if len(split) == 0:
        raise DataError(f"cannot calibrate activations of task {task_id}: the split is empty")
    seen: dict[str, tuple[float, float]] = {}

    def observe(name: str) -> PreHook:
        def hook(module: nn.Module, args: tuple) -> None:
            lo, hi = float(args[0].min()), float(args[0].max())
            old = seen.get(name, (lo, hi))
            seen[name] = (min(old[0], lo), max(old[1], hi))
        return hook

    with eval_mode(net), _pre_hooks(quantized_modules(net, task_id), observe):
        for x, _ in iterate_batches(split, batch_size):
            net(x, task_id, masks)
    return ActivationRanges(task_id, seen)


@contextmanager
def quantized_activations(
    net: TSNNetwork, ranges: ActivationRanges, bits: int
) -> Iterator[TSNNetwork]:
    """Within the block, ``net`` computes task ``ranges.task_id`` with b-bit activations."""
    check_bits(bits)
    modules = quantized_modules(net, ranges.task_id)
    unknown = set(ranges.ranges) - set(modules)
    if unknown:
        raise ConfigError(f"activation ranges name layers this network lacks: {sorted(unknown)}")

    def quantize(name: str) -> PreHook:
        lo, hi = ranges.ranges[name]

        def hook(module: nn.Module, args: tuple) -> tuple:
            return (fake_quantize(args[0], lo, hi, bits), *args[1:])
        return hook

    with _pre_hooks({name: modules[name] for name in ranges.ranges}, quantize):
        yield net


def activation_accuracy(
    net: TSNNetwork, task_id: int, masks: dict[str, Tensor], calibration: Split, test: Split,
    bits: Sequence[int] = (4, 8, 16), batch_size: int = 2000,
) -> dict[str, float]:
    """Accuracy (%) of task ``task_id`` on ``test``: ``"fp32"``, then ``"{b}b"`` for each
    bit-width, with ranges calibrated on ``calibration`` (the task's validation split)."""
    widths = [check_bits(b) for b in ([bits] if isinstance(bits, int) else bits)]
    ranges = calibrate(net, task_id, masks, calibration, batch_size)
    result = {"fp32": accuracy(net, task_id, masks, test, batch_size)}
    for b in widths:
        with quantized_activations(net, ranges, b):
            result[f"{b}b"] = accuracy(net, task_id, masks, test, batch_size)
    return result


def model_activation_accuracy(
    model: CompressedModel, task_id: int, calibration: Split, test: Split,
    bits: Sequence[int] = (4, 8, 16), batch_size: int = 2000,
) -> dict[str, float]:
    """`activation_accuracy` of a loaded model file's task ``task_id`` (its stored mask)."""
    check_task_id(task_id, model.num_tasks)
    return activation_accuracy(
        model.net, task_id, model.masks[task_id], calibration, test, bits, batch_size
    )
