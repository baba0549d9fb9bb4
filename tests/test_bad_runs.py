"""Bad run folders, checkpoints, ``out`` values and tasks: one TSNError each, before any work
(a QA drill's findings: edited checkpoints, a removed checkpoint, a non-path ``out``, bad
in-memory task data)."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from user_models import UserMLP, toy_data

import tinysubnets as tsn
from tinysubnets.errors import ConfigError, DataError

CFG = {"train": {"epochs": 1, "batch_size": 64}, "seed": 3}
OWNER = "layers.fc/weight.owner"


def _tasks(n: int = 2) -> list[tsn.Task]:
    return [tsn.Task.from_tensors(f"toy{t}", *toy_data(t, shape=(64,))) for t in range(n)]


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder with 1 of 2 tasks finished."""
    out = tmp_path_factory.mktemp("runs") / "one"
    tsn.run(CFG, out, tasks=_tasks(), backbone=UserMLP(), progress=False, stop_after=1)
    return out


def _copy(finished: Path, tmp_path: Path) -> Path:
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def _resume(out: Path) -> None:
    tsn.run(CFG, out, tasks=_tasks(), backbone=UserMLP(), progress=False, resume=True)


def _net(edit: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    return lambda state: edit(state["learner"]["net"])


def _fill(key: str, value: float) -> Callable[[dict[str, Any]], None]:
    return _net(lambda net: net[key].fill_(value))


def _history(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    return lambda state: state["history"].__setitem__(key, value)


CHECKPOINT_EDITS = {
    "owner of an unfinished task": (_fill(OWNER, 7), "holds owner 7"),
    "owner below -1": (_fill(OWNER, -5), "holds owner -5"),
    "one owner of task 1": (_net(lambda net: net[OWNER].view(-1)[3].fill_(1)), "holds owner 1"),
    "NaN frozen weights": (_fill("layers.fc/weight.frozen", math.nan), "NaN or infinite"),
    "inf head": (_fill("heads.0.bias", math.inf), "NaN or infinite"),
    "NaN R": (_history("R", [[math.nan]]), "'R' row 0"),
    "string R": (_history("R", [["50"]]), "'R' row 0"),
    "inf baseline": (_history("baseline", [math.inf]), "'baseline' entry 0"),
    "None baseline": (_history("baseline", [None]), "'baseline' entry 0"),
    "NaN before": (_history("before", [math.nan]), "'before' entry 0"),
}


@pytest.mark.parametrize("edit, fragment", CHECKPOINT_EDITS.values(), ids=CHECKPOINT_EDITS)
def test_an_edited_checkpoints_values_are_refused(
    finished: Path, tmp_path: Path, edit: Callable[[dict[str, Any]], None], fragment: str
) -> None:
    out = _copy(finished, tmp_path)
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    edit(state)
    torch.save(state, out / "checkpoint.pt")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(DataError, match="checkpoint.pt") as info:
        _resume(out)
    assert fragment in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written


REMOVED = {
    "checkpoint only": (("checkpoint.pt",), "results.json records 1 finished"),
    "checkpoint and results": (("checkpoint.pt", "results.json"), None),
}


@pytest.mark.parametrize("removed, fragment", REMOVED.values(), ids=REMOVED)
def test_a_resume_without_its_checkpoint_keeps_finished_tasks(
    finished: Path, tmp_path: Path, removed: tuple[str, ...], fragment: str | None
) -> None:
    out = _copy(finished, tmp_path)
    for name in removed:
        (out / name).unlink()
    if fragment is None:  # a model.tsn of 1 task alone: a run killed before its checkpoint
        _resume(out)
        assert (out / "checkpoint.pt").exists()
        return
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(DataError, match="checkpoint.pt is missing") as info:
        _resume(out)
    assert fragment in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_a_model_file_of_several_tasks_without_checkpoint_is_refused(
    finished: Path, tmp_path: Path
) -> None:
    out = _copy(finished, tmp_path)
    _resume(out)  # both tasks finished
    (out / "checkpoint.pt").unlink()
    (out / "results.json").unlink()
    with pytest.raises(DataError, match="model.tsn records 2 finished task"):
        _resume(out)


BAD_OUT = {
    "int": (5, "out must be a path"),
    "list": (["a"], "out must be a path"),
    "empty": ("", "must not be empty"),
    "blank": ("  ", "must not be empty"),
}


@pytest.mark.parametrize("out, fragment", BAD_OUT.values(), ids=BAD_OUT)
def test_out_must_be_a_path(out: Any, fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        tsn.run(CFG, out, tasks=_tasks(1), backbone=UserMLP(), progress=False)


def _data(**change: Any) -> dict[str, Any]:
    x, y, xt, yt = toy_data(0, n=80, shape=(64,))
    parts = {"x_train": x, "y_train": y, "x_test": xt, "y_test": yt}
    return {k: v(parts[k]) if callable(v) else v for k, v in {**parts, **change}.items()}


def _poke(value: float, at: int = 3) -> Callable[[torch.Tensor], torch.Tensor]:
    def edit(x: torch.Tensor) -> torch.Tensor:
        x = x.clone()
        x.view(-1)[at] = value
        return x
    return edit


def _nan_label(y: list) -> np.ndarray:
    labels = np.array(y, dtype=np.float64)
    labels[0] = math.nan
    return labels


BAD_TASKS = {
    "labels None": (DataError, _data(y_train=None), "train split: labels must be a sequence"),
    "labels an int": (DataError, _data(y_test=3), "test split: labels must be a sequence"),
    "object inputs": (DataError, _data(x_train=np.array([None] * 60, dtype=object)),
                      "train split yields a numpy array of dtype 'object'"),
    "NaN train input": (DataError, _data(x_train=_poke(math.nan)), "train split: 1 of"),
    "inf test input": (DataError, _data(x_test=_poke(-math.inf)), "test split: 1 of"),
    "NaN float label": (DataError, _data(y_train=_nan_label), "label nan is not a finite"),
    "NaN val input": (DataError, _data(x_val=torch.full((4, 64), math.nan),
                                       y_val=[10, 11, 12, 10]), "val split: 256 of"),
}


@pytest.mark.parametrize("error, data, fragment", BAD_TASKS.values(), ids=BAD_TASKS)
def test_bad_task_data_is_refused_when_the_task_is_built(
    error: type[Exception], data: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(error, match="task 'toy'") as info:
        tsn.Task.from_tensors("toy", **data)
    assert fragment in str(info.value)


@pytest.mark.parametrize("name", [5, "", "   ", None], ids=["int", "empty", "blank", "None"])
def test_a_task_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(ConfigError, match=f"non-empty string, got {name!r}"):
        tsn.Task.from_tensors(name, **_data())
    with pytest.raises(ConfigError, match="non-empty string"):
        tsn.Task.from_datasets(name, [(torch.zeros(2), 0)], [(torch.zeros(2), 0)])
