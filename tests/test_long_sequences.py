"""Open-ended streams: a finished run is extended without touching its tasks, a learner takes
one task at a time, and the ``fraction`` claim rule needs no count of the tasks to come."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from user_models import UserMLP, toy_data

import tinysubnets as tsn
from tinysubnets.cli import main
from tinysubnets.errors import ConfigError, ShapeError

FRACTION = tiny_config(claim="fraction", claim_fraction=0.3)


def _logits(model_path: Path, tasks: int, x: torch.Tensor) -> list[torch.Tensor]:
    model = tsn.load(model_path)
    return [model.logits(x, t) for t in range(tasks)]


def _probe() -> torch.Tensor:
    return torch.randn(64, 784, generator=torch.Generator().manual_seed(5))


def test_an_extended_run_keeps_its_tasks_and_equals_a_run_planned_long(tmp_path: Path) -> None:
    short, long = tmp_path / "short", tmp_path / "long"
    first, _ = tsn.run(dataclasses.replace(FRACTION, tasks=2), short, progress=False)
    before = _logits(short / "model.tsn", 2, _probe())
    extended, learner = tsn.run(FRACTION, short, progress=False, resume=True)
    assert learner.num_tasks == 3 and extended.R[:2] == first.R
    after = _logits(short / "model.tsn", 3, _probe())
    assert all(torch.equal(a, b) for a, b in zip(before, after, strict=False))
    # The fraction rule needs no task count: extending is the same as planning 3 tasks.
    planned, _ = tsn.run(FRACTION, long, progress=False)
    assert planned.R == extended.R
    assert all(torch.equal(a, b) for a, b in zip(_logits(long / "model.tsn", 3, _probe()),
                                                 after, strict=True))


def test_a_run_is_extended_never_shortened(tmp_path: Path) -> None:
    out = tmp_path / "run"
    tsn.run(dataclasses.replace(FRACTION, tasks=2), out, progress=False)
    checkpoint = (out / "checkpoint.pt").read_bytes()
    with pytest.raises(ConfigError, match="finished 2 tasks, more than the 1 asked.*never "
                                          "shortened"):
        tsn.run(dataclasses.replace(FRACTION, tasks=1), out, progress=False, resume=True)
    assert (out / "checkpoint.pt").read_bytes() == checkpoint


def test_tsn_run_resume_with_more_tasks_extends_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    quick = ["--epochs", "1", "--no-progress", "--claim", "fraction"]
    assert main(["run", "--tasks", "1", *quick, "--out", str(out)]) == 0
    row = tsn.load(out / "model.tsn").logits(_probe(), 0)
    assert main(["run", "--resume", str(out), "--tasks", "2", "--no-progress"]) == 0
    assert "tasks: 2" in (out / "config.yaml").read_text()
    model = tsn.load(out / "model.tsn")
    assert model.num_tasks == 2 and torch.equal(model.logits(_probe(), 0), row)


def test_the_fraction_rule_claims_a_share_of_what_is_free(tmp_path: Path) -> None:
    from conftest import builtin_learner

    learner = builtin_learner(FRACTION, hidden=(16, 16))
    scenario_cfg = dataclasses.replace(FRACTION, tasks=2)
    from tinysubnets.scenarios import build_scenario

    tasks = build_scenario(scenario_cfg).tasks
    for task in tasks:
        free = {name: int((~layer.claimed).sum())
                for name, layer in learner.net.masked_layers().items()}
        budgets = learner.new_weight_budgets()
        assert budgets == {name: math.ceil(n * 0.3) for name, n in free.items()}
        record = learner.learn_task(task, progress=False)
        assert all(own <= budgets[name] for name, own in record.own.items())
    assert learner.num_tasks == 2
    assert learner.new_weight_budgets() != budgets  # what task 1 claimed is no longer free


def test_a_learner_takes_one_task_at_a_time_as_a_run_does(tmp_path: Path) -> None:
    cfg = {"train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "claim": "fraction"}, "seed": 3}
    tasks = [tsn.Task.from_tensors(f"toy{i}", *toy_data(i), seed=i) for i in range(2)]
    _, ran = tsn.run(cfg, tasks=tasks, backbone=UserMLP(), progress=False)
    learner = tsn.Learner(UserMLP(), tsn.RunConfig(**{**cfg, "train": tsn.TrainConfig(
        **cfg["train"])}), input_shape=(1, 8, 8))
    for task in tasks:
        learner.learn_task(task, progress=False)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    for t in range(2):
        assert torch.equal(learner.logits(x, t), ran.logits(x, t))
    with pytest.raises(ShapeError, match=r"inputs of shape \[64\], the network takes \[1, 8, 8\]"):
        x_train, y_train, x_test, y_test = toy_data(2, shape=(64,))
        learner.learn_task(tsn.Task.from_tensors("flat", x_train, y_train, x_test, y_test),
                           progress=False)


def test_a_user_run_folder_grows_by_one_task(tmp_path: Path) -> None:
    cfg = {"train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "claim": "fraction"}, "seed": 3}
    tasks = [tsn.Task.from_tensors(f"toy{i}", *toy_data(i), seed=i) for i in range(2)]
    out = tmp_path / "run"
    first, _ = tsn.run(cfg, out, tasks=tasks[:1], backbone=UserMLP(), progress=False)
    grown, learner = tsn.run(cfg, out, tasks=tasks, backbone=UserMLP(), progress=False,
                             resume=True)
    assert learner.num_tasks == 2 and grown.R[0] == first.R[0]


def test_verified_rows_equal_rows_retested_on_data(tmp_path: Path) -> None:
    verified, learner = tsn.run(tiny_config(), progress=False)
    retested, _ = tsn.run(dataclasses.replace(tiny_config(), retest="all"), progress=False)
    assert verified.R == retested.R
    counts = [(t["retest"]["on_data"], t["retest"]["verified"]) for t in verified.tasks]
    assert counts == [(1, 0), (1, 1), (3, 0)]  # the last row is measured on data whole
    assert all(t["retest"]["changed"] == [] for t in verified.tasks)
    assert [t["retest"]["on_data"] for t in retested.tasks] == [1, 2, 3]
    assert [t["digest"] for t in verified.tasks] == [learner.task_digest(j) for j in range(3)]


def test_a_user_module_with_batchnorm_keeps_its_digests(tmp_path: Path) -> None:
    from user_models import UserCNN

    cfg = {"train": {"epochs": 1, "batch_size": 32, "lr": 0.01}, "seed": 3}
    tasks = [tsn.Task.from_tensors(f"toy{i}", *toy_data(i), seed=i) for i in range(3)]
    result, _ = tsn.run(cfg, tasks=tasks, backbone=UserCNN(), progress=False)
    assert [t["retest"]["verified"] for t in result.tasks] == [0, 1, 0]


def test_a_changed_subnetwork_is_retested_and_named(tmp_path: Path) -> None:
    from tinysubnets.runs import retest_row
    from tinysubnets.scenarios import build_scenario

    cfg = dataclasses.replace(tiny_config(), tasks=2)
    result, learner = tsn.run(cfg, stop_after=2, progress=False)
    scenario = build_scenario(cfg)
    row, how = retest_row(cfg, learner, scenario, result, 1, final=False)
    assert how == {"on_data": 1, "verified": 1, "changed": []} and row[0] == result.R[1][0]
    layer = learner.net.masked_layers()["fc2.weight"]
    free_before = learner.task_digest(0)
    with torch.no_grad():
        layer.weight[~layer.claimed] += 1.0  # free weights: no finished task reads them
    assert learner.task_digest(0) == free_before
    with torch.no_grad():
        owned = (layer.owner == 0).nonzero()[0]
        layer.frozen[tuple(owned)] += 1.0  # a value task 0 computes with
    _, how = retest_row(cfg, learner, scenario, result, 1, final=False)
    assert how == {"on_data": 2, "verified": 0, "changed": [0]}
