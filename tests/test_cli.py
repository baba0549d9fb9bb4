"""The ``tsn`` command: bad input gets one clear message and a non-zero exit, no traceback,
nothing half-written; a good run writes its folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import with_header

from tinysubnets import RunConfig, run
from tinysubnets.cli import main
from tinysubnets.data import write_idx

QUICK = ["--tasks", "2", "--epochs", "1", "--no-progress"]


def _error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    return err


def test_help_reads_for_a_newcomer(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--scenario", "--tasks", "--epochs", "--keep-ratio", "--data-dir", "--download",
                 "--seed", "--out", "--config", "--resume", "examples:"):
        assert flag in out


def test_run_writes_the_run_folder(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["run", *QUICK, "--out", str(out)]) == 0
    assert "Accuracy matrix" in capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert len(results["R"]) == 2 and results["bwt"] == 0.0
    assert yaml.safe_load((out / "config.yaml").read_text())["tasks"] == 2
    assert (out / "accuracy_matrix.csv").read_text().startswith("trained")
    assert not [p for p in out.iterdir() if p.name.endswith(".part")]


@pytest.mark.parametrize("ratio", ["0", "1.5", "-0.2"])
def test_keep_ratio_out_of_range(tmp_path, capsys, ratio: str) -> None:
    err = _error(capsys, ["run", *QUICK, "--keep-ratio", ratio, "--out", str(tmp_path / "r")])
    assert "keep ratio" in err and ratio in err
    assert not (tmp_path / "r").exists()


def test_share_ratio_out_of_range(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    err = _error(capsys, ["run", *QUICK, "--layer-share-ratio", "fc1=2", "--out", str(out)])
    assert "share ratio of layer fc1" in err and "2.0" in err
    assert not out.exists()


def test_unknown_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--scenario", "nope"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_missing_data_dir(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-folder"
    err = _error(capsys, ["run", *QUICK, "--data-dir", str(missing), "--out", str(tmp_path / "r")])
    assert str(missing) in err
    assert not (tmp_path / "r" / "checkpoint.pt").exists()


def test_corrupt_data_file(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "mnist"
    data.mkdir()
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (data / name).write_bytes(b"not a gzip file")
    err = _error(capsys, ["run", *QUICK, "--data-dir", str(data), "--out", str(tmp_path / "r")])
    assert "train-images-idx3-ubyte.gz" in err


def test_resume_from_another_config_is_refused(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", *QUICK, "--stop-after", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    before = (out / "checkpoint.pt").read_bytes()
    err = _error(capsys, ["run", "--resume", str(out), "--keep-ratio", "0.3", "--no-progress"])
    assert "another configuration" in err and "keep_ratio" in err
    assert (out / "checkpoint.pt").read_bytes() == before


def test_resume_missing_folder(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _error(capsys, ["run", "--resume", str(tmp_path / "nothing")])
    assert "nothing" in err


def test_existing_run_is_not_overwritten(tmp_path, capsys) -> None:
    out = tmp_path / "run"
    assert main(["run", *QUICK, "--stop-after", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    err = _error(capsys, ["run", *QUICK, "--out", str(out)])
    assert "--resume" in err


def test_config_file_and_unknown_keys(tmp_path, capsys) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("tasks: 2\ntrain:\n  epochs: 1\n  keep_ratio: 0.4\n")
    out = tmp_path / "run"
    assert main(["run", "--config", str(cfg), "--no-progress", "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["train"]["keep_ratio"] == 0.4 and saved["tasks"] == 2
    capsys.readouterr()
    cfg.write_text("train:\n  keep_ration: 0.4\n")
    err = _error(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "r2")])
    assert "keep_ration" in err and str(cfg) in err
    cfg.write_text("train:\n  keep_ratio: lots\n")
    err = _error(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "r2")])
    assert "keep_ratio must be of type float" in err
    cfg.write_text("tasks: [1, 2\n")
    err = _error(capsys, ["run", "--config", str(cfg), "--out", str(tmp_path / "r3")])
    assert "not valid YAML" in err


# --- tsn eval: the data the file records ------------------------------------------------------

MNIST_NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
               "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def _idx_folder(folder: Path, seed: int, n_train: int = 200, n_test: int = 50) -> Path:
    """Four IDX files named like MNIST's (whatever they hold: another seed, another dataset)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz",
                  rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz",
                  rng.integers(0, 10, n).astype(np.uint8))
    return folder


