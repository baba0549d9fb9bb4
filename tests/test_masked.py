"""Top-k masks and the straight-through estimator, on hand-made tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinysubnets.nn.masked import MaskedParam, keep_count, topk_mask
from tinysubnets.nn.network import TSNNetwork


def MaskedLinear(n_in: int, n_out: int) -> MaskedParam:  # noqa: N802
    """The weight of a Linear(n_in, n_out), masked."""
    return MaskedParam(torch.zeros(n_out, n_in), n_in, torch.Generator().manual_seed(0))


def test_topk_mask_keeps_exactly_the_largest_magnitudes() -> None:
    scores = torch.tensor([[0.1, -0.9, 0.3], [0.5, -0.2, 0.05]])
    mask = topk_mask(scores, 3)
    assert mask.tolist() == [[False, True, True], [True, False, False]]


def test_topk_mask_with_ties_still_keeps_k() -> None:
    scores = torch.ones(4, 5)
    for k in (1, 7, 19):
        assert int(topk_mask(scores, k).sum()) == k


def test_topk_mask_edges_and_allowed_positions() -> None:
    scores = torch.tensor([4.0, -3.0, 2.0, 1.0])
    assert topk_mask(scores, 0).sum() == 0
    assert topk_mask(scores, 4).all()
    allowed = torch.tensor([False, True, False, True])
    assert topk_mask(scores, 1, allowed=allowed).tolist() == [False, True, False, False]
    assert keep_count(10, 0.5) == 5 and keep_count(10, 0.01) == 1 and keep_count(10, 1.0) == 10


def test_straight_through_gradients() -> None:
    torch.manual_seed(0)
    layer = MaskedLinear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
        layer.scores.copy_(torch.tensor([[0.9, 0.1, 0.8], [0.2, 0.7, 0.3]]))
    # Position (0, 0) belongs to a finished task, with a frozen value of its own.
    layer.consolidate(torch.tensor([[True, False, False], [False, False, False]]), task_id=0)
    with torch.no_grad():
        layer.frozen[0, 0] = -10.0
    mask = layer.select_mask(keep_ratio=0.5)  # top-3 of |scores|: (0,0), (0,2), (1,1)
    assert mask.tolist() == [[True, False, True], [False, True, False]]
    weight = layer.masked_weight(mask, scores_grad=True)
    assert weight.tolist() == [[-10.0, 0.0, 3.0], [0.0, 5.0, 0.0]]
    upstream = torch.arange(1.0, 7.0).view(2, 3)
    weight.backward(upstream)
    # Scores: the upstream gradient times the effective weight, at *every* position (STE).
    effective = torch.tensor([[-10.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert torch.equal(layer.scores.grad, upstream * effective)
    # Weights: only masked positions. The gradient at the frozen position (0, 0) lands on the
    # trainable tensor's unused entry; the value the task computes with stays the frozen one.
    assert torch.equal(layer.weight.grad, upstream * mask)
    with torch.no_grad():
        layer.weight -= 100.0 * layer.weight.grad
    assert layer.masked_weight(mask)[0, 0] == -10.0


def test_new_weight_budget_reserves_free_positions() -> None:
    layer = MaskedLinear(10, 10)
    with torch.no_grad():
        layer.scores.copy_(torch.arange(100.0).view(10, 10))
    claimed = torch.zeros(10, 10, dtype=torch.bool)
    claimed.view(-1)[50:] = True  # the 50 largest scores are frozen positions
    layer.consolidate(claimed, task_id=0)
    plain = layer.select_mask(keep_ratio=0.2)
    assert not (plain & ~layer.claimed).any()
    budgeted = layer.select_mask(keep_ratio=0.2, new_budget=10)
    assert int(budgeted.sum()) == 20
    assert int((budgeted & ~layer.claimed).sum()) == 10
    # The own part takes the free positions with the largest scores (40..49), the shared
    # part the claimed ones with the largest scores (90..99).
    assert budgeted.view(-1).nonzero().view(-1).tolist() == [*range(40, 50), *range(90, 100)]
    # With nothing claimed yet, the mask holds only the budget.
    fresh = MaskedLinear(10, 10)
    assert int(fresh.select_mask(keep_ratio=0.5, new_budget=7).sum()) == 7


def test_share_ratio_caps_the_frozen_part_of_a_mask() -> None:
    layer = MaskedLinear(10, 10)
    with torch.no_grad():
        layer.scores.copy_(torch.arange(100.0).view(10, 10))
    claimed = torch.zeros(10, 10, dtype=torch.bool)
    claimed.view(-1)[50:] = True
    layer.consolidate(claimed, task_id=0)
    capped = layer.select_mask(keep_ratio=0.3, new_budget=10, share_ratio=0.05)
    assert int((capped & ~layer.claimed).sum()) == 10  # the own part is unchanged
    assert capped.view(-1).nonzero().view(-1).tolist() == [*range(40, 50), *range(95, 100)]
    disjoint = layer.select_mask(keep_ratio=0.3, new_budget=10, share_ratio=0.0)
    assert not (disjoint & layer.claimed).any() and int(disjoint.sum()) == 10


def test_evaluation_weight_ignores_free_values_outside_the_mask() -> None:
    layer = MaskedLinear(4, 3)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[0, 1] = True
    with torch.no_grad():
        layer.weight.fill_(float("nan"))
        layer.weight[0, 1] = 2.0
    weight = layer.masked_weight(mask)
    assert weight[0, 1] == 2.0 and int((weight != 0).sum()) == 1


def test_masked_conv2d_forward_and_straight_through() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, kernel_size=3, padding=1)  # a bias too: masked like the weight
    net = TSNNetwork(nn.Sequential(conv, nn.Flatten()), (3, 8, 8),
                     torch.Generator().manual_seed(0))
    layers = net.masked_layers()
    assert list(layers) == ["0.weight", "0.bias"] and conv.weight is not None  # user's kept
    masks = {name: layer.select_mask(keep_ratio=0.25) for name, layer in layers.items()}
    assert int(masks["0.weight"].sum()) == keep_count(4 * 3 * 9, 0.25)
    x = torch.randn(2, 3, 8, 8)
    net.add_head(2, torch.Generator().manual_seed(0))
    out = net.features(x, 0, net.task_weights(0, masks, train=True))
    assert out.shape == (2, 4 * 8 * 8)
    out.square().sum().backward()
    weight = layers["0.weight"]
    # Masked-out weights get no gradient, while every score does (straight-through).
    assert torch.all(weight.weight.grad[~masks["0.weight"]] == 0)
    assert weight.scores.grad.abs().gt(0).float().mean() > 0.9
    # Evaluation equals a plain convolution with the masked weight and bias.
    reference = F.conv2d(x, weight.weight.detach() * masks["0.weight"],
                         layers["0.bias"].weight.detach() * masks["0.bias"], padding=1)
    assert torch.equal(net.features(x, 0, net.task_weights(0, masks)), reference.flatten(1))
