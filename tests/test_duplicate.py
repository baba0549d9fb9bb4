"""Model duplicate: a task too unlike every earlier one trains on a fresh copy of the backbone.
The promises still hold: forget-free bit-exactly, the model file gives the same logits, the
copies are counted in capacity, and a run that never duplicates is unchanged."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import tiny_config

from tinysubnets import load, run
from tinysubnets.config import RunConfig, SimilarityConfig
from tinysubnets.errors import ConfigError
from tinysubnets.report.flops import model_ops


def _config(duplicate_above: float | None) -> RunConfig:
    cfg = tiny_config(epochs=1)
    return dataclasses.replace(
        cfg, similarity=dataclasses.replace(cfg.similarity, duplicate_above=duplicate_above)
    )


@pytest.fixture(scope="module")
def duplicated(tmp_path_factory: pytest.TempPathFactory):
    """3 tasks; every task after the first is farther than 0 nats from the others: 2 copies."""
    out = tmp_path_factory.mktemp("dup")
    result, learner = run(_config(0.0), out=out, progress=False)
    return out, result, learner


def test_each_far_task_gets_its_own_copy_and_forgets_nothing(duplicated) -> None:
    out, result, learner = duplicated
    assert learner.net.n_copies == 2
    assert learner.net.copy_of == [0, 1, 2]
    assert [t["duplicated"] for t in result.tasks] == [False, True, True]
    assert result.bwt == 0.0
    # Each task's mask lies in its own backbone copy only.
    for t, masks in enumerate(learner.masks):
        used = {name.split(".")[0] for name, m in masks.items() if m.any()}
        assert used == ({"fc1", "fc2"} if t == 0 else {f"copy{t}"})


def test_the_model_file_predicts_like_the_trained_model(duplicated) -> None:
    out, result, learner = duplicated
    model = load(out / "model.tsn")
    x = torch.randn(16, 784, generator=torch.Generator().manual_seed(3))
    for t in range(3):
        assert torch.equal(model.logits(x, t), learner.logits(x, t))
    assert model.net.copy_of == [0, 1, 2]


def test_copies_are_counted_in_capacity_against_the_one_backbone(duplicated, tmp_path) -> None:
    out, result, _ = duplicated
    plain, _ = run(_config(None), out=tmp_path / "plain", progress=False)
    cap, cap0 = result.model, plain.model
    assert cap["backbone_weights"] == cap0["backbone_weights"] == 784 * 100 + 100 * 100
    assert {"copy1.fc1.weight", "copy2.fc2.weight"} <= set(cap["per_layer_bytes"])
    for name in ("copy1.fc1.weight", "copy2.fc2.weight"):  # the copies' own values are stored
        assert cap["per_layer_bytes"][name]["weights"] > 0


def test_a_duplicated_task_costs_the_flops_of_one_backbone(duplicated) -> None:
    out, _, _ = duplicated
    ops = model_ops(load(out / "model.tsn"))
    assert len({o.dense_macs for o in ops}) == 1  # every task: one backbone and its head


def test_a_run_that_never_duplicates_is_unchanged(tmp_path) -> None:
    base, _ = run(dataclasses.replace(tiny_config(epochs=1), tasks=2), out=tmp_path / "a",
                  progress=False)
    never, _ = run(dataclasses.replace(_config(1e9), tasks=2), out=tmp_path / "b",
                   progress=False)
    assert never.R == base.R
    files = [(tmp_path / d / "model.tsn").read_bytes() for d in ("a", "b")]
    assert files[0] == files[1]  # no "copies" entry: the file a run without the option writes


def test_resume_rebuilds_the_copies(tmp_path: Path) -> None:
    cfg = _config(0.0)
    whole, _ = run(cfg, out=tmp_path / "whole", progress=False)
    run(cfg, out=tmp_path / "part", progress=False, stop_after=2)
    resumed, learner = run(cfg, out=tmp_path / "part", resume=True, progress=False)
    assert resumed.R == whole.R
    assert learner.net.copy_of == [0, 1, 2]


@pytest.mark.parametrize("kwargs", [{"duplicate_above": -1.0},
                                    {"duplicate_above": 1.0, "measure": False}])
def test_bad_duplicate_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(ConfigError, match="duplicate_above"):
        SimilarityConfig(**kwargs).validate()
