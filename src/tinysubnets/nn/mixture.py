"""SupSup's one-shot task inference (Wortsman et al. 2020): one forward and one backward
through a superposition of every finished task's subnetwork, instead of one forward per task.

The network computes with W(a) = sum_t a_t W_t for every masked parameter (W_t: task t's
masked weights, shared and quantized values included), likewise for its norm layers' float
tensors and for its head, starting from a_t = 1/T (stored statistics such as BatchNorm's
running mean mix with the same shares, but the gradient does not flow through them). Task
t's score is minus the gradient of the batch's summed output entropy with respect to a_t:
raising the share of the task the batch comes from makes the output surer the fastest. The
gradient is over the whole batch, so it names one task for a batch known to come from a
single task, never one per input (per input it would cost a forward per task again, as
trying every subnetwork does).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional

from tinysubnets.errors import ConfigError
from tinysubnets.nn.network import TSNNetwork, eval_mode


def _mixed(alpha: Tensor, values: Sequence[Tensor]) -> Tensor:
    """sum_t alpha_t values[t], one addition a task (no (T, ...) stack held)."""
    out = alpha[0] * values[0]
    for a, v in zip(alpha[1:], values[1:], strict=True):
        out = out + a * v
    return out


def mixture_logits(net: TSNNetwork, x: Tensor, weights: Sequence[dict[str, Tensor]],
                   alpha: Tensor) -> Tensor:
    """Logits on ``x`` of the network computing with sum_t alpha_t of task t's masked weights
    (``weights[t]``), norm layers' float tensors and head; with alpha one-hot at t, task t's
    logits bit for bit. Differentiable in ``alpha``; eval mode (norm layers read the mixed
    stored statistics and update nothing)."""
    tasks = len(weights)
    heads = [net.heads[t] for t in range(tasks)]
    sizes = sorted({h.out_features for h in heads})
    if len(sizes) > 1:
        raise ConfigError(f"the oneshot criterion mixes every task's head, but the heads have "
                          f"{', '.join(map(str, sizes))} classes: use a per-task criterion "
                          f"(entropy, max_prob, energy, activation)")
    mixed = {name: _mixed(alpha, [w[name].detach() for w in weights]) for name in weights[0]}
    states = [net.norm_state(t) for t in range(tasks)] if net.norm_names else []
    norms = {}
    for key, value in (states[0] if states else {}).items():
        path, _, attr = key.rpartition(".")
        if not value.is_floating_point():  # a batch counter: evaluation never reads it
            norms[key] = value
            continue
        # Stored statistics (BatchNorm's running mean and variance) are buffers that torch
        # does not differentiate through: they mix with the same shares, held constant.
        buffer = attr in net.backbone.get_submodule(path)._buffers
        norms[key] = _mixed(alpha.detach() if buffer else alpha,
                            [s[key].detach() for s in states])
    head_w = _mixed(alpha, [h.weight.detach() for h in heads])
    head_b = _mixed(alpha, [h.bias.detach() for h in heads])
    with eval_mode(net):
        return functional.linear(net.features(x, 0, mixed, norms=norms), head_w, head_b)


def oneshot_scores(net: TSNNetwork, x: Tensor, weights: Sequence[dict[str, Tensor]]
                   ) -> Tensor:
    """(T,): minus d H / d a_t at a_t = 1/T, H the summed entropy of the softmax outputs on
    the batch ``x`` (checked model-ready inputs) of the mixture of the T finished tasks whose
    masked weights are ``weights[t]`` (`mixture_logits`); higher = the batch's task more
    likely. Every task's head must have the same number of classes (the mixture adds heads):
    otherwise a ConfigError."""
    alpha = torch.full((len(weights),), 1.0 / len(weights), device=x.device,
                       requires_grad=True)
    with torch.enable_grad():
        log_p = torch.log_softmax(mixture_logits(net, x, weights, alpha).float(), dim=1)
        entropy = -(log_p.exp() * log_p).sum()
        (grad,) = torch.autograd.grad(entropy, alpha)
    return -grad.detach()
