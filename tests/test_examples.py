"""The examples in examples/ run on tiny data, imported and from the command line; their model
files load with a fresh backbone and predict the user's labels exactly as the learner does."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

import tinysubnets as tsn

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def example(name: str) -> ModuleType:
    """examples/<name>.py imported as a module (importing it runs nothing)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so its functions pickle, as a DataLoader worker may need
    spec.loader.exec_module(module)
    return module


def check_run(result, learner, out: Path, backbone: torch.nn.Module,
              tests: list[tuple[torch.Tensor, list]]) -> tsn.CompressedModel:
    """Every task finished with no forgetting; the model file, loaded with a fresh instance of
    the user's module, answers in the task's labels, bit for bit as the learner."""
    T = len(tests)
    assert [len(row) for row in result.R] == list(range(1, T + 1))
    assert result.bwt == 0.0
    path = out / "model.tsn"
    assert path.is_file() and path.stat().st_size == result.model["file_bytes"] > 0
    model = tsn.load(path, backbone=backbone)
    assert model.num_tasks == T
    for t, (x, labels) in enumerate(tests):
        assert model.labels(t) == sorted(set(labels), key=lambda v: (type(v).__name__, v))
        predicted = model.predict(x, t)
        assert len(predicted) == len(x)
        assert set(predicted.tolist()) <= set(labels)
        assert {type(v) for v in predicted.tolist()} == {type(v) for v in
                                                         np.asarray(labels).tolist()}
        assert np.array_equal(predicted, learner.predict(x, t))
        assert torch.equal(model.logits(x, t), learner.logits(x, t))
    return model


def test_own_tensors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ex = example("own_tensors")
    result, learner, model, data = ex.main(str(tmp_path / "run"), epochs=1, n=60, progress=False)
    half = 30
    tests = [(torch.from_numpy(x[half:]), y[half:].tolist()) for x, y in data]
    for t, labels in enumerate(ex.LABELS):
        assert set(model.labels(t)) == set(labels)  # 10, 11, 12 and strings, not 0..k-1
    check_run(result, learner, tmp_path / "run", ex.make_mlp(), tests)
    assert "task 2: accuracy" in capsys.readouterr().out


def test_own_cnn_dataset(tmp_path: Path) -> None:
    ex = example("own_cnn_dataset")
    result, learner, model, tests = ex.main(str(tmp_path / "run"), epochs=1, n=40,
                                            progress=False)
    assert [model.labels(t) for t in range(2)] == [[0, 1], [2, 3]]
    inputs = [(torch.stack([test[i][0] for i in range(len(test))]), test.targets)
              for test in tests]
    check_run(result, learner, tmp_path / "run", ex.SmallCNN(), inputs)


def test_augmentation_applies_to_training_inputs_only() -> None:
    ex = example("own_cnn_dataset")
    task, test = ex.make_task(0, [0, 1], 20, workers=0)
    torch.manual_seed(0)
    train = task.split("train").x
    rows = torch.arange(len(train))
    assert not torch.equal(train[rows], train[rows])  # random flip and noise, each read
    x = task.split("test").x
    clean = torch.stack([test[i][0] for i in range(len(test))])
    assert torch.equal(x[torch.arange(len(x))], clean)


def write_image_folders(root: Path, size: int = 12) -> dict[str, list[str]]:
    """<root>/<task>/<split>/<class>/<i>.png: two tasks of two classes, told apart by colour."""
    colours = {"rgb": {"red": (220, 30, 30), "blue": (30, 30, 220)},
               "shade": {"dark": (40, 40, 40), "light": (210, 210, 210)}}
    rng = np.random.default_rng(0)
    for task, classes in colours.items():
        for split, count in (("train", 8), ("test", 3)):
            for name, colour in classes.items():
                (root / task / split / name).mkdir(parents=True)
                for i in range(count):
                    side = size + (3 if i == 0 else 0)  # one larger image: it is resized
                    pixels = np.clip(np.array(colour) + rng.normal(0, 20, (side, side, 3)), 0,
                                     255).astype(np.uint8)
                    Image.fromarray(pixels).save(root / task / split / name / f"{i}.png")
    return {task: sorted(classes) for task, classes in colours.items()}


def test_image_folders(tmp_path: Path) -> None:
    ex = example("image_folders")
    classes = write_image_folders(tmp_path / "images")
    result, learner, model, tests = ex.main(str(tmp_path / "images"), str(tmp_path / "run"),
                                            epochs=1, size=8, progress=False)
    assert [model.labels(t) for t in range(2)] == list(classes.values())
    inputs = [(torch.stack([test[i][0] for i in range(len(test))]), test.targets)
              for test in tests]
    x = inputs[0][0]
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.float32 and 0 <= x.min() <= x.max() <= 1
    check_run(result, learner, tmp_path / "run", ex.SmallCNN(), inputs)


@pytest.mark.parametrize("name, args", [
    ("own_tensors", ["--n", "40"]),
    ("own_cnn_dataset", ["--n", "20"]),
    ("image_folders", ["--size", "8"]),
])
def test_command_line(tmp_path: Path, name: str, args: list[str]) -> None:
    if name == "image_folders":
        write_image_folders(tmp_path / "images")
        args = [*args, "--root", str(tmp_path / "images")]
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / f"{name}.py"), "--epochs", "1", "--out", str(out), *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BWT 0.00" in proc.stdout and (out / "model.tsn").is_file()
