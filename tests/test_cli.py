"""The ``tsn`` command: bad input gets one clear message and a non-zero exit, no traceback,
nothing half-written; a good run writes its folder."""

from __future__ import annotations

import json

import pytest
import yaml

from tinysubnets.cli import main

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
