"""The TSN learner: one shared masked network, per-task masks, owners, and consolidation.

Task t trains free weights and all scores; weights claimed by tasks < t are reused frozen.
After training, M_t is taken from the best epoch's scores and its new positions (the task's own
weights O_t = M_t minus C_{t-1}) are frozen with owner t.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tinysubnets.compression.finetune import finetune_codebooks
from tinysubnets.compression.prune import PruneReport, post_prune
from tinysubnets.compression.quantize import Block, QuantizeReport, own_blocks, quantize_task
from tinysubnets.compression.record import FinishedTask, freeze_record
from tinysubnets.config import RunConfig, TrainConfig
from tinysubnets.device import resolve_device
from tinysubnets.errors import ConfigError, ShapeError
from tinysubnets.learner.replay import keep_samples
from tinysubnets.learner.similarity import FeatureStats, divergences, feature_stats, sample
from tinysubnets.learner.trainer import (
    OutlierExposure,
    TrainOutcome,
    mask_selectors,
    select_masks,
    train_task,
)
from tinysubnets.nn.evaluate import accuracy
from tinysubnets.nn.inference import CRITERIA, TaskPredictor
from tinysubnets.nn.network import TSNNetwork, as_batch, check_task_id
from tinysubnets.tasks import Split, Task


@dataclass
class TaskRecord:
    """What learning one task did to the network, per layer."""

    task_id: int
    outcome: TrainOutcome
    mask_size: dict[str, int]
    own: dict[str, int]
    shared: dict[str, int]
    prune: PruneReport | None = None
    quantize: QuantizeReport | None = None
    divergence: list[float] | None = None  # KL(task t ‖ task j) for j < t, before training
    nearest: int | None = None
    capacity_scale: float = 1.0
    copy: int = 0  # the backbone copy the task computes with (0: the shared backbone)
    duplicated: bool = False  # whether the task got a fresh copy ("model duplicate")
    # Wall time of each phase (the paper's Table 4): similarity, train, prune (with its
    # retraining), quantize (with codebook fine-tuning), consolidate.
    phase_s: dict[str, float] = field(default_factory=dict)


REPLAY_STREAM = 1  # the replay memory's draws, apart from training's (stream 0)
OUTLIER_STREAM = 2  # the outlier-exposure batches' draws
COPY_STREAM = 2  # a duplicated backbone's fresh weights and scores
SCORE_STREAM = 3  # the scores' initial values


def task_generator(seed: int, task_id: int, stream: int = 0) -> torch.Generator:
    """A generator seeded by (run seed, task): a resumed run draws the same numbers. A stream
    other than 0 draws independently of stream 0 (training, similarity sample, heads)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + task_id + (stream << 56))


class _PhaseClock:
    """Adds the wall time since the last lap to ``phases[name]``."""

    def __init__(self, phases: dict[str, float]) -> None:
        self.phases, self.last = phases, time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.phases[name] = self.phases.get(name, 0.0) + now - self.last
        self.last = now


