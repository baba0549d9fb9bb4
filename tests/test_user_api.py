"""The library opened to users: their tasks (tensors or datasets, any labels) and their own
module, through the public API only. The promises hold there too: forget-free bit-exactly
(biases and BatchNorm included), the file in a fresh process with a fresh module, the user's
labels back, and one clear error for each bad input before anything is written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset
from user_models import UserCNN, UserMLP, WithEmbedding, toy_data

import tinysubnets as tsn
from tinysubnets.errors import ConfigError, DataError, ShapeError

CFG = {"train": {"epochs": 4, "batch_size": 32, "lr": 0.01}, "seed": 3}
TESTS = Path(__file__).resolve().parent


def _tasks(n: int = 3, **kwargs: object) -> list[tsn.Task]:
    return [tsn.Task.from_tensors(f"toy{t}", *toy_data(t, **kwargs)) for t in range(n)]


def _probe(shape: tuple[int, ...] = (1, 8, 8)) -> torch.Tensor:
    return torch.randn(40, *shape, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def cnn_run(tmp_path_factory: pytest.TempPathFactory):
    """3 tasks on the user's CNN: the logits of task 0 after task 0, then the finished run."""
    out = tmp_path_factory.mktemp("cnn")
    tasks = _tasks()
    _, first = tsn.run(CFG, out, tasks=tasks, backbone=UserCNN(), progress=False, stop_after=1)
    after_first = first.logits(_probe(), 0)
    result, learner = tsn.run(CFG, out, tasks=tasks, backbone=UserCNN(), progress=False,
                              resume=True)
    return out, tasks, after_first, result, learner


def test_user_cnn_with_biases_and_batchnorm_is_forget_free_bit_exact(cnn_run) -> None:
    out, tasks, after_first, result, learner = cnn_run
    assert torch.equal(learner.logits(_probe(), 0), after_first)  # two tasks later, resumed
    assert result.bwt == 0.0 and len(result.R) == 3
    assert result.acc > 80  # the toy tasks are learnable: the run did learn them
    names = set(learner.net.masked_layers())
    assert {"conv1.weight", "conv1.bias", "fc.bias"} <= names  # biases are masked too
    assert learner.net.norm_names == ("bn1", "bn2")  # BatchNorm is per task
    # Biases are claimed and frozen like weights: a finished task's stay where they were.
    assert (learner.net.masked_layers()["fc.bias"].owner >= 0).any()


