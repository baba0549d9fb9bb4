"""Outlier exposure: while task t trains, its subnetwork learns to be unsure on earlier tasks'
replay samples, so task inference finds the right subnetwork. Earlier tasks are untouched
(forget-free, bit for bit), and the loss is what moves the new task's confidence."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import tiny_config

from tinysubnets import run
from tinysubnets.config import ReplayConfig
from tinysubnets.nn.inference import confidence
from tinysubnets.scenarios import build_scenario


def _run(tmp_path, weight: float):
    cfg = dataclasses.replace(tiny_config(), tasks=2,
                              replay=ReplayConfig(per_task=50, outlier_exposure=weight))
    torch.set_num_threads(2)
    out = tmp_path / f"w{weight}"
    result, learner = run(cfg, out, progress=False)
    return cfg, result, learner, out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("oe")
    return _run(tmp, 0.0), _run(tmp, 1.0)


def test_the_new_task_is_unsure_on_earlier_tasks_inputs(runs) -> None:
    (cfg, _, plain, _), (_, _, exposed, _) = runs
    x0 = build_scenario(cfg).tasks[0].split("test").x[:500]  # task 0's inputs, not its replay
    sure = {name: confidence(learner.logits(x0, 1), "entropy").mean().item()
            for name, learner in (("plain", plain), ("exposed", exposed))}
    assert sure["exposed"] < sure["plain"] - 0.1, sure  # -1 = uniform, 0 = certain
    found = {name: (learner.infer_task(x0, "entropy") == 0).float().mean().item()
             for name, learner in (("plain", plain), ("exposed", exposed))}
    assert found["exposed"] > found["plain"], found


def test_earlier_tasks_and_the_promises_are_untouched(runs) -> None:
    (cfg, plain_result, plain, _), (_, result, exposed, _) = runs
    x = build_scenario(cfg).tasks[0].split("test").x[:64]
    assert torch.equal(plain.logits(x, 0), exposed.logits(x, 0))  # trained before any replay
    assert result.bwt == 0.0 and plain_result.bwt == 0.0
    assert result.acc > 70  # the task still learns its own classes


def test_a_resumed_run_gives_the_same_file(runs, tmp_path) -> None:
    cfg, _, _, out = runs[1]
    # stopped after task 0, resumed: the replay comes back from the checkpoint and the
    # outlier batches are drawn from the seed, so the file is the uninterrupted run's
    run(cfg, tmp_path / "again", progress=False, stop_after=1)
    run(cfg, tmp_path / "again", progress=False, resume=True)
    assert (tmp_path / "again" / "model.tsn").read_bytes() == (out / "model.tsn").read_bytes()
