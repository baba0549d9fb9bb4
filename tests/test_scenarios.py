"""Image scenarios on small files in the standard formats: split CIFAR-10 from an ImageFolder
archive, five-datasets from IDX files (a 2-task run end to end), and clear messages for
missing datasets."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tinysubnets import RunConfig, load, run
from tinysubnets.cli import main
from tinysubnets.data import write_idx
from tinysubnets.errors import ConfigError, DataError
from tinysubnets.preprocess import apply, read_images
from tinysubnets.scenarios import build_scenario


def _idx_dataset(folder: Path, n_train: int, n_test: int, seed: int, t10k_only: bool = False):
    """MNIST-format files of 28×28 digits whose class shows as a bright row."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    parts = [("t10k", n_test)] if t10k_only else [("train", n_train), ("t10k", n_test)]
    for prefix, n in parts:
        labels = (np.arange(n) % 10).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28), dtype=np.uint8)
        images[np.arange(n), 2 + 2 * labels, :] = 255
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)


def _cifar_jpg_archive(root: Path, per_class: int = 4) -> Path:
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck"]
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for c, name in enumerate(classes):
            folder = root / "cifar10-jpg" / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                pixels[:, :, c % 3] = 25 * c
                Image.fromarray(pixels).save(folder / f"{i:04d}.png")
    archive = root / "cifar10" / "cifar10-jpg.tar.gz"
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / "cifar10-jpg", arcname="cifar10-jpg")
    return archive


def test_split_cifar10_from_an_imagefolder_archive(tmp_path: Path) -> None:
    _cifar_jpg_archive(tmp_path)
    cfg = RunConfig.for_scenario("cifar10", data_dir=str(tmp_path), seed=3)
    scenario = build_scenario(cfg)
    assert len(scenario) == 5 and scenario.input_shape == (3, 32, 32)
    seen = set()
    for task in scenario.tasks:
        train, val, test = (task.split(w) for w in ("train", "val", "test"))
        assert task.n_classes == 2
        assert train.x.shape[1:] == (3, 32, 32) and len(train) + len(val) == 8 and len(test) == 8
        assert set(test.y.tolist()) == {0, 1}
        seen.add(tuple(sorted(set(test.x[:, :, 0, 0].sum(1).round().tolist()))))
    assert "JPEG (lossy)" in scenario.source
    # another seed, another class order
    other = build_scenario(RunConfig.for_scenario("cifar10", data_dir=str(tmp_path), seed=4))
    assert not torch.equal(other.tasks[0].split("test").x, scenario.tasks[0].split("test").x)


def test_split_cifar10_records_how_image_files_become_its_inputs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TSN_CACHE_DIR", str(tmp_path / "cache"))
    _cifar_jpg_archive(tmp_path)
    scenario = build_scenario(RunConfig.for_scenario("cifar10", data_dir=str(tmp_path), seed=3))
    classes = sorted((tmp_path / "cifar10-jpg" / "test").iterdir())
    for task in scenario.tasks:
        record = task.preprocess
        assert (record["kind"], record["dataset"], record["size"]) == ("image", "cifar10", 32)
        assert len(record["mean"]) == len(record["std"]) == 3
        files = [f for c in task.labels for f in sorted(classes[c].iterdir())]
        assert len(files) == len(task.split("test"))
        # the PNG files of the task's classes, through the record: its test inputs exactly
        images = read_images(sorted(files))  # class order is the label order: sorted as well
        assert torch.equal(apply(record, images), task.split("test").x)


def test_five_datasets_two_tasks_end_to_end(tmp_path: Path, capsys) -> None:
    _idx_dataset(tmp_path / "mnist", 120, 40, seed=1)
    _idx_dataset(tmp_path / "notmnist", 0, 150, seed=2, t10k_only=True)
    cfg = RunConfig.for_scenario(
        "five-datasets", data_dir=str(tmp_path), datasets="mnist,notmnist", tasks=2, seed=0,
        train={"epochs": 5, "batch_size": 32, "lr": 0.01},
    )
    result, learner = run(cfg, out=tmp_path / "run", progress=False)
    assert [t.name for t in build_scenario(cfg).tasks] == ["mnist", "notmnist"]
    assert "notmnist t10k IDX files" in result.source and "split 80/20" in result.source
    assert result.bwt == 0.0 and len(result.R) == 2
    assert result.R[0][0] > 30  # a bright row per class: learnable in a few epochs
    model = load(tmp_path / "run" / "model.tsn")
    x = build_scenario(cfg).tasks[0].split("test").x[:16]
    for t in range(2):
        assert torch.equal(model.logits(x, t), learner.logits(x, t))
    assert model.capacity.parts["norms"] > 0
    # the file alone, with the data folder: the same accuracies (its datasets are recorded)
    assert main(["eval", str(tmp_path / "run" / "model.tsn"), "--data-dir", str(tmp_path)]) == 0
    assert f"ACC {result.acc:.2f} over 2 tasks" in capsys.readouterr().out
    # ... and without it: the file records the folder, and each task's preprocessing
    assert main(["eval", str(tmp_path / "run" / "model.tsn")]) == 0
    assert f"ACC {result.acc:.2f} over 2 tasks" in capsys.readouterr().out
    assert [model.task_info[t]["preprocess"]["dataset"] for t in range(2)] == ["mnist",
                                                                                "notmnist"]


def test_missing_datasets_say_what_to_put_where(tmp_path: Path) -> None:
    _idx_dataset(tmp_path / "mnist", 20, 10, seed=1)
    cfg = RunConfig.for_scenario("five-datasets", data_dir=str(tmp_path))
    with pytest.raises(DataError, match=r"cifar10: no dataset files found .*cifar10-jpg.tar.gz"):
        build_scenario(cfg)
    svhn = RunConfig.for_scenario("five-datasets", data_dir=str(tmp_path), datasets="svhn",
                                  tasks=1)
    with pytest.raises(DataError, match=r"svhn: .*train_32x32.mat and test_32x32.mat"):
        build_scenario(svhn)
    with pytest.raises(ConfigError, match=r"unknown dataset\(s\) imagenet"):
        build_scenario(RunConfig.for_scenario("five-datasets", datasets="mnist,imagenet"))
    with pytest.raises(ConfigError, match=r"5 tasks asked but 1 datasets chosen"):
        build_scenario(RunConfig.for_scenario("five-datasets", data_dir=str(tmp_path),
                                              datasets="mnist"))
    with pytest.raises(ConfigError, match=r"cifar100 has no embedded copy: pass --data-dir"):
        build_scenario(RunConfig.for_scenario("cifar100"))