def test_a_fresh_process_with_a_fresh_module_gives_the_trained_logits(cnn_run) -> None:
    out, _, _, _, learner = cnn_run
    probe = _probe()
    torch.save({"x": probe, "logits": [learner.logits(probe, t) for t in range(3)]},
               out / "expected.pt")
    code = (
        "import torch, tinysubnets as tsn; from user_models import UserCNN\n"
        f"e = torch.load({str(out / 'expected.pt')!r})\n"
        f"m = tsn.load({str(out / 'model.tsn')!r}, backbone=UserCNN())\n"
        "assert all(torch.equal(m.logits(e['x'], t), e['logits'][t]) for t in range(3))\n"
        "print(m.predict(e['x'][:3], 0).tolist())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OMP_NUM_THREADS": "2"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(learner.predict(probe[:3], 0).tolist())


def test_predictions_come_back_as_the_users_labels(tmp_path: Path) -> None:
    tasks = _tasks(2, shape=(64,), labels=("cat", "dog", "emu", "fox"))
    assert tasks[0].labels == ("cat", "dog", "emu", "fox")
    result, learner = tsn.run(CFG, tmp_path, tasks=tasks, backbone=UserMLP(), progress=False)
    model = tsn.load(tmp_path / "model.tsn", backbone=UserMLP())
    x = tasks[1].split("test").x
    labels = model.predict(x, 1)
    assert set(labels.tolist()) <= {"cat", "dog", "emu", "fox"}
    assert np.array_equal(labels, learner.predict(x, 1))
    assert np.array_equal(model.predict(x.numpy(), 1), labels)  # numpy inputs too
    y = toy_data(1, shape=(64,), labels=("cat", "dog", "emu", "fox"))[3]
    assert 100.0 * float(np.mean(labels == np.asarray(y))) == pytest.approx(result.R[1][1])
    assert model.labels(0) == ["cat", "dog", "emu", "fox"]
    assert model.capacity.parts["tasks"] > 0  # labels are bytes of the file, counted
    # LayerNorm is per task too: task 0 computes as it did before task 1
    assert learner.net.norm_names == ("norm",) and result.bwt == 0.0


def test_integer_labels_not_starting_at_zero_are_mapped_and_unmapped() -> None:
    x, y, xt, yt = toy_data(0, labels=(7, 3, 42))
    task = tsn.Task.from_tensors("ints", x, torch.tensor(y), xt, np.array(yt))
    assert task.labels == (3, 7, 42)  # sorted: the same indices in every process
    assert set(task.split("train").y.tolist()) <= {0, 1, 2}


class _ArrayDataset(Dataset):
    """A torchvision-style dataset: (tensor, label) items and a ``targets`` list."""

    def __init__(self, x: torch.Tensor, y: list, with_targets: bool = True) -> None:
        self.x, self.y = x, y
        if with_targets:
            self.targets = list(y)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple:
        return self.x[i], self.y[i]


@pytest.mark.parametrize(("targets", "workers"), [(True, 0), (False, 2)])
def test_a_dataset_task_learns_exactly_as_the_same_tensors(
    tmp_path: Path, targets: bool, workers: int
) -> None:
    data = [toy_data(t) for t in range(2)]
    as_tensors = [tsn.Task.from_tensors(f"toy{t}", *d) for t, d in enumerate(data)]
    as_datasets = [
        tsn.Task.from_datasets(f"toy{t}", _ArrayDataset(x, y, targets),
                               _ArrayDataset(xt, yt, targets), workers=workers)
        for t, (x, y, xt, yt) in enumerate(data)
    ]
    a, _ = tsn.run(CFG, tmp_path / "a", tasks=as_tensors, backbone=UserCNN(), progress=False)
    b, _ = tsn.run(CFG, tmp_path / "b", tasks=as_datasets, backbone=UserCNN(), progress=False)
    assert a.R == b.R
    assert (tmp_path / "a/model.tsn").read_bytes() == (tmp_path / "b/model.tsn").read_bytes()


def test_a_train_time_transform_is_applied_to_training_inputs_only() -> None:
    x, y, xt, yt = toy_data(0)
    seen: list[int] = []

    def augment(v: torch.Tensor) -> torch.Tensor:
        seen.append(1)
        return v.flip(-1)

    task = tsn.Task.from_datasets("aug", _ArrayDataset(x, y), _ArrayDataset(xt, yt),
                                  transform=augment)
    train, test = task.split("train"), task.split("test")
    assert torch.equal(test.x[:], xt) and not seen
    assert torch.equal(train.x[:3], x[train.x.rows[:3]].flip(-1)) and len(seen) == 3


def _refused(tmp_path: Path, error: type, match: str, **run_kwargs: object) -> None:
    out = tmp_path / "run"
    with pytest.raises(error, match=match):
        tsn.run(CFG, out, progress=False, **run_kwargs)
    assert not out.exists()  # nothing half-written


def test_bad_inputs_get_one_clear_error_before_anything_is_written(tmp_path: Path) -> None:
    x, y, xt, yt = toy_data(0)
    with pytest.raises(DataError, match="task 'one': the training split holds 1 class"):
        tsn.Task.from_tensors("one", x, [5] * len(x), xt, [5] * len(xt))
    with pytest.raises(DataError, match=r"task 'unseen', test split: label\(s\) \[99\]"):
        tsn.Task.from_tensors("unseen", x, y, xt, [99] * len(xt))
    with pytest.raises(DataError, match="task 'short', train split: 3 labels"):
        tsn.Task.from_tensors("short", x, y[:3], xt, yt)
    with pytest.raises(DataError, match="task 'pil', train split yields inputs of type str"):
        tsn.Task.from_datasets("pil", _ArrayDataset(["img"] * 4, [0, 1, 0, 1]),
                               _ArrayDataset(xt, yt))
    with pytest.raises(DataError, match="uint8 inputs"):
        tsn.Task.from_tensors("bytes", (x * 0).to(torch.uint8), y, xt, yt)
    _refused(tmp_path, ConfigError, "tasks is empty", tasks=[], backbone=UserCNN())
    _refused(tmp_path, ConfigError, "needs backbone", tasks=_tasks(1))
    _refused(tmp_path, ConfigError, "task 0 is a tuple", tasks=[toy_data(0)], backbone=UserCNN())
    _refused(tmp_path, ShapeError, r"cannot take inputs of shape \[64\]",
             tasks=_tasks(1, shape=(64,)), backbone=UserCNN())
    _refused(tmp_path, ShapeError, r"task 1 \('toy1'\) has inputs of shape \[64\]",
             tasks=[_tasks(1)[0], tsn.Task.from_tensors("toy1", *toy_data(1, shape=(64,)))],
             backbone=UserCNN())
    _refused(tmp_path, ConfigError, r"layer table \(Embedding\) holds \['weight'\]",
             tasks=_tasks(1, shape=(64,)), backbone=WithEmbedding())
    _refused(tmp_path, ShapeError, "must map a batch to \\(N, features\\)",
             tasks=_tasks(1), backbone=nn.Conv2d(1, 2, 3))


def test_the_file_checks_the_module_it_is_given(cnn_run) -> None:
    out, *_ = cnn_run
    with pytest.raises(DataError, match=r"user backbone \(UserCNN\): pass a fresh instance"):
        tsn.load(out / "model.tsn")
    with pytest.raises(DataError, match=r"layer conv1.weight: the file holds \[6, 1, 3, 3\], "
                                        r"the backbone UserMLP none"):
        tsn.load(out / "model.tsn", backbone=UserMLP(n_in=64, width=16))
    wider = UserCNN()
    wider.fc = nn.Linear(128, 20)
    with pytest.raises(DataError, match=r"layer fc.weight: the file holds \[16, 128\], the "
                                        r"backbone UserCNN \[20, 128\]"):
        tsn.load(out / "model.tsn", backbone=wider)


def test_a_resume_with_other_tasks_is_refused(cnn_run) -> None:
    out, tasks, *_ = cnn_run
    other = [tsn.Task.from_tensors("other", *toy_data(0)), *tasks[1:]]
    with pytest.raises(ConfigError, match="its task 0 was 'toy0'.*now 'other'"):
        tsn.run(CFG, out, tasks=other, backbone=UserCNN(), progress=False, resume=True)


def test_the_users_module_is_left_as_it_was_given() -> None:
    module = UserCNN()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    tsn.run({"train": {"epochs": 1}}, tasks=_tasks(1), backbone=module, progress=False)
    after = module.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_the_seed_alone_fixes_a_run_unless_the_modules_values_are_kept(tmp_path: Path) -> None:
    tasks = _tasks(1)
    files = []
    for global_seed in (1, 2):  # the module is built from two different generator states
        torch.manual_seed(global_seed)
        tsn.run(CFG, tmp_path / f"s{global_seed}", tasks=tasks, backbone=UserCNN(),
                progress=False)
        files.append((tmp_path / f"s{global_seed}" / "model.tsn").read_bytes())
    assert files[0] == files[1]
    module = UserCNN()
    with torch.no_grad():
        module.fc.weight.fill_(0.25)  # e.g. pretrained values
    for init, kept in (("module", True), ("seed", False)):
        _, learner = tsn.run({**CFG, "init": init, "train": {"epochs": 1}}, tasks=tasks,
                             backbone=module, progress=False, stop_after=0)
        values = learner.net.masked_layers()["fc.weight"].weight
        assert torch.equal(values, torch.full_like(values, 0.25)) == kept


def test_a_user_run_folder_gets_its_report(cnn_run, tmp_path: Path) -> None:
    from tinysubnets.report.build import write_report

    out, *_ = cnn_run
    plain = write_report([out], tmp_path / "plain").path.read_text()
    assert "## Accuracy matrix R (%)" in plain and "## Capacity by part (Table 1)" in plain
    assert "Not measured: the model was trained with the user's own backbone" in plain
    full = write_report([out], tmp_path / "full", backbone=UserCNN()).path.read_text()
    table6 = full.split("(Table 6)")[1].split("##")[0]
    assert "| mean |" in table6 and "Not measured" not in table6
    assert "the run's tasks are the user's own" in full.split("(Table 7)")[1]


def test_a_one_hot_mixture_of_user_subnetworks_mixes_norms_too(cnn_run) -> None:
    from tinysubnets.nn.mixture import mixture_logits

    learner = cnn_run[4]
    weights = [learner.task_weights(t) for t in range(3)]
    for t in range(3):  # BatchNorm statistics and biases of task t, nothing of the others
        alpha = torch.nn.functional.one_hot(torch.tensor(t), 3).float()
        assert torch.equal(mixture_logits(learner.net, _probe(), weights, alpha),
                           learner.logits(_probe(), t))
    # one-shot inference differentiates through the mixed affine norms, not the statistics
    found = learner.infer_task(_probe(), "oneshot", per_batch=True)
    assert found.shape == (40,) and len(found.unique()) == 1
