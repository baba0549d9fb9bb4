"""Backbones of masked layers and the multi-head network TSN trains.

A backbone computes features from the weights it is handed (one per masked layer, by name), so
the same module serves training (straight-through masks) and evaluation of any task (its mask).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from copy import deepcopy
from math import prod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tinysubnets.errors import ConfigError, ShapeError, TaskIdError
from tinysubnets.nn.convnets import AlexNet, TinyNet
from tinysubnets.nn.masked import MaskedLayer, MaskedLinear
from tinysubnets.nn.resnet import ResNet18
from tinysubnets.nn.stages import Norms, Stage, run_stages


class MLP(nn.Module):
    """The paper's p-MNIST backbone: 784-100-100, bias-free masked layers, ReLU."""

    def __init__(self, in_features: int = 784, hidden: tuple[int, ...] = (100, 100)) -> None:
        super().__init__()
        sizes = (in_features, *hidden)
        # Layers are direct attributes so their module names ("fc1", "fc2") key masks and reports.
        self.layer_names = tuple(f"fc{i + 1}" for i in range(len(hidden)))
        for name, a, b in zip(self.layer_names, sizes, sizes[1:], strict=False):
            setattr(self, name, MaskedLinear(a, b))
        self.out_features = sizes[-1]
        self.input_shape = (in_features,)  # images are flattened: any shape with this many pixels

    def stages(self) -> list[Stage]:
        """One stage per layer (the first flattens the images)."""
        def layer(name: str, first: bool) -> Stage:
            def run(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
                return F.relu(getattr(self, name)(x.flatten(1) if first else x, weights[name]))
            return Stage((name,), run)

        return [layer(name, i == 0) for i, name in enumerate(self.layer_names)]

    def forward(self, x: Tensor, weights: dict[str, Tensor], norms: Norms | None = None) -> Tensor:
        return run_stages(self.stages(), x, weights, norms or {})


BACKBONES: dict[str, type[nn.Module]] = {
    "mlp": MLP, "alexnet": AlexNet, "tinynet": TinyNet, "resnet18": ResNet18,
}


def build_backbone(name: str, **kwargs: object) -> nn.Module:
    """A backbone by its name in ``BACKBONES``."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; known: {', '.join(sorted(BACKBONES))}")
    return BACKBONES[name](**kwargs)


COPY_PREFIX = "copy"  # layers of backbone copy c are named "copy{c}.{layer}"


def base_layer_name(name: str) -> str:
    """The backbone layer a (copy's) layer name stands for: "copy2.fc1" -> "fc1"."""
    return re.sub(rf"^{COPY_PREFIX}\d+\.", "", name)
HEAD = "head"  # a task's head as a block of values, beside its layers' names (quantization, file)


def head_values(head: nn.Linear) -> Tensor:
    """A head's values, weight then bias, flat: the order quantization and the model file use."""
    return torch.cat([head.weight.detach().ravel(), head.bias.detach().ravel()])


@torch.no_grad()
def set_head_values(head: nn.Linear, values: Tensor) -> None:
    """Inverse of `head_values`."""
    n = head.weight.numel()
    head.weight.copy_(values[:n].view_as(head.weight))
    head.bias.copy_(values[n:])


def check_task_id(task_id: object, num_tasks: int) -> None:
    """Raise TaskIdError unless ``task_id`` names one of ``num_tasks`` finished tasks."""
    ok = isinstance(task_id, int) and not isinstance(task_id, bool) and 0 <= task_id < num_tasks
    if not ok:
        held = f"this model holds tasks 0..{num_tasks - 1}" if num_tasks else "it holds no task"
        raise TaskIdError(f"task id {task_id!r} is out of range: {held}")


def make_norms(specs: dict[str, tuple[str, int]]) -> nn.ModuleDict:
    """One task's BatchNorm layers (no randomness in their initialisation)."""
    kinds = {"1d": nn.BatchNorm1d, "2d": nn.BatchNorm2d}
    return nn.ModuleDict({name: kinds[kind](n) for name, (kind, n) in specs.items()})


class TSNNetwork(nn.Module):
    """One shared masked backbone, and per task a head (its own classifier) and, where the
    backbone normalises, its own BatchNorm layers: statistics and affine parameters are the
    task's, so its predictions depend neither on later tasks nor on the rest of a test batch."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.heads = nn.ModuleList()
        self.norm_specs: dict[str, tuple[str, int]] = dict(getattr(backbone, "norm_specs", {}))
        self.norms = nn.ModuleList()
        # "Model duplicate": fresh copies of the backbone for tasks too unlike every earlier
        # one. Task t computes with backbone copy_of[t] (0 = the shared backbone itself).
        self.copies = nn.ModuleList()
        self.copy_of: list[int] = []

    def masked_layers(self) -> dict[str, MaskedLayer]:
        """Every masked layer by name, in forward order: the backbone's, then each copy's
        (named ``copy{c}.{layer}``)."""
        layers = self._layers(self.backbone)
        for c, copy in enumerate(self.copies, 1):
            layers.update({f"{COPY_PREFIX}{c}.{n}": m for n, m in self._layers(copy).items()})
        return layers

    @staticmethod
    def _layers(backbone: nn.Module) -> dict[str, MaskedLayer]:
        return {n: m for n, m in backbone.named_modules() if isinstance(m, MaskedLayer)}

    def _copy_index(self, task_id: int) -> int:
        return self.copy_of[task_id] if task_id < len(self.copy_of) else 0

    def backbone_of(self, task_id: int) -> nn.Module:
        """The backbone (copy) task ``task_id`` computes with."""
        c = self._copy_index(task_id)
        return self.backbone if c == 0 else self.copies[c - 1]

    def task_layers(self, task_id: int) -> dict[str, tuple[str, MaskedLayer]]:
        """The layers task ``task_id`` computes with: full name -> (name in its backbone, layer)."""
        c = self._copy_index(task_id)
        prefix = "" if c == 0 else f"{COPY_PREFIX}{c}."
        return {prefix + n: (n, m) for n, m in self._layers(self.backbone_of(task_id)).items()}

    def add_copy(self, generator: torch.Generator) -> int:
        """Append a fresh copy of the backbone (new weights and scores drawn from
        ``generator``, nothing claimed) and return its index (1, 2, ...)."""
        copy = deepcopy(self.backbone)
        with torch.no_grad():
            for layer in self._layers(copy).values():
                layer.reset(generator)
        self.copies.append(copy)
        return len(self.copies)

    def add_head(self, n_classes: int, generator: torch.Generator) -> nn.Linear:
        """Append a head for the next task, initialised from ``generator`` (seeded per task)."""
        # Built on "meta" and then filled: nn.Linear's own init would draw from the global RNG.
        # Filled on the host (where the generator lives), so any device gets the same values.
        head = nn.Linear(self.backbone.out_features, n_classes, device="meta").to_empty(
            device="cpu"
        )
        bound = 1.0 / math.sqrt(head.in_features)
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.uniform_(-bound, bound, generator=generator)
        device = next(self.backbone.parameters()).device
        self.heads.append(head.to(device))
        self.copy_of.append(0)  # the shared backbone, unless the learner duplicates it
        if self.norm_specs:
            self.norms.append(make_norms(self.norm_specs).to(device))
        return self.heads[-1]

    def check_input(self, x: Tensor) -> None:
        """Raise ShapeError unless ``x`` is a batch the backbone takes (before torch would)."""
        shape = tuple(self.backbone.input_shape)
        fits = x.dim() >= 2 and (
            x[0].numel() == prod(shape) if len(shape) == 1 else tuple(x.shape[1:]) == shape
        )
        if not fits:
            wanted = f"(N, {shape[0]}) or images with {shape[0]} pixels each" if len(
                shape) == 1 else f"(N, {', '.join(map(str, shape))})"
            raise ShapeError(
                f"inputs of shape {tuple(x.shape)} do not fit the backbone: expected {wanted}"
            )

    @torch.no_grad()
    def task_logits(self, x: Tensor, task_id: int, masks: Sequence[dict[str, Tensor]]) -> Tensor:
        """Logits of finished task ``task_id`` (``masks[t]`` is M_t), inputs and id checked."""
        check_task_id(task_id, len(masks))
        self.check_input(x)
        return self(x, task_id, masks[task_id])

    def forward(
        self, x: Tensor, task_id: int, masks: dict[str, Tensor], train: bool = False
    ) -> Tensor:
        """Logits of task ``task_id`` computed with ``masks`` (straight-through if ``train``)."""
        return self.heads[task_id](self.features(x, task_id, self.task_weights(task_id, masks,
                                                                                train)))

    def task_weights(
        self, task_id: int, masks: dict[str, Tensor], train: bool = False
    ) -> dict[str, Tensor]:
        """The masked weights of task ``task_id``'s backbone, by their names in it."""
        return {
            local: layer.masked_weight(masks[name], scores_grad=train)
            for name, (local, layer) in self.task_layers(task_id).items()
        }

    def features(self, x: Tensor, task_id: int, weights: dict[str, Tensor]) -> Tensor:
        """Task ``task_id``'s backbone output with the given weights (and the task's norms)."""
        backbone = self.backbone_of(task_id)
        if self.norm_specs:
            return backbone(x, weights, self.norms[task_id])
        return backbone(x, weights)

    def task_stages(self, task_id: int) -> list[Stage]:
        """Task ``task_id``'s backbone as stages (one stage of every layer where the backbone
        does not say how it splits)."""
        backbone = self.backbone_of(task_id)
        if hasattr(backbone, "stages"):
            return backbone.stages()

        def run(x: Tensor, weights: dict[str, Tensor], norms: Norms) -> Tensor:
            return self.features(x, task_id, weights)

        return [Stage(tuple(self._layers(backbone)), run)]

    def task_norms(self, task_id: int) -> Norms:
        """Task ``task_id``'s BatchNorm layers by name (none if the backbone has none)."""
        return self.norms[task_id] if self.norm_specs else {}
