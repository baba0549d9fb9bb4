"""Predicting from a model file and raw inputs: each scenario's recorded preprocessing turns the
raw images a user has into exactly the tensors the task was tested on, and `tsn predict` prints
the labels the model gives them, in agreement with `model.predict` and `tsn eval`."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinysubnets import RunConfig, Task, load, run
from tinysubnets.cli import main
from tinysubnets.data import ImageSet, load_embedded_mnist
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.preprocess import apply, read_images
from tinysubnets.scenarios import build_scenario
from tinysubnets.scenarios.imagenet import streamed_class_split
from tinysubnets.scenarios.vision import (
    channel_stats,
    class_split,
    one_task_per_dataset,
    to_tensor,
)


@pytest.fixture(scope="module")
def pmnist_run(tmp_path_factory: pytest.TempPathFactory):
    """A 2-task p-MNIST model on the embedded subset (seconds), and its raw test images."""
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("pmnist")
    cfg = RunConfig.for_scenario("pmnist", tasks=2, train={"epochs": 1})
    result, _ = run(cfg, out=out / "run", progress=False)
    raw = load_embedded_mnist()[1]
    np.save(out / "raw.npy", raw.images)
    return cfg, out, result, raw


def _printed(capsys: pytest.CaptureFixture[str], argv: list[str]) -> list[tuple[str, str]]:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return [tuple(line.split("\t")) for line in captured.out.splitlines()]


def _images(n: int, size: tuple[int, ...], seed: int) -> ImageSet:
    rng = np.random.default_rng(seed)
    return ImageSet(rng.integers(0, 256, (n, *size), dtype=np.uint8),
                    (np.arange(n) % 10).astype(np.int64))


# --- the recorded preprocessing ----------------------------------------------------------


def test_pmnist_record_rebuilds_the_test_inputs(pmnist_run) -> None:
    cfg, _, _, raw = pmnist_run
    scenario = build_scenario(cfg)
    pictures = [Image.fromarray(a) for a in raw.images[:5]]
    for task in scenario.tasks:
        x = task.split("test").x
        assert torch.equal(apply(task.preprocess, raw.images), x)
        assert torch.equal(apply(task.preprocess, pictures), x[:5])  # decoded image files
        assert torch.equal(apply(task.preprocess, raw.images[3]), x[3:4])  # one (28, 28)


def test_image_class_split_records_what_it_did(tmp_path: Path) -> None:
    train, test = _images(60, (32, 32, 3), 0), _images(30, (32, 32, 3), 1)
    scenario = class_split("cifar10", train, test, 5, 2, 0, 0.1, "arrays", 32)
    mean, std = channel_stats(to_tensor(train, 32))
    for task in scenario.tasks:
        record = task.preprocess
        assert record["kind"] == "image" and record["size"] == 32 and record["channels"] == 3
        assert record["mean"] == mean.flatten().tolist() and record["std"] == std.flatten().tolist()
        rows = np.isin(test.labels, task.labels)
        assert torch.equal(apply(record, test.images[rows]), task.split("test").x)
        files = [Image.fromarray(a) for a in test.images[rows]]
        assert torch.equal(apply(record, files), task.split("test").x)


def test_digits_are_padded_and_other_sizes_resized_as_in_training() -> None:
    digits = (_images(40, (28, 28), 2), _images(20, (28, 28), 3))
    photos = (_images(40, (40, 40, 3), 4), _images(20, (40, 40, 3), 5))
    scenario = one_task_per_dataset("five-datasets", [("mnist", *digits), ("big", *photos)], 0,
                                    0.1, "arrays")
    for task, (_, raw) in zip(scenario.tasks, (digits, photos), strict=True):
        assert task.preprocess["resize"] == "pad-or-bilinear"
        x = task.split("test").x
        assert torch.allclose(apply(task.preprocess, raw.images), x, atol=1e-6, rtol=0)
        # grey files become RGB as the data loaders decode them: the same tensors
        files = [Image.fromarray(a) for a in raw.images[:4]]
        assert torch.allclose(apply(task.preprocess, files), x[:4], atol=1e-6, rtol=0)


def test_imagenet_record_is_the_evaluation_transform(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    sizes = [(40, 56), (56, 40), (48, 48), (33, 70)]
    for split, n in (("train", 2), ("val", 1)):
        for c in range(10):
            folder = tmp_path / "imagenet100" / split / f"n{c:08d}"
            folder.mkdir(parents=True)
            for i in range(n):
                w, h = sizes[(c + i) % len(sizes)]
                Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
                    folder / f"{i:03d}.JPEG", quality=90)
    scenario = streamed_class_split("imagenet100", str(tmp_path), 1, 3, 0.1, 32,
                                    cache_dir=tmp_path / "cache")
    task = scenario.tasks[0]
    record = task.preprocess
    assert record["resize"] == "shorter-side-center-crop" and record["shorter_side"] == 37
    classes = sorted((tmp_path / "imagenet100" / "val").iterdir())
    files = [f for c in classes for f in sorted(c.iterdir())]  # every class is in task 0
    assert torch.equal(apply(record, read_images(files)), task.split("test").x[:])


def test_model_ready_inputs_and_unknown_records() -> None:
    x = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float64)
    assert torch.equal(apply({}, x), torch.from_numpy(x.astype(np.float32)))
    with pytest.raises(DataError, match="model-ready floats; got uint8"):
        apply({}, np.zeros((2, 7), np.uint8))
    with pytest.raises(ConfigError, match="unknown preprocessing kind 'jpeg-xl'"):
        apply({"kind": "jpeg-xl"}, x)
    record = {"kind": "pmnist", "mean": 0.1, "std": 0.3, "scale": 255.0,
              "permutation": {"numpy_seed": [0, 1], "draw": 0, "pixels": 784}}
    with pytest.raises(DataError, match="784 pixels each"):
        apply(record, np.zeros((3, 10, 10), np.uint8))
    with pytest.raises(DataError, match="uint8 values 0..255; got float32"):
        apply(record, np.zeros((3, 28, 28), np.float32))


# --- tsn predict -------------------------------------------------------------------------


def test_predict_agrees_with_the_model_and_with_eval(pmnist_run, tmp_path: Path,
                                                     capsys) -> None:
    cfg, out, result, raw = pmnist_run
    model_path = str(out / "run" / "model.tsn")
    model, scenario = load(model_path), build_scenario(cfg)
    assert main(["eval", model_path]) == 0
    evaluated = capsys.readouterr().out
    for t, task in enumerate(scenario.tasks):
        lines = _printed(capsys, ["predict", model_path, "--task", str(t), str(out / "raw.npy")])
        assert [name for name, _ in lines] == [str(i) for i in range(len(raw))]
        labels = np.array([int(label) for _, label in lines])
        assert np.array_equal(labels, model.predict(task.split("test").x, t))
        accuracy = 100.0 * float(np.mean(labels == raw.labels))
        assert accuracy == pytest.approx(result.R[-1][t])
        assert f"{accuracy:.2f}" in evaluated
    # a folder of image files, sorted by name, and one file alone
    for i in range(3):
        Image.fromarray(raw.images[i]).save(tmp_path / f"digit{i}.png")
    lines = _printed(capsys, ["predict", model_path, "--task", "1", str(tmp_path)])
    want = model.predict(scenario.tasks[1].split("test").x[:3], 1)
    assert lines == [(f"digit{i}.png", str(want[i])) for i in range(3)]
    single = _printed(capsys, ["predict", model_path, "--task", "1", str(tmp_path / "digit2.png")])
    assert single == [("digit2.png", str(want[2]))]


def test_predict_errors_are_one_line(pmnist_run, tmp_path: Path, capsys) -> None:
    _, out, _, _ = pmnist_run
    model_path = str(out / "run" / "model.tsn")
    np.save(tmp_path / "small.npy", np.zeros((2, 10, 10), np.uint8))
    (tmp_path / "notes.txt").write_text("x")
    cases = [
        (["--task", "5", str(out / "raw.npy")], "task id 5 is out of range"),
        (["--task", "0", str(tmp_path / "none.npy")], "no such file or folder"),
        (["--task", "0", str(tmp_path / "small.npy")], "784 pixels each"),
        (["--task", "0", str(tmp_path / "notes.txt")], "must be a .npy file"),
        (["--task", "0", str(tmp_path / "small.npy"), "--backbone", "nocolon"],
         "--backbone takes MODULE:CLASS"),
    ]
    for argv, message in cases:
        assert main(["predict", model_path, *argv]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err


NETS = """
from torch import nn


