"""Masked parameters: a real-valued score per weight, a task's mask is the top-k of |score|.

Every masked parameter (a Linear or Conv weight or bias of the backbone) keeps two weight
tensors on purpose:
- ``weight`` (trainable) holds the values of *free* positions, those no finished task owns;
- ``frozen`` (a buffer) holds the values of positions claimed by finished tasks.
The effective weight picks ``frozen`` where ``owner >= 0``. Because frozen values never live in
a tensor the optimizer sees, no momentum, Adam state or weight decay can move them
(docs/design.md, invariant 2), and a finished task, whose mask lies inside the claimed
positions, computes with exactly the same numbers forever (invariant 1).

With ``slots`` S > 1 (the paper's bank + task prefix + code: "a single weight separated into
multiple parts which can be assigned to different tasks"), a position holds up to S values of
different tasks. ``frozen``/``owner`` are its first value and owner; ``slot_frozen`` and
``slot_owner`` (S - 1 deep) the later ones, filled in task order. A task that shares a position
reads its latest value before the task; a task may instead *renew* a claimed position that has
a free slot: it trains a value of its own there, stored in the next slot. Finished task j reads,
at each position, the value of the last slot whose owner is at most j, so later slots never
change what it computes (forget-free by construction). Owners come in task order per position,
so the model file stores only which shared positions each task renewed.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn


def keep_count(numel: int, keep_ratio: float) -> int:
    """Number of weights a mask keeps at ratio c (at least one, so a layer never goes dark)."""
    return max(1, min(numel, round(keep_ratio * numel)))


def _top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Boolean array marking exactly k largest entries of a 1-D array (0 < k < size).

    ``np.partition`` (introselect) finds the threshold several times faster on CPU than
    ``torch.topk``/``torch.kthvalue`` at these sizes, and numpy's small ops dispatch faster
    than torch's, which matters at one call per layer per step. Exact ties at the threshold
    fall back to ``np.argpartition`` so the count is always k.
    """
    n = values.size
    chosen = values >= np.partition(values, n - k)[n - k]
    if np.count_nonzero(chosen) != k:
        chosen = np.zeros(n, dtype=bool)
        chosen[np.argpartition(values, n - k)[n - k :]] = True
    return chosen


def _magnitude(scores: Tensor) -> np.ndarray:
    return np.abs(scores.detach().cpu().numpy().reshape(-1))


def _select(magnitude: np.ndarray, groups: list[tuple[np.ndarray | None, int, int]]) -> np.ndarray:
    """Union over groups (allowed positions or None for all, k, number allowed) of each
    group's top-k; magnitudes are >= 0, so -1 keeps excluded positions below any threshold."""
    mask = np.zeros(magnitude.size, dtype=bool)
    for allowed, k, n_allowed in groups:
        if k <= 0:
            continue
        if k >= n_allowed:
            mask |= True if allowed is None else allowed
        elif allowed is None:
            mask |= _top_k(magnitude, k)
        else:
            mask |= _top_k(np.where(allowed, magnitude, -1.0), k)
    return mask


def _select_on_device(scores: Tensor, groups: list[tuple[Tensor | None, int, int]]) -> Tensor:
    """`_select` with ``torch.topk``, for scores on an accelerator: copying them to the host at
    every step would cost more than the step. Exactly k per group, like the host path."""
    magnitude = scores.detach().abs().reshape(-1)
    mask = torch.zeros(magnitude.shape, dtype=torch.bool, device=magnitude.device)
    for allowed, k, n_allowed in groups:
        if k <= 0:
            continue
        if k >= n_allowed:
            mask |= True if allowed is None else allowed
        else:
            values = magnitude if allowed is None else torch.where(allowed, magnitude, -1.0)
            mask[torch.topk(values, k, sorted=False).indices] = True
    return mask.view(scores.shape)


def topk_mask(scores: Tensor, k: int, allowed: Tensor | None = None) -> Tensor:
    """Boolean mask of the k largest |scores| (restricted to ``allowed`` positions if given)."""
    if scores.device.type != "cpu":
        flat_t = None if allowed is None else allowed.reshape(-1)
        count = scores.numel() if flat_t is None else int(flat_t.sum())
        return _select_on_device(scores, [(flat_t, k, count)])
    flat = None if allowed is None else allowed.detach().cpu().numpy().reshape(-1)
    count = scores.numel() if flat is None else int(flat.sum())
    mask = _select(_magnitude(scores), [(flat, k, count)])
    return torch.from_numpy(mask).view(scores.shape)


