"""The multi-task network TSN trains: one backbone, per-task masks, heads and norms.

The backbone is any plain ``nn.Module`` (see `adopt`). Its masked parameters move out of it
into `MaskedParam`s, and every forward hands the backbone the tensors of one task (as
``torch.func.functional_call`` would): that task's masked weights, and its own norm layers'
state.
So one unmodified module computes every task, and training (straight-through masks) and
evaluation (exact masks) run the same code.

A backbone that is an ``nn.Sequential`` runs child by child (its *stages*): post-pruning,
which changes one layer at a time, starts its trials at the stage that holds the layer. Any
other backbone is one stage. Both are the same operations on the same tensors.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from copy import deepcopy
from math import prod

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from tinysubnets.errors import DataError, ShapeError, TaskIdError, shown
from tinysubnets.nn.adopt import adopt_parts, norm_tensors
from tinysubnets.nn.masked import MaskedParam

HEAD = "head"  # a task's head as a block of values, beside its layers' names (quantization, file)
COPY_PREFIX = "copy"  # parameters of backbone copy c are named "copy{c}.{name}"


def base_layer_name(name: str) -> str:
    """The backbone parameter a (copy's) parameter name stands for: "copy2.fc1.weight" ->
    "fc1.weight"."""
    return re.sub(rf"^{COPY_PREFIX}\d+\.", "", name)


def _key(name: str) -> str:
    """A parameter path as a ModuleDict key (which may not hold dots)."""
    return name.replace(".", "/")


def head_values(head: nn.Linear) -> Tensor:
    """A head's values, weight then bias, flat: the order quantization and the model file use."""
    return torch.cat([head.weight.detach().ravel(), head.bias.detach().ravel()])


@torch.no_grad()
def set_head_values(head: nn.Linear, values: Tensor) -> None:
    """Inverse of `head_values`."""
    n = head.weight.numel()
    head.weight.copy_(values[:n].view_as(head.weight))
    head.bias.copy_(values[n:])


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode for the block, then back in the mode it was in: norm layers
    read their stored statistics and update nothing (evaluation, probes, other tasks' inputs)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def as_batch(x: object) -> Tensor:
    """A batch of inputs as the float32 tensor a model computes with: the input contract of
    every ``logits`` and ``predict``.

    A tensor, a numpy array (not copied where it can be shared) or a nested list of numbers
    (both through ``torch.as_tensor``). Floating inputs of any width are cast to float32.
    Integer and bool inputs (uint8 images) are refused, not cast: the model was trained on
    preprocessed floats, and raw values would give confident, wrong answers. The shape is
    checked against the backbone by `TSNNetwork.fit_input`.
    """
    if isinstance(x, np.ndarray) and any(step < 0 for step in x.strides):
        x = x.copy()  # a reversed view: torch takes no negative strides
    if not isinstance(x, Tensor):
        try:
            x = torch.as_tensor(x)
        except (TypeError, ValueError, RuntimeError) as e:
            reason = " ".join(str(e).split())[:200]
            raise DataError(f"inputs must be a tensor, a numpy array or a list of numbers; got "
                            f"a {type(x).__name__} that is none of these ({reason})") from None
    if x.is_floating_point():
        return x.to(torch.float32)
    raise DataError(
        f"inputs of dtype {x.dtype}: the model takes the preprocessed float inputs it was "
        "trained on. Give raw data (e.g. uint8 images) the task's preprocessing first: "
        "tinysubnets.preprocess.apply(record, x) with the record the model file keeps per task "
        "(as `tsn predict` does); inputs that are already model-ready must be floats (x.float())"
    )


def check_task_id(task_id: object, num_tasks: int) -> int:
    """``task_id`` as an int, or TaskIdError unless it names one of ``num_tasks`` finished
    tasks. Python and numpy integers are ids; bools, floats and anything else are not."""
    held = f"this model holds tasks 0..{num_tasks - 1}" if num_tasks else "it holds no task"
    if isinstance(task_id, bool | np.bool_) or not isinstance(task_id, int | np.integer):
        raise TaskIdError(f"task id {shown(task_id)} (a {type(task_id).__name__}) is out of "
                          f"range: task ids are ints, and {held}")
    if not 0 <= task_id < num_tasks:
        raise TaskIdError(f"task id {int(task_id)} is out of range: {held}")
    return int(task_id)


Slot = tuple[dict, str]  # a module's ``_parameters`` or ``_buffers``, and the tensor's name


def _call_with(module: nn.Module, slots: list[Slot], values: list[Tensor], x: Tensor) -> Tensor:
    """``module(x)`` with each slot holding its value for this call only.

    What ``torch.func.functional_call`` does, without its generality (tied weights, nested
    names resolved per call), which cost a third of a small MLP's forward.
    """
    saved = [table[key] for table, key in slots]
    try:
        for (table, key), value in zip(slots, values, strict=True):
            table[key] = value
        return module(x)
    finally:
        for (table, key), value in zip(slots, saved, strict=True):
            table[key] = value


@torch.no_grad()
def _reset_masked(backbone: nn.Module, paths: list[str], seed: int) -> None:
    """Each masked layer's own ``reset_parameters`` in module order, from ``seed``: for a
    module built in that order from the same seed, the values it already holds."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for path in dict.fromkeys(paths):
            backbone.get_submodule(path).reset_parameters()


def _uninitialised_linear(in_features: int, out_features: int) -> nn.Linear:
    """An ``nn.Linear`` with a bias whose values are left to the caller. Its own init would
    draw from the global RNG, and building on "meta" to skip it costs 0.4 ms: a file of
    30,000 tasks makes 30,000 heads (this takes 30 us)."""
    head = nn.Linear.__new__(nn.Linear)
    nn.Module.__init__(head)
    head.in_features, head.out_features = in_features, out_features
    head.weight = nn.Parameter(torch.empty(out_features, in_features))
    head.bias = nn.Parameter(torch.empty(out_features))
    return head


class TSNNetwork(nn.Module):
    """One shared backbone of masked parameters; per task a head, norms and a mask."""

    def __init__(
        self, backbone: nn.Module, input_shape: Sequence[int], generator: torch.Generator,
        init_seed: int | None = None, slots: int = 1,
    ) -> None:
        """``init_seed``: draw the masked layers' initial values anew from this seed (each
        layer's own ``reset_parameters``, in module order); None keeps the module's values.
        ``slots``: values of different tasks a weight position may hold (`nn.masked`)."""
        super().__init__()
        parts = adopt_parts(backbone)
        self.backbone = deepcopy(backbone)  # the user's module stays as it was given
        if init_seed is not None:
            _reset_masked(self.backbone, [s.module for s in parts.masked], init_seed)
        self.input_shape = tuple(int(d) for d in input_shape)
        self.param_names = tuple(spec.name for spec in parts.masked)
        self.norm_names = parts.norms
        self.layers = nn.ModuleDict()
        self._names: list[str] = []
        self._module_of: dict[str, str] = {}
        for spec in parts.masked:
            module = self.backbone.get_submodule(spec.module)
            self._add_layer(spec.name, MaskedParam(getattr(module, spec.param), spec.fan_in,
                                                   generator, slots))
            module._parameters[spec.param] = None  # its values come in with every forward
            self._module_of[spec.name] = spec.module
        self.heads = nn.ModuleList()
        self.norms = nn.ModuleList()
        # "Model duplicate": fresh copies of the masked parameters for tasks too unlike every
        # earlier one. Task t computes with copy copy_of[t] (0 = the shared backbone itself).
        self.n_copies = 0
        self.copy_of: list[int] = []
        self.stages = self._stages()
        self._stage_slots = [self._slots_of(params, norms) for _, _, params, norms in self.stages]
        self.out_features = self._probe_features()

    # -- structure -------------------------------------------------------------------------

    def _add_layer(self, name: str, layer: MaskedParam) -> None:
        self.layers[_key(name)] = layer
        self._names.append(name)

    def _stages(self) -> list[tuple[str, nn.Module, tuple[str, ...], tuple[str, ...]]]:
        """(prefix, module, masked parameters, norm layers) of each stage, in order."""
        children = list(self.backbone.named_children()) if isinstance(
            self.backbone, nn.Sequential) else [("", self.backbone)]

        def inside(prefix: str, name: str) -> bool:  # a norm layer may be the stage itself
            return not prefix or name == prefix or name.startswith(prefix + ".")

        stages = [
            (prefix, module, tuple(n for n in self.param_names if inside(prefix, n)),
             tuple(n for n in self.norm_names if inside(prefix, n)))
            for prefix, module in children
        ]
        # Each masked parameter and norm layer is handed in by exactly one stage; one left
        # out would compute with the module's own tensors, shared by every task.
        for names, i in ((self.param_names, 2), (self.norm_names, 3)):
            if sorted(n for stage in stages for n in stage[i]) != sorted(names):
                raise RuntimeError(f"stages do not cover {names} exactly once (a bug)")
        return stages

    def stage_of(self, name: str) -> int:
        """The stage that holds backbone parameter ``name``."""
        return next(i for i, stage in enumerate(self.stages) if name in stage[2])

    def module_of(self, name: str) -> nn.Module:
        """The backbone module a (copy's) masked parameter belongs to (for hooks)."""
        return self.backbone.get_submodule(self._module_of[base_layer_name(name)])

    @torch.no_grad()
    def _probe_features(self) -> int:
        """The feature size, from one forward of a zero batch (eval mode: nothing updated).
        The batch has 3 inputs, an odd size a backbone cannot return by accident (a slip such
        as ``out[:2]`` would pass a batch of 2 and fail later, in training)."""
        batch = 3
        x = torch.zeros(batch, *self.input_shape)
        weights = {name: self.layers[_key(name)].weight for name in self.param_names}
        try:
            with eval_mode(self.backbone):
                out = functional_call(self.backbone, weights, (x,))
        except Exception as e:  # the user's module: any error means it cannot take the shape
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
            raise ShapeError(
                f"the backbone {type(self.backbone).__name__} cannot take inputs of shape "
                f"{list(self.input_shape)} (per sample): {reason}"
            ) from None
        if not isinstance(out, Tensor) or out.dim() != 2 or out.shape[0] != batch:
            shape = list(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ShapeError(
                f"the backbone {type(self.backbone).__name__} must map a batch to (N, features);"
                f" it returned {shape} for {batch} inputs (end it with nn.Flatten())"
            )
        return int(out.shape[1])

    def masked_layers(self) -> dict[str, MaskedParam]:
        """Every masked parameter by name, in module order: the backbone's, then each copy's
        (named ``copy{c}.{name}``)."""
        return {name: self.layers[_key(name)] for name in self._names}

    def _copy_index(self, task_id: int) -> int:
        return self.copy_of[task_id] if task_id < len(self.copy_of) else 0

    def task_layers(self, task_id: int) -> dict[str, tuple[str, MaskedParam]]:
        """The parameters task ``task_id`` computes with: full name -> (name in the backbone,
        parameter)."""
        c = self._copy_index(task_id)
        prefix = "" if c == 0 else f"{COPY_PREFIX}{c}."
        return {prefix + n: (n, self.layers[_key(prefix + n)]) for n in self.param_names}

    # -- growth per task -------------------------------------------------------------------

    def add_copy(self, generator: torch.Generator) -> int:
        """Append a fresh copy of the masked parameters (weights and scores drawn from
        ``generator``, nothing claimed) and return its index (1, 2, ...)."""
        self.n_copies += 1
        for name in self.param_names:
            base = self.layers[_key(name)]
            layer = MaskedParam(base.weight, base.fan_in, generator, base.slots).to(
                base.weight.device)
            layer.reset(generator)
            self._add_layer(f"{COPY_PREFIX}{self.n_copies}.{name}", layer)
        return self.n_copies

    def add_head(self, n_classes: int, generator: torch.Generator) -> nn.Linear:
        """Append the next task's head (seeded per task) and its own norm layers, which start
        from the backbone's as it was given."""
        # Filled on the host (where the generator lives), so any device gets the same values.
        head = _uninitialised_linear(self.out_features, n_classes)
        bound = 1.0 / math.sqrt(head.in_features)
        with torch.no_grad():
            head.weight.uniform_(-bound, bound, generator=generator)
            head.bias.uniform_(-bound, bound, generator=generator)
        device = next(self.layers.parameters()).device
        self.heads.append(head if device.type == "cpu" else head.to(device))
        self.copy_of.append(0)  # the shared backbone, unless the learner duplicates it
        norms = nn.ModuleDict({
            _key(path): deepcopy(self.backbone.get_submodule(path)) for path in self.norm_names
        })
        self.norms.append(norms.to(device) if self.norm_names else norms)
        return self.heads[-1]

    def norm_template(self) -> dict[str, Tensor]:
        """The norm layers' tensors as the backbone was given (each task starts from them)."""
        return {f"{path}.{k}": v for path in self.norm_names
                for k, v in norm_tensors(self.backbone.get_submodule(path)).items()}

    def kept_norm_names(self) -> list[str]:
        """The per-task norm tensors a finished task keeps: the floating ones (affine
        parameters, running statistics), not a batch counter, which evaluation never reads."""
        return [name for name, v in self.norm_template().items() if v.is_floating_point()]

    def norm_state(self, task_id: int) -> dict[str, Tensor]:
        """Task ``task_id``'s norm layers' tensors, by their names in the backbone."""
        norms = self.norms[task_id]
        return {f"{path}.{k}": v for path in self.norm_names
                for k, v in norm_tensors(norms[_key(path)]).items()}

    # -- computing -------------------------------------------------------------------------

    def fit_input(self, x: Tensor) -> Tensor:
        """``x`` as a batch the backbone takes, or ShapeError (before torch would fail).
        A flat input shape also takes images with that many values each (flattened); an empty
        list of inputs (shape (0,)) is an empty batch."""
        shape = self.input_shape
        if x.dim() == 1 and x.numel() == 0:
            return x.reshape(0, *shape)
        if x.dim() >= 2 and tuple(x.shape[1:]) == shape:
            return x
        if len(shape) == 1 and x.dim() >= 2 and prod(x.shape[1:]) == shape[0]:
            return x.reshape(len(x), shape[0])
        wanted = f"(N, {', '.join(map(str, shape))})"
        if len(shape) == 1:
            wanted += f" or images with {shape[0]} values each"
        raise ShapeError(f"inputs of shape {tuple(x.shape)} do not fit the backbone: expected "
                         f"{wanted}")

    def task_weights(
        self, task_id: int, masks: dict[str, Tensor], train: bool = False
    ) -> dict[str, Tensor]:
        """The masked weights of task ``task_id``, by their names in the backbone."""
        return {
            local: layer.masked_weight(masks[name], scores_grad=train, task_id=task_id)
            for name, (local, layer) in self.task_layers(task_id).items()
        }

    def features(
        self, x: Tensor, task_id: int, weights: dict[str, Tensor], start: int = 0,
        stop: int | None = None, norms: dict[str, Tensor] | None = None,
    ) -> Tensor:
        """Stages ``start:stop`` of the backbone on ``x`` (the input of stage ``start``), with
        ``weights`` and task ``task_id``'s norms (or ``norms``, named as `norm_state` names
        them: a mixture of tasks' norms, `nn.mixture`)."""
        if norms is None:
            norms = self.norm_state(task_id) if self.norm_names else {}
        stages = zip(self.stages[start:stop], self._stage_slots[start:stop], strict=True)
        for (_, module, params, _), (slots, norm_keys) in stages:
            if not slots:
                x = module(x)
                continue
            values = [weights[n] for n in params] + [norms[k] for k in norm_keys]
            x = _call_with(module, slots, values, x)
        return x

    def _slots_of(self, params: tuple[str, ...], norm_paths: tuple[str, ...]
                  ) -> tuple[list[Slot], list[str]]:
        """Where a stage's tensors go, in the order `features` hands them in: its masked
        parameters, then its norm layers' tensors (named as `norm_state` names them)."""
        slots: list[Slot] = []
        for name in params:
            module_path, _, param = name.rpartition(".")
            slots.append((self.backbone.get_submodule(module_path)._parameters, param))
        keys = []
        for path in norm_paths:
            module = self.backbone.get_submodule(path)
            own = dict(module.named_parameters(recurse=False))
            for key in norm_tensors(module):
                slots.append((module._parameters if key in own else module._buffers, key))
                keys.append(f"{path}.{key}")
        return slots, keys

    def forward(
        self, x: Tensor, task_id: int, masks: dict[str, Tensor], train: bool = False
    ) -> Tensor:
        """Logits of task ``task_id`` computed with ``masks`` (straight-through if ``train``)."""
        weights = self.task_weights(task_id, masks, train)
        return self.heads[task_id](self.features(x, task_id, weights))

    @torch.no_grad()
    def task_logits(self, x: Tensor, task_id: int, masks: Sequence[dict[str, Tensor]],
                    weights: dict[str, Tensor] | None = None) -> Tensor:
        """Logits of finished task ``task_id`` (``masks[t]`` is M_t), inputs and id checked;
        an empty batch gives an empty (0, classes) result without running the backbone.
        ``weights``: the task's masked weights (`task_weights`) if the caller keeps them.

        Not `task_logits_and_hidden(...)[0]`: holding the hidden representation through the
        rest of the forward measured 0.98x -> 1.02x the dense network on this hot path."""
        task_id = check_task_id(task_id, len(masks))
        x = self.fit_input(x)
        if not len(x):
            return x.new_zeros((0, self.heads[task_id].out_features))
        if weights is None:
            weights = self.task_weights(task_id, masks[task_id])
        return self.heads[task_id](self.features(x, task_id, weights))

    @torch.no_grad()
    def task_digest(self, task_id: int, masks: dict[str, Tensor]) -> str:
        """SHA-256 of every tensor task ``task_id``'s forward reads with ``masks`` (its masked
        weights, norms and head, and the backbone's own tensors): equal digests mean equal
        logits on the same inputs, so a finished task whose digest has not moved need not be
        re-tested to know its accuracy has not either (forget-free, checked bit for bit)."""
        tensors = {f"weight:{k}": v for k, v in self.task_weights(task_id, masks).items()}
        tensors.update({f"norm:{k}": v for k, v in self.norm_state(task_id).items()})
        tensors.update({f"head:{k}": v for k, v in self.heads[task_id].state_dict().items()})
        tensors.update({f"backbone:{k}": v for k, v in self.backbone.state_dict().items()})
        digest = hashlib.sha256(f"copy {self._copy_index(task_id)}".encode())
        for name in sorted(tensors):
            value = tensors[name].detach().cpu().contiguous()
            digest.update(f"{name} {value.dtype} {list(value.shape)}".encode())
            digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    @property
    def hidden_stop(self) -> int:
        """The stage where the first hidden representation ends: just before the second stage
        holding a masked parameter (all stages if there is one). Task inference scores it:
        the first layer of a task's subnetwork answers most strongly to its own inputs."""
        holding = [i for i, stage in enumerate(self.stages) if stage[2]]
        return holding[1] if len(holding) > 1 else len(self.stages)

    @torch.no_grad()
    def task_logits_and_hidden(
        self, x: Tensor, task_id: int, masks: Sequence[dict[str, Tensor]],
        weights: dict[str, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """`task_logits` and, from the same forward, the first hidden representation
        (stages before `hidden_stop`); the logits are the same bit for bit."""
        task_id = check_task_id(task_id, len(masks))
        x = self.fit_input(x)
        if weights is None:
            weights = self.task_weights(task_id, masks[task_id])
        if not len(x):
            return x.new_zeros((0, self.heads[task_id].out_features)), x.new_zeros((0, 1))
        hidden = self.features(x, task_id, weights, 0, self.hidden_stop)
        logits = self.heads[task_id](self.features(hidden, task_id, weights, self.hidden_stop))
        return logits, hidden

    def backbone_weights(self) -> int:
        """Values of the backbone's masked parameters (capacity's 100 %; copies excluded)."""
        return sum(prod(self.layers[_key(n)].owner.shape) for n in self.param_names)