@pytest.fixture(scope="module")
def embedded_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-task p-MNIST model of the embedded subset: it records data_dir None."""
    out = tmp_path_factory.mktemp("embedded") / "run"
    run(RunConfig.for_scenario("pmnist", tasks=2, train={"epochs": 1}), out=out, progress=False)
    return out / "model.tsn"


def test_eval_refuses_other_data_with_the_same_file_names(embedded_model: Path, tmp_path,
                                                          capsys) -> None:
    fashion = _idx_folder(tmp_path / "fashion-as-mnist", seed=5)
    assert [p.name for p in sorted(fashion.iterdir())] == sorted(MNIST_NAMES)
    err = _error(capsys, ["eval", str(embedded_model), "--data-dir", str(fashion)])
    assert "not the data the model was tested on" in err and "--force" in err
    assert "recorded: mnist embedded subset" in err
    assert f"found: mnist IDX files in {fashion}" in err
    assert main(["eval", str(embedded_model), "--data-dir", str(fashion), "--force"]) == 0
    out = capsys.readouterr().out
    assert "ACC" in out and "note: --force" in out


def test_eval_reads_the_recorded_folder_or_says_what_is_missing(tmp_path, capsys) -> None:
    data = _idx_folder(tmp_path / "mnist", seed=1)
    cfg = RunConfig.for_scenario("pmnist", tasks=1, data_dir=str(data), train={"epochs": 1})
    result, _ = run(cfg, out=tmp_path / "run", progress=False)
    model = tmp_path / "run" / "model.tsn"
    assert main(["eval", str(model)]) == 0  # no --data-dir: the folder the file records
    out = capsys.readouterr().out
    assert f"ACC {result.acc:.2f} over 1 tasks" in out and str(data.resolve()) in out
    data.rename(tmp_path / "moved")
    err = _error(capsys, ["eval", str(model)])
    assert f"read from {data.resolve()}, which is not there now" in err
    assert "pass --data-dir" in err and "train-images-idx3-ubyte.gz" in err
    assert main(["eval", str(model), "--data-dir", str(tmp_path / "moved")]) == 0
    assert f"ACC {result.acc:.2f} over 1 tasks" in capsys.readouterr().out


def test_eval_of_a_download_without_the_cache_asks_for_download(
    embedded_model: Path, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("TSN_CACHE_DIR", str(tmp_path / "empty-cache"))
    model = tmp_path / "model.tsn"
    model.write_bytes(with_header(embedded_model.read_bytes(),
                                  lambda h: h["scenario"].update(download=True)))
    err = _error(capsys, ["eval", str(model)])
    assert "download cache, which lacks" in err and "pass --download" in err
    assert "train-images-idx3-ubyte.gz" in err


def test_eval_of_user_tasks_explains_why_not(embedded_model: Path, tmp_path, capsys) -> None:
    model = tmp_path / "model.tsn"
    model.write_bytes(with_header(embedded_model.read_bytes(),
                                  lambda h: h["scenario"].update(name="custom")))
    err = _error(capsys, ["eval", str(model)])
    assert "the user's own" in err and "Evaluate from Python" in err


def test_eval_of_a_file_without_fingerprint_checks_the_source(embedded_model: Path, tmp_path,
                                                              capsys) -> None:
    model = tmp_path / "model.tsn"
    model.write_bytes(with_header(embedded_model.read_bytes(), lambda h: [
        h["scenario"].pop(k) for k in ("fingerprint", "data_dir", "download")]))
    assert main(["eval", str(model)]) == 0
    assert "records no fingerprint" in capsys.readouterr().out
    other = _idx_folder(tmp_path / "other", seed=2)
    err = _error(capsys, ["eval", str(model), "--data-dir", str(other)])
    assert "no fingerprint recorded, and another source" in err
