"""The KL step: the estimator on distributions with known divergence, and the learner using it
(divergences recorded, nearest task found, capacity scaled) without breaking forget-free."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from conftest import builtin_learner, tiny_config

from tinysubnets.config import SimilarityConfig
from tinysubnets.learner.similarity import FeatureStats, gaussian_kl
from tinysubnets.scenarios import build_scenario


def _stats(mean: list[float], var: list[float]) -> FeatureStats:
    return FeatureStats(torch.tensor(mean, dtype=torch.float64),
                        torch.tensor(var, dtype=torch.float64))


def test_gaussian_kl_known_values() -> None:
    p = _stats([0.0, 1.0], [1.0, 2.0])
    assert gaussian_kl(p, p) == 0.0
    # KL(N(1, 1) ‖ N(0, 1)) = 1/2 per feature; KL(N(0, 1) ‖ N(0, 4)) = (ln 4 + 1/4 - 1) / 2
    assert gaussian_kl(_stats([1.0], [1.0]), _stats([0.0], [1.0])) == pytest.approx(0.5)
    assert gaussian_kl(_stats([0.0], [1.0]), _stats([0.0], [4.0])) == pytest.approx(
        0.5 * (math.log(4) + 0.25 - 1))
    # averaged over features, and not symmetric
    q = _stats([1.0, 1.0], [1.0, 2.0])
    assert gaussian_kl(q, p) == pytest.approx(0.25)
    assert gaussian_kl(_stats([0.0], [4.0]), _stats([0.0], [1.0])) != gaussian_kl(
        _stats([0.0], [1.0]), _stats([0.0], [4.0]))


def test_sample_estimate_matches_the_closed_form() -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 3, generator=g, dtype=torch.float64)
    b = 2.0 * torch.randn(20000, 3, generator=g, dtype=torch.float64) + 1.0
    est = gaussian_kl(FeatureStats(a.mean(0), a.var(0)), FeatureStats(b.mean(0), b.var(0)))
    exact = 0.5 * (math.log(4) + (1 + 1) / 4 - 1)  # KL(N(0,1) ‖ N(1,4)) per feature
    assert est == pytest.approx(exact, abs=0.02)


@pytest.mark.parametrize("act", [False, True])
def test_learner_records_divergences_and_stays_forget_free(act: bool) -> None:
    cfg = tiny_config(epochs=2)
    sim = SimilarityConfig(share_from_nearest=act, adapt_capacity=act, near=0.0, far=0.0)
    learner = builtin_learner(dataclasses.replace(cfg, similarity=sim))
    scenario = build_scenario(cfg)
    probe = scenario.tasks[0].split("test").x[:100]
    seen = {}
    for t, task in enumerate(scenario.tasks):
        learner.add_head(task.n_classes)
        record = learner.learn(task, task.split("train"), task.split("val"), progress=False)
        if t == 0:
            assert record.divergence is None
        else:
            assert len(record.divergence) == t and all(d >= 0 for d in record.divergence)
            assert record.nearest == min(range(t), key=record.divergence.__getitem__)
            assert record.capacity_scale == (sim.scale_far if act else 1.0)
        seen[t] = learner.logits(probe, t)
        for j, logits in seen.items():
            assert torch.equal(learner.logits(probe, j), logits)
    assert len(learner.feature_stats) == 3
    # the statistics survive a checkpoint
    other = builtin_learner(dataclasses.replace(cfg, similarity=sim))
    other.load_state_dict(learner.state_dict())
    assert all(torch.equal(a.mean, b.mean) for a, b in zip(
        other.feature_stats, learner.feature_stats, strict=True))
