"""The replay memory (the paper's Table 5, "with replay memory"): a seeded reservoir sample of
each task, kept unchanged, stored in model.tsn and counted there to the bit; off, the file is
exactly what it was."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from conftest import rechecksum, tiny_config, with_header

from tinysubnets import load, run
from tinysubnets.artifact import inspect
from tinysubnets.artifact.container import CHECKSUM_BYTES
from tinysubnets.artifact.reader import decode, parse
from tinysubnets.cli import main
from tinysubnets.config import ReplayConfig, config_from_dict, read_config_file
from tinysubnets.errors import ConfigError, DataError, TaskIdError
from tinysubnets.learner.learner import REPLAY_STREAM, task_generator
from tinysubnets.learner.replay import keep_samples, reservoir_indices
from tinysubnets.learner.similarity import feature_stats
from tinysubnets.runs import CHECKPOINT
from tinysubnets.scenarios import build_scenario

M = 40  # samples kept per task
SAMPLE_BITS = 784 * 32 + 16  # one p-MNIST input as float32, its label as uint16


def _config(per_task: int):
    return dataclasses.replace(
        tiny_config(epochs=1), tasks=2, replay=ReplayConfig(per_task=per_task)
    )


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory):
    """A 2-task run keeping M samples per task, stopped after task 0 and resumed; the model
    file after task 0 is kept too."""
    out = tmp_path_factory.mktemp("replay")
    cfg = _config(M)
    torch.set_num_threads(2)
    run(cfg, out=out, progress=False, stop_after=1)
    first = (out / "model.tsn").read_bytes()
    result, learner = run(cfg, out=out, resume=True, progress=False)
    return cfg, out, result, learner, first


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory):
    """The same run without a replay memory."""
    out = tmp_path_factory.mktemp("plain")
    torch.set_num_threads(2)
    result, learner = run(_config(0), out=out, progress=False)
    return out, result, learner


def _algorithm_r(n: int, m: int, generator: torch.Generator) -> list[int]:
    """Algorithm R written as a loop, drawing the same numbers as `reservoir_indices`."""
    order = torch.randperm(n, generator=generator).tolist()
    if n <= m:
        return order
    draws = torch.rand(n - m, generator=generator, dtype=torch.float64).tolist()
    reservoir = order[:m]
    for i, u in zip(range(m, n), draws, strict=True):
        j = int(u * (i + 1))
        if j < m:
            reservoir[j] = order[i]
    return reservoir


# --- reservoir sampling ---------------------------------------------------------------------


@pytest.mark.parametrize("n, m", [(1000, 50), (51, 50), (50, 50), (30, 50), (7, 1), (0, 5)])
def test_reservoir_is_seeded_and_duplicate_free(n: int, m: int) -> None:
    kept = reservoir_indices(n, m, torch.Generator().manual_seed(3))
    assert len(kept) == min(m, n) and len(set(kept.tolist())) == len(kept)
    assert all(0 <= i < n for i in kept.tolist())
    assert kept.tolist() == _algorithm_r(n, m, torch.Generator().manual_seed(3))
    assert torch.equal(kept, reservoir_indices(n, m, torch.Generator().manual_seed(3)))
    if n > m:
        other = reservoir_indices(n, m, torch.Generator().manual_seed(4))
        assert set(other.tolist()) != set(kept.tolist())


def test_reservoir_is_uniform() -> None:
    n, m, draws = 20, 5, 4000
    counts = torch.zeros(n)
    for seed in range(draws):
        counts[reservoir_indices(n, m, torch.Generator().manual_seed(seed))] += 1
    expected = draws * m / n
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 43.8, counts  # chi-square, 19 degrees of freedom, p = 0.001


# --- the run and its file -------------------------------------------------------------------


def test_replay_bits_in_the_file_are_exactly_the_samples(replayed) -> None:
    _, out, _, _, _ = replayed
    cap = inspect(out / "model.tsn").capacity
    assert [row["replay"] * 8 for row in cap.per_task] == [M * SAMPLE_BITS] * 2
    assert cap.parts["replay"] * 8 == 2 * M * SAMPLE_BITS
    assert cap.total_bytes + cap.overhead_bytes == cap.file_bytes
    report = json.loads((out / "capacity.json").read_text())
    assert report["model"]["parts_bytes"]["replay"] == cap.parts["replay"]


def test_samples_round_trip_through_the_file_bit_exactly(replayed) -> None:
    _, out, _, learner, _ = replayed
    model = load(out / "model.tsn")
    for t in range(2):
        x, y = model.replay(t)
        kept = learner.replay[t]
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape == (M, 784)
        assert torch.equal(x.view(torch.int32), kept.x.view(torch.int32))
        assert torch.equal(y, kept.y)
    for bad in (2, -1):
        with pytest.raises(TaskIdError):
            model.replay(bad)


def test_resume_and_the_same_seed_keep_the_same_samples(replayed) -> None:
    cfg, out, _, learner, first = replayed
    after_first = decode(parse(first, "after task 0"))
    assert torch.equal(after_first.replay(0)[0], learner.replay[0].x)
    scenario = build_scenario(cfg)
    for t in range(2):  # drawn again from the seed alone: the same training samples
        train = scenario.tasks[t].split("train")
        idx = reservoir_indices(len(train), M, task_generator(cfg.seed, t, REPLAY_STREAM))
        assert torch.equal(train.x[idx], learner.replay[t].x)
        assert torch.equal(train.y[idx], learner.replay[t].y)
        other = keep_samples(train, M, task_generator(cfg.seed + 1, t, REPLAY_STREAM))
        assert not torch.equal(other.x, learner.replay[t].x)
    state = torch.load(out / CHECKPOINT, weights_only=True)
    assert [len(y) for _, y in state["learner"]["replay"]] == [M, M]


def test_forget_free_with_replay(replayed) -> None:
    cfg, _, _, learner, first = replayed
    x = torch.cat([build_scenario(cfg).tasks[0].split("test").x[:64],
                   torch.randn(32, 784, generator=torch.Generator().manual_seed(5))])
    assert torch.equal(decode(parse(first, "after task 0")).logits(x, 0), learner.logits(x, 0))


def test_similarity_stats_come_from_the_replay_memory(replayed) -> None:
    _, _, result, learner, _ = replayed
    stats = feature_stats(learner.net, 0, learner.masks[0], learner.replay[0].x)
    assert torch.equal(stats.mean, learner.feature_stats[0].mean)
    assert result.tasks[1]["divergence"] is not None


def test_without_replay_nothing_is_written_and_capacity_is_unchanged(replayed, plain) -> None:
    _, out, result, _, _ = replayed
    plain_out, plain_result, plain_learner = plain
    assert plain_learner.replay == [] and plain_result.R == result.R
    parsed = inspect(plain_out / "model.tsn")
    assert "replay" not in parsed.header and "replay" not in parsed.capacity.parts
    assert not any("replay" in row for row in parsed.capacity.per_task)
    with_memory = inspect(out / "model.tsn").capacity
    assert parsed.capacity.total_bytes == with_memory.total_bytes - with_memory.parts["replay"]
    assert {k: v for k, v in with_memory.parts.items() if k != "replay"} == parsed.capacity.parts
    x, y = load(plain_out / "model.tsn").replay(1)
    assert x.shape == (0, 784) and y.shape == (0,)


def test_inspect_shows_the_replay_part(replayed, capsys) -> None:
    _, out, _, _, _ = replayed
    assert main(["inspect", str(out / "model.tsn")]) == 0
    assert "replay" in capsys.readouterr().out


# --- bad files ------------------------------------------------------------------------------


def test_bad_replay_sections_fail_with_clear_messages(replayed, tmp_path: Path) -> None:
    _, out, _, _, _ = replayed
    good = (out / "model.tsn").read_bytes()

    def count(h: dict) -> None:
        h["replay"]["tasks"][1]["count"] = M + 1

    labels = bytearray(good)
    labels[-CHECKSUM_BYTES - 2 : -CHECKSUM_BYTES] = b"\xff\xff"  # the last label of task 1
    cases = {
        "count": (with_header(good, count), r"replay memory of task 1: \d+ bytes, expected"),
        "dtype": (with_header(good, lambda h: h["replay"].update(x="<f8")),
                  "replay entry is malformed"),
        "tasks": (with_header(good, lambda h: h["replay"]["tasks"].pop()),
                  "replay entry is malformed"),
        "shape": (with_header(good, lambda h: h["replay"]["tasks"][0].update(shape=[0])),
                  "replay entry for task 0 is not a count of inputs of shape \\[784\\]"),
        "label": (rechecksum(bytes(labels)),
                  "replay memory of task 1: label 65535 is not one of its 10 classes"),
    }
    for name, (data, message) in cases.items():
        path = tmp_path / f"{name}.tsn"
        path.write_bytes(data)
        with pytest.raises(DataError, match=message) as error:
            load(path)
        assert str(error.value).startswith(str(path)), name


# --- configuration --------------------------------------------------------------------------


def test_bad_values_give_config_errors(tmp_path: Path, capsys) -> None:
    with pytest.raises(ConfigError, match=r"replay per_task must be >= 0 samples .*got -1"):
        _config(-1).validate()
    for bad in ({"per_task": 2.5}, {"per_task": True}, {"size": 3}, 50):
        with pytest.raises(ConfigError, match="replay"):
            config_from_dict({"replay": bad})
    code = main(["run", "--tasks", "1", "--replay-per-task", "-3", "--no-progress",
                 "--out", str(tmp_path / "r")])
    assert code == 2 and "replay per_task must be >= 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_replay_is_set_from_yaml_and_part_of_the_run_identity(replayed, tmp_path: Path) -> None:
    cfg, out, _, _, _ = replayed
    (tmp_path / "c.yaml").write_text("replay: {per_task: 50}\n")
    assert config_from_dict(read_config_file(tmp_path / "c.yaml")).replay.per_task == 50
    assert cfg.identity()["replay"] == {"per_task": M, "outlier_exposure": 0.0}
    with pytest.raises(ConfigError, match=f"replay.per_task: run has {M}, asked 0"):
        run(_config(0), out=out, resume=True, progress=False)


def test_checkpoints_from_before_replay_still_resume(plain) -> None:
    out, result, _ = plain
    state = torch.load(out / CHECKPOINT, weights_only=True)
    del state["identity"]["replay"]  # as written before the setting existed
    torch.save(state, out / CHECKPOINT)
    resumed, _ = run(_config(0), out=out, resume=True, progress=False)
    assert resumed.R == result.R
    with pytest.raises(ConfigError, match="replay.per_task: run has 0, asked 5"):
        run(_config(5), out=out, resume=True, progress=False)
