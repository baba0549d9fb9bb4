"""Mask learning for one task (TSN step 2): train free weights and scores, keep the best epoch."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from tinysubnets.config import TrainConfig
from tinysubnets.nn.evaluate import accuracy
from tinysubnets.nn.masked import MaskedParam, MaskSelector
from tinysubnets.nn.network import TSNNetwork, base_layer_name, eval_mode
from tinysubnets.tasks import Split, iterate_batches


@dataclass
class TrainOutcome:
    """What training one task measured: the chosen epoch and the validation curve."""

    best_epoch: int
    best_val_acc: float
    val_acc: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    epoch_train_s: list[float] = field(default_factory=list)


class _Unused:
    """Selects nothing: a layer of another backbone copy than the task's."""

    def __init__(self, layer: MaskedParam) -> None:
        self.mask = torch.zeros(layer.owner.shape, dtype=torch.bool, device=layer.owner.device)

    def __call__(self) -> Tensor:
        return self.mask


def mask_selectors(
    net: TSNNetwork, cfg: TrainConfig, budgets: dict[str, int] | None = None,
    task_id: int | None = None,
) -> dict[str, MaskSelector | _Unused]:
    """One mask selector per masked layer (``budgets``: free weights each layer's mask takes).

    With ``task_id``, the layers of backbone copies the task does not compute with get an
    empty mask; the keep ratio of a copy's layer is that of the same layer of the backbone.
    """
    budgets = budgets or {}
    used = set(net.masked_layers()) if task_id is None else set(net.task_layers(task_id))
    return {
        name: MaskSelector(layer, cfg.keep_ratio_of(base_layer_name(name)), budgets.get(name),
                           cfg.share_ratio_of(base_layer_name(name)), task_id)
        if name in used else _Unused(layer)
        for name, layer in net.masked_layers().items()
    }


def select_masks(selectors: dict[str, MaskSelector | _Unused]) -> dict[str, Tensor]:
    """The masks the current scores pick, one per masked layer."""
    return {name: select() for name, select in selectors.items()}


def make_optimizer(params: list[nn.Parameter], cfg: TrainConfig) -> torch.optim.Optimizer:
    # fused: one kernel per tensor instead of ~10 small ops; it halves the step time here.
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True
        )
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def _trainable(net: TSNNetwork, task_id: int) -> list[nn.Parameter]:
    """Free weights, all scores, this task's head and norms. Earlier heads and norms are left
    out: they belong to finished tasks."""
    params: list[nn.Parameter] = []
    for layer in net.masked_layers().values():
        params += [layer.weight, layer.scores]
    params += list(net.heads[task_id].parameters())
    return params + list(net.norms[task_id].parameters())


def _snapshot(net: TSNNetwork, task_id: int) -> dict[str, Tensor]:
    state = {f"{n}.{p}": getattr(m, p) for n, m in net.masked_layers().items()
             for p in ("weight", "scores")}
    state.update({f"head.{k}": v for k, v in net.heads[task_id].state_dict().items()})
    # running statistics too: they must come from the kept epoch
    state.update({f"norm.{k}": v for k, v in net.norms[task_id].state_dict().items()})
    return {k: v.detach().clone() for k, v in state.items()}


@torch.no_grad()
def _restore(net: TSNNetwork, task_id: int, state: dict[str, Tensor]) -> None:
    for n, m in net.masked_layers().items():
        m.weight.copy_(state[f"{n}.weight"])
        m.scores.copy_(state[f"{n}.scores"])
    net.heads[task_id].load_state_dict({k[5:]: v for k, v in state.items() if k[:5] == "head."})
    net.norms[task_id].load_state_dict({k[5:]: v for k, v in state.items() if k[:5] == "norm."})


@dataclass(frozen=True)
class OutlierExposure:
    """Inputs of other tasks (earlier tasks' replay samples) on which the task being trained
    should be unsure, the loss's weight, and the generator that draws their batches."""

    x: Tensor
    weight: float
    generator: torch.Generator

    def loss(self, net: TSNNetwork, task_id: int, masks: dict[str, Tensor], n: int) -> Tensor:
        """``weight`` x the cross-entropy to the uniform distribution of task ``task_id``'s
        output on ``n`` drawn inputs. Norm layers run in eval mode: other tasks' inputs must
        not move the task's own statistics."""
        index = torch.randint(len(self.x), (n,), generator=self.generator)
        with eval_mode(net):
            logits = net(self.x[index.to(self.x.device)], task_id, masks, train=True)
        return -self.weight * torch.log_softmax(logits, dim=1).mean()


def train_task(
    net: TSNNetwork,
    task_id: int,
    train: Split,
    val: Split,
    cfg: TrainConfig,
    generator: torch.Generator,
    budgets: dict[str, int] | None = None,
    progress: bool = True,
    exposure: OutlierExposure | None = None,
) -> TrainOutcome:
    """Train task ``task_id``; leave the network at the best validation epoch. ``exposure``:
    also teach it to be unsure on other tasks' inputs.

    The mask is recomputed from the *restored* scores by the caller, so mask and weights come
    from the same epoch (the published code mixes the last step's mask with the best weights).
    """
    net.train()
    optimizer = make_optimizer(_trainable(net, task_id), cfg)
    steps_per_epoch = -(-len(train) // cfg.batch_size)
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None = None
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=cfg.epochs * steps_per_epoch
        )
    elif cfg.schedule == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=cfg.plateau_factor, patience=cfg.plateau_patience
        )
    selectors = mask_selectors(net, cfg, budgets, task_id)
    outcome = TrainOutcome(best_epoch=-1, best_val_acc=-1.0)
    best_state: dict[str, Tensor] = {}
    bar = tqdm(
        range(cfg.epochs), desc=f"task {task_id}", disable=None if progress else True, leave=False
    )
    for epoch in bar:
        total, count = 0.0, 0
        start = time.perf_counter()
        for x, y in iterate_batches(train, cfg.batch_size, generator):
            masks = select_masks(selectors)
            loss = F.cross_entropy(net(x, task_id, masks, train=True), y)
            if exposure is not None:
                loss = loss + exposure.loss(net, task_id, masks, len(y))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            total += float(loss.detach()) * len(y)
            count += len(y)
        outcome.epoch_train_s.append(time.perf_counter() - start)
        val_acc = accuracy(net, task_id, select_masks(selectors), val)
        if plateau is not None:
            plateau.step(val_acc)
        outcome.val_acc.append(val_acc)
        outcome.train_loss.append(total / max(1, count))
        if val_acc > outcome.best_val_acc:
            outcome.best_epoch, outcome.best_val_acc = epoch, val_acc
            best_state = _snapshot(net, task_id)
        bar.set_postfix(loss=f"{outcome.train_loss[-1]:.3f}", val=f"{val_acc:.2f}")
    _restore(net, task_id, best_state)
    net.eval()
    return outcome