class TinyNet(nn.Sequential):
    def __init__(self):
        super().__init__(nn.Linear(6, 16), nn.ReLU())


class NeedsArgs(nn.Module):
    def __init__(self, width):
        super().__init__()
"""


def test_predict_with_a_user_backbone(tmp_path: Path, monkeypatch, capsys) -> None:
    (tmp_path / "user_nets_tsn.py").write_text(textwrap.dedent(NETS))
    monkeypatch.syspath_prepend(str(tmp_path))
    from user_nets_tsn import TinyNet  # type: ignore[import-not-found]

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 6)).astype(np.float32)
    names = np.where(x[:, 0] > 0, "cat", "dog")
    task = Task.from_tensors("pets", x[:60], names[:60], x[60:], names[60:])
    run({"train": {"epochs": 1}}, out=tmp_path / "run", tasks=[task], backbone=TinyNet(),
        progress=False)
    model_path = str(tmp_path / "run" / "model.tsn")
    np.save(tmp_path / "x.npy", x[60:])
    lines = _printed(capsys, ["predict", model_path, "--task", "0", str(tmp_path / "x.npy"),
                              "--backbone", "user_nets_tsn:TinyNet"])
    want = load(model_path, backbone=TinyNet()).predict(torch.from_numpy(x[60:]), 0)
    assert [label for _, label in lines] == list(want)
    for backbone, message in [(None, "pass --backbone MODULE:CLASS"),
                              ("no_such_module_tsn:Net", "cannot import no_such_module_tsn"),
                              ("user_nets_tsn:Missing", "user_nets_tsn has no Missing"),
                              ("user_nets_tsn:NeedsArgs", "must build with no arguments")]:
        argv = ["predict", model_path, "--task", "0", str(tmp_path / "x.npy")]
        assert main(argv + (["--backbone", backbone] if backbone else [])) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    # the tasks are the user's: eval cannot rebuild them, and says how to evaluate
    assert main(["eval", model_path]) == 2
    err = capsys.readouterr().err
    assert "the user's own" in err and "model.evaluate" in err