class MaskSelector:
    """Picks a parameter's mask from its current scores: top-k of |score|.

    With a ``new_budget``, exactly ``min(new_budget, k)`` slots go to free positions (the
    task's own, trainable weights) and the rest to claimed ones (shared, frozen). Without it,
    scores trained by earlier tasks keep picking frozen weights and a late task ends up with
    almost nothing to train; the budget also keeps capacity for the tasks to come.
    ``share_ratio`` caps the shared slots (a fraction of the layer): a layer whose frozen
    weights serve no other task (p-MNIST's first layer: another permutation's pixels) is
    better left out of the masks than forced in, where it costs mask bits too.
    Which positions are free does not change while a task trains, so it is computed once.
    """

    def __init__(self, layer: MaskedParam, keep_ratio: float, new_budget: int | None = None,
                 share_ratio: float | None = None, task_id: int | None = None):
        self.layer, self.task_id = layer, task_id
        self.renewing = False  # whether own weights may take a free slot of a claimed position
        n = layer.scores.numel()
        k = keep_count(n, keep_ratio)
        if new_budget is None:
            self.groups: list[tuple[np.ndarray | None, int, int]] = [(None, k, n)]
            self.size = k
            return
        claimed = layer.claimed.detach().cpu().numpy().reshape(-1)
        n_claimed = int(claimed.sum())
        open_ = ~layer.full.detach().cpu().numpy().reshape(-1)  # a free slot (1 slot: unclaimed)
        n_open = int(open_.sum())
        # With slots, own weights may also renew claimed positions that are not full; the
        # shared ones then take claimed positions the own ones left (k_new of them at most).
        self.renewing = bool((claimed & open_).any())
        k_new = min(new_budget, k, n_open)
        k_shared = min(k - k_new, max(0, n_claimed - (k_new if self.renewing else 0)))
        if share_ratio is not None:  # the mask may then hold fewer than k weights
            k_shared = min(k_shared, round(share_ratio * n))
        self.size = k_new + k_shared  # ones in every mask this selector returns
        if self.renewing:
            self.open, self.claimed_flat = open_, claimed
            self.k_new, self.k_shared, self.n_open = k_new, k_shared, n_open
            return
        free = None if n_claimed == 0 else open_
        self.groups = [(free, k_new, n_open), (claimed, k_shared, n_claimed)]

    def _renewing_mask(self) -> Tensor:
        """Own weights first (top-k of |score| among positions with a free slot), then shared
        ones among the claimed positions not taken; the claimed positions taken as own are the
        layer's ``renew`` set for this task (on the host: a slotted layer's scores are copied
        there every step)."""
        magnitude = _magnitude(self.layer.scores)
        own = _select(magnitude, [(self.open, self.k_new, self.n_open)])
        shared_ok = self.claimed_flat & ~own
        shared = _select(magnitude, [(shared_ok, self.k_shared, int(shared_ok.sum()))])
        device, shape = self.layer.scores.device, self.layer.scores.shape
        self.layer.renew = torch.from_numpy(own & self.claimed_flat).view(shape).to(device)
        self.layer.renew_task = self.task_id
        return torch.from_numpy(own | shared).view(shape).to(device)

    def __call__(self) -> Tensor:
        if self.renewing:
            return self._renewing_mask()
        scores = self.layer.scores
        if scores.device.type != "cpu":
            if not hasattr(self, "_device_groups"):
                self._device_groups = [
                    (None if a is None else torch.from_numpy(a).to(scores.device), k, n)
                    for a, k, n in self.groups
                ]
            return _select_on_device(scores, self._device_groups)
        mask = _select(_magnitude(scores), self.groups)
        return torch.from_numpy(mask).view(scores.shape)