class Learner(TaskPredictor):
    """Holds the network and everything TSN keeps per task.

    ``backbone`` is any module that maps a batch of ``input_shape`` inputs to feature vectors
    (see `nn.adopt`); ``spec`` names a built-in backbone (name and keyword arguments), so that
    its model file loads without the module. ``cfg`` is the whole run's configuration.
    """

    def __init__(
        self, backbone: nn.Module, cfg: RunConfig, input_shape: Sequence[int],
        spec: dict[str, Any] | None = None,
    ) -> None:
        cfg.validate()
        self.run_cfg = cfg
        self.cfg, self.seed, self.planned_tasks = cfg.train, cfg.seed, cfg.tasks
        self.device = resolve_device(cfg.device)
        self.prune, self.quantize, self.similarity = cfg.prune, cfg.quantize, cfg.similarity
        self.replay_per_task = cfg.replay.per_task
        self.outlier_weight = cfg.replay.outlier_exposure
        self.replay: list[Split] = []  # per finished task, when replay_per_task > 0
        self.feature_stats: list[FeatureStats] = []
        self.backbone_spec = dict(spec) if spec else {"module": type(backbone).__qualname__}
        # Built on the host from the seed, then moved: the same values on any device.
        net = TSNNetwork(backbone, input_shape, task_generator(self.seed, 0, SCORE_STREAM),
                         cfg.seed if cfg.init == "seed" else None, cfg.train.slots)
        self.net = net.to(self.device)
        known = {*self.net.param_names, *(n.rsplit(".", 1)[0] for n in self.net.param_names)}
        for setting in ("layer_keep_ratio", "layer_share_ratio"):
            unknown = set(getattr(self.cfg, setting)) - known
            if unknown:
                raise ConfigError(
                    f"{setting} names unknown layers {sorted(unknown)}; the backbone's masked "
                    f"layers are {sorted(known)}"
                )
        self.masks: list[dict[str, Tensor]] = []
        self.n_classes: list[int] = []
        # per finished task, what consolidation froze (the model file writes it as it is)
        self.finished: list[FinishedTask] = []
        # the task-inference criterion its run measured best (`nn.inference.choose_criterion`)
        self.criterion: str | None = None

    @property
    def num_tasks(self) -> int:
        """Tasks finished so far."""
        return len(self.masks)

    def add_head(self, n_classes: int) -> None:
        """Create the next task's head (seeded by task, so baselines can rebuild it exactly)."""
        t = len(self.net.heads)
        self.net.add_head(n_classes, task_generator(self.seed, t))
        self.n_classes.append(n_classes)

    def new_weight_budgets(self) -> dict[str, int] | None:
        """Free weights (free slots, with slots > 1) the next task may claim per layer.
        ``fair``: an equal share of what is still free among the tasks still to come (at least
        one), so it needs the planned count. ``fraction``: ``claim_fraction`` of what is free,
        rounded up, so it needs no count (an open-ended stream) and what post-pruning gave back
        is free again. ``scores``: no budget (top-k of scores decides)."""
        rule = self.cfg.claim
        if rule == "scores":
            return None
        left = max(1, self.planned_tasks - self.num_tasks)
        budgets = {}
        for name, layer in self.net.masked_layers().items():
            free = layer.free_slots()
            budgets[name] = (free // left if rule == "fair"
                             else math.ceil(free * self.cfg.claim_fraction))
        return budgets

    def probe(self, task_id: int, split: Split) -> float:
        """Accuracy on a task not yet trained (its fresh head, the mask the scores pick now)."""
        selectors = mask_selectors(self.net, self.cfg, self.new_weight_budgets(), task_id)
        return accuracy(self.net, task_id, select_masks(selectors), split.to(self.device))

    def learn_task(self, task: Task, progress: bool = True) -> TaskRecord:
        """Learn ``task`` as the next task from its own train and validation splits: one more
        task of an open-ended stream (its head is added here). Earlier tasks are untouched."""
        if not isinstance(task, Task):
            raise ConfigError(f"learn_task takes a tinysubnets Task, got {type(task).__name__}")
        train = task.split("train")
        if tuple(train.x.shape[1:]) != self.net.input_shape:
            raise ShapeError(f"task {task.name!r} has inputs of shape {list(train.x.shape[1:])}"
                             f", the network takes {list(self.net.input_shape)}")
        if len(self.net.heads) == self.num_tasks:  # none left by a failed attempt
            self.add_head(task.n_classes)
        return self.learn(task, train, task.split("val"), progress)

    def learn(self, task: Task, train: Split, val: Split, progress: bool = True) -> TaskRecord:
        """Learn ``task`` as the next task (its head must exist): fix M_t, freeze its own
        weights. Anything random in the user's module (dropout) or data pipeline draws from
        torch's generator, seeded here per task, so a run repeats."""
        t = self.num_tasks
        if t >= len(self.net.heads) or self.n_classes[t] != task.n_classes:
            raise ValueError(f"task {task.name!r} has no head of its {task.n_classes} classes")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed * 1_000_003 + t)
            return self._learn(t, task, train, val, progress)

    def _learn(self, t: int, task: Task, train: Split, val: Split, progress: bool) -> TaskRecord:
        train, val = train.to(self.device), val.to(self.device)
        budgets = self.new_weight_budgets()
        record = TaskRecord(t, TrainOutcome(-1, -1.0), {}, {}, {})
        clock = _PhaseClock(record.phase_s)
        # One sample of task t's images serves both sides of the KL step: its divergence from
        # earlier tasks now, its own feature statistics once its subnetwork is fixed (those
        # come from its replay memory instead when the run keeps one).
        x_sample = sample(train.x, self.similarity.sample, task_generator(self.seed, t))
        cfg, budgets = self._use_similarity(record, x_sample, budgets)
        clock.lap("similarity")
        record.outcome = train_task(
            self.net, t, train, val, cfg, task_generator(self.seed, t), budgets, progress,
            self._outlier_exposure(t),
        )
        clock.lap("train")
        masks = select_masks(mask_selectors(self.net, cfg, budgets, t))
        generator = task_generator(self.seed, t)  # for the fine-tuning passes' batch order
        if self.prune.enabled:
            p = self.prune
            masks, record.prune = post_prune(self.net, t, masks, val, p)
            if p.retrain_epochs:  # what is left of the task's own weights, and its head
                # unquantized: every value is its own centroid, kept at float32
                record.prune.retrain = finetune_codebooks(
                    self.net, t, masks, own_blocks(self.net, t, masks, head=True), train, val,
                    epochs=p.retrain_epochs, lr=p.retrain_lr, batch_size=self.cfg.batch_size,
                    generator=generator, codebook_bits=32,
                )
            clock.lap("prune")
        if self.quantize.enabled:
            q = self.quantize

            def finetune(blocks: list[Block]) -> dict:
                return finetune_codebooks(
                    self.net, t, masks, blocks, train, val, epochs=q.finetune_epochs,
                    lr=q.finetune_lr, batch_size=self.cfg.batch_size, generator=generator,
                    codebook_bits=q.codebook_bits,
                )

            record.quantize = quantize_task(
                self.net, t, masks, val, q, finetune if q.finetune_epochs else None)
            clock.lap("quantize")
        owned = {}
        with torch.no_grad():
            for name, layer in self.net.masked_layers().items():
                owned[name] = own = layer.consolidate(masks[name], t)
                record.mask_size[name] = int(masks[name].sum())
                record.own[name] = int(own.sum())
                record.shared[name] = record.mask_size[name] - record.own[name]
        self.masks.append(masks)
        bits = record.quantize.bits if record.quantize else {}
        self.finished.append(freeze_record(self.net, t, task, owned, bits))
        if self.replay_per_task:
            generator = task_generator(self.seed, t, REPLAY_STREAM)
            self.replay.append(keep_samples(train, self.replay_per_task, generator))
        if self.similarity.measure:  # task t's features under its own, now fixed, subnetwork
            # on the samples the model file keeps of it, if any (a variance needs two)
            if self.replay and len(self.replay[t]) >= 2:
                x_sample = self.replay[t].x.to(self.device)
            self.feature_stats.append(feature_stats(self.net, t, masks, x_sample))
        clock.lap("consolidate")
        return record

    def _outlier_exposure(self, t: int) -> OutlierExposure | None:
        """Task t's outliers, the earlier tasks' replay samples, if the run asks for them."""
        if not (self.outlier_weight and self.replay[:t]):
            return None
        x = torch.cat([memory.x for memory in self.replay[:t]]).to(self.device)
        return OutlierExposure(x, self.outlier_weight,
                               task_generator(self.seed, t, OUTLIER_STREAM))

    def _use_similarity(
        self, record: TaskRecord, x_sample: Tensor, budgets: dict[str, int] | None
    ) -> tuple[TrainConfig, dict[str, int] | None]:
        """Measure task t's divergence from every finished task; if asked, start its scores
        from the nearest task's mask and scale its capacity. Returns the settings to train with."""
        s, cfg = self.similarity, self.cfg
        if not (s.measure and self.feature_stats):
            return cfg, budgets
        record.divergence = divergences(self.net, self.masks, self.feature_stats, x_sample)
        nearest = min(range(len(record.divergence)), key=record.divergence.__getitem__)
        record.nearest = nearest
        t = record.task_id
        if s.duplicate_above is not None and record.divergence[nearest] > s.duplicate_above:
            # Too unlike every finished task to share with any: a fresh backbone copy.
            record.copy = self.net.add_copy(task_generator(self.seed, t, COPY_STREAM))
            record.duplicated = True
            for masks in self.masks:  # finished tasks use none of the new copy
                for name, layer in self.net.masked_layers().items():
                    masks.setdefault(name, torch.zeros_like(layer.owner, dtype=torch.bool))
            budgets = self.new_weight_budgets()  # the copy's layers are all free
        else:  # the backbone (copy) of the nearest task, whose weights it is likeliest to share
            record.copy = self.net.copy_of[nearest]
        self.net.copy_of[t] = record.copy
        if s.share_from_nearest:
            with torch.no_grad():
                for name, layer in self.net.masked_layers().items():
                    top = layer.scores.abs().max()
                    mask = self.masks[nearest][name]
                    layer.scores[mask] = torch.sign(layer.scores[mask]) * (top + layer.scores[
                        mask].abs())
        if s.adapt_capacity:
            d = record.divergence[nearest]
            scale = s.scale_near if d < s.near else s.scale_far if d > s.far else 1.0
            record.capacity_scale = scale
            cfg = dataclasses.replace(
                cfg, keep_ratio=min(1.0, cfg.keep_ratio * scale),
                layer_keep_ratio={k: min(1.0, v * scale) for k, v in cfg.layer_keep_ratio.items()},
            )
            if budgets is not None:
                budgets = {k: int(v * scale) for k, v in budgets.items()}
        return cfg, budgets

    def evaluate(self, task_id: int, split: Split) -> float:
        """Test accuracy of a finished task with its own mask M_t (docs/design.md, invariant 4)."""
        task_id = check_task_id(task_id, self.num_tasks)
        return accuracy(self.net, task_id, self.masks[task_id], split.to(self.device))

    def task_digest(self, task_id: int) -> str:
        """A finished task's subnetwork digest (`TSNNetwork.task_digest`): it moves only if a
        tensor the task computes with moved."""
        task_id = check_task_id(task_id, self.num_tasks)
        return self.net.task_digest(task_id, self.masks[task_id])

    def task_weights(self, task_id: int) -> dict[str, Tensor]:
        """A finished task's masked weights, by their names in the backbone (computed anew:
        a learner's layers grow with every task)."""
        task_id = check_task_id(task_id, self.num_tasks)
        with torch.no_grad():
            return self.net.task_weights(task_id, self.masks[task_id])

    def logits(self, x: Tensor | np.ndarray | list, task_id: int) -> Tensor:
        """Logits of a finished task on model-ready inputs ``x`` (N, *input shape): the input
        contract of `CompressedModel.logits` (floats cast to float32, integer inputs refused,
        an empty batch gives (0, classes))."""
        return self.net.task_logits(as_batch(x).to(self.device), task_id, self.masks)

    def logits_and_hidden(self, x: Tensor | np.ndarray | list, task_id: int
                          ) -> tuple[Tensor, Tensor]:
        """`logits` and the first hidden representation (task inference), one forward."""
        return self.net.task_logits_and_hidden(as_batch(x).to(self.device), task_id, self.masks)

    def labels(self, task_id: int) -> list[Any]:
        """A finished task's labels, the user's values, in class-index order."""
        return list(self.finished[check_task_id(task_id, self.num_tasks)].labels)

    def state_dict(self) -> dict:
        """Tensors and plain values only, so checkpoints load with ``weights_only=True``."""
        return {
            "net": self.net.state_dict(),
            "masks": [{k: v.clone() for k, v in m.items()} for m in self.masks],
            "n_classes": list(self.n_classes),
            "feature_stats": [(s.mean.clone(), s.var.clone()) for s in self.feature_stats],
            "replay": [(m.x.clone(), m.y.clone()) for m in self.replay],
            "copy_of": list(self.net.copy_of[: self.num_tasks]),
            "finished": [f.state() for f in self.finished],
            "criterion": self.criterion,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a learner saved by ``state_dict`` (heads are rebuilt before loading)."""
        for n in state["n_classes"][len(self.net.heads):]:
            self.add_head(n)
        copy_of = list(state.get("copy_of", []))
        while self.net.n_copies < max(copy_of, default=0):  # values come from the state
            self.net.add_copy(torch.Generator().manual_seed(0))
        self.net.copy_of[: len(copy_of)] = copy_of
        self.net.load_state_dict(state["net"])
        self.masks = [{k: v.to(self.device) for k, v in m.items()} for m in state["masks"]]
        self.n_classes = list(state["n_classes"])
        self.feature_stats = [
            FeatureStats(m.to(self.device), v.to(self.device))
            for m, v in state.get("feature_stats", [])
        ]
        self.replay = [Split(x.cpu(), y.cpu()) for x, y in state.get("replay", [])]
        self.finished = [FinishedTask.from_state(f) for f in state["finished"]]
        criterion = state.get("criterion")
        self.criterion = criterion if criterion in CRITERIA else None
