"""What TSN does with each part of a user's backbone, decided once, before any training.

A backbone is any ``nn.Module`` that maps a batch of inputs to a batch of feature vectors.
- The weights and biases of its ``nn.Linear`` and ``nn.Conv1d/2d/3d`` layers are *masked*:
  shared, pruned and quantized per task.
- Its normalisation layers (BatchNorm, InstanceNorm, LayerNorm, GroupNorm) are *per task*:
  each task trains and freezes its own affine parameters and running statistics, so a
  prediction depends neither on later tasks nor on the rest of its batch.
- Any other parameter or buffer has no sound per-task treatment here: it is refused, with the
  layer's name and type, before anything is trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from torch import Tensor, nn
from torch.nn.modules.batchnorm import _NormBase
from torch.nn.modules.conv import _ConvNd
from torch.nn.parameter import UninitializedParameter

from tinysubnets.errors import ConfigError

MASKED_TYPES = (nn.Linear, _ConvNd)
NORM_TYPES = (_NormBase, nn.LayerNorm, nn.GroupNorm)  # _NormBase: BatchNorm*, InstanceNorm*


@dataclass(frozen=True)
class MaskedSpec:
    """One masked parameter: its path in the backbone ("fc1.weight"), the path of its module
    ("fc1") and the fan-in of that module (for the scores' initial scale)."""

    name: str
    module: str
    param: str
    shape: tuple[int, ...]
    fan_in: int


@dataclass(frozen=True)
class Parts:
    """The masked parameters and the per-task norm layers of a backbone, in module order."""

    masked: tuple[MaskedSpec, ...]
    norms: tuple[str, ...]


def _fan_in(module: nn.Module) -> int:
    weight = module.weight
    return prod(weight.shape[1:]) if weight is not None and weight.dim() > 1 else 1


def _describe(path: str, module: nn.Module) -> str:
    return f"layer {path or '(the backbone itself)'} ({type(module).__name__})"


def adopt_parts(backbone: nn.Module) -> Parts:
    """Classify every module of ``backbone``; raise ConfigError on one TSN cannot treat."""
    if not isinstance(backbone, nn.Module):
        raise ConfigError(f"the backbone must be a torch nn.Module, got {type(backbone).__name__}")
    masked: list[MaskedSpec] = []
    norms: list[str] = []
    for path, module in backbone.named_modules():
        own = dict(module.named_parameters(recurse=False))
        buffers = dict(module.named_buffers(recurse=False))
        if any(isinstance(p, UninitializedParameter) for p in own.values()):
            raise ConfigError(
                f"{_describe(path, module)} is lazy (not yet initialised): run one batch "
                "through the backbone, or give the layer its input size, before passing it"
            )
        if isinstance(module, MASKED_TYPES):
            extra = set(own) - {"weight", "bias"} | set(buffers)
            if extra:
                raise ConfigError(
                    f"{_describe(path, module)} holds {sorted(extra)} besides weight and bias"
                )
            for name, param in own.items():
                full = f"{path}.{name}" if path else name
                masked.append(MaskedSpec(full, path, name, tuple(param.shape), _fan_in(module)))
        elif isinstance(module, NORM_TYPES):
            if own or buffers:
                norms.append(path)
        elif own or buffers:
            held = sorted({*own, *buffers})
            raise ConfigError(
                f"{_describe(path, module)} holds {held}: TSN masks the weights of Linear and "
                "Conv layers and keeps norm layers per task; any other layer with parameters "
                "or buffers is not supported (make it parameter-free, or replace it)"
            )
    if not masked:
        raise ConfigError(
            f"the backbone {type(backbone).__name__} has no Linear or Conv layer to mask"
        )
    return Parts(tuple(masked), tuple(norms))


def norm_tensors(module: nn.Module) -> dict[str, Tensor]:
    """A norm layer's per-task state by name: affine parameters and float buffers (running
    statistics; a counter such as ``num_batches_tracked`` is kept too, so training with
    ``momentum=None`` averages over the task's own batches)."""
    return {**dict(module.named_parameters(recurse=False)),
            **dict(module.named_buffers(recurse=False))}
