"""Bad input at run time (issue 14, "hostile input and faults"): a damaged run folder, inputs a
model cannot take, a task id it does not hold, a task count no run can reach. Each is one
`TSNError` naming the problem (through the CLI: exit 2, one line on stderr, no traceback),
raised before anything is written; the table rows are the inputs that were tracebacks or hangs.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import tiny_config

from tinysubnets import RunConfig, load, run
from tinysubnets.cli import main
from tinysubnets.config import MAX_TASKS, config_from_dict
from tinysubnets.errors import ConfigError, DataError, ShapeError, TaskIdError, TSNError
from tinysubnets.scenarios import build_scenario
from tinysubnets.scenarios.pmnist import permutation_seed

CHECKPOINT = "checkpoint.pt"


def _cfg() -> RunConfig:
    return dataclasses.replace(tiny_config(epochs=1), tasks=1)


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """A finished one-task run folder, and the learner that wrote it."""
    out = tmp_path_factory.mktemp("bad-inputs") / "run"
    _, learner = run(_cfg(), out, progress=False)
    return out, learner


@pytest.fixture
def folder(finished: tuple[Path, Any], tmp_path: Path) -> Path:
    """A copy of the finished run folder, to damage."""
    return Path(shutil.copytree(finished[0], tmp_path / "run"))


def _files(out: Path) -> dict[str, bytes]:
    """Every file of a run folder but its lock, by name."""
    return {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}


def _cli_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run ``tsn argv``: exit 2, one line on stderr, no traceback; return that line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err


# --- 1. checkpoint.pt -------------------------------------------------------------------------

def _state(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    """A damage: the checkpoint loaded, changed in place by ``edit``, saved again."""
    def damage(path: Path) -> None:
        state = torch.load(path, weights_only=True)
        edit(state)
        torch.save(state, path)
    return damage


def _raw(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _saved(obj: object) -> Callable[[Path], None]:
    return lambda path: torch.save(obj, path)


def _first_weight(state: dict) -> None:
    net = state["learner"]["net"]
    name = next(k for k in net if k.endswith("weight"))
    net[name] = torch.zeros(3)


CHECKPOINTS = [
    ("random bytes", _raw(np.random.default_rng(0).bytes(4096)), "is not a readable checkpoint"),
    ("empty file", _raw(b""), "is not a readable checkpoint"),
    ("not a mapping", _saved([1, 2]), "it holds a list, not a checkpoint's mapping"),
    ("no identity", _state(lambda s: s.pop("identity")), "it has no 'identity'"),
    ("identity not a mapping", _state(lambda s: s.update(identity="pmnist")),
     "its 'identity' is of type str, not dict"),
    ("identity with a tensor", _state(lambda s: s["identity"].update(seed=torch.zeros(3))),
     "its 'identity' holds values that are not settings"),
    ("no learner", _state(lambda s: s.pop("learner")), "it has no 'learner'"),
    ("learner without net", _state(lambda s: s["learner"].pop("net")),
     "it has no learner 'net'"),
    ("no format", _state(lambda s: s.pop("format")), "it has no 'format'"),
    ("older format", _state(lambda s: s.update(format=1)), "it has checkpoint format 1"),
    ("history R not a list", _state(lambda s: s["history"].update(R=5)),
     "its history 'R' is of type int, not list"),
    ("R of another length", _state(lambda s: s["history"].update(R=[])),
     r"1 finished task\(s\) but its history 'R' 0"),
    ("a weight of another shape", _state(_first_weight),
     "holds a learner state that does not fit this run: .*size mismatch"),
    ("finished records garbled", _state(lambda s: s["learner"].update(finished=[{}])),
     "holds a learner state that does not fit this run"),
    ("history records garbled", _state(lambda s: s["history"].update(tasks=[{"x": 1}])),
     "holds a history this run cannot use"),
]


@pytest.mark.parametrize(("damage", "message"), [c[1:] for c in CHECKPOINTS],
                         ids=[c[0] for c in CHECKPOINTS])
def test_a_damaged_checkpoint_is_one_data_error(
    folder: Path, damage: Callable[[Path], None], message: str, capsys
) -> None:
    damage(folder / CHECKPOINT)
    before = _files(folder)
    where = re.escape(str(folder / CHECKPOINT))
    with pytest.raises(DataError, match=f"cannot resume: {where} .*{message}"):
        run(_cfg(), folder, resume=True, progress=False)
    err = _cli_error(capsys, ["run", "--resume", str(folder), "--no-progress"])
    assert re.search(message, err) and str(folder / CHECKPOINT) in err
    assert _files(folder) == before  # nothing written, nothing half-written


# --- 2. config.yaml and results.json ----------------------------------------------------------

CONFIGS = [
    ("unclosed list", "train: [unclosed\n", "is not valid YAML: expected ',' or ']'"),
    ("NUL character", "\x00", "is not valid YAML: unacceptable character"),
    ("not UTF-8", b"\xff\xfe\x00", "is not UTF-8 text"),
    ("a list", "- 1\n- 2\n", r"does not hold a configuration \(a mapping of settings\), it "
                            "holds list"),
    ("empty", "", "it holds NoneType"),
    ("unknown setting", "bogus: 1\n", "unknown setting 'bogus'"),
    ("ill-typed setting", "train: {lr: fast}\n", "train: lr must be of type float, got 'fast'"),
    ("train not a mapping", "train: 5\n", "'train' must be a mapping"),
    ("out of range", "tasks: 0\n", r"number of tasks must be in \[1, 32767\] .*, got 0"),
]


@pytest.mark.parametrize(("text", "message"), [c[1:] for c in CONFIGS],
                         ids=[c[0] for c in CONFIGS])
def test_a_bad_config_yaml_is_one_config_error_naming_it(
    folder: Path, text: str | bytes, message: str, capsys
) -> None:
    path = folder / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    before = _files(folder)
    err = _cli_error(capsys, ["run", "--resume", str(folder), "--no-progress"])
    assert f"cannot resume: {path}" in err and re.search(message, err), err
    assert _files(folder) == before


def _results(edit: Callable[[dict], object]) -> Callable[[str], str]:
    def change(text: str) -> str:
        results = json.loads(text)
        edit(results)
        return json.dumps(results)
    return change


RESULTS = [
    ("not JSON", lambda _: "{not json", "is not readable JSON"),
    ("not UTF-8", lambda _: "\udcff", "is not readable JSON"),
    ("a list", lambda _: "[1, 2]", r"not a JSON object"),
    ("no finished task", _results(lambda r: r.update(R=[])), "holds no finished task"),
    ("R garbled", _results(lambda r: r.update(R=[["x"]])),
     "row 0 of the accuracy matrix R is not 1 numbers"),
    ("baseline garbled", _results(lambda r: r.update(random_init_baseline=[None])),
     "random_init_baseline is not a list of accuracies"),
    ("probes not a list", _results(lambda r: r.update(accuracy_before_training=5)),
     "accuracy_before_training is not a list of accuracies"),
]


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in RESULTS],
                         ids=[c[0] for c in RESULTS])
def test_a_bad_results_json_is_one_data_error_for_report(
    folder: Path, change: Callable[[str], str], message: str, capsys
) -> None:
    path = folder / "results.json"
    text = change(path.read_text())
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    before = _files(folder)
    err = _cli_error(capsys, ["report", str(folder), "--no-activations"])
    assert str(path) in err and re.search(message, err), err
    assert _files(folder) == before


@pytest.mark.parametrize("edit", [
    lambda r: r["config"].update(tasks="x"),
    lambda r: r["model"].update(file_bytes=None),
], ids=["planned tasks garbled", "file size garbled"])
def test_a_garbled_optional_field_is_reported_with_what_is_there(
    folder: Path, edit: Callable[[dict], object], tmp_path: Path, capsys
) -> None:
    (folder / "capacity.json").unlink()  # the capacity then comes from results.json
    path = folder / "results.json"
    path.write_text(_results(edit)(path.read_text()))
    assert main(["report", str(folder), "--no-activations", "--out", str(tmp_path / "r")]) == 0
    assert "Traceback" not in capsys.readouterr().err


def test_eval_reads_the_model_file_alone(folder: Path, capsys) -> None:
    """`tsn eval` reads neither config.yaml nor results.json: damage there changes nothing."""
    (folder / "config.yaml").write_text("train: [unclosed\n")
    (folder / "results.json").write_text("{not json")
    assert main(["eval", str(folder / "model.tsn")]) == 0
    assert "ACC" in capsys.readouterr().out


# --- 3. inputs of logits and predict, and task ids --------------------------------------------

@pytest.fixture(scope="module")
def predictors(finished: tuple[Path, Any]) -> dict[str, Any]:
    out, learner = finished
    return {"learner": learner, "model": load(out / "model.tsn")}


def _x(n: int = 5) -> torch.Tensor:
    return torch.randn(n, 784, generator=torch.Generator().manual_seed(0))


BAD_INPUTS = [
    ("uint8 array", lambda: np.zeros((2, 784), np.uint8), DataError,
     "inputs of dtype torch.uint8: the model takes the preprocessed float inputs"),
    ("int64 tensor", lambda: torch.zeros(2, 784, dtype=torch.int64), DataError,
     r"dtype torch.int64: .*tinysubnets.preprocess.apply"),
    ("bool tensor", lambda: torch.zeros(2, 784, dtype=torch.bool), DataError,
     "dtype torch.bool"),
    ("complex array", lambda: np.zeros((2, 784), np.complex64), DataError,
     "dtype torch.complex64"),
    ("list of ints", lambda: [[0] * 784], DataError, "dtype torch.int64"),
    ("None", lambda: None, DataError, "got a NoneType that is none of these"),
    ("a string", lambda: "digits.npy", DataError, "got a str that is none of these"),
    ("array of strings", lambda: np.array([["a"] * 784]), DataError,
     "got a ndarray that is none of these"),
    ("ragged list", lambda: [[0.0] * 784, [0.0]], DataError, "expected sequence of length"),
    ("wrong width", lambda: torch.zeros(3, 700), ShapeError,
     r"inputs of shape \(3, 700\) do not fit the backbone: expected \(N, 784\)"),
    ("one input, no batch", lambda: torch.zeros(784), ShapeError,
     r"inputs of shape \(784,\) do not fit"),
    ("a scalar", lambda: 1.5, ShapeError, r"inputs of shape \(\) do not fit"),
]


@pytest.mark.parametrize("who", ["learner", "model"])
@pytest.mark.parametrize("how", ["logits", "predict"])
@pytest.mark.parametrize(("make", "error", "message"), [c[1:] for c in BAD_INPUTS],
                         ids=[c[0] for c in BAD_INPUTS])
def test_inputs_a_model_cannot_take_are_one_data_error(
    predictors: dict[str, Any], who: str, how: str, make: Callable[[], Any],
    error: type[TSNError], message: str,
) -> None:
    assert issubclass(error, DataError)
    with pytest.raises(error, match=message):
        getattr(predictors[who], how)(make(), 0)


GOOD_INPUTS = [
    ("float64 array", lambda x: x.double().numpy(), lambda x: x),
    ("a list of floats", lambda x: x.tolist(), lambda x: x),
    ("a reversed numpy view", lambda x: x.numpy()[::-1], lambda x: x.flip(0)),
    ("28x28 images", lambda x: x.view(-1, 28, 28), lambda x: x),
]


@pytest.mark.parametrize("who", ["learner", "model"])
@pytest.mark.parametrize(("make", "same_as"), [c[1:] for c in GOOD_INPUTS],
                         ids=[c[0] for c in GOOD_INPUTS])
def test_arrays_lists_and_float64_give_the_float32_logits(
    predictors: dict[str, Any], who: str, make: Callable, same_as: Callable
) -> None:
    """Exact: float32 values survive float64 and Python floats unchanged."""
    p, x = predictors[who], _x()
    assert torch.equal(p.logits(make(x), 0), p.logits(same_as(x), 0))


@pytest.mark.parametrize("who", ["learner", "model"])
@pytest.mark.parametrize("empty", [torch.zeros(0, 784), np.zeros((0, 28, 28)), []],
                         ids=["tensor", "images", "list"])
def test_an_empty_batch_gives_an_empty_result(predictors: dict[str, Any], who: str,
                                              empty: Any) -> None:
    p = predictors[who]
    logits = p.logits(empty, 0)
    assert logits.shape == (0, 10) and logits.dtype == torch.float32
    assert p.predict(empty, 0).shape == (0,)


BAD_TASK_IDS = [
    (1, "task id 1 is out of range: this model holds tasks 0..0"),
    (-1, "task id -1 is out of range"),
    (1.0, "task id 1.0 (a float) is out of range: task ids are ints, and this model holds "
          "tasks 0..0"),
    ("0", "task id '0' (a str) is out of range: task ids are ints"),
    (True, "task id True (a bool) is out of range"),
    (None, "task id None (a NoneType) is out of range"),
    (np.int64(3), "task id 3 is out of range"),
]


# predict(x, None) infers the task (tests/test_task_inference.py): not a bad id there.
ID_CASES = [(how, t, m) for how in ("logits", "predict") for t, m in BAD_TASK_IDS
            if not (how == "predict" and t is None)]


@pytest.mark.parametrize("who", ["learner", "model"])
@pytest.mark.parametrize(("how", "task_id", "message"), ID_CASES,
                         ids=[f"{how}-{t!r}" for how, t, _ in ID_CASES])
def test_a_task_id_the_model_does_not_hold_is_one_error(
    predictors: dict[str, Any], who: str, how: str, task_id: Any, message: str
) -> None:
    with pytest.raises(TaskIdError, match=re.escape(message)):
        getattr(predictors[who], how)(_x(), task_id)


def test_a_numpy_task_id_is_a_task_id(predictors: dict[str, Any]) -> None:
    for p in predictors.values():
        assert torch.equal(p.logits(_x(), np.int64(0)), p.logits(_x(), 0))


# --- 4. many tasks: checked against the owner index, built one at a time ----------------------

def test_more_tasks_than_owners_can_name_is_one_config_error(tmp_path: Path, capsys) -> None:
    from tinysubnets.artifact import bounds

    assert MAX_TASKS == bounds.MAX_TASKS  # a run never writes a file the reader refuses
    with pytest.raises(ConfigError, match=rf"number of tasks must be in \[1, {MAX_TASKS}\]"):
        config_from_dict({"tasks": MAX_TASKS + 1}).validate()
    config_from_dict({"tasks": MAX_TASKS}).validate()
    out = tmp_path / "run"
    err = _cli_error(capsys, ["run", "--tasks", "200000", "--stop-after", "1", "--out",
                              str(out)])
    assert "number of tasks must be in [1, 32767] (a weight's owner task is stored as an " \
           "int16), got 200000" in err
    assert not out.exists()


def test_30000_tasks_stopped_after_one_start_and_stop_at_once(tmp_path: Path, capsys) -> None:
    """Nothing at the start of a run costs time per planned task (the data, the FWT baseline,
    the fingerprints): it used to draw every permutation and probe every task first."""
    out = tmp_path / "run"
    start = time.perf_counter()
    assert main(["run", "--tasks", "30000", "--stop-after", "1", "--epochs", "1",
                 "--batch-size", "128", "--no-progress", "--out", str(out)]) == 0
    assert time.perf_counter() - start < 120  # about 5 s; it used to hang
    assert f"continue with: tsn run --resume {out}" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["tasks"] == 30000 and len(results["R"]) == 1
    assert len(results["random_init_baseline"]) == 1
    header = load(out / "model.tsn").scenario
    assert header["tasks"] == 30000 and len(header["fingerprint"]["tasks"]) == 1


def test_p_mnist_tasks_are_built_when_reached_with_the_same_permutations() -> None:
    """Task t's permutation is the (t+1)-th successive draw, whatever order tasks are asked
    in (docs/predict.md: the record the model file keeps)."""
    scenario = build_scenario(RunConfig.for_scenario("pmnist", tasks=MAX_TASKS, seed=3))
    assert len(scenario) == MAX_TASKS
    rng = np.random.default_rng(permutation_seed(3))
    perms = [torch.from_numpy(rng.permutation(784)) for _ in range(4)]
    x3 = scenario.tasks[3].split("test").x  # first, before tasks 0..2
    x0 = scenario.tasks[0].split("test").x
    plain = torch.empty_like(x0)
    plain[:, perms[0]] = x0  # undo P_0
    assert torch.equal(x3, plain[:, perms[3]])
    assert scenario.tasks[3].preprocess["permutation"]["draw"] == 3
    assert [t.name for t in scenario.tasks[1:3]] == ["pmnist-1", "pmnist-2"]
    with pytest.raises(IndexError):
        scenario.tasks[MAX_TASKS]


# --- 5. load() of something that is not a path ------------------------------------------------

@pytest.mark.parametrize("path", [None, 123], ids=["None", "an int"])
def test_load_of_something_not_a_path_is_one_data_error(path: Any) -> None:
    with pytest.raises(DataError, match=f"path, got {path}$"):
        load(path)


# --- 6. what a run folder tells the user to do works ------------------------------------------

def test_resume_of_a_finished_run_rewrites_a_deleted_model_file(folder: Path, capsys) -> None:
    model = (folder / "model.tsn").read_bytes()
    (folder / "model.tsn").unlink()
    assert main(["run", "--resume", str(folder), "--no-progress"]) == 0
    assert (folder / "model.tsn").read_bytes() == model
    assert "Traceback" not in capsys.readouterr().err


def test_stop_after_0_suggests_a_resume_that_works(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    flags = ["--tasks", "1", "--epochs", "1", "--batch-size", "128", "--no-progress"]
    assert main(["run", *flags, "--stop-after", "0", "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"stopped after 0 tasks; continue with: tsn run --resume {out}" in said
    assert main(["run", "--resume", str(out), "--no-progress"]) == 0
    assert len(json.loads((out / "results.json").read_text())["R"]) == 1


# --- 7. QA drill: settings out of any sane range, inputs read before they are checked ---------

_BIG = "9" * 5000  # an int past Python's 4300-digit str() limit, as YAML text


@pytest.mark.parametrize(("flags", "message"), [
    (["--threads", "100000"], "threads must be >= 1 and <= "),
    (["--threads", "0"], "threads must be >= 1 and <= "),
    (["--epochs", "99999999999999999999"], "epochs must be in [1, 1000000]"),
    (["--batch-size", "99999999999999999999"], "batch size must be in [1, "),
    (["--replay-per-task", "99999999999999999999"], "replay per_task"),
], ids=["threads 100000", "threads 0", "epochs 1e20", "batch size 1e20", "replay 1e20"])
def test_run_flags_past_their_bounds_are_one_config_error(
        flags: list[str], message: str, tmp_path: Path, capsys) -> None:
    err = _cli_error(capsys, ["run", "--tasks", "1", *flags, "--out", str(tmp_path / "x")])
    assert message in err and not (tmp_path / "x").exists(), err


@pytest.mark.parametrize("command", ["eval", "predict"])
@pytest.mark.parametrize("threads", ["100000", "0"])
def test_eval_and_predict_threads_past_their_bounds_are_a_usage_error(
        command: str, threads: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "model.tsn", "--task", "0", "x.npy", "--threads", threads]
             if command == "predict" else [command, "model.tsn", "--threads", threads])
    assert exit_.value.code == 2 and "must be in [1, " in capsys.readouterr().err


@pytest.mark.parametrize(("text", "message"), [
    (f"tasks: {_BIG}\n", "holds a value YAML cannot read: Exceeds the limit"),
    ("seed: " + "A" * 5_000_000 + "\n", "must be of type int"),
    ('seed: "' + "A" * 5_000_000 + '"\n', "must be of type int"),
    ("train:\n  lr: 1" + "0" * 400 + "\n", "too large"),
    ("train:\n  epochs: 1" + "0" * 400 + "\n", "epochs must be in"),
    ("? 1" + "0" * 4000 + "\n: 1\n", "unknown setting"),
    ("device: " + "x" * 100_000 + "\n", "unknown device"),
    ("train:\n  optimizer: " + "x" * 100_000 + "\n", "unknown optimizer"),
    ("seed: 1\nseed: 2\n", "duplicate key 'seed' (line 2"),
    ("train:\n  epochs: 1\n  epochs: 2\n", "duplicate key 'epochs' (line 3"),
], ids=["5000-digit tasks", "5 MB seed", "5 MB quoted seed", "5000-digit lr",
        "5000-digit epochs", "5000-digit key", "long device", "long optimizer",
        "duplicate seed", "duplicate nested key"])
def test_config_file_values_are_quoted_short_and_keys_once(
        text: str, message: str, tmp_path: Path, capsys) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(text)
    err = _cli_error(capsys, ["run", "--config", str(config), "--out", str(tmp_path / "x")])
    assert message in err and len(err) < 600, err[:600]
    assert "duplicate" not in message or str(config) in err


def _bomb(path: Path) -> None:
    """A PNG whose header says 12000 x 12000 (a 1x1 image, its IHDR rewritten): decoding it
    would take 144 MB at least; its header alone must refuse it."""
    import io
    import struct
    import zlib

    from PIL import Image

    png = io.BytesIO()
    Image.new("L", (1, 1)).save(png, format="PNG")
    data = bytearray(png.getvalue())
    data[16:24] = struct.pack(">II", 12000, 12000)  # IHDR's width and height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(("write", "message"), [
    (lambda p: np.save(p / "in.npy", np.zeros((28, 28), np.uint8)), None),
    (lambda p: np.save(p / "in.npy", np.zeros((0, 28, 28), np.uint8)), "no inputs in"),
    (lambda p: np.save(p / "in.npy", np.zeros((0, 784), np.uint8)), "no inputs in"),
    (lambda p: _bomb(p / "in.png"), "12000x12000 pixels"),
], ids=["one (28, 28) image", "(0, 28, 28)", "(0, 784)", "decompression bomb"])
def test_predict_inputs_of_one_or_no_image_or_too_many_pixels(
        write: Callable[[Path], None], message: str | None, finished: tuple[Path, Any],
        tmp_path: Path, capsys) -> None:
    write(tmp_path)
    model = str(finished[0] / "model.tsn")
    inputs = str(next(tmp_path.glob("in.*")))
    if message is None:  # one image: one line, named 0, the label of a batch of that one
        assert main(["predict", model, "--task", "0", inputs, "--batch-size", "4"]) == 0
        one = capsys.readouterr().out
        np.save(tmp_path / "batch.npy", np.zeros((1, 28, 28), np.uint8))
        assert main(["predict", model, "--task", "0", str(tmp_path / "batch.npy")]) == 0
        assert one == capsys.readouterr().out and one.startswith("0\t"), one
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DecompressionBombWarning either
        err = _cli_error(capsys, ["predict", model, "--task", "0", inputs])
    assert message in err and inputs in err, err


class _FirstTwo(torch.nn.Module):
    """A backbone that drops all but 2 inputs of a batch (a slip a batch of 2 cannot see)."""

    def __init__(self) -> None:
        super().__init__()
        self.l = torch.nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(x)[:2]


class _Unbatched(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.l = torch.nn.Linear(6, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.l(x).sum(0)


@pytest.mark.parametrize(("backbone", "message"), [
    (_FirstTwo, r"returned \[2, 4\] for 3 inputs"),
    (_Unbatched, r"returned \[4\] for 3 inputs"),
], ids=["wrong batch size", "no batch dimension"])
def test_a_backbone_that_loses_the_batch_size_is_one_shape_error(
        backbone: type, message: str) -> None:
    from tinysubnets.nn.network import TSNNetwork

    with pytest.raises(ShapeError, match=message):
        TSNNetwork(backbone(), (6,), torch.Generator().manual_seed(0))