class _MaskedWeight(torch.autograd.Function):
    """W = where(claimed, frozen, weight) * mask, with the straight-through estimator.

    Backward: dL/dscores = dL/dW * W_eff (the mask's gradient passed straight through), and
    dL/dweight = dL/dW * mask. At claimed positions that gradient lands on entries of the
    trainable tensor that are never read (``frozen`` is), so it needs no extra masking.
    Fused by hand because the autograd graph of the plain expression costs about as much as
    the layer's matmul at p-MNIST sizes.
    """

    @staticmethod
    def forward(  # noqa: D102
        ctx, weight: Tensor, scores: Tensor, frozen: Tensor, claimed: Tensor, mask: Tensor
    ) -> Tensor:
        effective = torch.where(claimed, frozen, weight)
        mask_f = mask.to(weight.dtype)
        ctx.save_for_backward(effective, mask_f)
        return effective * mask_f

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None, None]:  # noqa: D102
        effective, mask_f = ctx.saved_tensors
        grad_weight = grad * mask_f if ctx.needs_input_grad[0] else None
        grad_scores = grad * effective if ctx.needs_input_grad[1] else None
        return grad_weight, grad_scores, None, None, None


class MaskedParam(nn.Module):
    """One masked parameter of the backbone (a Linear or Conv weight, or its bias).

    The backbone module keeps its structure but none of these values: each forward hands
    them in (see `TSNNetwork`), so the same module computes any task, with any task's mask.
    """

    weight: nn.Parameter
    scores: nn.Parameter
    frozen: Tensor
    owner: Tensor

    def __init__(self, values: Tensor, fan_in: int, generator: torch.Generator,
                 slots: int = 1) -> None:
        super().__init__()
        shape = tuple(values.shape)
        self.fan_in, self.slots = fan_in, slots
        # The module's own values start the free weights (a pretrained backbone stays one);
        # scores are drawn from the run's seed.
        self.weight = nn.Parameter(values.detach().to("cpu", torch.float32).clone())
        self.scores = nn.Parameter(self._uniform(shape, generator))
        self.register_buffer("frozen", torch.zeros(shape))
        # owner task of each position; -1 = free. int16 is plenty (and what the file stores).
        self.register_buffer("owner", torch.full(shape, -1, dtype=torch.int16))
        if slots > 1:  # later values of a position (see the module docstring)
            self.register_buffer("slot_frozen", torch.zeros((slots - 1, *shape)))
            self.register_buffer("slot_owner",
                                 torch.full((slots - 1, *shape), -1, dtype=torch.int16))
        # The claimed positions where the task in progress (``renew_task``) trains a value of
        # its own in a free slot; set by its mask selector, cleared when it consolidates.
        self.renew: Tensor | None = None
        self.renew_task: int | None = None

    def _uniform(self, shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
        """Kaiming-uniform with a = sqrt(5), torch's default for Linear and Conv weights."""
        bound = 1.0 / math.sqrt(max(1, self.fan_in))
        return torch.empty(shape).uniform_(-bound, bound, generator=generator)

    @torch.no_grad()
    def reset(self, generator: torch.Generator) -> None:
        """A fresh parameter: weights and scores drawn anew from ``generator``, nothing
        frozen, nothing owned (a backbone copy, see "model duplicate")."""
        for tensor in (self.weight, self.scores):
            tensor.copy_(self._uniform(tuple(tensor.shape), generator))
        self.frozen.zero_()
        self.owner.fill_(-1)
        if self.slots > 1:
            self.slot_frozen.zero_()
            self.slot_owner.fill_(-1)
        self.renew = self.renew_task = None

    @property
    def claimed(self) -> Tensor:
        """Positions owned by a finished task (the consolidated mask C_{t-1}).

        Cached until ``owner`` changes (its version counter moves on any in-place write,
        ``consolidate`` and ``load_state_dict`` included): it is read on every step.
        """
        key = (self.owner.data_ptr(), self.owner._version)
        if getattr(self, "_claimed_key", None) != key:
            self._claimed_cache = self.owner >= 0
            self._claimed_key = key
        return self._claimed_cache

    @property
    def full(self) -> Tensor:
        """Positions whose every slot holds a value (with one slot: the claimed ones)."""
        if self.slots == 1:
            return self.claimed
        return self.slot_owner[-1] >= 0

    def free_slots(self) -> int:
        """Values the layer can still take: a free slot per position and slot."""
        if self.slots == 1:
            return int((~self.claimed).sum())
        taken = int(self.claimed.sum()) + int((self.slot_owner >= 0).sum())
        return self.slots * self.owner.numel() - taken

    def _read_slot(self, task_id: int | None, first: Tensor, later: Tensor | None) -> Tensor:
        """Of ``first`` (slot 0) and ``later`` (slots 1..S-1), the entry task ``task_id`` reads
        at each position: the last slot whose owner is at most ``task_id`` (None: the last
        slot filled, what a new task shares)."""
        value = first
        for s in range(self.slots - 1):
            owner = self.slot_owner[s]
            take = owner >= 0 if task_id is None else (owner >= 0) & (owner <= task_id)
            value = torch.where(take, later[s], value)
        return value

    def values_for(self, task_id: int | None = None) -> Tensor:
        """The stored value task ``task_id`` reads at each position (see `_read_slot`)."""
        return self._read_slot(task_id, self.frozen, getattr(self, "slot_frozen", None))

    def owners_for(self, task_id: int | None = None) -> Tensor:
        """The owner of the value task ``task_id`` reads at each position (-1: none)."""
        return self._read_slot(task_id, self.owner, getattr(self, "slot_owner", None))

    def _stored_and_read(self, task_id: int | None) -> tuple[Tensor, Tensor]:
        """(stored values, where task ``task_id`` reads them rather than the trainable ones):
        the task in progress trains its renewed positions."""
        if self.renew is None or task_id not in (None, self.renew_task):
            return self.values_for(task_id), self.claimed
        return self.values_for(task_id), self.claimed & ~self.renew

    def effective_weight(self, task_id: int | None = None) -> Tensor:
        """Stored values where task ``task_id`` reads a finished task's value, trainable values
        elsewhere (None: the task in progress)."""
        stored, read = self._stored_and_read(task_id)
        return torch.where(read, stored, self.weight)

    def select_mask(self, keep_ratio: float, new_budget: int | None = None,
                    share_ratio: float | None = None) -> Tensor:
        """The mask the current scores pick (see :class:`MaskSelector`)."""
        return MaskSelector(self, keep_ratio, new_budget, share_ratio)()

    def masked_weight(self, mask: Tensor, scores_grad: bool = False,
                      task_id: int | None = None) -> Tensor:
        """The weight task ``task_id`` (None: the task in progress) computes with.

        With ``scores_grad`` the mask is applied through the straight-through estimator
        (training); otherwise by selection, so positions outside the mask are exact zeros
        whatever the free weights hold (evaluation).
        """
        if scores_grad:
            stored, read = self._stored_and_read(task_id)
            return _MaskedWeight.apply(self.weight, self.scores, stored, read, mask)
        return torch.where(mask, self.effective_weight(task_id),
                           torch.zeros((), dtype=self.frozen.dtype))

    def own_mask(self, mask: Tensor) -> Tensor:
        """The task in progress's own weights O_t: M_t minus C_{t-1}, and the claimed positions
        it renews (slots > 1)."""
        _, read = self._stored_and_read(None)
        return mask & ~read

    def own_positions(self, mask: Tensor) -> Tensor:
        """Flat indices of the task's own weights (`own_mask`)."""
        return self.own_mask(mask).flatten().nonzero().view(-1)

    def consolidate(self, mask: Tensor, task_id: int) -> Tensor:
        """Freeze the task's own weights: a free position's value and owner go to its first
        slot, a renewed position's to its next free slot. Returns them as a boolean mask."""
        own = self.own_mask(mask)
        new = own & ~self.claimed
        renewed = own & self.claimed
        if bool(renewed.any()):
            flat = renewed.flatten().nonzero().view(-1)
            # the next free slot of each renewed position (a selector never renews a full one)
            slot = (self.slot_owner.view(self.slots - 1, -1)[:, flat] >= 0).sum(0)
            self.slot_frozen.view(self.slots - 1, -1)[slot, flat] = self.weight.detach().view(
                -1)[flat]
            self.slot_owner.view(self.slots - 1, -1)[slot, flat] = task_id
        self.frozen[new] = self.weight.detach()[new]
        self.owner[new] = task_id
        self.renew = self.renew_task = None
        return own
